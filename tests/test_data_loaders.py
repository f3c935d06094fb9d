"""Loaders on the real shared files, the generic tensor loader, and build → save → info."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

from flowdistill.data.chicago import chicago_areas, chicago_pois
from flowdistill.data.dataset import FlowDataset
from flowdistill.data.geo import read_zones
from flowdistill.data.sources import load_dataset
from flowdistill.data.tensors import load_tensor
from flowdistill.data.trips import nyc_zone_table, select_boroughs


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """The real entry path (run_guarded) in-process: exit code, stdout, stderr."""
    from flowdistill.cli import app
    from flowdistill.cli.common import run_guarded

    monkeypatch.setattr(sys, "argv", ["flowdistill", *args])
    code = run_guarded(app)
    cap = capsys.readouterr()
    return code, cap.out, " ".join(cap.err.split())


# ------------------------------------------------------------------------------ NYC Manhattan
def test_nyc_manhattan_2019(nyc):
    assert (nyc.num_slots, nyc.num_regions, nyc.num_channels) == (17520, 69, 2)
    assert nyc.start == pd.Timestamp("2019-01-01 00:00")
    assert nyc.end == pd.Timestamp("2019-12-31 23:30")
    assert nyc.interval_minutes == 30
    assert np.array_equal(nyc.flows, np.round(nyc.flows))  # integer counts
    assert nyc.flows.min() >= 0
    assert nyc.centroids is not None and nyc.pois is not None


def test_nyc_manhattan_2020_sub_period(shared_data):
    ds = load_dataset("nyc-taxi-manhattan", shared_data, "2020-03-01", "2020-03-31")
    assert ds.num_slots == 31 * 48
    assert ds.start == pd.Timestamp("2020-03-01") and ds.end == pd.Timestamp("2020-03-31 23:30")
    whole = load_dataset("nyc-taxi-manhattan", shared_data, "2019-01-01", "2020-12-31")
    assert whole.num_slots == 35088
    assert whole.flows[:17520].mean() > 3 * whole.flows[17520:].mean()  # the 2020 drop


def test_nyc_bike_manhattan_swaps_the_source_file_names(shared_data, nyc):
    """The Citi Bike source's "inflow" file counts trip starts: our inflow (arrivals) is its
    "outflow" file, our outflow (departures) its "inflow" file."""
    bike = load_dataset("nyc-bike-manhattan", shared_data)
    assert (bike.num_slots, bike.num_regions) == (17520, 69)
    assert bike.start == nyc.start and bike.region_ids == nyc.region_ids
    folder = shared_data / "nyc-bike-manhattan"
    with np.load(folder / "201901-202012-NYCbike-inflow.npz") as z:
        starts = z["arr_0"][:17520]
    with np.load(folder / "201901-202012-NYCbike-outflow.npz") as z:
        ends = z["arr_0"][:17520]
    assert np.array_equal(bike.flows[..., 0], ends) and np.array_equal(bike.flows[..., 1], starts)
    assert bike.extra["mode"] == "bike"
    assert 12 < bike.flows.mean() < 15  # README: 13.4 trips per zone-slot in 2019
    with pytest.raises(Exception, match="nyc-bike-manhattan"):
        load_dataset("nyc-boat-manhattan", shared_data)


# ------------------------------------------------------------------------------ zone polygons
def test_taxi_zone_polygons(shared_data):
    zones = read_zones(shared_data / "nyc-taxi-zones" / "taxi_zones.shp", "LocationID", "zone")
    assert len(zones.ids) == 260
    assert {"56", "103"} <= set(zones.ids) and not {"57", "104", "105"} & set(zones.ids)
    c = zones.centroids()
    assert c.shape == (260, 2) and np.isfinite(c).all()
    # NY State Plane feet: the city spans roughly 0.9-1.07 M east, 0.12-0.28 M north
    assert 0.9e6 < c[:, 0].min() and c[:, 0].max() < 1.07e6
    adj = zones.contiguity()
    assert np.array_equal(adj, adj.T) and adj.diagonal().sum() == 0
    # Battery Park City (13) touches the World Trade Center (261)
    assert adj[zones.ids.index("13"), zones.ids.index("261")] == 1


def test_zone_table_263_and_boroughs(shared_data):
    table = nyc_zone_table(shared_data)
    assert table.ids == [str(i) for i in range(1, 264)]
    man = select_boroughs(table, "manhattan")
    listed = pd.read_csv(shared_data / "nyc-taxi-manhattan" / "manhattan_zones.csv")
    assert sorted(int(z) for z in man.ids) == sorted(int(z) for z in listed["zone_id"])
    assert len(select_boroughs(table, "staten-island").ids) == 20
    assert len(select_boroughs(table, "Bronx,EWR").ids) == 44


# ------------------------------------------------------------------------------ Chicago
def test_chicago_graph_and_pois(shared_data):
    areas = chicago_areas(shared_data)
    assert len(areas.ids) == 77 and areas.adjacency.shape == (77, 77)
    assert np.array_equal(areas.adjacency, areas.adjacency.T)
    assert areas.names[0] == "Rogers Park" and areas.names[31] == "Loop"
    assert areas.centroids is not None and areas.centroids.shape == (77, 2)
    pois = chicago_pois(shared_data)
    assert len(pois) == 77 and all(pois)
    assert all("point_of_interest" not in p for p in pois)
    raw = json.loads((shared_data / "chicago" / "CHI_taxi_POIs.json").read_text())
    first = next(e for e in raw if e["id"] == "CHI_taxi_0")
    assert set(pois[0]) == set(first["types"]) - {"point_of_interest", "establishment"}
    poly = chicago_areas(shared_data, graph="polygons").adjacency
    # Loop (32) and Near North Side (8) share the river
    assert poly[31, 7] == 1 and np.array_equal(poly, poly.T)


# ------------------------------------------------------------------------------ tensors
def test_tensor_tnc_and_ntc_agree(tmp_path):
    rng = np.random.default_rng(0)
    tnc = rng.integers(0, 9, size=(96, 5, 2)).astype(np.float64)
    np.savez(tmp_path / "tnc.npz", arr_0=tnc)
    np.savez(tmp_path / "ntc.npz", data=tnc.transpose(1, 0, 2), other=np.zeros(3))
    a = load_tensor(tmp_path / "tnc.npz", layout="TNC", start="2022-05-01", interval_minutes=30)
    b = load_tensor(tmp_path / "ntc.npz", layout="NTC", start="2022-05-01", interval_minutes=30)
    assert a.flows.shape == b.flows.shape == (96, 5, 2)
    assert np.array_equal(a.flows, b.flows) and np.array_equal(a.flows, tnc)
    assert a.end == pd.Timestamp("2022-05-02 23:30")


def test_tensor_channels_adjacency_and_timestamps(tmp_path):
    x = np.arange(4 * 3 * 3, dtype=np.float32).reshape(4, 3, 3)
    times = pd.date_range("2021-06-01 06:00", periods=4, freq="15min").to_numpy()
    np.savez(tmp_path / "x.npz", data=x, timestamps=times)
    adj = tmp_path / "adj.csv"
    adj.write_text("0,1,2\n0,1,0\n1,0,1\n0,1,0\n")  # header row of column indices
    ds = load_tensor(tmp_path / "x.npz", layout="TNC", channels=(2, 0), adjacency=adj)
    assert ds.interval_minutes == 15 and ds.start == pd.Timestamp("2021-06-01 06:00")
    assert np.array_equal(ds.flows[..., 0], x[..., 2])
    assert np.array_equal(ds.flows[..., 1], x[..., 0])
    assert ds.adjacency.tolist() == [[0, 1, 0], [1, 0, 1], [0, 1, 0]]


# ------------------------------------------------------------------------------ CLI build → info
def test_build_tensor_then_info_json(tmp_path, monkeypatch, capsys):
    x = np.ones((48 * 2, 4, 2))
    np.save(tmp_path / "x.npy", x.transpose(1, 0, 2))
    out = tmp_path / "built" / "x.npz"
    code, _, err = run_cli(
        monkeypatch, capsys, "data", "build", "tensor", str(tmp_path / "x.npy"),
        "--layout", "NTC", "--start", "2023-01-02", "--interval", "30", "--out", str(out),
    )
    assert code == 0, err
    code, stdout, err = run_cli(monkeypatch, capsys, "data", "info", str(out), "--json")
    assert code == 0, err
    info = json.loads(stdout)
    assert info["slots"] == 96 and info["regions"] == 4 and info["start"] == "2023-01-02T00:00:00"
    ds = FlowDataset.load(out)
    assert ds.extra["layout"] == "NTC"


def test_build_nyc_tlc_then_info_json(tmp_path, shared_data, monkeypatch, capsys):
    rec = tmp_path / "yellow_tripdata_2020-02.csv"
    rec.write_text(
        "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,PULocationID,DOLocationID\n"
        "1,2020-02-01 08:01:00,2020-02-01 08:20:00,236,237\n"
        "1,2020-02-01 08:40:00,2020-02-01 09:05:00,237,236\n"
    )
    out = tmp_path / "ues.npz"
    code, _, err = run_cli(
        monkeypatch, capsys, "data", "build", "nyc-tlc", str(rec), "--zones", "manhattan",
        "--interval", "60", "--start", "2020-02-01", "--end", "2020-02-01", "--out", str(out),
        "--data-dir", str(shared_data),
    )
    assert code == 0, err
    code, stdout, err = run_cli(monkeypatch, capsys, "data", "info", str(out), "--json")
    assert code == 0, err
    info = json.loads(stdout)
    assert (info["slots"], info["regions"], info["interval_minutes"]) == (24, 69, 60)
    ds = FlowDataset.load(out)
    assert ds.flows[8, ds.region_ids.index("236"), 1] == 1  # outflow 08:01
    assert ds.flows[9, ds.region_ids.index("236"), 0] == 1  # inflow 09:05
    assert ds.extra["rows"] == 2


@pytest.mark.parametrize("ratio", [0.1, 0.7])
def test_saved_dataset_roundtrip_keeps_calendar(tmp_path, nyc, ratio):
    from flowdistill.data import WindowConfig, Windows

    part = nyc.select_period("2019-03-01", "2019-03-14")
    path = part.save(tmp_path / "p.npz")
    back = load_dataset(str(path))
    assert back.start == part.start and back.num_slots == 14 * 48
    assert np.array_equal(back.flows, part.flows)
    assert Windows(back, WindowConfig(train_ratio=ratio)).bounds.num_slots == 672

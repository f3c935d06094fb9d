"""Bad input: one clear DataError naming the file and the problem, exit code 2, no output file."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowdistill.data import download as dl
from flowdistill.data.chicago import load_chicago_trips
from flowdistill.data.dataset import FlowDataset
from flowdistill.data.errors import DataError
from flowdistill.data.sources import load_nyc_taxi_manhattan
from flowdistill.data.tensors import load_tensor
from flowdistill.data.trips import load_nyc_tlc
from flowdistill.data.windows import WindowConfig, Windows

ROOT = Path(__file__).resolve().parents[1]


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """The real entry path (run_guarded) in-process: exit code and stderr on one line."""
    from rich.console import Console

    from flowdistill.cli import app, common
    from flowdistill.cli.common import run_guarded

    monkeypatch.setattr(common, "console", Console(stderr=True, width=2000))
    monkeypatch.setattr(sys, "argv", ["flowdistill", *args])
    code = run_guarded(app)
    return code, " ".join(capsys.readouterr().err.split())


def yellow_csv(path: Path, rows: list[str]) -> Path:
    path.write_text(
        "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,PULocationID,DOLocationID\n"
        + "".join(r + "\n" for r in rows)
    )
    return path


def tensor_cli(src: Path, out: Path, *extra: str) -> list[str]:
    return ["data", "build", "tensor", str(src), "--layout", "TNC", "--start", "2022-01-01",
            "--interval", "30", "--out", str(out), *extra]


# ------------------------------------------------------------------------------ missing files
def test_missing_record_file(tmp_path, shared_data, monkeypatch, capsys):
    missing = tmp_path / "yellow_tripdata_2019-01.parquet"
    with pytest.raises(DataError, match="file not found") as err:
        load_nyc_tlc([missing], data_dir=shared_data)
    assert err.value.where == str(missing)
    out = tmp_path / "out.npz"
    code, msg = run_cli(monkeypatch, capsys, "data", "build", "nyc-tlc", str(missing),
                        "--out", str(out), "--data-dir", str(shared_data))
    assert code == 2 and "yellow_tripdata_2019-01.parquet" in msg and "file not found" in msg
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_glob_matching_nothing(tmp_path, shared_data):
    with pytest.raises(DataError, match="no file matches"):
        load_nyc_tlc([str(tmp_path / "*.parquet")], data_dir=shared_data)


def test_missing_tensor_and_missing_data_dir(tmp_path, monkeypatch, capsys):
    out = tmp_path / "o.npz"
    code, msg = run_cli(monkeypatch, capsys, *tensor_cli(tmp_path / "nope.npy", out))
    assert code == 2 and "nope.npy" in msg and "file not found" in msg and not out.exists()
    with pytest.raises(DataError, match="file not found"):
        load_nyc_taxi_manhattan(tmp_path / "empty")
    code, msg = run_cli(monkeypatch, capsys, "data", "info", "--data-dir", str(tmp_path))
    assert code == 2 and "201901-202012-NYCtaxi-inflow.npz" in msg


def test_missing_zone_shapefile(tmp_path):
    rec = yellow_csv(tmp_path / "y.csv", ["1,2019-01-01 00:00:00,2019-01-01 00:10:00,4,4"])
    with pytest.raises(DataError, match="taxi_zones.shp"):
        load_nyc_tlc([rec], data_dir=tmp_path / "no-data")


# ------------------------------------------------------------------------------ wrong shape
@pytest.mark.parametrize(
    ("array", "problem"),
    [
        (np.zeros((10, 3)), "wrong shape"),
        (np.zeros((10, 3, 1)), "one channel"),
        (np.zeros((10, 3, 3)), "3 channels"),
        (np.zeros((10, 3, 2, 1)), "wrong shape"),
    ],
)
def test_wrong_tensor_shape(tmp_path, monkeypatch, capsys, array, problem):
    src = tmp_path / "flows.npy"
    np.save(src, array)
    with pytest.raises(DataError, match=problem) as err:
        load_tensor(src, layout="TNC", start="2022-01-01", interval_minutes=30)
    assert err.value.where == str(src)
    out = tmp_path / "o.npz"
    code, msg = run_cli(monkeypatch, capsys, *tensor_cli(src, out))
    assert code == 2 and "flows.npy" in msg and not out.exists()


def test_adjacency_of_wrong_size(tmp_path):
    src = tmp_path / "f.npy"
    np.save(src, np.zeros((10, 3, 2)))
    np.save(tmp_path / "adj.npy", np.eye(4))
    with pytest.raises(DataError, match="3×3") as err:
        load_tensor(src, layout="TNC", start="2022-01-01", interval_minutes=30,
                    adjacency=tmp_path / "adj.npy")
    assert err.value.where.endswith("adj.npy")


def test_ambiguous_npz_keys(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.zeros((4, 2, 2)), b=np.zeros((4, 2, 2)))
    with pytest.raises(DataError, match="--key"):
        load_tensor(tmp_path / "two.npz", layout="TNC", start="2022-01-01", interval_minutes=30)


# ------------------------------------------------------------------------------ NaN, negatives
@pytest.mark.parametrize(("value", "problem"), [(np.nan, "NaN"), (-1.0, "negative")])
def test_nan_or_negative_counts(tmp_path, monkeypatch, capsys, value, problem):
    x = np.ones((12, 3, 2))
    x[5, 1, 0] = value
    src = tmp_path / "bad.npz"
    np.savez(src, data=x)
    with pytest.raises(DataError, match=problem) as err:
        load_tensor(src, layout="TNC", start="2022-01-01", interval_minutes=30)
    assert "bad.npz" in str(err.value) and "slot 5, region 1" in str(err.value)
    out = tmp_path / "o.npz"
    code, msg = run_cli(monkeypatch, capsys, *tensor_cli(src, out))
    assert code == 2 and problem in msg and not out.exists()


def test_missing_calendar(tmp_path):
    np.save(tmp_path / "f.npy", np.zeros((4, 2, 2)))
    with pytest.raises(DataError, match="--start and --interval"):
        load_tensor(tmp_path / "f.npy", layout="TNC")


# ------------------------------------------------------------------------------ timestamps
@pytest.mark.parametrize(
    ("times", "problem"),
    [
        (["2022-01-01 00:00", "2022-01-01 00:30", "2022-01-01 00:30", "2022-01-01 01:00"],
         "duplicated timestamp"),
        (["2022-01-01 00:00", "2022-01-01 00:30", "2022-01-01 01:30", "2022-01-01 02:00"],
         "irregular timestamps"),
        (["2022-01-01 00:30", "2022-01-01 00:00", "2022-01-01 00:30", "2022-01-01 01:00"],
         "duplicated timestamp"),
    ],
)
def test_irregular_or_duplicated_timestamps(tmp_path, monkeypatch, capsys, times, problem):
    src = tmp_path / "f.npz"
    np.savez(src, data=np.ones((4, 2, 2)), timestamps=pd.to_datetime(times).to_numpy())
    with pytest.raises(DataError, match=problem) as err:
        load_tensor(src, layout="TNC")
    assert "f.npz" in err.value.where
    ts_file = tmp_path / "times.csv"
    ts_file.write_text("time\n" + "\n".join(times) + "\n")
    np.save(tmp_path / "g.npy", np.ones((4, 2, 2)))
    out = tmp_path / "o.npz"
    code, msg = run_cli(monkeypatch, capsys, "data", "build", "tensor", str(tmp_path / "g.npy"),
                        "--layout", "TNC", "--timestamps", str(ts_file), "--out", str(out))
    assert code == 2 and "times.csv" in msg and problem in msg and not out.exists()


def test_timestamp_count_must_match(tmp_path):
    times = pd.date_range("2022-01-01", periods=3, freq="30min").to_numpy()
    np.savez(tmp_path / "f.npz", data=np.ones((4, 2, 2)), timestamps=times)
    with pytest.raises(DataError, match="3 timestamps for 4 slots"):
        load_tensor(tmp_path / "f.npz", layout="TNC")


def test_unparseable_trip_timestamps(tmp_path, shared_data, monkeypatch, capsys):
    rec = yellow_csv(
        tmp_path / "yellow.csv",
        ["1,2019-01-01 00:00:00,2019-01-01 00:10:00,4,4",
         "1,2019-01-01 00:05:00,not a time,4,4"],
    )
    with pytest.raises(DataError, match="cannot be parsed") as err:
        load_nyc_tlc([rec], start="2019-01-01", end="2019-01-01", data_dir=shared_data)
    assert err.value.where == str(rec) and "not a time" in err.value.problem
    out = tmp_path / "o.npz"
    code, msg = run_cli(monkeypatch, capsys, "data", "build", "nyc-tlc", str(rec), "--out",
                        str(out), "--data-dir", str(shared_data))
    assert code == 2 and "cannot be parsed" in msg and not out.exists()


def test_chicago_unparseable_timestamp(tmp_path, shared_data):
    rec = tmp_path / "chi.csv"
    rec.write_text(
        "Trip Start Timestamp,Trip End Timestamp,Pickup Community Area,Dropoff Community Area\n"
        "01/01/2021 12:00:00 AM,13/45/2021 99:00:00 XM,8,32\n"
    )
    with pytest.raises(DataError, match="cannot be parsed"):
        load_chicago_trips([rec], start="2021-01-01", end="2021-01-01", data_dir=shared_data)


# ------------------------------------------------------------------------------ zone ids
@pytest.mark.parametrize("bad", ["300", "0", "-4", "abc", "12.5"])
def test_zone_id_not_in_zone_table(tmp_path, shared_data, bad):
    rec = yellow_csv(
        tmp_path / "yellow.csv",
        ["1,2019-01-01 00:00:00,2019-01-01 00:10:00,4,264",
         f"1,2019-01-01 00:05:00,2019-01-01 00:20:00,{bad},4"],
    )
    with pytest.raises(DataError, match="not in the zone table") as err:
        load_nyc_tlc([rec], start="2019-01-01", end="2019-01-01", data_dir=shared_data)
    assert err.value.where == str(rec) and bad in err.value.problem


def test_zone_id_error_names_the_right_file(tmp_path, shared_data, monkeypatch, capsys):
    good = yellow_csv(tmp_path / "a.csv", ["1,2019-01-01 00:00:00,2019-01-01 00:10:00,4,4"])
    bad = tmp_path / "b.parquet"
    pd.DataFrame({
        "tpep_pickup_datetime": pd.to_datetime(["2019-01-01 00:00"]),
        "tpep_dropoff_datetime": pd.to_datetime(["2019-01-01 00:10"]),
        "PULocationID": np.array([4], dtype=np.int64),
        "DOLocationID": np.array([999], dtype=np.int64),
    }).to_parquet(bad)
    out = tmp_path / "o.npz"
    code, msg = run_cli(monkeypatch, capsys, "data", "build", "nyc-tlc", str(good), str(bad),
                        "--start", "2019-01-01", "--end", "2019-01-01", "--out", str(out),
                        "--data-dir", str(shared_data))
    assert code == 2 and "b.parquet" in msg and "999" in msg and not out.exists()


def test_chicago_area_out_of_range(tmp_path, shared_data):
    rec = tmp_path / "chi.csv"
    rec.write_text(
        "Trip Start Timestamp,Trip End Timestamp,Pickup Community Area,Dropoff Community Area\n"
        "01/01/2021 12:00:00 AM,01/01/2021 12:15:00 AM,78,32\n"
    )
    with pytest.raises(DataError, match="not in the zone table"):
        load_chicago_trips([rec], start="2021-01-01", end="2021-01-01", data_dir=shared_data)


def test_records_without_zone_columns(tmp_path, shared_data):
    rec = tmp_path / "yellow_2014.csv"
    rec.write_text(
        "vendor_id,pickup_datetime,dropoff_datetime,pickup_longitude,pickup_latitude\n"
        "CMT,2014-01-01 00:00:00,2014-01-01 00:10:00,-73.98,40.75\n"
    )
    with pytest.raises(DataError, match="coordinates"):
        load_nyc_tlc([rec], data_dir=shared_data)


def test_unknown_borough(tmp_path, shared_data):
    rec = yellow_csv(tmp_path / "y.csv", ["1,2019-01-01 00:00:00,2019-01-01 00:10:00,4,4"])
    with pytest.raises(DataError, match="unknown borough"):
        load_nyc_tlc([rec], zones="atlantis", data_dir=shared_data)


# ------------------------------------------------------------------------------ truncated parquet
def _truncated_parquet(tmp_path: Path) -> Path:
    full = tmp_path / "full.parquet"
    n = 2000
    pd.DataFrame({
        "tpep_pickup_datetime": pd.date_range("2019-01-01", periods=n, freq="min"),
        "tpep_dropoff_datetime": pd.date_range("2019-01-01 00:10", periods=n, freq="min"),
        "PULocationID": np.full(n, 4, dtype=np.int64),
        "DOLocationID": np.full(n, 12, dtype=np.int64),
    }).to_parquet(full)
    cut = tmp_path / "yellow_tripdata_2019-01.parquet"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    full.unlink()
    return cut


def test_truncated_parquet(tmp_path, shared_data, monkeypatch, capsys):
    cut = _truncated_parquet(tmp_path)
    with pytest.raises(DataError, match="cannot read parquet") as err:
        load_nyc_tlc([cut], data_dir=shared_data)
    assert err.value.where == str(cut)
    out = tmp_path / "o.npz"
    out.write_bytes(b"previous result")  # a failed build must not touch an existing file
    code, msg = run_cli(monkeypatch, capsys, "data", "build", "nyc-tlc", str(cut), "--out",
                        str(out), "--data-dir", str(shared_data))
    assert code == 2 and "already exists" in msg and "--force" in msg  # refused up front
    code, msg = run_cli(monkeypatch, capsys, "data", "build", "nyc-tlc", str(cut), "--out",
                        str(out), "--data-dir", str(shared_data), "--force")
    assert code == 2 and "yellow_tripdata_2019-01.parquet" in msg
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.npz", cut.name]


def test_truncated_npz(tmp_path):
    good = FlowDataset(
        name="x", flows=np.ones((4, 2, 2)), start="2022-01-01", interval_minutes=30,
        region_ids=["a", "b"], region_names=["a", "b"], adjacency=np.zeros((2, 2)),
    ).save(tmp_path / "x.npz")
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="x.npz"):
        FlowDataset.load(good)


# ------------------------------------------------------------------------------ inflow/outflow
def test_inflow_outflow_of_different_lengths(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "nyc-taxi-manhattan"
    folder.mkdir()
    np.savez(folder / "201901-202012-NYCtaxi-inflow.npz", np.ones((96, 69)))
    np.savez(folder / "201901-202012-NYCtaxi-outflow.npz", np.ones((95, 69)))
    with pytest.raises(DataError, match="differ in shape") as err:
        load_nyc_taxi_manhattan(tmp_path)
    assert "nyc-taxi-manhattan" in err.value.where
    code, msg = run_cli(monkeypatch, capsys, "data", "info", "--data-dir", str(tmp_path))
    assert code == 2 and "(96, 69)" in msg and "(95, 69)" in msg


# ------------------------------------------------------------------------------ split ratios
def test_training_ratio_overlapping_validation(tmp_path):
    ds = FlowDataset(
        name="x", flows=np.ones((480, 2, 2)), start="2022-01-01", interval_minutes=30,
        region_ids=["a", "b"], region_names=["a", "b"], adjacency=np.zeros((2, 2)),
    )
    with pytest.raises(DataError, match="overlaps validation"):
        Windows(ds, WindowConfig(train_ratio=0.9))


# ------------------------------------------------------------------------------ download
def test_download_offline_is_a_clear_error(tmp_path, monkeypatch, capsys):
    def offline(url, timeout=None):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(dl, "urlopen", offline)
    with pytest.raises(DataError, match="download failed") as err:
        dl.download("nyc-taxi-manhattan", tmp_path)
    assert err.value.where.startswith("https://raw.githubusercontent.com/")
    code, msg = run_cli(monkeypatch, capsys, "data", "download", "--data-dir", str(tmp_path))
    assert code == 2 and "download failed" in msg
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_download_checksum_mismatch_and_success(tmp_path, shared_data, monkeypatch):
    """A server is faked from the shared files, so the whole path runs without internet."""

    def serve(corrupt: bool):
        def opener(url, timeout=None):
            item = next(i for i in dl.DATASETS["chicago"] if i.url == url)
            body = (shared_data / item.dest).read_bytes()
            return io.BytesIO(body + b"x" if corrupt else body)

        return opener

    monkeypatch.setattr(dl, "urlopen", serve(corrupt=True))
    with pytest.raises(DataError, match="checksum mismatch"):
        dl.download("chicago", tmp_path)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    monkeypatch.setattr(dl, "urlopen", serve(corrupt=False))
    report = dl.download("chicago", tmp_path)
    assert {r["status"] for r in report} == {"downloaded"}
    assert dl.download("chicago", tmp_path)[0]["status"] == "present"
    assert (tmp_path / "chicago" / "CHI_TAXI_rn_adj.npy").read_bytes() == (
        shared_data / "chicago" / "CHI_TAXI_rn_adj.npy"
    ).read_bytes()


def test_download_checksums_match_shared_sums(shared_data):
    sums = dict(
        reversed(line.split()) for line in (shared_data / "SHA256SUMS").read_text().splitlines()
    )
    for items in dl.DATASETS.values():
        for item in items:
            assert sums[item.dest] == item.sha256


def test_unknown_download_dataset(tmp_path):
    with pytest.raises(DataError, match="unknown dataset"):
        dl.download("atlantis", tmp_path)


# ------------------------------------------------------------------------------ real exit code
def test_exit_code_through_python_m(tmp_path):
    """The console path end to end: one red line on stderr, exit code 2, nothing written."""
    cut = _truncated_parquet(tmp_path)
    out = tmp_path / "o.npz"
    env = {**os.environ, "COLUMNS": "400"}
    proc = subprocess.run(
        [sys.executable, "-m", "flowdistill", "data", "build", "nyc-tlc", str(cut), "--out",
         str(out)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "error:" in lines[0] and cut.name in lines[0]
    assert "Traceback" not in proc.stderr and not out.exists()

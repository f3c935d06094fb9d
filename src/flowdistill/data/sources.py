"""Where data lives and how a dataset name turns into a `FlowDataset`."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from flowdistill.data.dataset import FlowDataset
from flowdistill.data.errors import DataError
from flowdistill.data.geo import NYC_ZONE_ALIASES, read_zones

ENV_VAR = "FLOWDISTILL_DATA_DIR"
DEFAULT_DATASET = "nyc-taxi-manhattan"
# The paper's one-year span; any sub-period can be chosen instead.
DEFAULT_PERIODS = {
    "nyc-taxi-manhattan": ("2019-01-01", "2019-12-31"),
    "nyc-bike-manhattan": ("2019-01-01", "2019-12-31"),
}
# Built-in datasets on the 69 Manhattan taxi zones: folder, file stem, (arrivals file, departures file).
# The Citi Bike source names its files the other way round: its "inflow" array counts trip starts
# (departures, by start time) and its "outflow" array trip ends, so arrivals come from "outflow".
NYC_MANHATTAN = {
    "nyc-taxi-manhattan": ("nyc-taxi-manhattan", "201901-202012-NYCtaxi", ("inflow", "outflow"),
                           "taxi"),
    "nyc-bike-manhattan": ("nyc-bike-manhattan", "201901-202012-NYCbike", ("outflow", "inflow"),
                           "bike"),
}
BUILTIN_DATASETS = tuple(NYC_MANHATTAN)


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``--data-dir`` wins, then ``$FLOWDISTILL_DATA_DIR``, then ``./data``."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return Path("data")


def _need(path: Path) -> Path:
    if not path.exists():
        raise DataError(
            path,
            f"file not found (set --data-dir or ${ENV_VAR} to the folder that holds the datasets,"
            " or run `flowdistill data download` on a machine with internet)",
        )
    return path


def _load_npz_array(path: Path) -> np.ndarray:
    try:
        with np.load(_need(path), allow_pickle=False) as z:
            key = "arr_0" if "arr_0" in z.files else z.files[0]
            return np.asarray(z[key], dtype=np.float64)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(path, f"cannot read npz: {exc}") from exc


def nyc_pois(data_dir: Path, location_ids: list[str]) -> list[list[str]]:
    """POI category names per TLC LocationID, most frequent first (UrbanGPT's zone_poi.json)."""
    path = _need(data_dir / "nyc-taxi-zones" / "zone_poi.json")
    with open(path, encoding="utf-8") as fh:
        table = json.load(fh)
    out = []
    for zid in location_ids:
        cats = Counter(p.get("category_name", "") for p in table.get(str(zid), []))
        out.append([c for c, _ in cats.most_common() if c])
    return out


def load_nyc_manhattan(
    name: str = "nyc-taxi-manhattan",
    data_dir: str | os.PathLike[str] | None = None,
    start: str | None = None,
    end: str | None = None,
) -> FlowDataset:
    """The 69 Manhattan zones, 30-minute inflow (arrivals) / outflow (departures), 2019–2020.

    ``name`` is ``nyc-taxi-manhattan`` (yellow taxi) or ``nyc-bike-manhattan`` (Citi Bike, same zones,
    column order and slots; zone list and graph come from the taxi folder). Default period: 2019.
    """
    if name not in NYC_MANHATTAN:
        raise DataError(name, f"unknown dataset; built-in ones are {', '.join(BUILTIN_DATASETS)}")
    folder_name, stem, (arr_file, dep_file), mode = NYC_MANHATTAN[name]
    root = resolve_data_dir(data_dir)
    folder = root / folder_name
    zones_dir = root / "nyc-taxi-manhattan"
    inflow = _load_npz_array(folder / f"{stem}-{arr_file}.npz")
    outflow = _load_npz_array(folder / f"{stem}-{dep_file}.npz")
    if inflow.shape != outflow.shape:
        raise DataError(
            folder,
            f"inflow {inflow.shape} and outflow {outflow.shape} differ in shape",
        )
    if inflow.ndim != 2:
        raise DataError(folder / f"{stem}-{arr_file}.npz", f"expected (T, N), got {inflow.shape}")
    zones = pd.read_csv(_need(zones_dir / "manhattan_zones.csv")).sort_values("graph_id")
    if len(zones) != inflow.shape[1]:
        raise DataError(
            zones_dir / "manhattan_zones.csv",
            f"{len(zones)} zones listed but flows have {inflow.shape[1]} columns",
        )
    adj = pd.read_csv(_need(zones_dir / "W_adj_matrix.csv")).to_numpy(dtype=np.float32)
    ids = [str(int(z)) for z in zones["zone_id"]]
    centroids = None
    shp = root / "nyc-taxi-zones" / "taxi_zones.shp"
    if shp.exists():
        centroids = read_zones(shp, "LocationID", "zone").subset(ids, NYC_ZONE_ALIASES).centroids() * 0.3048
    pois = nyc_pois(root, ids) if (root / "nyc-taxi-zones" / "zone_poi.json").exists() else None
    ds = FlowDataset(
        name=name,
        city="New York City (Manhattan)",
        flows=np.stack([inflow, outflow], axis=-1),
        start=pd.Timestamp("2019-01-01 00:00"),
        interval_minutes=30,
        region_ids=ids,
        region_names=[str(n) for n in zones["zone_name"]],
        adjacency=adj,
        centroids=centroids,
        pois=pois,
        source=str(folder),
        extra={"mode": mode, "inflow": "arrivals by zone", "outflow": "departures by zone",
               "files": {"inflow": f"{stem}-{arr_file}.npz", "outflow": f"{stem}-{dep_file}.npz"}},
    )
    if start is None and end is None:
        start, end = DEFAULT_PERIODS[name]
    return ds.select_period(start, end)


def load_nyc_taxi_manhattan(
    data_dir: str | os.PathLike[str] | None = None,
    start: str | None = None,
    end: str | None = None,
) -> FlowDataset:
    """The 69 Manhattan zones, yellow taxi, 30 minutes (default: 2019)."""
    return load_nyc_manhattan("nyc-taxi-manhattan", data_dir, start, end)


def load_dataset(
    name_or_path: str,
    data_dir: str | os.PathLike[str] | None = None,
    start: str | None = None,
    end: str | None = None,
) -> FlowDataset:
    """A built-in dataset name, a saved FlowDistill ``.npz``, or a generic tensor file."""
    if name_or_path in NYC_MANHATTAN:
        return load_nyc_manhattan(name_or_path, data_dir, start, end)
    path = Path(name_or_path)
    if path.suffix in (".npz", ".npy") or path.exists():
        if not path.exists():
            raise DataError(path, "file not found")
        if path.suffix == ".npz":
            try:
                with np.load(path, allow_pickle=False) as z:
                    is_ours = "meta" in z.files
            except Exception as exc:
                raise DataError(path, f"cannot read npz: {exc}") from exc
            if is_ours:
                ds = FlowDataset.load(path)
                return ds.select_period(start, end) if (start or end) else ds
        raise DataError(
            path,
            "a raw tensor file needs its calendar: use `flowdistill data build tensor` "
            "with --start and --interval first",
        )
    raise DataError(
        name_or_path,
        f"unknown dataset: give one of {', '.join(BUILTIN_DATASETS)} or the path of a "
        "dataset built with "
        "`flowdistill data build`",
    )

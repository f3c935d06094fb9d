"""Chicago: the 77 community areas (graph, centroids, POIs) and the Taxi Trips records → flows."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowdistill.data.dataset import FlowDataset
from flowdistill.data.errors import DataError
from flowdistill.data.geo import read_zones
from flowdistill.data.sources import _need, resolve_data_dir
from flowdistill.data.trips import aggregate_trips, check_record_files, trip_extra

NUM_AREAS = 77
# Matched after lower-casing and spaces → underscores: the portal's CSV headers
# ("Trip Start Timestamp") and the Socrata API names (trip_start_timestamp) both fit.
CHICAGO_COLUMNS: dict[str, tuple[str, ...]] = {
    "pickup_time": ("trip_start_timestamp",),
    "dropoff_time": ("trip_end_timestamp",),
    "pickup_zone": ("pickup_community_area",),
    "dropoff_zone": ("dropoff_community_area",),
}
# Google place types that every POI carries; they say nothing about a region.
GENERIC_POI_TYPES = frozenset({"point_of_interest", "establishment"})
GRAPHS = ("rn", "polygons")


@dataclass
class ChicagoAreas:
    """The 77 community areas in number order (region index k = area k+1)."""

    ids: list[str]
    names: list[str]
    adjacency: np.ndarray
    centroids: np.ndarray | None
    pois: list[list[str]] | None


def _folder(data_dir: str | os.PathLike[str] | None) -> Path:
    return resolve_data_dir(data_dir) / "chicago"


def _lonlat_to_metres(lonlat: np.ndarray) -> np.ndarray:
    """Equirectangular projection about the mean latitude: good to ~0.1% across one city."""
    lat0 = np.deg2rad(lonlat[:, 1].mean())
    x = np.deg2rad(lonlat[:, 0]) * np.cos(lat0) * 6_371_008.8
    y = np.deg2rad(lonlat[:, 1]) * 6_371_008.8
    return np.stack([x, y], axis=1)


def chicago_pois(data_dir: str | os.PathLike[str] | None = None) -> list[list[str]]:
    """Place types per area, most frequent first (CHI_taxi_POIs.json: CHI_taxi_<k> = area k+1)."""
    path = _need(_folder(data_dir) / "CHI_taxi_POIs.json")
    try:
        with open(path, encoding="utf-8") as fh:
            entries = json.load(fh)
    except (OSError, ValueError) as exc:
        raise DataError(path, f"cannot read JSON: {exc}") from exc
    out: list[list[str]] = [[] for _ in range(NUM_AREAS)]
    seen: set[int] = set()
    for e in entries if isinstance(entries, list) else []:
        ident = str(e.get("id", "")) if isinstance(e, dict) else ""
        if not ident.startswith("CHI_taxi_") or not ident[9:].isdigit():
            raise DataError(path, f"entry id {ident!r} is not CHI_taxi_<k>")
        k = int(ident[9:])
        if not 0 <= k < NUM_AREAS:
            raise DataError(path, f"entry {ident} is outside areas 1..{NUM_AREAS}")
        counts = Counter(t for t in e.get("types", []) if t and t not in GENERIC_POI_TYPES)
        out[k] = [t for t, _ in counts.most_common()]
        seen.add(k)
    if len(seen) != NUM_AREAS:
        raise DataError(path, f"POIs for {len(seen)} areas, expected {NUM_AREAS}")
    return out


def chicago_areas(
    data_dir: str | os.PathLike[str] | None = None, graph: str = "rn"
) -> ChicagoAreas:
    """Graph (``rn``: the paper's CHI_TAXI_rn_adj.npy, or ``polygons``), names, centroids, POIs."""
    if graph not in GRAPHS:
        raise DataError("--graph", f"unknown graph {graph!r}; choose from {GRAPHS}")
    folder = _folder(data_dir)
    ids = [str(k) for k in range(1, NUM_AREAS + 1)]
    shp = folder / "community_areas.shp"
    zones = read_zones(shp, "area_numbe", "community").subset(ids) if shp.exists() else None
    if graph == "rn":
        path = _need(folder / "CHI_TAXI_rn_adj.npy")
        try:
            adj = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise DataError(path, f"cannot read .npy: {exc}") from exc
        if adj.shape != (NUM_AREAS, NUM_AREAS):
            raise DataError(path, f"expected a {NUM_AREAS}×{NUM_AREAS} matrix, got {adj.shape}")
    else:
        if zones is None:
            _need(shp)
        adj = zones.contiguity()
    names = [n.title() for n in zones.names] if zones else [f"Community area {k}" for k in ids]
    centroids = _lonlat_to_metres(zones.centroids()) if zones else None
    pois = chicago_pois(data_dir) if (folder / "CHI_taxi_POIs.json").exists() else None
    return ChicagoAreas(ids, names, np.asarray(adj, dtype=np.float32), centroids, pois)


def load_chicago_trips(
    files: Sequence[str | os.PathLike[str]],
    *,
    interval_minutes: int = 30,
    start: str | None = None,
    end: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    graph: str = "rn",
    name: str = "chicago-taxi",
) -> FlowDataset:
    """Chicago Taxi Trips records (csv or parquet) → 77-area inflow/outflow.

    Times are local Chicago time as published (already rounded to 15 minutes, so intervals under
    15 minutes only spread counts unevenly). A blank community area (a trip outside Chicago, or
    hidden for privacy) drops that event and is counted in ``extra['dropped']``.
    """
    files = check_record_files(files, CHICAGO_COLUMNS)  # bad input is named first
    areas = chicago_areas(data_dir, graph)
    agg = aggregate_trips(
        files,
        columns=CHICAGO_COLUMNS,
        regions=[int(k) for k in areas.ids],
        interval_minutes=interval_minutes,
        start=start,
        end=end,
    )
    return FlowDataset(
        name=name,
        city="Chicago",
        flows=agg.flows,
        start=agg.start,
        interval_minutes=interval_minutes,
        region_ids=areas.ids,
        region_names=areas.names,
        adjacency=areas.adjacency,
        centroids=areas.centroids,
        pois=areas.pois,
        source=", ".join(agg.files[:3])
        + (f" (+{len(agg.files) - 3} more)" if len(agg.files) > 3 else ""),
        extra=trip_extra(agg, graph=graph),
    )

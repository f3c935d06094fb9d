"""Where the flows a forecast starts from come from: a dataset, a dataset file, or raw trip records.

A team that forecasts tomorrow has this morning's trips, not a built dataset: TLC parquet/CSV records
are aggregated here with the same engine as `data build nyc-tlc` (``data.trips``), onto exactly the
model's zones and clock, so the history the model sees is counted the way its training data was.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from flowdistill.data.dataset import FlowDataset
from flowdistill.data.errors import DataError
from flowdistill.data.sources import load_dataset
from flowdistill.serving.forecaster import Forecaster

TRIP_SUFFIXES = (".parquet", ".csv")


def is_trip_records(data: str) -> bool:
    """A .parquet/.csv file, a glob, or a folder of them (a dataset is a name or an .npz)."""
    if any(ch in data for ch in "*?["):
        return True
    p = Path(data)
    if p.is_dir():
        return True
    return p.suffix.lower() in TRIP_SUFFIXES


def load_input(
    data: str | None,
    forecaster: Forecaster,
    data_dir: str | os.PathLike[str] | None = None,
) -> FlowDataset:
    """The series to forecast from: ``data`` or, if None, the dataset the model was trained on."""
    if data is None:
        spec = forecaster.bundle.dataset.get("spec") or {}
        data = spec.get("dataset") or forecaster.bundle.dataset.get("name")
        if not data:
            raise DataError("--data", "the run does not say which dataset it was trained on")
        data_dir = data_dir or spec.get("data_dir")
    if is_trip_records(data):
        return trips_to_dataset([data], forecaster, data_dir)
    # The whole series, not a dataset's default training period: any slot may be forecast from.
    return load_dataset(data, data_dir, "1900-01-01", "2199-12-31")


def trips_to_dataset(
    files: list[str], forecaster: Forecaster, data_dir: str | os.PathLike[str] | None = None
) -> FlowDataset:
    """NYC TLC trip records → flows on the model's zones and clock, cut after the last trip.

    A partial last day is normal for recent records: slots after the last counted trip are dropped
    (not read as zero traffic), and slots with no trip at all are declared missing, so a forecast
    never starts from a hole in the records.
    """
    from flowdistill.data.trips import (
        NYC_COLUMNS,
        NYC_UNLOCATED_IDS,
        aggregate_trips,
        check_record_files,
        nyc_zone_table,
    )

    b = forecaster.bundle
    paths = check_record_files(files, NYC_COLUMNS)
    try:
        regions = [int(z) for z in b.region_ids]
    except ValueError as exc:
        raise DataError(
            files[0], "wrong zones: the model's zones are not NYC TLC LocationIDs, so trip records "
            "cannot be mapped onto them",
        ) from exc
    table = nyc_zone_table(data_dir)
    unknown = sorted(set(regions) - {int(z) for z in table.ids})
    if unknown:
        raise DataError(files[0], f"wrong zones: the model's zones {unknown[:5]} are not TLC zones")
    internal = bool(b.dataset.get("internal_only", b.dataset.get("name") == "nyc-taxi-manhattan"))
    agg = aggregate_trips(
        paths, columns=NYC_COLUMNS, regions=regions, known=[int(z) for z in table.ids],
        unlocated=NYC_UNLOCATED_IDS, interval_minutes=b.interval_minutes, internal_only=internal,
    )
    busy = np.flatnonzero(agg.flows.sum(axis=(1, 2)) > 0)
    if len(busy) == 0:
        raise DataError(files[0], "no trip falls in the model's zones")
    flows = agg.flows[: busy[-1] + 1]
    empty = flows.sum(axis=(1, 2)) == 0
    step = pd.Timedelta(minutes=b.interval_minutes)
    ds = FlowDataset(
        name=f"trips:{Path(str(paths[0])).name}",
        flows=flows,
        start=agg.start,
        interval_minutes=b.interval_minutes,
        region_ids=list(b.region_ids),
        region_names=list(b.region_names),
        adjacency=np.zeros((len(regions), len(regions)), dtype=np.float32),
        source=str(paths[0]) if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} more)",
        extra={"built_from": "trip records", "rows": agg.rows, "dropped": agg.dropped,
               "internal_only": internal,
               "empty_slots": [(agg.start + i * step).isoformat() for i in np.flatnonzero(empty)]},
    )
    return ds


def check_covered(ds: FlowDataset, first_target: int, input_len: int) -> None:
    """Trip records with a slot of no trip at all before the forecast: a hole, not quiet streets."""
    empty = set(ds.extra.get("empty_slots") or [])
    if not empty:
        return
    stamps = ds.timestamps[first_target - input_len : first_target]
    holes = [t for t in stamps if t.isoformat() in empty]
    if holes:
        raise DataError(
            ds.source or ds.name, f"missing slots: no trip recorded in {len(holes)} of the "
            f"{input_len} slots before the forecast (first {holes[0]})",
        )

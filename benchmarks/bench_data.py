"""Data-layer timings: the two-year NYC dataset (load + windows) and trip-record aggregation.

Run: ``python benchmarks/bench_data.py [--data-dir DIR] [--rows 5000000] [--repeat 3]``.
The data dir defaults to $FLOWDISTILL_DATA_DIR, else ../shared/data beside the project, else
./data. Trip records are generated (official yellow schema) into a temporary parquet file.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from flowdistill.data import WindowConfig, Windows, load_dataset
from flowdistill.data.trips import NYC_COLUMNS, aggregate_trips, load_nyc_tlc, nyc_zone_table

PROJECT = Path(__file__).resolve().parents[1]


def default_data_dir() -> Path:
    env = os.environ.get("FLOWDISTILL_DATA_DIR")
    if env:
        return Path(env)
    shared = (PROJECT / ".." / "shared" / "data").resolve()
    return shared if shared.exists() else Path("data")


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Fastest wall time of ``repeat`` runs (the least disturbed by other work) and the result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def write_yellow(path: Path, rows: int, seed: int = 0) -> None:
    """``rows`` yellow-taxi trips in January 2019, written in row groups like the TLC files."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2019-01-01T00:00:00", "us")
    month_us = 31 * 24 * 3600 * 1_000_000
    writer = None
    chunk = 1_000_000
    try:
        for lo in range(0, rows, chunk):
            n = min(chunk, rows - lo)
            pick = start + rng.integers(0, month_us, n).astype("timedelta64[us]")
            dur = (rng.lognormal(6.5, 0.6, n) * 1_000_000).astype("timedelta64[us]")
            table = pa.table(
                {
                    "VendorID": pa.array(rng.integers(1, 3, n), pa.int64()),
                    "tpep_pickup_datetime": pa.array(pick, pa.timestamp("us")),
                    "tpep_dropoff_datetime": pa.array(pick + dur, pa.timestamp("us")),
                    "passenger_count": pa.array(rng.integers(1, 5, n).astype(float)),
                    "trip_distance": pa.array(rng.gamma(2.0, 1.5, n)),
                    "RatecodeID": pa.array(np.ones(n)),
                    "store_and_fwd_flag": pa.array(np.where(rng.random(n) < 0.01, "Y", "N")),
                    "PULocationID": pa.array(rng.integers(1, 266, n), pa.int64()),
                    "DOLocationID": pa.array(rng.integers(1, 266, n), pa.int64()),
                    "payment_type": pa.array(rng.integers(1, 3, n), pa.int64()),
                    "fare_amount": pa.array(rng.gamma(3.0, 4.0, n)),
                    "total_amount": pa.array(rng.gamma(3.0, 5.0, n)),
                }
            )
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def bench_nyc(data_dir: Path, repeat: int) -> list[tuple[str, str, str]]:
    t_load, ds = best_of(
        repeat, lambda: load_dataset("nyc-taxi-manhattan", data_dir, "2019-01-01", "2020-12-31")
    )
    cfg = WindowConfig(train_ratio=0.7)
    t_win, windows = best_of(repeat, lambda: Windows(ds, cfg))
    train = windows.torch_dataset("train")

    def one_epoch() -> int:
        ids = train.ids
        for i in range(0, len(ids), 128):
            train.get_batch(ids[i : i + 128])
        return len(ids)

    t_epoch, n_train = best_of(repeat, one_epoch)
    shape = f"{ds.num_slots}×{ds.num_regions}×{ds.num_channels}"
    return [
        ("NYC Manhattan 2019-2020: load", f"{t_load:.2f} s", shape),
        ("Windows(train_ratio=0.7)", f"{t_win:.2f} s", f"{len(windows.all_ids)} windows"),
        ("all train batches (128)", f"{t_epoch:.2f} s", f"{n_train} windows"),
    ]


def bench_trips(data_dir: Path, rows: int, repeat: int) -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "yellow_tripdata_2019-01.parquet"
        t0 = time.perf_counter()
        write_yellow(path, rows)
        t_write = time.perf_counter() - t0
        size = path.stat().st_size / 2**20
        table = nyc_zone_table(data_dir)
        regions = [int(z) for z in table.ids]

        def aggregate() -> Any:
            return aggregate_trips(
                [path], columns=NYC_COLUMNS, regions=regions, unlocated=(264, 265),
                interval_minutes=30, start="2019-01-01", end="2019-01-31",
            )

        t_agg, agg = best_of(repeat, aggregate)
        t_full, ds = best_of(
            1,
            lambda: load_nyc_tlc(
                [path], zones="all", start="2019-01-01", end="2019-01-31", data_dir=data_dir
            ),
        )
        kept = int(ds.flows[..., 1].sum())
        assert agg.rows == rows
    return [
        (f"generate {rows:,} yellow rows", f"{t_write:.2f} s", f"{size:.0f} MiB parquet"),
        ("aggregate_trips, 263 zones, 30 min", f"{t_agg:.2f} s", f"{rows / t_agg:,.0f} rows/s"),
        ("load_nyc_tlc (+graph, POIs)", f"{t_full:.2f} s", f"{rows / t_full:,.0f} rows/s"),
        ("  outflow events kept", f"{kept:,}", "264/265 dropped, counted"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data_dir = args.data_dir or default_data_dir()
    rows = bench_nyc(data_dir, args.repeat) + bench_trips(data_dir, args.rows, args.repeat)
    import duckdb

    print(
        f"# bench_data — {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"numpy {np.__version__}, pandas {pd.__version__}, duckdb {duckdb.__version__}; "
        f"best of {args.repeat}"
    )
    widths = [max(len(r[i]) for r in rows + [("step", "time", "size / rate")]) for i in range(3)]
    header = ("step", "time", "size / rate")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(f"{r[0].ljust(widths[0])}  {r[1].rjust(widths[1])}  {r[2]}")


if __name__ == "__main__":
    main()

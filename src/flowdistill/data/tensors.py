"""Generic flow tensors (``.npz`` / ``.npy``) → ``FlowDataset``.

A tensor is ``[T, N, C]`` (slots, regions, channels) or the reference code's ``[N, T, C]``; the
layout is always stated, never guessed, because T and N can both be plausible. The student needs
exactly two channels, inflow and outflow: a tensor with another number of channels is refused
unless ``channels=(i_in, i_out)`` says which two to take (a one-channel tensor cannot be used).
The calendar comes from ``start`` + ``interval_minutes``, or from a timestamp array (npz key
``timestamps``, or a separate ``.npy``/``.csv`` file), which must then be regular and unique.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from flowdistill.data.dataset import FlowDataset
from flowdistill.data.errors import DataError

LAYOUTS = ("TNC", "NTC")
TIMESTAMP_KEYS = ("timestamps", "time", "times")


def _read_array(path: Path, key: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(flow array, timestamps found beside it in the same npz or None)."""
    if not path.exists():
        raise DataError(path, "file not found")
    try:
        if path.suffix == ".npy":
            if key is not None:
                raise DataError(path, "--key only applies to .npz files")
            return np.load(path, allow_pickle=False), None
        if path.suffix != ".npz":
            raise DataError(path, "expected a .npz or .npy file")
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.files)
            if key is not None:
                if key not in keys:
                    raise DataError(path, f"no array {key!r}; keys are {keys}")
                chosen = key
            elif "data" in keys:
                chosen = "data"
            else:
                data_keys = [k for k in keys if k not in TIMESTAMP_KEYS]
                if len(data_keys) != 1:
                    raise DataError(
                        path,
                        f"several arrays {keys} and none is called 'data': name one with --key",
                    )
                chosen = data_keys[0]
            ts_key = next((k for k in TIMESTAMP_KEYS if k in keys and k != chosen), None)
            return z[chosen], (z[ts_key] if ts_key else None)
    except DataError:
        raise
    except Exception as exc:  # truncated zip, pickled object arrays, not numpy at all
        raise DataError(path, f"cannot read array file: {exc}") from exc


def read_timestamps(source: str | os.PathLike[str] | np.ndarray, where: str) -> pd.DatetimeIndex:
    """Timestamps from an array or a ``.npy`` / ``.csv`` (first column) file."""
    if isinstance(source, np.ndarray):
        raw = source
    else:
        path = Path(source)
        where = str(path)
        if not path.exists():
            raise DataError(path, "file not found")
        try:
            if path.suffix == ".npy":
                raw = np.load(path, allow_pickle=False)
            else:
                raw = pd.read_csv(path, header=None).iloc[:, 0].to_numpy()
        except Exception as exc:
            raise DataError(path, f"cannot read timestamps: {exc}") from exc
    raw = np.asarray(raw).reshape(-1)
    if raw.size and raw.dtype.kind in "OUS" and not _parses(raw[0]):
        raw = raw[1:]  # a header row (e.g. "time") in a CSV
    try:
        ts = pd.DatetimeIndex(pd.to_datetime(raw))
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(where, f"timestamps cannot be parsed: {exc}") from exc
    return ts


def _parses(value: object) -> bool:
    try:
        pd.Timestamp(value)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False
    return True


def check_regular(ts: pd.DatetimeIndex, where: str) -> int:
    """Interval in minutes of a strictly regular series; ``DataError`` on gaps or duplicates."""
    if len(ts) < 2:
        raise DataError(where, "need at least two timestamps to know the interval")
    if ts.hasnans:
        raise DataError(where, "timestamps contain missing values")
    ts = ts.as_unit("ns")  # pandas may hold µs or s; the arithmetic below is in ns
    dup = ts.duplicated()
    if dup.any():
        raise DataError(
            where, f"duplicated timestamp {ts[dup][0]} (first at position {int(np.argmax(dup))})"
        )
    diffs = np.diff(ts.asi8)
    step = diffs[0]
    bad = np.flatnonzero(diffs != step)
    if step <= 0 or len(bad):
        i = int(bad[0]) + 1 if len(bad) else 1
        raise DataError(
            where,
            f"irregular timestamps: step {pd.Timedelta(int(diffs[i - 1]))} between {ts[i - 1]} and "
            f"{ts[i]}, expected {pd.Timedelta(int(step))}",
        )
    minutes = pd.Timedelta(int(step)) / pd.Timedelta(minutes=1)
    if minutes != int(minutes):
        raise DataError(
            where, f"interval {pd.Timedelta(int(step))} is not a whole number of minutes"
        )
    return int(minutes)


def read_adjacency(path: str | os.PathLike[str], n: int) -> np.ndarray:
    """An N×N weight matrix from ``.npy`` or ``.csv`` (a header row or index column is allowed)."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    try:
        if path.suffix == ".npy":
            adj = np.load(path, allow_pickle=False)
        elif path.suffix == ".csv":
            frame = pd.read_csv(path, header=None)
            if frame.shape == (n + 1, n):
                frame = frame.iloc[1:]
            elif frame.shape == (n, n + 1):
                frame = frame.iloc[:, 1:]
            elif frame.shape == (n + 1, n + 1):
                frame = frame.iloc[1:, 1:]
            adj = frame.to_numpy(dtype=np.float64)
        else:
            raise DataError(path, "adjacency must be a .npy or .csv file")
    except DataError:
        raise
    except Exception as exc:
        raise DataError(path, f"cannot read adjacency: {exc}") from exc
    adj = np.asarray(adj, dtype=np.float64)
    if adj.shape != (n, n):
        raise DataError(path, f"adjacency must be {n}×{n} to match the flows, got {adj.shape}")
    if not np.isfinite(adj).all():
        raise DataError(path, "adjacency contains NaN or infinite weights")
    if (adj < 0).any():
        raise DataError(path, "adjacency contains negative weights")
    return adj.astype(np.float32)


def load_tensor(
    path: str | os.PathLike[str],
    *,
    layout: str,
    start: str | pd.Timestamp | None = None,
    interval_minutes: int | None = None,
    key: str | None = None,
    channels: tuple[int, int] | None = None,
    adjacency: str | os.PathLike[str] | None = None,
    timestamps: str | os.PathLike[str] | None = None,
    name: str | None = None,
) -> FlowDataset:
    """A flow tensor plus its calendar → ``FlowDataset``; NaN, negatives, bad shapes are errors."""
    path = Path(path)
    where = str(path)
    lay = layout.upper()
    if lay not in LAYOUTS:
        raise DataError("--layout", f"unknown layout {layout!r}; choose from {LAYOUTS}")
    arr, ts_array = _read_array(path, key)
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(path, f"flows must be real numbers, got dtype {arr.dtype}")
    if arr.ndim != 3:
        raise DataError(
            path, f"wrong shape {arr.shape}: expected 3 axes ({lay[0]}, {lay[1]}, C) with C = 2"
        )
    flows = arr if lay == "TNC" else np.transpose(arr, (1, 0, 2))
    c = flows.shape[2]
    if channels is None:
        if c != 2:
            what = "one channel" if c == 1 else f"{c} channels"
            raise DataError(
                path,
                f"wrong shape {arr.shape}: the tensor has {what} but FlowDistill needs 2 "
                "(inflow, outflow); with more than 2, name them with --channels IN,OUT",
            )
    else:
        if (
            len(channels) != 2
            or any(not 0 <= int(i) < c for i in channels)
            or channels[0] == channels[1]
        ):
            raise DataError(path, f"--channels {channels} must name two different channels of {c}")
        flows = flows[:, :, [int(channels[0]), int(channels[1])]]
    flows = np.ascontiguousarray(flows, dtype=np.float32)
    if not np.isfinite(flows).all():
        t, n, ch = np.argwhere(~np.isfinite(flows))[0]
        raise DataError(
            path, f"flows contain NaN or infinity (first at slot {t}, region {n}, channel {ch})"
        )
    if timestamps is not None or ts_array is not None:
        ts_where = str(timestamps) if timestamps is not None else f"{where} [timestamps]"
        ts = read_timestamps(timestamps if timestamps is not None else ts_array, ts_where)
        if len(ts) != flows.shape[0]:
            raise DataError(ts_where, f"{len(ts)} timestamps for {flows.shape[0]} slots")
        step = check_regular(ts, ts_where)
        if interval_minutes is not None and interval_minutes != step:
            raise DataError(
                ts_where, f"timestamps are {step} min apart, --interval says {interval_minutes}"
            )
        if start is not None and pd.Timestamp(start) != ts[0]:
            raise DataError(ts_where, f"timestamps start at {ts[0]}, --start says {start}")
        interval_minutes, start = step, ts[0]
    if start is None or interval_minutes is None:
        raise DataError(
            path, "a tensor needs its calendar: give --start and --interval (or timestamps)"
        )
    n = flows.shape[1]
    adj = read_adjacency(adjacency, n) if adjacency is not None else np.zeros((n, n), np.float32)
    return FlowDataset(
        name=name or path.stem,
        flows=flows,
        start=pd.Timestamp(start),
        interval_minutes=int(interval_minutes),
        region_ids=[str(i) for i in range(n)],
        region_names=[f"region {i}" for i in range(n)],
        adjacency=adj,
        source=where,
        extra={
            "built_from": "tensor",
            "layout": lay,
            "file": where,
            "adjacency": str(adjacency) if adjacency is not None else None,
        },
    )

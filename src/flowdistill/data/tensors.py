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
    missing_days: str | None = None,
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
    ts_where = str(timestamps) if timestamps is not None else f"{where} [timestamps]"
    ts_source = timestamps if timestamps is not None else ts_array
    return _assemble(
        flows, where, ts_source, ts_where, start, interval_minutes, adjacency, missing_days,
        name=name or path.stem, region_ids=None,
        extra={"built_from": "tensor", "layout": lay, "file": where},
    )


def _assemble(
    flows: np.ndarray,
    where: str,
    ts_source: str | os.PathLike[str] | np.ndarray | None,
    ts_where: str,
    start: str | pd.Timestamp | None,
    interval_minutes: int | None,
    adjacency: str | os.PathLike[str] | None,
    missing_days: str | None,
    *,
    name: str,
    region_ids: list[str] | None,
    extra: dict,
) -> FlowDataset:
    """(T, N, 2) flows + their calendar (+ declared gaps) → a validated ``FlowDataset``."""
    gaps: list[pd.Timestamp] = []
    if ts_source is not None:
        ts = read_timestamps(ts_source, ts_where)
        if len(ts) != flows.shape[0]:
            raise DataError(ts_where, f"{len(ts)} timestamps for {flows.shape[0]} slots")
        if missing_days is None:
            try:
                step = check_regular(ts, ts_where)
            except DataError as exc:
                if "irregular" in str(exc):
                    raise DataError(
                        ts_where, f"{exc.problem}; if whole days are missing from the feed, declare "
                        "them with --missing-days (dates, 'weekends' or 'auto')",
                    ) from exc
                raise
        else:
            step, flows, gaps = _fill_timestamp_gaps(flows, ts, missing_days, ts_where)
        if interval_minutes is not None and interval_minutes != step:
            raise DataError(
                ts_where, f"timestamps are {step} min apart, --interval says {interval_minutes}"
            )
        if start is not None and pd.Timestamp(start) != ts[0]:
            raise DataError(ts_where, f"timestamps start at {ts[0]}, --start says {start}")
        interval_minutes, start = step, ts[0]
    if start is None or interval_minutes is None:
        raise DataError(
            where, "a tensor needs its calendar: give --start and --interval (or timestamps)"
        )
    if missing_days is not None and ts_source is None:
        flows, gaps = _fill_declared_gaps(
            flows, pd.Timestamp(start), int(interval_minutes), missing_days
        )
    n = flows.shape[1]
    adj = read_adjacency(adjacency, n) if adjacency is not None else np.zeros((n, n), np.float32)
    ids = region_ids or [str(i) for i in range(n)]
    extra = {**extra, "adjacency": str(adjacency) if adjacency is not None else None}
    if gaps:
        extra["missing_days"] = [d.date().isoformat() for d in gaps]
    return FlowDataset(
        name=name,
        flows=flows,
        start=pd.Timestamp(start),
        interval_minutes=int(interval_minutes),
        region_ids=ids,
        region_names=list(ids) if region_ids else [f"region {i}" for i in range(n)],
        adjacency=adj,
        source=where,
        extra=extra,
    )


# ------------------------------------------------------------------------------ calendar gaps
def parse_missing_days(text: str, first: pd.Timestamp, last: pd.Timestamp) -> list[pd.Timestamp]:
    """``2021-01-02,2021-01-05..2021-01-07``, ``weekends``, or a file with one date per line."""
    text = text.strip()
    items: list[str]
    if text and Path(text).is_file():
        items = [ln.strip() for ln in Path(text).read_text().splitlines() if ln.strip()]
    else:
        items = [p.strip() for p in text.split(",") if p.strip()]
    days: set[pd.Timestamp] = set()
    for item in items:
        if item.lower() == "weekends":
            span = pd.date_range(first.normalize(), last.normalize(), freq="D")
            days.update(d for d in span if d.day_of_week >= 5)
            continue
        try:
            if ".." in item:
                a, b = (pd.Timestamp(x) for x in item.split("..", 1))
                if b < a:
                    raise ValueError(f"range {item} ends before it starts")
                days.update(pd.date_range(a.normalize(), b.normalize(), freq="D"))
            else:
                days.add(pd.Timestamp(item).normalize())
        except (ValueError, TypeError) as exc:
            raise DataError("--missing-days", f"cannot read {item!r}: {exc}") from exc
    if not days and text.lower() != "auto":
        raise DataError("--missing-days", f"no day named in {text!r}")
    return sorted(days)


def _fill_declared_gaps(
    flows: np.ndarray, start: pd.Timestamp, interval: int, missing_days: str
) -> tuple[np.ndarray, list[pd.Timestamp]]:
    """Rows are the slots of the present days only: put them on the full clock, gaps in between."""
    if missing_days.strip().lower() == "auto":
        raise DataError("--missing-days", "'auto' reads the gaps from --timestamps; give them")
    per_day = 24 * 60 // interval
    T = flows.shape[0]
    # The clock can be at most T slots plus every declared day longer than the present rows.
    horizon = pd.Timestamp(start) + pd.Timedelta(minutes=interval * (T - 1))
    declared = parse_missing_days(missing_days, start, horizon + pd.Timedelta(days=366))
    clock = pd.date_range(start, periods=T + per_day * len(declared), freq=f"{interval}min")
    missing = np.asarray(clock.normalize().isin(pd.DatetimeIndex(declared)), dtype=bool)
    present = np.flatnonzero(~missing)[:T]
    if len(present) < T:
        raise DataError("--missing-days", "declared days leave no room for the rows")
    full = np.zeros((int(present[-1]) + 1, *flows.shape[1:]), dtype=flows.dtype)
    full[present] = flows
    inside = clock[: len(full)].normalize()
    used = [d for d in declared if d in set(inside[missing[: len(full)]])]
    return full, used


def _fill_timestamp_gaps(
    flows: np.ndarray, ts: pd.DatetimeIndex, missing_days: str, where: str
) -> tuple[int, np.ndarray, list[pd.Timestamp]]:
    """Timestamps that skip whole days: the skipped days must be the declared ones."""
    if ts.hasnans:
        raise DataError(where, "timestamps contain missing values")
    ts = ts.as_unit("ns")
    if ts.duplicated().any() or not ts.is_monotonic_increasing:
        check_regular(ts, where)  # names the duplicate / the step that goes back
    diffs = np.diff(ts.asi8)
    step_ns = int(diffs.min())
    step = pd.Timedelta(step_ns)
    minutes = step / pd.Timedelta(minutes=1)
    if minutes != int(minutes) or (24 * 60) % int(minutes):
        raise DataError(where, f"interval {step} does not divide a day")
    pos = (ts.asi8 - ts.asi8[0]) // step_ns
    if ((ts.asi8 - ts.asi8[0]) % step_ns).any():
        i = int(np.flatnonzero((ts.asi8 - ts.asi8[0]) % step_ns)[0])
        raise DataError(where, f"timestamp {ts[i]} is off the {step} clock of {ts[0]}")
    clock = pd.date_range(ts[0], periods=int(pos[-1]) + 1, freq=step)
    absent = np.ones(len(clock), dtype=bool)
    absent[pos] = False
    absent_days = pd.DatetimeIndex(clock[absent].normalize().unique())
    for day in absent_days:  # a gap must be whole days
        in_day = clock.normalize() == day
        if not absent[in_day].all():
            first = clock[in_day & absent][0]
            raise DataError(
                where,
                f"irregular timestamps: slot {first} is missing but its day {day.date()} is not; "
                "only whole missing days can be declared",
            )
    if missing_days.strip().lower() == "auto":
        declared = list(absent_days)
    else:
        declared = parse_missing_days(missing_days, ts[0], ts[-1])
        declared_set = set(declared)
        undeclared = [d for d in absent_days if d not in declared_set]
        if undeclared:
            raise DataError(
                where,
                f"timestamps skip {undeclared[0].date()}, which --missing-days does not declare",
            )
        have_rows = sorted({d for d in ts.normalize() if d in declared_set})
        if have_rows:
            raise DataError(
                where, f"{have_rows[0].date()} is declared missing but the data has rows for it"
            )
    full = np.zeros((len(clock), *flows.shape[1:]), dtype=flows.dtype)
    full[pos] = flows
    inside = set(clock.normalize())
    return int(minutes), full, [d for d in declared if d in inside]


# --------------------------------------------------------------------- separate channel files
def _read_matrix(path: Path, layout: str, key: str | None) -> tuple[np.ndarray, list[str] | None,
                                                                   np.ndarray | None]:
    """One channel as (T, N), with the zone ids and timestamps a CSV header/index column holds."""
    if path.suffix.lower() == ".csv":
        return _read_csv_matrix(path, layout)
    arr, ts = _read_array(path, key)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim != 2:
        raise DataError(path, f"one channel must be 2-D (slots × zones), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(path, f"flows must be real numbers, got dtype {arr.dtype}")
    return (arr if layout == "TNC" else arr.T).astype(np.float64), None, ts


INDEX_NAMES = {"", "timestamp", "timestamps", "time", "date", "datetime", "slot", "zone", "zones",
               "region", "regions", "id", "zone_id", "locationid"}


def _read_csv_matrix(
    path: Path, layout: str
) -> tuple[np.ndarray, list[str] | None, np.ndarray | None]:
    """A CSV matrix; a header row is recognised by a non-number, an index column likewise (or by
    a header cell such as ``timestamp`` or ``zone`` above it)."""
    if not path.exists():
        raise DataError(path, "file not found")
    try:
        frame = pd.read_csv(path, header=None, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise DataError(path, f"cannot read CSV: {exc}") from exc
    if frame.empty:
        raise DataError(path, "the file holds no rows")
    header: list[str] | None = None
    if not all(_is_number(v) for v in frame.iloc[0]):
        header = [str(v).strip() for v in frame.iloc[0]]
        frame = frame.iloc[1:]
    col0 = [str(v).strip() for v in frame.iloc[:, 0]]
    has_index = not all(_is_number(v) for v in col0) or (
        header is not None and header[0].lower() in INDEX_NAMES
    )
    body = frame.iloc[:, 1:] if has_index else frame
    try:
        matrix = body.replace("", "nan").to_numpy(dtype=np.float64)
    except ValueError as exc:
        raise DataError(path, f"flows must be numbers: {exc}") from exc
    columns = (header[1:] if has_index else header) if header is not None else None
    rows = col0 if has_index else None
    if layout == "NTC":
        matrix = matrix.T
        rows, columns = columns, rows
    zones = [str(z) for z in columns] if columns is not None else None
    times = np.asarray(rows) if rows is not None and not all(_is_number(v) for v in rows) else None
    return matrix, zones, times


def _is_number(v: str) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def load_channel_files(
    inflow: str | os.PathLike[str],
    outflow: str | os.PathLike[str],
    *,
    layout: str = "TNC",
    start: str | pd.Timestamp | None = None,
    interval_minutes: int | None = None,
    key: str | None = None,
    adjacency: str | os.PathLike[str] | None = None,
    timestamps: str | os.PathLike[str] | None = None,
    name: str | None = None,
    missing_days: str | None = None,
) -> FlowDataset:
    """Separate inflow and outflow files (npz / npy / CSV, slots × zones) → one dataset.

    Many feeds publish the two channels apart; stacking them by hand is where columns get
    swapped. A CSV may carry zone ids in its header and timestamps in its first column (for layout
    NTC the other way round): both files must then agree.
    """
    lay = layout.upper()
    if lay not in LAYOUTS:
        raise DataError("--layout", f"unknown layout {layout!r}; choose from {LAYOUTS}")
    pin, pout = Path(inflow), Path(outflow)
    a_in, z_in, t_in = _read_matrix(pin, lay, key)
    a_out, z_out, t_out = _read_matrix(pout, lay, key)
    if a_in.shape != a_out.shape:
        raise DataError(
            pout, f"outflow has shape {a_out.shape} but inflow has {a_in.shape} (slots × zones)"
        )
    if z_in is not None and z_out is not None and z_in != z_out:
        bad = next(i for i, (a, b) in enumerate(zip(z_in, z_out, strict=True)) if a != b)
        raise DataError(pout, f"zone {bad} is {z_out[bad]!r} here but {z_in[bad]!r} in {pin}")
    if t_in is not None and t_out is not None:
        ti, to = read_timestamps(t_in, str(pin)), read_timestamps(t_out, str(pout))
        if len(ti) != len(to) or (ti != to).any():
            raise DataError(pout, f"timestamps differ from those of {pin}")
    flows = np.stack([a_in, a_out], axis=-1)
    if not np.isfinite(flows).all():
        t, n, ch = np.argwhere(~np.isfinite(flows))[0]
        bad_file = pin if ch == 0 else pout
        raise DataError(bad_file, f"flows contain NaN, blanks or infinity (first at slot {t}, zone {n})")
    flows = np.ascontiguousarray(flows, dtype=np.float32)
    ts_source = timestamps if timestamps is not None else (t_in if t_in is not None else t_out)
    ts_where = str(timestamps) if timestamps is not None else f"{pin} [timestamps]"
    return _assemble(
        flows, str(pin), ts_source, ts_where, start, interval_minutes, adjacency, missing_days,
        name=name or pin.stem.replace("inflow", "").strip("-_ ") or pin.stem,
        region_ids=z_in or z_out,
        extra={"built_from": "channel files", "layout": lay, "inflow": str(pin),
               "outflow": str(pout)},
    )

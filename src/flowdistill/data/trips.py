"""Trip records → per-region inflow/outflow counts, with DuckDB doing the scanning and grouping.

The engine (:func:`aggregate_trips`) knows nothing of any city: it is given the files, which columns
hold the pickup/drop-off times and zones, the zone ids that become regions, the ids that are real
but dropped (NYC's 264/265 "Unknown"/"Outside of NYC") and the period. Every trip row gives two
events, each counted on its own clock:

* outflow: the pickup zone, in the slot of the pickup time;
* inflow: the drop-off zone, in the slot of the drop-off time.

Events that cannot be counted (unknown zone, blank zone, outside the period or the selected zones)
are dropped and counted in ``FlowDataset.extra["dropped"]``; input that is simply wrong (a zone id
that no zone table knows, a timestamp that does not parse, an unreadable file) raises ``DataError``.

:func:`load_nyc_tlc` wraps the engine for the NYC TLC yellow / green / FHV / FHVHV records.
"""

from __future__ import annotations

import functools
import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from flowdistill.data.dataset import FlowDataset
from flowdistill.data.errors import DataError
from flowdistill.data.geo import NYC_ZONE_ALIASES, Zones, read_zones
from flowdistill.data.sources import _need, nyc_pois, resolve_data_dir

# Column names are matched after lower-casing and turning spaces into underscores, so the FHV
# spellings (`dropOff_datetime`, `PUlocationID`) and the Chicago ones (`Trip Start Timestamp`,
# or `trip_start_timestamp` from the Socrata API) need no entries of their own.
NYC_COLUMNS: dict[str, tuple[str, ...]] = {
    "pickup_time": ("tpep_pickup_datetime", "lpep_pickup_datetime", "pickup_datetime"),
    "dropoff_time": ("tpep_dropoff_datetime", "lpep_dropoff_datetime", "dropoff_datetime"),
    "pickup_zone": ("pulocationid",),
    "dropoff_zone": ("dolocationid",),
}
# TLC LocationIDs 264 ("Unknown") and 265 ("Outside of NYC"): common in the records, no polygon.
NYC_UNLOCATED_IDS = (264, 265)

# Timestamps stored as text: ISO first, then the US forms of the NYC / Chicago open-data portals
# ("01/01/2021 12:00:00 AM").
TEXT_TIME_FORMATS = (
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
)

# Event status codes computed in SQL.
(
    _OK,
    _MISSING_ZONE,
    _UNLOCATED,
    _BAD_ZONE,
    _OUTSIDE_SEL,
    _MISSING_TIME,
    _BAD_TIME,
    _OUTSIDE_PERIOD,
) = range(8)
_STATUS_NAMES = {
    _MISSING_ZONE: "missing_zone",
    _UNLOCATED: "unknown_zone",
    _OUTSIDE_SEL: "outside_selection",
    _MISSING_TIME: "missing_time",
    _OUTSIDE_PERIOD: "outside_period",
}
INFER_MIN_SHARE = 0.01


@dataclass
class TripAggregate:
    """Counts on a regular clock plus what was dropped on the way."""

    flows: np.ndarray  # (T, N, 2): inflow, outflow
    start: pd.Timestamp
    interval_minutes: int
    rows: int
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


@dataclass
class _Source:
    index: int
    path: Path
    relation: str  # a DuckDB table-function call reading the file
    columns: dict[str, tuple[str, str]]  # role -> (column name, DuckDB type)


# ---------------------------------------------------------------------------------------- files
def expand_files(patterns: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Paths, glob patterns or folders → the sorted list of record files they name."""
    out: list[Path] = []
    if not patterns:
        raise DataError("trip records", "no input file given")
    for p in patterns:
        s = str(p)
        if any(ch in s for ch in "*?["):
            hits = sorted(glob.glob(s, recursive=True))
            if not hits:
                raise DataError(s, "no file matches this pattern")
            out.extend(Path(h) for h in hits if Path(h).is_file())
        elif Path(s).is_dir():
            hits = sorted(q for q in Path(s).iterdir() if q.is_file() and _format_of(q))
            if not hits:
                raise DataError(s, "folder holds no .parquet or .csv file")
            out.extend(hits)
        elif not Path(s).exists():
            raise DataError(s, "file not found")
        else:
            out.append(Path(s))
    seen: set[Path] = set()
    unique = []
    for q in out:
        if q.resolve() not in seen:
            seen.add(q.resolve())
            unique.append(q)
    return unique


def _format_of(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq", ".parq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz", ".txt", ".tsv")):
        return "csv"
    return None


def _quote_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _quote_ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def _norm(name: str) -> str:
    return name.strip().lower().replace(" ", "_")


def _open_source(
    con: duckdb.DuckDBPyConnection, index: int, path: Path, roles: dict[str, tuple[str, ...]]
) -> _Source:
    fmt = _format_of(path)
    if fmt is None:
        raise DataError(path, "unsupported file type (expected .parquet or .csv)")
    if fmt == "parquet":
        relation = f"read_parquet({_quote_str(str(path))})"
    else:
        # A cut-off download makes the sniffer see one odd column: say what really happened.
        truncated = csv_truncation(path)
        if truncated:
            raise DataError(path, truncated)
        # Text is parsed by us, not by the sniffer: a bad value deep in the file then becomes a
        # clear error instead of a type-detection failure.
        relation = f"read_csv({_quote_str(str(path))}, header=true, all_varchar=true)"
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    except duckdb.Error as exc:
        raise DataError(path, f"cannot read {fmt} file: {_first_line(exc)}") from exc
    by_norm = {_norm(row[0]): (row[0], str(row[1])) for row in described}
    columns: dict[str, tuple[str, str]] = {}
    for role, candidates in roles.items():
        hit = next((by_norm[_norm(c)] for c in candidates if _norm(c) in by_norm), None)
        if hit is None:
            hint = ""
            if role.endswith("zone") and any("longitude" in c for c in by_norm):
                hint = " (records with coordinates, e.g. TLC before 2016-07, are not supported)"
            raise DataError(
                path,
                f"no {role.replace('_', ' ')} column: expected one of {list(candidates)}{hint}; "
                f"columns are {[row[0] for row in described][:25]}",
            )
        columns[role] = hit
    return _Source(index, path, relation, columns)


_TAIL_BYTES = 1 << 16


def csv_truncation(path: Path) -> str | None:
    """Why a text record file looks cut off (an interrupted download), or None when it does not.

    Cheap: reads the first line and the last 64 KiB (a .gz file is decompressed only to find
    whether its stream ends early). A file is truncated when it has no complete line at all, or
    when its last line has no line break and fewer fields than the header.
    """
    advice = "download it again (or cut it back to whole lines)"
    if path.name.lower().endswith(".gz"):
        import gzip
        import zlib

        try:
            with gzip.open(path, "rb") as fh:
                head = fh.readline()
                while fh.read(1 << 20):
                    pass
        except (EOFError, zlib.error, OSError) as exc:
            return f"truncated: the compressed stream ends early ({exc}); {advice}"
        return None if head.endswith(b"\n") else f"truncated: no complete header line; {advice}"
    try:
        with open(path, "rb") as fh:
            head = fh.readline()
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - _TAIL_BYTES))
            tail = fh.read()
    except OSError:
        return None  # the reader reports unreadable files
    if not head:
        return None  # empty: reported as such by the reader
    if not head.endswith(b"\n"):
        return (f"truncated: the file ends inside its first line after {len(head)} bytes (no "
                f"complete header); {advice}")
    if tail.endswith(b"\n"):
        return None
    last = tail.rsplit(b"\n", 1)[-1]
    delim = max(b",;\t|", key=lambda d: head.count(bytes([d])))
    want, got = head.count(bytes([delim])) + 1, last.count(bytes([delim])) + 1
    if got < want:
        return (f"truncated: its last line stops after {got} of {want} fields with no line break "
                f"({last[:40].decode(errors='replace')!r}); {advice}")
    return None


def check_record_files(
    files: Sequence[str | os.PathLike[str]], columns: dict[str, tuple[str, ...]]
) -> list[Path]:
    """Expand the inputs and make sure each opens and has the needed columns (cheap: no scan).

    Run before anything else is loaded, so a bad input file is reported before, say, a missing
    zone table.
    """
    paths = expand_files(files)
    con = duckdb.connect()
    try:
        for i, p in enumerate(paths):
            _open_source(con, i, p, columns)
    finally:
        con.close()
    return paths


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _time_sql(col: str, dtype: str, where: Path) -> tuple[str, str]:
    """(parsed TIMESTAMP expression, 'unparseable' boolean expression) for one column."""
    c = _quote_ident(col)
    t = dtype.upper()
    if t.startswith("TIMESTAMP") or t == "DATE":
        return f"CAST({c} AS TIMESTAMP)", "FALSE"
    if t == "VARCHAR":
        fmts = "[" + ", ".join(_quote_str(f) for f in TEXT_TIME_FORMATS) + "]"
        s = f"NULLIF(trim({c}), '')"
        parsed = f"COALESCE(TRY_CAST({s} AS TIMESTAMP), try_strptime({s}, {fmts}))"
        return parsed, f"({s} IS NOT NULL AND {parsed} IS NULL)"
    raise DataError(where, f"column {col!r} has type {dtype}, expected a timestamp or text")


def _zone_sql(col: str, dtype: str, where: Path) -> tuple[str, str]:
    """(zone id BIGINT expression, 'not an integer id' boolean expression) for one column."""
    c = _quote_ident(col)
    t = dtype.upper()
    if t in (
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
    ):
        return f"CAST({c} AS BIGINT)", "FALSE"
    if t in ("FLOAT", "DOUBLE", "REAL") or t.startswith("DECIMAL"):
        d = f"CAST({c} AS DOUBLE)"
    elif t == "VARCHAR":
        d = f"TRY_CAST(NULLIF(trim({c}), '') AS DOUBLE)"
    else:
        raise DataError(where, f"column {col!r} has type {dtype}, expected integer zone ids")
    ok = f"({d} = floor({d}) AND abs({d}) < 1e15)"
    bad = f"({c} IS NOT NULL AND ({d} IS NULL OR NOT {ok}))"
    if t == "VARCHAR":
        bad = f"(NULLIF(trim({c}), '') IS NOT NULL AND ({d} IS NULL OR NOT {ok}))"
    return f"CASE WHEN {ok} THEN CAST({d} AS BIGINT) END", bad


def _trips_sql(sources: list[_Source]) -> str:
    parts = []
    for s in sources:
        cols = s.columns
        tp, tp_bad = _time_sql(*cols["pickup_time"], s.path)
        td, td_bad = _time_sql(*cols["dropoff_time"], s.path)
        pz, pz_bad = _zone_sql(*cols["pickup_zone"], s.path)
        dz, dz_bad = _zone_sql(*cols["dropoff_zone"], s.path)
        parts.append(
            f"SELECT {s.index} AS f, {tp} AS tp, {tp_bad} AS tp_bad, {td} AS td,"
            f" {td_bad} AS td_bad, {pz} AS pz, {pz_bad} AS pz_bad, {dz} AS dz, {dz_bad} AS dz_bad"
            f" FROM {s.relation}"
        )
    return "\nUNION ALL\n".join(parts)


# ---------------------------------------------------------------------------------------- engine
def _period(
    start: str | pd.Timestamp | None, end: str | pd.Timestamp | None, interval_minutes: int
) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """[start, stop) as timestamps, read like ``FlowDataset.select_period``.

    ``end`` names the last slot: a bare date includes that whole day, a date and time includes
    the slot that starts then (or that holds it).
    """
    s = pd.Timestamp(start) if start is not None else None
    e = None
    if end is not None:
        e = pd.Timestamp(end)
        if e == e.normalize() and len(str(end)) <= 10:
            e = e + pd.Timedelta(days=1)
        else:
            e = e.floor(f"{interval_minutes}min") + pd.Timedelta(minutes=interval_minutes)
    return s, e


def aggregate_trips(
    files: Sequence[str | os.PathLike[str]],
    *,
    columns: dict[str, tuple[str, ...]],
    regions: Sequence[int],
    known: Sequence[int] = (),
    unlocated: Sequence[int] = (),
    interval_minutes: int = 30,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    internal_only: bool = False,
) -> TripAggregate:
    """Count trips per region and slot: outflow by pickup zone/time, inflow by drop-off zone/time.

    ``regions`` become the columns of the result, in order; ``known`` are further valid zone ids
    that are not selected (counted as ``outside_selection``); ``unlocated`` ids are valid but have
    no place (counted as ``unknown_zone``). Any other id raises ``DataError``. ``end`` names the
    last slot (a bare date: that whole day), as in ``FlowDataset.select_period``. Without
    ``start``/``end`` the period is the whole days spanned by the pickup times.
    """
    if interval_minutes <= 0 or (24 * 60) % interval_minutes:
        raise DataError("interval", f"{interval_minutes} min does not divide a day")
    paths = expand_files(files)
    regions = [int(r) for r in regions]
    if len(set(regions)) != len(regions):
        raise DataError("regions", "region ids are not unique")
    con = duckdb.connect()
    try:
        sources = [_open_source(con, i, p, columns) for i, p in enumerate(paths)]
        table = [(z, i) for i, z in enumerate(regions)]
        table += [(int(z), -1) for z in known if int(z) not in set(regions)]
        table += [(int(z), -2) for z in unlocated if int(z) not in set(regions)]
        con.execute("CREATE TEMP TABLE zt (zone BIGINT, idx INTEGER)")
        con.executemany("INSERT INTO zt VALUES (?, ?)", table)
        trips = _trips_sql(sources)
        try:
            con.execute(f"CREATE TEMP VIEW trips AS {trips}")
            lo, hi = _period(start, end, interval_minutes)
            if lo is None or hi is None:
                lo, hi = _infer_period(con, lo, hi, paths)
            if hi <= lo:
                raise DataError("period", f"end {end} is not after start {start}")
            step = pd.Timedelta(minutes=interval_minutes)
            if (lo - lo.normalize()) % step:
                raise DataError("period", f"start {lo} is not on a {interval_minutes}-min boundary")
            num_slots = int(-(-(hi - lo) // step))
            cells, stats = _count_events(
                con,
                _events_sql(lo, hi, interval_minutes, internal_only, len(regions)),
                num_slots * len(regions) * 2,
            )
        except duckdb.Error as exc:
            names = paths[0] if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} more)"
            raise DataError(names, f"cannot read trip records: {_first_line(exc)}") from exc
        per_status = stats.reshape(-1, 2)  # [status, channel]
        for bad in (_BAD_TIME, _BAD_ZONE):
            if per_status[bad].sum():
                for src in sources:
                    problem = _explain(con, src, bad)
                    if problem:
                        raise DataError(src.path, problem)
        flows = cells.reshape(num_slots, len(regions), 2).astype(np.float32)
        dropped = {
            chname: {name: int(per_status[code, c]) for code, name in _STATUS_NAMES.items()}
            for c, chname in ((1, "outflow"), (0, "inflow"))
        }
        rows = int(stats.sum() + cells.sum()) // 2  # every trip gives exactly two events
        return TripAggregate(
            flows=flows,
            start=lo,
            interval_minutes=interval_minutes,
            rows=rows,
            dropped=dropped,
            files=[str(p) for p in paths],
        )
    finally:
        con.close()


def _infer_period(
    con: duckdb.DuckDBPyConnection,
    lo: pd.Timestamp | None,
    hi: pd.Timestamp | None,
    paths: list[Path],
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Whole days from the first to the last day with at least 1% of the busiest day's pickups.

    Monthly TLC files hold a few trips with stray dates (years before or after the month); they
    must not stretch the period, so they fall outside it and are counted as ``outside_period``.
    """
    days = con.execute(
        "SELECT CAST(tp AS DATE) AS d, count(*) AS n FROM trips "
        "WHERE tp IS NOT NULL AND NOT tp_bad GROUP BY d ORDER BY d"
    ).fetchall()
    if not days:
        raise DataError(paths[0], "no trip has a pickup time: cannot infer the period")
    busiest = max(n for _, n in days)
    kept = [pd.Timestamp(d) for d, n in days if n >= INFER_MIN_SHARE * busiest]
    lo = lo if lo is not None else kept[0]
    hi = hi if hi is not None else kept[-1] + pd.Timedelta(days=1)
    return lo, hi


def _events_sql(
    lo: pd.Timestamp, hi: pd.Timestamp, interval: int, internal_only: bool, n: int
) -> str:
    """One integer per event: its flat (slot, region, channel) cell if counted, else -(why)-1."""
    lo_s, hi_s = _quote_str(lo.isoformat(sep=" ")), _quote_str(hi.isoformat(sep=" "))
    step_us = interval * 60 * 1_000_000
    if internal_only:
        other_join = "LEFT JOIN zt b ON ev.o = b.zone"
        other_idx, other_rule = "b.idx", "OR oi IS NULL OR oi < 0"
    else:
        other_join, other_idx, other_rule = "", "0", ""
    return f"""
    WITH ev AS (
        SELECT 1 AS ch, tp AS ts, tp_bad AS ts_bad, pz AS z, pz_bad AS z_bad, dz AS o FROM trips
        UNION ALL
        SELECT 0 AS ch, td, td_bad, dz, dz_bad, pz FROM trips
    ), j AS (
        SELECT ev.ch, ev.ts, ev.ts_bad, ev.z, ev.z_bad, a.idx AS zi, {other_idx} AS oi
        FROM ev LEFT JOIN zt a ON ev.z = a.zone {other_join}
    ), s AS (
        SELECT ch, zi, ts,
            CASE
                WHEN ts_bad THEN {_BAD_TIME}
                WHEN z_bad OR (z IS NOT NULL AND zi IS NULL) THEN {_BAD_ZONE}
                WHEN z IS NULL THEN {_MISSING_ZONE}
                WHEN zi = -2 THEN {_UNLOCATED}
                WHEN ts IS NULL THEN {_MISSING_TIME}
                WHEN zi < 0 {other_rule} THEN {_OUTSIDE_SEL}
                WHEN ts < TIMESTAMP {lo_s} OR ts >= TIMESTAMP {hi_s} THEN {_OUTSIDE_PERIOD}
                ELSE {_OK}
            END AS status
        FROM j
    )
    SELECT CASE WHEN status = {_OK}
        THEN ((epoch_us(ts) - epoch_us(TIMESTAMP {lo_s})) // {step_us}) * {2 * n} + zi * 2 + ch
        ELSE -(status * 2 + ch) - 1 END AS code
    FROM s
    """


BATCH_ROWS = 1 << 20


def _count_events(
    con: duckdb.DuckDBPyConnection, sql: str, num_cells: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stream the event codes in batches and count them: (per-cell counts, per-status counts).

    Counting in numpy on a stream is about twice as fast as a SQL GROUP BY with ~10^5-10^6
    groups on two cores, and memory stays at one batch whatever the number of records.
    """
    cells = np.zeros(num_cells, dtype=np.int64)
    stats = np.zeros(16, dtype=np.int64)
    dense = num_cells <= 8 * BATCH_ROWS
    for batch in con.sql(sql).to_arrow_reader(BATCH_ROWS):
        code = batch.column(0).to_numpy(zero_copy_only=False)
        ok = code >= 0
        good = code[ok]
        if dense:
            cells += np.bincount(good, minlength=num_cells)
        else:
            uniq, cnt = np.unique(good, return_counts=True)
            cells[uniq] += cnt
        stats += np.bincount(-code[~ok] - 1, minlength=16)
    return cells, stats


def _explain(con: duckdb.DuckDBPyConnection, src: _Source, bad: int) -> str | None:
    """What is wrong in one file (count and a few raw values), or None if nothing is."""
    roles = ("pickup_time", "dropoff_time") if bad == _BAD_TIME else ("pickup_zone", "dropoff_zone")
    examples: list[str] = []
    conds: list[str] = []
    for role in roles:
        col, dtype = src.columns[role]
        if bad == _BAD_TIME:
            _, cond = _time_sql(col, dtype, src.path)
        else:
            expr, is_bad = _zone_sql(col, dtype, src.path)
            cond = f"({is_bad} OR ({expr} IS NOT NULL AND {expr} NOT IN (SELECT zone FROM zt)))"
        conds.append(cond)
        q = (
            f"SELECT DISTINCT CAST({_quote_ident(col)} AS VARCHAR) FROM {src.relation} "
            f"WHERE {cond} LIMIT 5"
        )
        examples += [f"{col}={r[0]!r}" for r in con.execute(q).fetchall()]
    if not examples:
        return None
    where = " OR ".join(conds)
    n = con.execute(f"SELECT count(*) FROM {src.relation} WHERE {where}").fetchall()[0][0]
    if bad == _BAD_TIME:
        return f"{n} trips have timestamps that cannot be parsed, e.g. {', '.join(examples[:5])}"
    return f"{n} trips have zone ids not in the zone table, e.g. {', '.join(examples[:5])}"


# ---------------------------------------------------------------------------------------- NYC
def nyc_zone_table(data_dir: str | os.PathLike[str] | None = None) -> Zones:
    """All TLC zones 1…263 in id order, from ``nyc-taxi-zones/taxi_zones.shp``.

    The shapefile has 260 distinct LocationIDs; 57, 104 and 105 take the polygon (and borough) of
    56 and 103, as in the TLC's own lookup table.
    """
    shp = _need(resolve_data_dir(data_dir) / "nyc-taxi-zones" / "taxi_zones.shp")
    return _nyc_zone_table(str(shp.resolve()), shp.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _nyc_zone_table(shp: str, mtime_ns: int) -> Zones:
    """Cached per file version: reading and merging the polygons is most of a small build."""
    zones = read_zones(shp, "LocationID", "zone")
    ids = set(zones.ids) | {z for z, alias in NYC_ZONE_ALIASES.items() if alias in zones.ids}
    return zones.subset(sorted(ids, key=int), NYC_ZONE_ALIASES)


def select_boroughs(zones: Zones, which: str) -> Zones:
    """``all``, one borough, or a comma-separated list (``manhattan``, ``staten-island``, ...)."""
    if which.strip().lower() == "all":
        return zones
    wanted = {w.strip().lower().replace("-", " ").replace("_", " ") for w in which.split(",")}
    wanted.discard("")
    have = {str(a.get("borough", "")).lower() for a in zones.attributes}
    unknown = sorted(wanted - have)
    if unknown or not wanted:
        raise DataError(
            "--zones", f"unknown borough {unknown or which!r}; choose 'all' or from {sorted(have)}"
        )
    ids = [
        z
        for z, a in zip(zones.ids, zones.attributes, strict=True)
        if str(a.get("borough", "")).lower() in wanted
    ]
    return zones.subset(ids)


def load_nyc_tlc(
    files: Sequence[str | os.PathLike[str]],
    *,
    zones: str = "all",
    interval_minutes: int = 30,
    start: str | None = None,
    end: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    internal_only: bool = False,
    name: str | None = None,
) -> FlowDataset:
    """NYC TLC yellow/green/FHV/FHVHV monthly records (parquet or csv) → a ``FlowDataset``.

    Regions are the zones of ``zones`` ('all' = the 263 TLC zones, or a borough); the graph is
    polygon contiguity and the centroids are in metres (NY State Plane). Trips at zone 264/265 are
    dropped and counted; ``internal_only`` counts only trips with both ends in the selection (how
    the nyc-taxi-manhattan dataset was built).
    """
    files = check_record_files(files, NYC_COLUMNS)  # bad input is named before missing zones
    root = resolve_data_dir(data_dir)
    table = nyc_zone_table(root)
    chosen = select_boroughs(table, zones)
    agg = aggregate_trips(
        files,
        columns=NYC_COLUMNS,
        regions=[int(z) for z in chosen.ids],
        known=[int(z) for z in table.ids],
        unlocated=NYC_UNLOCATED_IDS,
        interval_minutes=interval_minutes,
        start=start,
        end=end,
        internal_only=internal_only,
    )
    pois = None
    if (root / "nyc-taxi-zones" / "zone_poi.json").exists():
        pois = nyc_pois(root, chosen.ids)
    label = "all" if zones.strip().lower() == "all" else zones.strip().lower()
    return FlowDataset(
        name=name or f"nyc-tlc-{label.replace(' ', '-').replace(',', '+')}",
        city="New York City" + ("" if label == "all" else f" ({zones})"),
        flows=agg.flows,
        start=agg.start,
        interval_minutes=interval_minutes,
        region_ids=list(chosen.ids),
        region_names=list(chosen.names),
        adjacency=chosen.contiguity(),
        centroids=chosen.centroids() * 0.3048,
        pois=pois,
        source=", ".join(agg.files[:3])
        + (f" (+{len(agg.files) - 3} more)" if len(agg.files) > 3 else ""),
        extra=trip_extra(agg, zones=zones, internal_only=internal_only),
    )


def trip_extra(agg: TripAggregate, **settings: Any) -> dict[str, Any]:
    """What a built dataset records about its making: files, rows read, events dropped and why."""
    return {
        "built_from": "trip records",
        "files": agg.files,
        "rows": agg.rows,
        "dropped": agg.dropped,
        "inflow_clock": "drop-off time",
        "outflow_clock": "pickup time",
        **settings,
    }

"""The in-memory dataset every part of FlowDistill reads: flows (T, N, C) with their calendar and graph."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flowdistill.data.errors import DataError

CHANNELS = ("inflow", "outflow")
FORMAT_VERSION = 1


@dataclass
class FlowDataset:
    """Region flows on a regular clock.

    ``flows[t, n, c]`` counts trips for slot ``t`` (starting at ``timestamps[t]``), region ``n`` and
    channel ``c`` (inflow, outflow). ``adjacency`` is an N×N weighted graph; ``centroids`` (N×2,
    projected metres or degrees) break ties when ranking neighbours; ``pois`` holds per region the
    list of POI category names used by the teacher's instructions.
    """

    name: str
    flows: np.ndarray
    start: pd.Timestamp
    interval_minutes: int
    region_ids: list[str]
    region_names: list[str]
    adjacency: np.ndarray
    city: str = ""
    channels: tuple[str, ...] = CHANNELS
    centroids: np.ndarray | None = None
    pois: list[list[str]] | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.start = pd.Timestamp(self.start)
        self.validate()

    # ------------------------------------------------------------------ shape and calendar
    @property
    def num_slots(self) -> int:
        return int(self.flows.shape[0])

    @property
    def num_regions(self) -> int:
        return int(self.flows.shape[1])

    @property
    def num_channels(self) -> int:
        return int(self.flows.shape[2])

    @property
    def slots_per_day(self) -> int:
        return 24 * 60 // self.interval_minutes

    @property
    def timestamps(self) -> pd.DatetimeIndex:
        return pd.date_range(self.start, periods=self.num_slots, freq=f"{self.interval_minutes}min")

    @property
    def end(self) -> pd.Timestamp:
        """Start of the last slot."""
        return self.start + pd.Timedelta(minutes=self.interval_minutes * (self.num_slots - 1))

    def time_of_day(self) -> np.ndarray:
        """Slot index within the day, per slot (0 … slots_per_day-1)."""
        ts = self.timestamps
        return ((ts.hour * 60 + ts.minute) // self.interval_minutes).to_numpy().astype(np.int64)

    def day_of_week(self) -> np.ndarray:
        """Monday = 0 … Sunday = 6, per slot."""
        return self.timestamps.day_of_week.to_numpy().astype(np.int64)

    def missing_mask(self) -> np.ndarray:
        """True for slots of declared missing days (calendar gaps, e.g. a weekday-only feed).

        Their flows are placeholders (zeros): windows that touch them are skipped and the scaler
        ignores them, so a gap is never read as a day without traffic.
        """
        days = self.extra.get("missing_days") or []
        if not days:
            return np.zeros(self.num_slots, dtype=bool)
        wanted = pd.DatetimeIndex(pd.to_datetime(list(days))).normalize()
        return np.asarray(self.timestamps.normalize().isin(wanted), dtype=bool)

    def gaps(self) -> list[str]:
        """Declared missing days as merged ranges, ``"2021-01-02..2021-01-03"`` (or one day)."""
        days = sorted(pd.to_datetime(list(self.extra.get("missing_days") or [])).normalize())
        ranges: list[list[pd.Timestamp]] = []
        for d in days:
            if ranges and d - ranges[-1][1] == pd.Timedelta(days=1):
                ranges[-1][1] = d
            else:
                ranges.append([d, d])
        return [
            a.date().isoformat() if a == b else f"{a.date().isoformat()}..{b.date().isoformat()}"
            for a, b in ranges
        ]

    def validate(self, origin: str | None = None) -> None:
        """Refuse data that would silently poison training: wrong shape, NaN, negative counts."""
        where = origin or self.source or self.name
        f = self.flows
        if f.ndim != 3:
            raise DataError(where, f"flows must be (T, N, C), got shape {tuple(f.shape)}")
        if f.shape[0] < 1 or f.shape[1] < 1:
            raise DataError(where, f"flows are empty: shape {tuple(f.shape)}")
        if f.shape[2] != len(self.channels):
            raise DataError(
                where, f"flows have {f.shape[2]} channels but {len(self.channels)} are named"
            )
        if not np.issubdtype(f.dtype, np.number):
            raise DataError(where, f"flows must be numeric, got {f.dtype}")
        if np.isnan(f).any():
            t, n, c = np.argwhere(np.isnan(f))[0]
            raise DataError(where, f"flows contain NaN (first at slot {t}, region {n}, channel {c})")
        if (f < 0).any():
            t, n, c = np.argwhere(f < 0)[0]
            raise DataError(
                where, f"flows contain negative counts (first at slot {t}, region {n}, channel {c})"
            )
        if self.interval_minutes <= 0 or (24 * 60) % self.interval_minutes:
            raise DataError(where, f"interval {self.interval_minutes} min does not divide a day")
        n = f.shape[1]
        if len(self.region_ids) != n or len(self.region_names) != n:
            raise DataError(
                where,
                f"{n} regions in flows but {len(self.region_ids)} ids / "
                f"{len(self.region_names)} names",
            )
        if self.adjacency.shape != (n, n):
            raise DataError(where, f"adjacency must be {n}×{n}, got {self.adjacency.shape}")
        if self.centroids is not None and self.centroids.shape != (n, 2):
            raise DataError(where, f"centroids must be {n}×2, got {self.centroids.shape}")
        if self.pois is not None and len(self.pois) != n:
            raise DataError(where, f"POIs given for {len(self.pois)} regions, flows have {n}")

    # ------------------------------------------------------------------ selection
    def select_period(self, start: str | None = None, end: str | None = None) -> FlowDataset:
        """Slots whose start lies in [start, end] (dates include their whole day)."""
        ts = self.timestamps
        lo = 0
        hi = self.num_slots
        if start is not None:
            lo = int(ts.searchsorted(pd.Timestamp(start), side="left"))
        if end is not None:
            e = pd.Timestamp(end)
            if e == e.normalize() and len(str(end)) <= 10:
                e = e + pd.Timedelta(days=1) - pd.Timedelta(minutes=1)
            hi = int(ts.searchsorted(e, side="right"))
        if hi <= lo:
            raise DataError(
                self.name,
                f"period {start}..{end} holds no slot (data covers {self.start} .. {self.end})",
            )
        return self._replace(flows=self.flows[lo:hi], start=ts[lo])

    def _replace(self, **changes: Any) -> FlowDataset:
        values = {k: getattr(self, k) for k in self.__dataclass_fields__}
        values.update(changes)
        return FlowDataset(**values)

    def summary(self) -> dict[str, Any]:
        """The facts `flowdistill data info` prints."""
        return {
            "name": self.name,
            "city": self.city,
            "slots": self.num_slots,
            "regions": self.num_regions,
            "channels": list(self.channels),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "interval_minutes": self.interval_minutes,
            "days": round(self.num_slots / self.slots_per_day, 2),
            "mean_flow": round(float(self.flows.mean()), 3),
            "zero_share": round(float((self.flows == 0).mean()), 4),
            "graph_edges": int(((self.adjacency > 0) & ~np.eye(self.num_regions, dtype=bool)).sum()),
            "has_pois": self.pois is not None,
            "has_centroids": self.centroids is not None,
            "source": self.source,
            **self._gap_summary(),
        }

    def _gap_summary(self) -> dict[str, Any]:
        """Only for series with declared gaps: how many days and slots are missing, and where."""
        if not self.extra.get("missing_days"):
            return {}
        mask = self.missing_mask()
        return {
            "missing_days": len(self.extra["missing_days"]),
            "missing_slots": int(mask.sum()),
            "gaps": self.gaps(),
        }

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write one self-describing ``.npz``; written under a temporary name, then renamed."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        meta = {
            "format": "flowdistill-dataset",
            "version": FORMAT_VERSION,
            "name": self.name,
            "city": self.city,
            "start": self.start.isoformat(),
            "interval_minutes": self.interval_minutes,
            "region_ids": list(self.region_ids),
            "region_names": list(self.region_names),
            "channels": list(self.channels),
            "pois": self.pois,
            "source": self.source,
            "extra": self.extra,
        }
        arrays: dict[str, np.ndarray] = {
            "flows": self.flows.astype(np.float32),
            "adjacency": self.adjacency.astype(np.float32),
            "meta": np.array(json.dumps(meta)),
        }
        if self.centroids is not None:
            arrays["centroids"] = self.centroids.astype(np.float64)
        atomic_savez(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FlowDataset:
        path = Path(path)
        if not path.exists():
            raise DataError(path, "file not found")
        try:
            with np.load(path, allow_pickle=False) as z:
                if "meta" not in z.files or "flows" not in z.files:
                    raise DataError(path, "not a FlowDistill dataset file (no 'meta'/'flows')")
                meta = json.loads(str(z["meta"]))
                flows = z["flows"]
                adjacency = z["adjacency"]
                centroids = z["centroids"] if "centroids" in z.files else None
        except DataError:
            raise
        except Exception as exc:  # zip/np errors: truncated or foreign files
            raise DataError(path, f"cannot read dataset file: {exc}") from exc
        if meta.get("format") != "flowdistill-dataset":
            raise DataError(path, "not a FlowDistill dataset file")
        return cls(
            name=meta["name"],
            flows=flows,
            start=pd.Timestamp(meta["start"]),
            interval_minutes=int(meta["interval_minutes"]),
            region_ids=list(meta["region_ids"]),
            region_names=list(meta["region_names"]),
            adjacency=adjacency,
            city=meta.get("city", ""),
            channels=tuple(meta.get("channels", CHANNELS)),
            centroids=centroids,
            pois=meta.get("pois"),
            source=str(path),
            extra=meta.get("extra", {}),
        )


def atomic_savez(path: str | os.PathLike[str], **arrays: np.ndarray) -> None:
    """``np.savez_compressed`` to a temporary file in the same folder, then an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write text under a temporary name, then rename: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

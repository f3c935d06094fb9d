"""A trained model as a forecaster of real clock time: 12 observed slots in, 12 dated slots out.

Training works on window ids; a traffic team works on timestamps. :class:`Forecaster` bridges the
two: it rebuilds the model of a run folder (weights, scaler, config from ``engine.bundle``), takes
the raw flows of the ``L`` slots before a time ``at`` and returns the ``H`` slots from ``at`` on, on
the original scale. Every check that protects a forecast from silently wrong input (zones, clock,
missing slots, NaN, negative counts) lives here, so predict, serve and plots refuse the same things.
"""

from __future__ import annotations

import inspect
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from flowdistill.data.dataset import FlowDataset, atomic_write_text
from flowdistill.data.errors import DataError
from flowdistill.engine.bundle import RunBundle, load_bundle
from flowdistill.models.base import as_output


@dataclass
class Forecast:
    """``values[h, n, c]``: flow of zone ``zones[n]``, channel ``channels[c]`` in slot ``times[h]``."""

    times: pd.DatetimeIndex
    zones: list[str]
    channels: tuple[str, ...]
    values: np.ndarray
    model: str = ""

    def records(self) -> list[dict[str, Any]]:
        """One row per (slot, zone): ``timestamp, zone, inflow, outflow``."""
        rows = []
        for h, t in enumerate(self.times):
            stamp = t.isoformat()
            for n, z in enumerate(self.zones):
                row: dict[str, Any] = {"timestamp": stamp, "zone": z}
                for c, name in enumerate(self.channels):
                    row[name] = round(float(self.values[h, n, c]), 3)
                rows.append(row)
        return rows

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame.from_records(
            self.records(), columns=["timestamp", "zone", *self.channels]
        )

    def write(self, path: str | os.PathLike[str]) -> Path:
        """CSV or JSON by the file's suffix, written under a temporary name then renamed."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".csv":
            text = self.to_frame().to_csv(index=False)
        elif suffix == ".json":
            head = {
                "model": self.model,
                "first_slot": self.times[0].isoformat(),
                "interval_minutes": int((self.times[1] - self.times[0]) / pd.Timedelta(minutes=1))
                if len(self.times) > 1 else None,
            }
            rows = ",\n  ".join(json.dumps(r) for r in self.records())  # one row per line
            text = json.dumps(head, indent=1)[:-2] + f',\n "forecast": [\n  {rows}\n ]\n}}\n'
        else:
            raise DataError(path, "the output must end in .csv or .json")
        atomic_write_text(path, text)
        return path


class Forecaster:
    """The model of one run folder, ready to forecast from raw flows and timestamps."""

    def __init__(self, bundle: RunBundle, device: str = "cpu") -> None:
        self.bundle = bundle
        self.device = torch.device(device)
        self.model = bundle.build(device)
        if "index" in inspect.signature(self.model.forward).parameters:
            raise DataError(
                bundle.run_dir or bundle.model,
                f"{bundle.model} needs the training window ids and cannot forecast new data",
            )

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike[str], device: str = "cpu") -> Forecaster:
        return cls(load_bundle(run_dir), device)

    # ------------------------------------------------------------------ facts
    @property
    def input_len(self) -> int:
        return self.bundle.input_len

    @property
    def output_len(self) -> int:
        return self.bundle.output_len

    @property
    def interval(self) -> pd.Timedelta:
        return pd.Timedelta(minutes=self.bundle.interval_minutes)

    @property
    def zones(self) -> list[str]:
        return self.bundle.region_ids

    def calendar(self, at: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
        """Time-of-day and day-of-week index of the L input slots before each time in ``at``."""
        offsets = np.arange(-self.input_len, 0) * np.timedelta64(self.bundle.interval_minutes, "m")
        when = np.asarray(pd.DatetimeIndex(at), dtype="datetime64[ns]")
        stamps = pd.DatetimeIndex((when[:, None] + offsets[None, :]).ravel())
        minutes = stamps.hour * 60 + stamps.minute
        tod = (minutes // self.bundle.interval_minutes).to_numpy().reshape(len(at), -1)
        dow = stamps.day_of_week.to_numpy().reshape(len(at), -1)
        return tod.astype(np.int64), dow.astype(np.int64)

    # ------------------------------------------------------------------ forecasting
    def check_history(self, history: np.ndarray, where: str = "history") -> np.ndarray:
        """(L, N, C) or (B, L, N, C) raw counts: right shape, finite, non-negative."""
        h = np.asarray(history, dtype=np.float32)
        want = (self.input_len, len(self.zones), len(self.bundle.channels))
        if h.ndim == 3:
            h = h[None]
        if h.ndim != 4 or tuple(h.shape[1:]) != want:
            raise DataError(
                where, f"flows must have shape {want} (slots, zones, channels), got {tuple(history.shape)}"
            )
        if not np.isfinite(h).all():
            b, t, n, c = np.argwhere(~np.isfinite(h))[0]
            raise DataError(where, f"flows contain NaN or infinity (slot {t}, zone {self.zones[n]})")
        if (h < 0).any():
            b, t, n, c = np.argwhere(h < 0)[0]
            raise DataError(
                where, f"flows contain a negative count (slot {t}, zone {self.zones[n]}, "
                f"{self.bundle.channels[c]})"
            )
        return h

    @torch.no_grad()
    def predict_scaled(self, x: np.ndarray, tod: np.ndarray, dow: np.ndarray) -> np.ndarray:
        """The network's own output (scaled units) for scaled inputs: what ONNX export must match."""
        out = self.model(
            torch.as_tensor(x, dtype=torch.float32, device=self.device),
            torch.as_tensor(tod, device=self.device),
            torch.as_tensor(dow, device=self.device),
        )
        return as_output(out).pred.float().cpu().numpy()

    def forecast_raw(self, history: np.ndarray, at: pd.DatetimeIndex | pd.Timestamp) -> np.ndarray:
        """(B, H, N, C) forecasts for raw histories (B, L, N, C) ending just before each ``at``.

        Counts cannot be negative: forecasts are clipped at zero.
        """
        at = pd.DatetimeIndex([at]) if isinstance(at, pd.Timestamp) else pd.DatetimeIndex(at)
        h = self.check_history(history)
        if len(at) != len(h):
            raise DataError("history", f"{len(h)} histories but {len(at)} times")
        tod, dow = self.calendar(at)
        scaler = self.bundle.scaler
        pred = self.predict_scaled(scaler.transform(h).astype(np.float32), tod, dow)
        return np.clip(scaler.inverse(pred), 0.0, None)

    def forecast(self, history: np.ndarray, at: pd.Timestamp) -> Forecast:
        """The next H slots from ``at`` for one raw (L, N, C) history of the slots before it."""
        at = self.align(at)
        values = self.forecast_raw(history, at)[0]
        times = pd.date_range(at, periods=self.output_len, freq=self.interval)
        return Forecast(times, list(self.zones), tuple(self.bundle.channels), values,
                        model=self.bundle.model)

    def align(self, at: str | pd.Timestamp) -> pd.Timestamp:
        """A timestamp on the model's clock (slots start at whole multiples of the interval)."""
        try:
            t = pd.Timestamp(at)
        except (ValueError, TypeError) as exc:
            raise DataError("--at", f"cannot read timestamp {at!r}") from exc
        if t.tzinfo is not None:
            t = t.tz_convert(None)
        if t != t.floor(self.interval):
            raise DataError(
                "--at", f"{t} is not a slot start: slots are {self.bundle.interval_minutes} min "
                f"long (e.g. {t.floor(self.interval)})",
            )
        return t

    # ------------------------------------------------------------------ from a dataset
    def conform(self, ds: FlowDataset) -> FlowDataset:
        """The dataset with the model's zones in the model's order, or an error naming the misfit."""
        if ds.interval_minutes != self.bundle.interval_minutes:
            raise DataError(
                ds.source or ds.name,
                f"slots are {ds.interval_minutes} min but the model was trained on "
                f"{self.bundle.interval_minutes}-min slots",
            )
        if tuple(ds.channels) != tuple(self.bundle.channels):
            raise DataError(ds.source or ds.name, f"channels {list(ds.channels)} are not "
                            f"the model's {list(self.bundle.channels)}")
        have = [str(z) for z in ds.region_ids]
        if have == self.zones:
            return ds
        missing = [z for z in self.zones if z not in set(have)]
        extra = [z for z in have if z not in set(self.zones)]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"lacks {len(missing)} of the model's zones ({', '.join(missing[:5])}"
                             f"{' …' if len(missing) > 5 else ''})")
            if extra:
                parts.append(f"has {len(extra)} zones the model does not know "
                             f"({', '.join(extra[:5])}{' …' if len(extra) > 5 else ''})")
            raise DataError(ds.source or ds.name, "wrong zones: the data " + " and ".join(parts))
        order = [have.index(z) for z in self.zones]
        return ds._replace(
            flows=ds.flows[:, order], region_ids=[ds.region_ids[i] for i in order],
            region_names=[ds.region_names[i] for i in order], adjacency=ds.adjacency[np.ix_(order, order)],
            centroids=None if ds.centroids is None else ds.centroids[order],
            pois=None if ds.pois is None else [ds.pois[i] for i in order],
        )

    def slot_of(self, ds: FlowDataset, at: str | pd.Timestamp | None) -> int:
        """Index of the first forecast slot for ``at`` (None: just after the data), checked."""
        L = self.input_len
        if at is None:
            idx = ds.num_slots
        else:
            t = self.align(at)
            offset = (t - ds.start) / pd.Timedelta(minutes=ds.interval_minutes)
            if offset != int(offset):
                raise DataError("--at", f"{t} is not on the data's clock (it starts at {ds.start})")
            idx = int(offset)
            last = ds.end + pd.Timedelta(minutes=ds.interval_minutes)
            if idx > ds.num_slots:
                raise DataError(
                    "--at", f"{t} is outside the data: it ends at {ds.end}, so the latest "
                    f"forecast starts at {last}",
                )
            if idx < L:
                earliest = ds.start + L * pd.Timedelta(minutes=ds.interval_minutes)
                raise DataError(
                    "--at", f"{t} is outside the data: the {L} slots before it are needed and the "
                    f"data starts at {ds.start}, so the earliest forecast starts at {earliest}",
                )
        if idx < L:
            raise DataError(ds.source or ds.name, f"holds {ds.num_slots} slots, fewer than the "
                            f"{L} a forecast starts from")
        missing = ds.missing_mask()[idx - L : idx]
        if missing.any():
            first = ds.timestamps[idx - L + int(np.argmax(missing))]
            raise DataError(
                ds.source or ds.name, f"missing slots: {int(missing.sum())} of the {L} slots before "
                f"the forecast lie in a declared gap (first {first})",
            )
        return idx

    def forecast_dataset(self, ds: FlowDataset, at: str | pd.Timestamp | None = None) -> Forecast:
        """Forecast from the L slots of ``ds`` before ``at`` (default: the end of the data)."""
        ds = self.conform(ds)
        idx = self.slot_of(ds, at)
        start = ds.start + idx * pd.Timedelta(minutes=ds.interval_minutes)
        return self.forecast(ds.flows[idx - self.input_len : idx], start)

    def describe(self) -> dict[str, Any]:
        """Name, dataset, zones, interval and scores: what `GET /model` answers."""
        b = self.bundle
        return {
            "model": b.model,
            "run": str(b.run_dir) if b.run_dir else None,
            "dataset": b.dataset.get("name"),
            "city": b.dataset.get("city"),
            "trained_on": {k: b.dataset.get(k) for k in ("start", "end", "test_start")},
            "zones": list(b.region_ids),
            "zone_names": list(b.region_names),
            "channels": list(b.channels),
            "interval_minutes": b.interval_minutes,
            "input_len": b.input_len,
            "output_len": b.output_len,
            "metrics": {
                split: {k: b.metrics[split][k] for k in ("mae", "rmse", "mape") if k in b.metrics[split]}
                for split in ("val", "test") if split in b.metrics
            },
            "params": b.metrics.get("params"),
        }

"""What the teacher is tuned on: the target city's slots plus other sources on the same regions.

The paper's teacher knows more than the student because it is instruction-tuned on data the student
never trains on (taxi, bike, weather). `TeacherWindows` gives the engine one window set made of

* the target dataset (e.g. nyc-taxi-manhattan): its training windows end either where the student's
  do (``pool="train"``, the *strict* teacher) or where validation starts (``pool="val"``: every slot
  before the target's validation part; never a validation or test slot); with ``holdout=(k, K)``
  the strict pool leaves out the k-th of K blocks of the student's training windows (and every
  window sharing a slot with it), so that block can be forecast out of sample (cross-fitting);
* other sources on the same regions and clock (e.g. nyc-bike-manhattan), only their slots that start
  before the target's validation start.

The sources are laid end to end on one slot axis (target first, so target window ids are the target
dataset's own ids, and a teacher file written from here lines up with the student's windows). A
window never crosses from one source into the next. Each source is z-scored with its own statistics
(fitted on the slots used for training); `SourceScaledMAE` scores every window in its own source's
scaled space, weighted so that a target window's loss is exactly its MAE in the target's units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from flowdistill.data.dataset import FlowDataset
from flowdistill.data.errors import DataError
from flowdistill.data.windows import (
    SplitBounds,
    StandardScaler,
    WindowAligned,
    WindowConfig,
    Windows,
)
from flowdistill.metrics import make_mask

POOLS = ("train", "val")


def fold_windows(train_ids: np.ndarray, fold: int, folds: int) -> np.ndarray:
    """The training windows held out as fold ``fold`` (1-based) of ``folds``: one contiguous block.

    Cross-fitting (``holdout``): a teacher tuned without this block forecasts it, so the student
    learns on these windows from forecasts the teacher made as it would on unseen slots, not from a
    fit of the labels. Contiguous blocks, because neighbouring windows share most of their slots.
    """
    if not (isinstance(folds, int) and isinstance(fold, int) and folds >= 2 and 1 <= fold <= folds):
        raise DataError("teacher data", f"holdout must be fold k of K with 1 <= k <= K and K >= 2, "
                        f"got {fold}/{folds}")
    ids = np.asarray(train_ids, dtype=np.int64)
    if len(ids) < folds:
        raise DataError("teacher data", f"{len(ids)} training windows cannot make {folds} folds")
    return np.array_split(ids, folds)[fold - 1]


def _apart(ids: np.ndarray, held: np.ndarray, span: int) -> np.ndarray:
    """``ids`` less every window sharing a slot with a held-out window (windows span ``span`` slots)."""
    lo, hi = int(held.min()) - span + 1, int(held.max()) + span - 1
    return ids[(ids < lo) | (ids > hi)]


@dataclass(frozen=True)
class Segment:
    """One source on the shared slot axis: slots ``[offset, offset + length)``."""

    name: str
    kind: str  # the flow's mode in prompts: taxi, bike, ...
    offset: int
    length: int
    start: str  # timestamp of its first slot

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def flow_kind(ds: FlowDataset) -> str:
    """The mode a prompt names ('taxi', 'bike', or 'traffic' when the dataset does not say)."""
    mode = (ds.extra or {}).get("mode")
    if mode:
        return str(mode)
    name = ds.name.lower()
    return next((k for k in ("taxi", "bike") if k in name), "traffic")


class TeacherWindows(Windows):
    """A `Windows` whose training part spans several sources; val/test are the target's own."""

    def __init__(
        self,
        target: FlowDataset,
        cfg: WindowConfig,
        pool: str = "train",
        extra: list[FlowDataset] | None = None,
        target_repeat: int = 1,
        holdout: tuple[int, int] | None = None,
    ) -> None:
        if pool not in POOLS:
            raise DataError("teacher data", f"pool must be one of {POOLS}, got {pool!r}")
        if not isinstance(target_repeat, int) or target_repeat < 1:
            raise DataError("teacher data", f"target_repeat must be a whole number >= 1, got "
                            f"{target_repeat!r}")
        if holdout is not None and pool != "train":
            raise DataError("teacher data", "holdout (cross-fitting) splits the student's own "
                            "training slots: it needs pool='train'")
        self.target = Windows(target, cfg)  # the student's windows: ids, bounds, checks
        super().__init__(target, cfg)
        b = self.target.bounds
        pool_end = b.train_end if pool == "train" else b.val_start
        L, H = cfg.input_len, cfg.output_len
        cutoff = target.timestamps[b.val_start]  # nothing at or after the target's validation start
        self.pool = pool
        self.target_repeat = target_repeat
        self.holdout = tuple(holdout) if holdout is not None else None
        self.bounds = SplitBounds(pool_end, b.val_start, b.test_start, b.num_slots)
        target_ids = np.arange(L, pool_end - H + 1, dtype=np.int64)
        fit_slots = target.flows[:pool_end]
        self.held_out = np.zeros(0, dtype=np.int64)
        if self.holdout is not None:
            self.held_out = fold_windows(self.target.ids("train"), *self.holdout)
            target_ids = _apart(target_ids, self.held_out, L + H)
            if len(target_ids) == 0:
                raise DataError("teacher data", f"fold {self.holdout[0]}/{self.holdout[1]} leaves "
                                "no target window to tune on")
            lo, hi = int(self.held_out.min()) - L, int(self.held_out.max()) + H
            fit_slots = np.concatenate([fit_slots[:lo], fit_slots[hi:]])  # not the held-out slots
        self.scaler = StandardScaler.fit(fit_slots)
        self.source_scalers = [self.scaler]
        raw = [target.flows.astype(np.float32)]
        scaled = [self.scaler.transform(raw[0]).astype(np.float32)]
        tod, dow = [target.time_of_day()], [target.day_of_week()]
        self.segments = [Segment(target.name, flow_kind(target), 0, target.num_slots,
                                 pd.Timestamp(target.start).isoformat())]
        # Repeating the target's windows raises its share of the draws: the strict teacher has
        # far fewer target windows than windows of the other sources.
        train_ids = [np.tile(target_ids, target_repeat)]
        offset = target.num_slots
        for ds in extra or []:
            if ds.num_regions != target.num_regions or ds.interval_minutes != target.interval_minutes:
                raise DataError(ds.name, f"needs the target's {target.num_regions} regions at "
                                f"{target.interval_minutes} min, has {ds.num_regions} at "
                                f"{ds.interval_minutes} min")
            if list(ds.region_ids) != list(target.region_ids):
                raise DataError(ds.name, "regions are not the target's, in the target's order")
            keep = int(ds.timestamps.searchsorted(cutoff, side="left"))
            if keep < L + H:
                raise DataError(ds.name, f"fewer than {L + H} slots before {cutoff}")
            flows = ds.flows[:keep].astype(np.float32)
            sc = StandardScaler.fit(flows)
            self.source_scalers.append(sc)
            raw.append(flows)
            scaled.append(sc.transform(flows).astype(np.float32))
            tod.append(ds.time_of_day()[:keep])
            dow.append(ds.day_of_week()[:keep])
            self.segments.append(Segment(ds.name, flow_kind(ds), offset, keep,
                                         pd.Timestamp(ds.start).isoformat()))
            train_ids.append(offset + np.arange(L, keep - H + 1, dtype=np.int64))
            offset += keep
        self.raw = np.concatenate(raw, axis=0)
        self.scaled = np.concatenate(scaled, axis=0)
        self.tod = np.concatenate(tod)
        self.dow = np.concatenate(dow)
        self._ids = {"train": np.concatenate(train_ids), "val": self.target.ids("val"),
                     "test": self.target.ids("test")}

    def source_of(self, ids: np.ndarray) -> np.ndarray:
        """Segment index of each window id."""
        starts = np.array([s.offset for s in self.segments])
        return np.searchsorted(starts, np.asarray(ids), side="right") - 1

    def source_extra(self) -> dict[str, WindowAligned]:
        """Per-window source index for the training windows (the objective's ``batch["source"]``)."""
        ids = np.unique(self._ids["train"])
        return {"source": WindowAligned(ids, self.source_of(ids).astype(np.float32), "source")}

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        counts = np.bincount(self.source_of(np.unique(self._ids["train"])),
                             minlength=len(self.segments))
        d["teacher_data"] = {
            "pool": self.pool,
            "target_repeat": self.target_repeat,
            **({"holdout": list(self.holdout), "held_out_windows": int(len(self.held_out))}
               if self.holdout is not None else {}),
            "segments": [s.to_dict() for s in self.segments],
            "train_windows_per_source": {s.name: int(c) for s, c in zip(self.segments, counts,
                                                                         strict=True)},
        }
        return d


class SourceScaledMAE:
    """Masked MAE of every window in its own source's scaled space, in target units.

    ``|pred - (y - mean_s) / std_s| * std_target``: for a target window this is its MAE on the
    original scale (what the engine's default objective computes); another source's windows count as
    if their flows had the target's spread.
    """

    def __init__(self, windows: TeacherWindows, mask_threshold: float | None = 0.0) -> None:
        self.mean = torch.tensor(np.stack([s.mean for s in windows.source_scalers]))
        self.std = torch.tensor(np.stack([s.std for s in windows.source_scalers]))
        self.mask_threshold = mask_threshold

    def __call__(self, out: Any, batch: dict[str, torch.Tensor], scaler: Any):
        dev = out.pred.device
        src = batch["source"].long()
        mean = self.mean.to(dev)[src][:, None, None, :]
        std = self.std.to(dev)[src][:, None, None, :]
        y = batch["y"]
        scale = self.std[0].to(dev)
        err = (out.pred - (y - mean) / std).abs() * scale
        keep = make_mask(y, self.mask_threshold).to(err.dtype)  # masked on the raw flow, as the metrics
        loss = (err * keep).sum() / keep.sum().clamp_min(1.0)
        return loss, {"mae": float(loss.detach())}


__all__ = ["POOLS", "Segment", "SourceScaledMAE", "TeacherWindows", "flow_kind", "fold_windows"]

"""Sliding windows, chronological splits and the scaler.

A window is named by the index of its first target slot ``t``: inputs are slots ``[t-L, t)``, targets
``[t, t+H)``. Everything that belongs to a window (inputs, truth, teacher predictions) is looked up by
that index, so batching and shuffling can never pull them apart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from flowdistill.data.dataset import FlowDataset
from flowdistill.data.errors import DataError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class WindowConfig:
    """Window lengths and split ratios (fractions of the series' slots)."""

    input_len: int = 12
    output_len: int = 12
    train_ratio: float = 0.1
    val_ratio: float = 0.1
    test_ratio: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SplitBounds:
    """Slot boundaries: train targets in [0, train_end), val in [val_start, test_start), test after."""

    train_end: int
    val_start: int
    test_start: int
    num_slots: int


def split_bounds(num_slots: int, cfg: WindowConfig) -> SplitBounds:
    """Test = last ``test_ratio`` of slots, validation = the ``val_ratio`` before, train = first r."""
    for name in ("train_ratio", "val_ratio", "test_ratio"):
        v = getattr(cfg, name)
        if not 0.0 < v < 1.0:
            raise DataError("split", f"{name} must be in (0, 1), got {v}")
    test_start = num_slots - int(round(cfg.test_ratio * num_slots))
    val_start = test_start - int(round(cfg.val_ratio * num_slots))
    train_end = int(round(cfg.train_ratio * num_slots))
    if train_end > val_start:
        raise DataError(
            "split",
            f"training ratio {cfg.train_ratio} overlaps validation: training would end at slot "
            f"{train_end} but validation starts at slot {val_start} "
            f"(train_ratio + val_ratio + test_ratio must be <= 1)",
        )
    return SplitBounds(train_end, val_start, test_start, num_slots)


class StandardScaler:
    """Per-channel z-score, fitted on training slots only."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    @classmethod
    def fit(cls, flows: np.ndarray) -> StandardScaler:
        mean = flows.reshape(-1, flows.shape[-1]).mean(axis=0)
        std = flows.reshape(-1, flows.shape[-1]).std(axis=0)
        return cls(mean, np.where(std > 0, std, 1.0))

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std

    def inverse(self, x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            mean = torch.as_tensor(self.mean, device=x.device, dtype=x.dtype)
            std = torch.as_tensor(self.std, device=x.device, dtype=x.dtype)
            return x * std + mean
        return x * self.std + self.mean

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}


class Windows:
    """All windows of one dataset under one split configuration."""

    def __init__(self, dataset: FlowDataset, cfg: WindowConfig | None = None) -> None:
        self.dataset = dataset
        self.cfg = cfg or WindowConfig()
        self.bounds = split_bounds(dataset.num_slots, self.cfg)
        L, H = self.cfg.input_len, self.cfg.output_len
        if self.bounds.train_end < L + H:
            raise DataError(
                dataset.name,
                f"training part has {self.bounds.train_end} slots, fewer than one window ({L + H})",
            )
        missing = dataset.missing_mask()
        train_slots = dataset.flows[: self.bounds.train_end]
        if missing.any():  # declared gaps hold placeholders, not traffic
            train_slots = train_slots[~missing[: self.bounds.train_end]]
            if len(train_slots) == 0:
                raise DataError(dataset.name, "the training part lies entirely in declared gaps")
        self.scaler = StandardScaler.fit(train_slots)
        self.raw = dataset.flows.astype(np.float32)
        self.scaled = self.scaler.transform(self.raw).astype(np.float32)
        self.tod = dataset.time_of_day()
        self.dow = dataset.day_of_week()
        b = self.bounds
        ranges = {
            "train": (L, b.train_end - H),
            "val": (max(b.val_start, L), b.test_start - H),
            "test": (max(b.test_start, L), b.num_slots - H),
        }
        self._ids = {}
        self._complete = _complete_windows(missing, L, H)
        for split, (lo, hi) in ranges.items():
            if hi < lo:
                raise DataError(dataset.name, f"the {split} part is shorter than one window")
            ids = np.arange(lo, hi + 1, dtype=np.int64)
            if self._complete is not None:
                ids = ids[self._complete[ids]]
                if len(ids) == 0:
                    raise DataError(
                        dataset.name, f"every window of the {split} part crosses a declared gap"
                    )
            self._ids[split] = ids

    @property
    def all_ids(self) -> np.ndarray:
        """Every window of the series (first target slot from L to T-H), less those crossing a gap."""
        ids = np.arange(self.cfg.input_len, self.dataset.num_slots - self.cfg.output_len + 1)
        return ids if self._complete is None else ids[self._complete[ids]]

    @property
    def skipped_for_gaps(self) -> int:
        """Windows left out because their inputs or targets touch a declared missing slot."""
        if self._complete is None:
            return 0
        L, H = self.cfg.input_len, self.cfg.output_len
        return int((~self._complete[L : self.dataset.num_slots - H + 1]).sum())

    def ids(self, split: str) -> np.ndarray:
        if split == "all":
            return self.all_ids
        if split not in self._ids:
            raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
        return self._ids[split]

    def inputs(self, ids: np.ndarray, scaled: bool = True) -> np.ndarray:
        """(B, L, N, C) history of each window."""
        src = self.scaled if scaled else self.raw
        offs = np.arange(-self.cfg.input_len, 0)
        return src[np.asarray(ids)[:, None] + offs]

    def targets(self, ids: np.ndarray) -> np.ndarray:
        """(B, H, N, C) truth on the original scale."""
        offs = np.arange(self.cfg.output_len)
        return self.raw[np.asarray(ids)[:, None] + offs]

    def calendar(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Time-of-day and day-of-week index of every input step, (B, L) each."""
        idx = np.asarray(ids)[:, None] + np.arange(-self.cfg.input_len, 0)
        return self.tod[idx], self.dow[idx]

    def torch_dataset(
        self, split: str, extras: dict[str, WindowAligned] | None = None
    ) -> WindowDataset:
        return WindowDataset(self, self.ids(split), extras or {})

    def describe(self) -> dict[str, Any]:
        return {
            "window": self.cfg.to_dict(),
            "bounds": asdict(self.bounds),
            "windows": {s: int(len(self._ids[s])) for s in SPLITS},
            "scaler": self.scaler.to_dict(),
            **({"skipped_for_gaps": self.skipped_for_gaps} if self._complete is not None else {}),
        }


def _complete_windows(missing: np.ndarray, input_len: int, output_len: int) -> np.ndarray | None:
    """Per slot t: True when window t (slots [t-L, t+H)) holds no missing slot; None if no gaps."""
    if not missing.any():
        return None
    T = len(missing)
    csum = np.concatenate([[0], np.cumsum(missing, dtype=np.int64)])
    t = np.arange(T)
    lo = np.clip(t - input_len, 0, T)
    hi = np.clip(t + output_len, 0, T)
    return (csum[hi] - csum[lo]) == 0


class WindowAligned:
    """Per-window arrays (e.g. teacher predictions) addressed by window id, never by position."""

    def __init__(self, window_ids: np.ndarray, values: np.ndarray, name: str = "values") -> None:
        window_ids = np.asarray(window_ids, dtype=np.int64)
        if len(window_ids) != len(values):
            raise DataError(name, f"{len(window_ids)} window ids but {len(values)} rows")
        if len(np.unique(window_ids)) != len(window_ids):
            raise DataError(name, "window ids are not unique")
        self.name = name
        self.values = values
        self._pos = {int(w): i for i, w in enumerate(window_ids)}

    def get(self, ids: np.ndarray) -> np.ndarray:
        try:
            rows = [self._pos[int(w)] for w in ids]
        except KeyError as exc:
            raise DataError(self.name, f"no row for window {exc.args[0]}") from exc
        return self.values[rows]

    def covers(self, ids: np.ndarray) -> bool:
        return all(int(w) in self._pos for w in ids)


class WindowDataset(Dataset):
    """Torch view of one split: each item is a dict of tensors for one window id."""

    def __init__(
        self, windows: Windows, ids: np.ndarray, extras: dict[str, WindowAligned]
    ) -> None:
        self.windows = windows
        self.ids = np.asarray(ids, dtype=np.int64)
        self.extras = extras
        for name, extra in extras.items():
            if not extra.covers(self.ids):
                missing = [int(w) for w in self.ids if int(w) not in extra._pos][:5]
                raise DataError(name, f"missing rows for windows {missing} of this split")

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.get_batch(np.array([self.ids[i]]), squeeze=True)

    def get_batch(self, ids: np.ndarray, squeeze: bool = False) -> dict[str, torch.Tensor]:
        """A whole batch at once (much faster than collating single items)."""
        w = self.windows
        tod, dow = w.calendar(ids)
        item = {
            "index": torch.as_tensor(ids),
            "x": torch.from_numpy(w.inputs(ids)),
            "y": torch.from_numpy(w.targets(ids)),
            "tod": torch.from_numpy(tod),
            "dow": torch.from_numpy(dow),
        }
        for name, extra in self.extras.items():
            item[name] = torch.as_tensor(np.asarray(extra.get(ids), dtype=np.float32))
        if squeeze:
            item = {k: v[0] for k, v in item.items()}
        return item

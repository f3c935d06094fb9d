"""Teacher-prediction files: forecasts for windows of a dataset, with the metadata that ties them to it.

Any model can be a teacher (the LLM, a baseline trained on more data, the historical average); the
student only ever reads this file. Rows are addressed by window id (first target slot), and the
metadata (dataset, period, window lengths, regions) is checked against the dataset on load, so a file
made for other data is refused instead of being silently misaligned.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from flowdistill.data.dataset import atomic_savez
from flowdistill.data.errors import DataError
from flowdistill.data.windows import WindowAligned, Windows

FORMAT = "flowdistill-teacher"
# Facts that must agree between a teacher file and the dataset it is used with.
CHECKED_KEYS = ("dataset", "start", "end", "interval_minutes", "num_regions", "input_len", "output_len")


def dataset_fingerprint(windows: Windows) -> dict[str, Any]:
    ds = windows.dataset
    return {
        "dataset": ds.name,
        "start": ds.start.isoformat(),
        "end": ds.end.isoformat(),
        "interval_minutes": ds.interval_minutes,
        "num_regions": ds.num_regions,
        "input_len": windows.cfg.input_len,
        "output_len": windows.cfg.output_len,
    }


@dataclass
class TeacherPredictions:
    """``preds[i]`` (H, N, C, original scale) is the teacher's forecast for window ``window_ids[i]``."""

    window_ids: np.ndarray
    preds: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(
        cls, windows: Windows, window_ids: np.ndarray, preds: np.ndarray, model: str, **info: Any
    ) -> TeacherPredictions:
        meta = dataset_fingerprint(windows)
        meta.update(
            {
                "format": FORMAT,
                "model": model,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "train_ratio": windows.cfg.train_ratio,
                **info,
            }
        )
        out = cls(np.asarray(window_ids, dtype=np.int64), np.asarray(preds, dtype=np.float32), meta)
        out._check_shape("teacher predictions")
        return out

    @property
    def model(self) -> str:
        return str(self.meta.get("model", "unknown"))

    def fingerprint(self) -> str:
        """sha256 of the window ids and the float32 forecasts: the same forecasts give the same
        value whatever the file is called, its metadata or its compression, so a run can tell
        whether a teacher file made again (another session, another folder) is the one it used."""
        h = hashlib.sha256(np.ascontiguousarray(self.window_ids, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(self.preds, dtype=np.float32).tobytes())
        return h.hexdigest()[:16]

    def _check_shape(self, where: str) -> None:
        p = self.preds
        if p.ndim != 4:
            raise DataError(where, f"predictions must be (windows, H, N, C), got {p.shape}")
        if len(self.window_ids) != p.shape[0]:
            raise DataError(where, f"{len(self.window_ids)} window ids for {p.shape[0]} rows")
        if not np.isfinite(p).all():
            raise DataError(where, "predictions contain NaN or infinity")
        for key, axis in (("output_len", 1), ("num_regions", 2)):
            if key in self.meta and int(self.meta[key]) != p.shape[axis]:
                raise DataError(where, f"metadata says {key}={self.meta[key]}, array has {p.shape[axis]}")

    def save(self, path: str | os.PathLike[str], dtype: str = "float32") -> Path:
        """Compressed npz; ``dtype="float16"`` halves the file (forecasts of counts in the
        hundreds keep 3 significant digits, below the noise of any forecaster)."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        atomic_savez(
            path,
            window_ids=self.window_ids,
            preds=self.preds.astype(dtype),
            meta=np.array(json.dumps(self.meta)),
        )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TeacherPredictions:
        ids, meta, preds = cls._read(path, with_preds=True)
        out = cls(ids, preds, meta)
        out._check_shape(str(path))
        return out

    @classmethod
    def load_index(cls, path: str | os.PathLike[str]) -> tuple[np.ndarray, dict[str, Any]]:
        """The window ids and metadata, the forecasts left on disk: which windows a file covers
        and what it says of itself, without reading a file of a hundred megabytes."""
        ids, meta, _ = cls._read(path, with_preds=False)
        return ids, meta

    @staticmethod
    def _read(path: str | os.PathLike[str], with_preds: bool
              ) -> tuple[np.ndarray, dict[str, Any], np.ndarray]:
        path = Path(path)
        if not path.exists():
            raise DataError(path, "teacher file not found")
        try:
            with np.load(path, allow_pickle=False) as z:  # npz members are read one by one
                missing = {"window_ids", "preds", "meta"} - set(z.files)
                if missing:
                    raise DataError(path, f"not a teacher file: missing {sorted(missing)}")
                ids = z["window_ids"].astype(np.int64)
                meta = json.loads(str(z["meta"]))
                preds = z["preds"].astype(np.float32) if with_preds else np.empty((0,), np.float32)
        except DataError:
            raise
        except Exception as exc:
            raise DataError(path, f"cannot read teacher file: {exc}") from exc
        if meta.get("format") != FORMAT:
            raise DataError(path, "not a FlowDistill teacher file (format tag missing)")
        return ids, meta, preds

    def covers(self, ids: np.ndarray) -> bool:
        """Whether the file has a forecast for every one of these windows."""
        return covers(self.window_ids, ids)

    def subset(self, ids: np.ndarray, **meta: Any) -> TeacherPredictions:
        """Only the rows of these windows (e.g. a small file with just the training windows)."""
        lookup = WindowAligned(self.window_ids, self.preds, name=f"teacher[{self.model}]")
        ids = np.asarray(ids, dtype=np.int64)
        return TeacherPredictions(ids, lookup.get(ids), {**self.meta, **meta})

    @classmethod
    def mean_of(cls, files: list[TeacherPredictions], **meta: Any) -> TeacherPredictions:
        """The average forecast of several teachers on the windows they all cover (an ensemble)."""
        if len(files) < 2:
            raise DataError("ensemble", "needs at least two teacher files")
        for other in files[1:]:
            diffs = [k for k in CHECKED_KEYS if str(other.meta.get(k)) != str(files[0].meta.get(k))]
            if diffs:
                raise DataError("ensemble", f"teacher files made for other data differ in {diffs}")
        ids = files[0].window_ids
        for other in files[1:]:
            ids = ids[np.isin(ids, other.window_ids)]
        if not len(ids):
            raise DataError("ensemble", "the teacher files share no window")
        preds = np.mean([WindowAligned(f.window_ids, f.preds).get(ids) for f in files], axis=0)
        base = {k: files[0].meta.get(k) for k in (*CHECKED_KEYS, "format", "train_ratio")}
        members = [{"model": f.model, "trained_on": f.meta.get("trained_on", ""),
                    **({"seed": f.meta["seed"]} if "seed" in f.meta else {})} for f in files]
        info: dict[str, Any] = {
            "model": "ensemble(" + "+".join(f.model for f in files) + ")", "members": members,
            "trained_on": "; ".join(f"{m['model']}: {m['trained_on']}" for m in members)}
        # files forecast by older versions carry no "trained_on": only those that do must agree
        trained = {f.meta["trained_on"] for f in files if f.meta.get("trained_on")}
        same_llm = all(f.model == "llm-teacher" for f in files) and len(trained) <= 1 and all(
            f.meta.get(k) == files[0].meta.get(k)
            for f in files for k in ("backbone", "layers", "prompt_layout"))
        if same_llm:  # fine-tunes of one LLM teacher recipe: still only LLM forecasts
            seeds = ",".join(str(m.get("seed", "?")) for m in members)
            info.update({"model": f"llm-teacher-seeds({seeds})",
                         "trained_on": next(iter(trained), ""),
                         **{k: files[0].meta.get(k) for k in ("backbone", "layers",
                                                              "prompt_layout")}})
        return cls(ids, preds.astype(np.float32), {**base, **info, **meta})

    @classmethod
    def cross_fitted(cls, files: list[TeacherPredictions], windows: Windows) -> TeacherPredictions:
        """One file from the K teachers of a cross-fit (each tuned with one block held out).

        A training window of ``windows`` takes the forecast of the teacher that never saw its
        block; every other window (validation, test) the mean of the K teachers. The student's
        teacher-bounded loss then compares it with forecasts made as on unseen slots, instead of
        with a teacher's fit of the very labels the student has.
        """
        from flowdistill.teacher.sources import fold_windows

        if len(files) < 2:
            raise DataError("cross-fit", "needs the files of at least two fold teachers")
        folds = []
        for f in files:
            h = f.meta.get("holdout")
            if not h:
                raise DataError("cross-fit", f"{f.model} was not tuned with a held-out block "
                                "(`teacher train --holdout k/K`)")
            folds.append((int(h[0]), int(h[1])))
        if sorted(folds) != [(k, len(files)) for k in range(1, len(files) + 1)]:
            raise DataError("cross-fit", f"needs blocks 1..K of one K, one file each; got "
                            f"{sorted(f'{k}/{n}' for k, n in folds)}")
        for f in files:
            f.check_matches(windows, "cross-fit")
            ratio = f.meta.get("train_ratio")
            if ratio is not None and float(ratio) != windows.cfg.train_ratio:
                raise DataError("cross-fit", f"a fold teacher held out blocks of the training "
                                f"ratio {ratio}, this run's is {windows.cfg.train_ratio}")
        train = windows.ids("train")
        mean = cls.mean_of(files)
        rows = mean.preds.copy()
        pos = {int(w): i for i, w in enumerate(mean.window_ids)}
        for f, (k, n) in zip(files, folds, strict=True):
            held = fold_windows(train, k, n)
            lookup = WindowAligned(f.window_ids, f.preds, name=f"teacher[fold {k}/{n}]")
            if not lookup.covers(held):
                raise DataError("cross-fit", f"the fold {k}/{n} teacher has no forecast for some "
                                "of its held-out windows: predict with --splits train,val,test")
            missing = [int(w) for w in held if int(w) not in pos]
            if missing:
                raise DataError("cross-fit", f"training windows {missing[:3]} lack a forecast "
                                "from some fold teacher")
            rows[[pos[int(w)] for w in held]] = lookup.get(held)
        trained = re.sub(r" less block \d+ of \d+", "", str(files[0].meta.get("trained_on", "")))
        info = {"model": f"llm-teacher-crossfit({len(files)})",
                "trained_on": f"{trained}; cross-fitted over {len(files)} blocks: each training "
                              "window forecast by the teacher tuned without its block",
                "folds": len(files),
                **{k: files[0].meta[k] for k in ("backbone", "layers", "prompt_layout", "seed")
                   if k in files[0].meta}}
        return cls(mean.window_ids, rows, {**mean.meta, **info})

    def check_matches(self, windows: Windows, where: str = "teacher file") -> None:
        """Refuse a file made for another dataset, period, window length or region set.

        The training ratio is not compared: a teacher may be trained on more data than the
        student (that is the point of a teacher); what matters is that its rows are forecasts for
        these windows of this series, which :meth:`aligned` checks window by window.
        """
        want = dataset_fingerprint(windows)
        diffs = [
            f"{k}: file has {self.meta.get(k)!r}, this run has {want[k]!r}"
            for k in CHECKED_KEYS
            if str(self.meta.get(k)) != str(want[k])
        ]
        if diffs:
            raise DataError(where, "made for other data — " + "; ".join(diffs)
                            + "; predict a teacher file for this dataset and period")

    def aligned(self, windows: Windows, splits: tuple[str, ...] = ("train",)) -> WindowAligned:
        """The predictions as a per-window lookup, after checking they cover ``splits``."""
        self.check_matches(windows)
        lookup = WindowAligned(self.window_ids, self.preds, name=f"teacher[{self.model}]")
        for split in splits:
            ids = windows.ids(split)
            if not lookup.covers(ids):
                raise DataError("teacher file", self._coverage_problem(windows, split, ids))
        return lookup

    def _coverage_problem(self, windows: Windows, split: str, ids: np.ndarray) -> str:
        """Which windows are missing, what the file was made for, and how to get a file that fits."""
        missing = np.setdiff1d(ids, self.window_ids)
        have = (f"windows {int(self.window_ids.min())}–{int(self.window_ids.max())}"
                if len(self.window_ids) else "no windows")
        made_for = ""
        ratio = self.meta.get("train_ratio")
        if ratio is not None and float(ratio) != windows.cfg.train_ratio:
            made_for = f", predicted for training ratio {ratio}"
        if self.meta.get("splits"):
            made_for += f" (splits {self.meta['splits']})"
        return (
            f"holds {have}{made_for}, but the {split} windows at training ratio "
            f"{windows.cfg.train_ratio} are {int(ids.min())}–{int(ids.max())}: {len(missing)} of "
            f"{len(ids)} have no prediction (first: {missing[:3].tolist()}); predict them with "
            f"`flowdistill teacher predict --splits all` or a file made at this ratio"
        )


def covers(have: np.ndarray, ids: np.ndarray) -> bool:
    """Whether the window ids ``have`` include every one of ``ids``."""
    return bool(np.isin(ids, have).all())

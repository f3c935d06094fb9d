"""Fine-tune the LLM teacher with the project's engine, save/load it, and write the teacher file.

Training uses ``engine.Trainer.fit`` on the training windows only (validation picks the best weights,
test is never seen). A model folder holds ``teacher.json`` (everything needed to rebuild the model and
its data) and ``teacher.pt`` (only the trained tensors: LoRA, encoder, ST embeddings, head).
Inference writes one part file per chunk of windows next to the output, so a killed run resumes where
it stopped; the parts are merged into the teacher file, which is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flowdistill.data.dataset import atomic_savez
from flowdistill.data.errors import DataError
from flowdistill.data.sources import load_dataset
from flowdistill.data.windows import WindowConfig, Windows
from flowdistill.engine.progress import progress_bar
from flowdistill.engine.trainer import FitResult, TrainConfig, Trainer, write_json
from flowdistill.metrics import evaluate as evaluate_metrics
from flowdistill.teacher.file import TeacherPredictions, dataset_fingerprint
from flowdistill.teacher.model import STLLMTeacher, TeacherConfig, build_teacher
from flowdistill.teacher.prompts import PromptFacts
from flowdistill.teacher.sources import SourceScaledMAE, TeacherWindows

MODEL_FORMAT = "flowdistill-llm-teacher"
CONFIG_NAME, WEIGHTS_NAME = "teacher.json", "teacher.pt"


@dataclass
class DataSpec:
    """Where the teacher's data comes from (saved so `predict` rebuilds the same windows)."""

    dataset: str = "nyc-taxi-manhattan"
    data_dir: str | None = None
    start: str | None = None
    end: str | None = None
    train_ratio: float = 0.1
    input_len: int = 12
    output_len: int = 12
    # Target slots the teacher trains on: "train" = the student's own (strict), "val" = every slot
    # before validation. ``extra``: other datasets on the same regions (their slots before validation).
    pool: str = "train"
    extra: tuple[str, ...] = ()
    # Each target training window this many times in the pool (the strict teacher's target is a
    # small share of its windows otherwise).
    target_repeat: int = 1
    # Cross-fitting: (k, K) leaves out the k-th of K blocks of the student's training windows
    # (1-based), which this teacher then forecasts out of sample (`teacher crossfit`).
    holdout: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        # the value itself is checked where it is used (TeacherWindows; the CLI option has min=1)
        if self.target_repeat != 1 and not self.extra:
            raise DataError("teacher data", "--target-repeat raises the target's share among other "
                            "sources: it needs --extra")
        if self.holdout is not None:
            self.holdout = (int(self.holdout[0]), int(self.holdout[1]))
            if self.pool != "train":
                raise DataError("teacher data", "--holdout leaves out part of the student's own "
                                "slots: it needs --pool train")

    def windows(self) -> Windows:
        ds = load_dataset(self.dataset, self.data_dir, self.start, self.end)
        cfg = WindowConfig(self.input_len, self.output_len, train_ratio=self.train_ratio)
        if self.pool == "train" and not self.extra and self.holdout is None:
            return Windows(ds, cfg)
        others = [load_dataset(name, self.data_dir, self.start, self.end) for name in self.extra]
        return TeacherWindows(ds, cfg, self.pool, others, self.target_repeat, self.holdout)

    def settings(self) -> dict[str, Any]:
        """The saved settings; ``target_repeat`` and ``holdout`` only when set, so runs saved
        before them resume."""
        d = dict(vars(self))
        if d.get("target_repeat") == 1:
            d.pop("target_repeat")
        if d.get("holdout") is None:
            d.pop("holdout")
        else:
            d["holdout"] = list(d["holdout"])
        return d

    def describe(self) -> str:
        """One line for tables: which slots of which datasets the teacher was tuned on."""
        own = "the student's training slots" if self.pool == "train" else "every slot before validation"
        if self.holdout is not None:
            own += f" less block {self.holdout[0]} of {self.holdout[1]}"
        if self.target_repeat != 1:
            own += f" (each window ×{self.target_repeat})"
        extra = f" + {', '.join(self.extra)} (slots before validation)" if self.extra else ""
        return f"{self.dataset}: {own}{extra}"


def teacher_for(
    windows: Windows, cfg: TeacherConfig, seed: int = 0, **backbone: Any
) -> STLLMTeacher:
    """A fresh teacher for these windows (``backbone`` may pass a ready decoder/tokenizer)."""
    ds = windows.dataset
    segments = windows.segments if isinstance(windows, TeacherWindows) else None
    facts = PromptFacts.from_dataset(ds, windows.cfg.input_len, windows.cfg.output_len, segments)
    torch.manual_seed(seed)
    return build_teacher(facts, cfg, ds.num_channels, ds.slots_per_day, **backbone)


def train_config(
    steps: int,
    val_every: int = 50,
    batch_size: int = 8,
    lr: float = 2e-3,
    val_batches: int = 2,
    eval_batch_size: int = 32,
    seed: int = 0,
    device: str = "cpu",
    grad_accumulation: int = 1,
    progress: bool = True,
    lr_decay: float = 1.0,
    lr_decay_every: int = 0,
) -> TrainConfig:
    """Engine settings for ``steps`` optimiser steps, validated every ``val_every`` steps.

    ``lr_decay`` multiplies the learning rate every ``lr_decay_every`` validation periods (1.0, the
    default, keeps it constant): a constant rate leaves the last weights wandering around the
    minimum, which shows as a different forecast level from seed to seed.
    """
    if steps <= 0:
        raise ValueError(f"--steps must be positive, got {steps}")
    if not 0.0 < lr_decay <= 1.0:
        raise ValueError(f"--lr-decay must be in (0, 1], got {lr_decay}")
    if lr_decay_every < 0:
        raise ValueError(f"--lr-decay-every must be >= 0, got {lr_decay_every}")
    per_epoch = max(1, min(val_every, steps))
    epochs = math.ceil(steps / per_epoch)
    return TrainConfig(
        lr=lr,
        lr_decay=lr_decay,
        lr_decay_every=lr_decay_every or max(epochs, 1),
        weight_decay=0.0,
        optimizer="adamw",
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        max_epochs=epochs,
        patience=epochs,
        grad_clip=5.0,
        seed=seed,
        device=device,
        limit_train_batches=per_epoch * grad_accumulation,
        limit_val_batches=val_batches,
        grad_accumulation=grad_accumulation,
        progress=progress,
    )


def train_teacher(
    data: DataSpec,
    cfg: TeacherConfig,
    tcfg: TrainConfig,
    out_dir: str | os.PathLike[str],
    windows: Windows | None = None,
    **backbone: Any,
) -> tuple[STLLMTeacher, FitResult]:
    """Fine-tune on the training split and save the model folder; resumes a killed run."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    windows = windows or data.windows()
    t0 = time.perf_counter()
    model = teacher_for(windows, cfg, tcfg.seed, **backbone)
    load_s = time.perf_counter() - t0
    objective, extras = None, None
    if isinstance(windows, TeacherWindows):
        objective = SourceScaledMAE(windows, tcfg.mask_threshold)
        extras = windows.source_extra()
    result = Trainer(tcfg).fit(model, windows, objective=objective, out_dir=out / "engine",
                               extras=extras)
    save_teacher(model, data, windows, tcfg, out, result, load_s)
    return model, result


def save_teacher(
    model: STLLMTeacher,
    data: DataSpec,
    windows: Windows,
    tcfg: TrainConfig,
    out: Path,
    result: FitResult | None = None,
    load_seconds: float = 0.0,
) -> None:
    state = model.trainable_state()
    tmp = out / f".{WEIGHTS_NAME}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, out / WEIGHTS_NAME)
    meta = {
        "format": MODEL_FORMAT,
        "teacher": model.cfg.to_dict(),
        "data": data.settings(),
        "data_description": data.describe(),
        "windows": windows.describe(),
        "fingerprint": dataset_fingerprint(windows),
        "train": tcfg.to_dict(),
        "trainable_parameters": int(sum(v.numel() for v in state.values())),
        "threads": torch.get_num_threads(),
        "load_seconds": load_seconds,
    }
    if result is not None:
        meta["fit"] = {
            "best_epoch": result.best_epoch_number,  # from 1, as printed
            "best_val_mae": result.best_val_mae,
            "epochs_run": result.epochs_run,
            "seconds": result.seconds,
            "history": result.history,
        }
    write_json(out / CONFIG_NAME, meta)


def load_teacher(
    model_dir: str | os.PathLike[str], data_dir: str | None = None, **backbone: Any
) -> tuple[STLLMTeacher, Windows, dict[str, Any]]:
    """Rebuild a saved teacher and its windows (``data_dir`` overrides the saved one)."""
    d = Path(model_dir)
    if not (d / CONFIG_NAME).exists() or not (d / WEIGHTS_NAME).exists():
        raise DataError(d, f"not a teacher model folder (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    meta = json.loads((d / CONFIG_NAME).read_text())
    if meta.get("format") != MODEL_FORMAT:
        raise DataError(d / CONFIG_NAME, "not a FlowDistill LLM-teacher config")
    known = {f for f in DataSpec.__dataclass_fields__}
    spec = DataSpec(**{k: v for k, v in meta["data"].items() if k in known})
    spec.extra = tuple(spec.extra)
    if data_dir is not None:
        spec.data_dir = str(data_dir)
    windows = spec.windows()
    want, have = meta.get("fingerprint", {}), dataset_fingerprint(windows)
    if {k: str(v) for k, v in want.items()} != {k: str(v) for k, v in have.items()}:
        raise DataError(d, f"trained on other data: {want} vs {have}")
    cfg = TeacherConfig.from_dict(meta["teacher"])
    model = teacher_for(windows, cfg, int(meta.get("train", {}).get("seed", 0)), **backbone)
    state = torch.load(d / WEIGHTS_NAME, map_location="cpu", weights_only=True)
    model.load_trainable_state(state)
    return model, windows, meta


def _signature(ids: np.ndarray, chunk: int, tag: str) -> str:
    h = hashlib.sha256(np.asarray(ids, dtype=np.int64).tobytes())
    h.update(f"{chunk}|{tag}".encode())
    return h.hexdigest()[:16]


def predict_to_file(
    model: STLLMTeacher,
    windows: Windows,
    out_path: str | os.PathLike[str],
    ids: np.ndarray | None = None,
    batch_size: int = 64,
    chunk_size: int = 1024,
    device: str = "cpu",
    progress: bool = True,
    tag: str = "",
    info: dict[str, Any] | None = None,
) -> TeacherPredictions:
    """Forecast every window (default ``windows.all_ids``) into a teacher file, resumably.

    Chunk ``k`` is saved as ``<out>.parts/part-<k>.npz`` as soon as it is done; a rerun skips the
    chunks already there (only if they were made for the same ids, chunking and ``tag``).
    """
    out_path = Path(out_path)
    if out_path.suffix != ".npz":
        out_path = out_path.with_suffix(".npz")
    ids = windows.all_ids if ids is None else np.asarray(ids, dtype=np.int64)
    parts = out_path.with_name(out_path.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    sig = _signature(ids, chunk_size, tag)
    sig_file = parts / "signature.txt"
    if sig_file.exists() and sig_file.read_text().strip() != sig:
        raise DataError(parts, "holds parts of another prediction run; delete it to start over")
    sig_file.write_text(sig + "\n")
    trainer = Trainer(TrainConfig(eval_batch_size=batch_size, device=device, progress=False))
    chunks = [ids[i : i + chunk_size] for i in range(0, len(ids), chunk_size)]
    done = sum(len(c) for k, c in enumerate(chunks) if (parts / f"part-{k:05d}.npz").exists())
    bar = progress_bar(total=len(ids), desc="teacher predict", enabled=progress, unit="sample")
    bar.update(done)  # windows of part files kept from an interrupted run
    t0 = time.perf_counter()
    for k, chunk in enumerate(chunks):
        part = parts / f"part-{k:05d}.npz"
        if part.exists():
            continue
        preds = []
        for i in range(0, len(chunk), batch_size):
            sub = chunk[i : i + batch_size]
            preds.append(trainer.predict(model, windows, sub))
            bar.update(len(sub))
        atomic_savez(part, window_ids=chunk, preds=np.concatenate(preds, axis=0))
    bar.close()
    seconds = time.perf_counter() - t0
    got_ids, got = [], []
    for k in range(len(chunks)):
        with np.load(parts / f"part-{k:05d}.npz") as z:
            got_ids.append(z["window_ids"])
            got.append(z["preds"])
    all_ids = np.concatenate(got_ids)
    if not np.array_equal(all_ids, ids):
        raise DataError(parts, "part files do not add up to the requested windows")
    cfg = model.cfg
    meta = {
        "backbone": cfg.backbone,
        "layers": cfg.layers,
        "prompt_layout": cfg.layout,
        "predict_seconds_this_run": seconds,
        **(info or {}),
    }
    tp = TeacherPredictions.create(
        windows, all_ids, np.concatenate(got, axis=0), model="llm-teacher", **meta
    )
    tp.save(out_path)
    shutil.rmtree(parts, ignore_errors=True)
    return tp


def file_metrics(tp: TeacherPredictions, windows: Windows, split: str = "test") -> dict[str, Any]:
    """MAE/RMSE/MAPE of a teacher file on one split (original scale, targets > 0)."""
    tp.check_matches(windows)
    ids = windows.ids(split)
    pred = tp.aligned(windows, splits=(split,)).get(ids)
    return evaluate_metrics(pred, windows.targets(ids), 0.0, tuple(windows.dataset.channels))

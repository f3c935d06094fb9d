"""One training run, end to end: data → windows → model → engine → metrics.json.

`flowdistill train`, `flowdistill distill` and every experiment go through :func:`run`, so all models
are trained by the same engine, on the same windows, and scored by the same masked metrics.
"""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flowdistill.data.dataset import FlowDataset
from flowdistill.data.errors import DataError
from flowdistill.data.graph import nearest_regions
from flowdistill.data.sources import load_dataset
from flowdistill.data.windows import WindowConfig, Windows
from flowdistill.engine.bundle import write_run_bundle
from flowdistill.engine.outputs import RunDir, prepare_run_dir
from flowdistill.engine.trainer import TrainConfig, Trainer, atomic_torch_save, write_json
from flowdistill.losses.distill import DistillConfig, DistillObjective
from flowdistill.metrics import evaluate as evaluate_metrics
from flowdistill.models.base import ModelContext, build_model, count_parameters, model_config
from flowdistill.teacher.file import TeacherPredictions, covers

# Knowledge-distillation baselines: their module provides TEACHER_MODEL and make_objective().
KD_BASELINES = {"easyst": "flowdistill.models.easyst", "stmlp": "flowdistill.models.stmlp"}


@dataclass
class RunSpec:
    """Everything that defines a run; written into metrics.json beside the numbers."""

    model: str = "flowdistill"
    dataset: str = "nyc-taxi-manhattan"
    data_dir: str | None = None
    start: str | None = None
    end: str | None = None
    train_ratio: float = 0.1
    seed: int = 0
    teacher: str | None = None  # teacher file (FlowDistill student and KD baselines)
    model_options: dict[str, Any] = field(default_factory=dict)
    distill: DistillConfig = field(default_factory=DistillConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    save_teacher: str | None = None  # also write this model's predictions as a teacher file
    resume: bool = True  # continue from OUT/checkpoints/last.pt when it exists (same settings)
    force: bool = False  # overwrite a finished or unfinished run in OUT

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("resume")  # how the run was carried out, not what it is
        d.pop("force")
        if self.model != "flowdistill":
            d.pop("distill")
        return d


_DATA_CACHE: dict[tuple, FlowDataset] = {}


def cached_dataset(spec: RunSpec) -> FlowDataset:
    key = (spec.dataset, spec.data_dir, spec.start, spec.end)
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = load_dataset(spec.dataset, spec.data_dir, spec.start, spec.end)
    return _DATA_CACHE[key]


def git_revision() -> str:
    """The code's git revision; FLOWDISTILL_GIT_REVISION names it for code run outside a clone
    (an installed wheel, or an exported snapshot that long jobs run from)."""
    if os.environ.get("FLOWDISTILL_GIT_REVISION"):
        return os.environ["FLOWDISTILL_GIT_REVISION"]
    try:
        root = Path(__file__).resolve().parents[3]
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        ).stdout.strip()
        return rev or "unknown"
    except Exception:
        return "unknown"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one): the same code trains at
    different speeds on different CPUs, and a lent machine may change between sessions."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def provenance(device: str | None = None) -> dict[str, Any]:
    """When, where and with what a run was made; ``device`` names the accelerator a run trained
    on, so a table mixing cells from a GPU and from the CPU says which is which."""
    gpu = (torch.cuda.get_device_name(torch.device(device))
           if device and device.startswith("cuda") and torch.cuda.is_available() else "")
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": ", ".join(x for x in (platform.machine(), cpu_model(),
                                         f"{os.cpu_count()} cores",
                                         f"{torch.get_num_threads()} torch thread(s)", gpu) if x),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "git": git_revision(),
    }


def neighbours_for(ds: FlowDataset, k: int) -> np.ndarray:
    volume = ds.flows.sum(axis=(0, 2))
    return nearest_regions(ds.adjacency, k, ds.centroids, volume)


def teacher_probe(teacher: TeacherPredictions, windows: Windows) -> list[float]:
    """The teacher's mean forecast per region and channel over the student's training windows.

    Kept beside the exact fingerprint: the same teacher forecast again on another CPU can differ
    in the last bits (another vector unit), which changes the fingerprint but not these means
    beyond 1e-4, while another teacher (another seed, recipe or data) moves them far more."""
    ids = windows.ids("train")
    preds = teacher.aligned(windows, splits=("train",)).get(ids)
    return [round(float(v), 6) for v in preds.mean(axis=(0, 1), dtype=np.float64).ravel()]


def teacher_scores(teacher: TeacherPredictions, windows: Windows, threshold,
                   split: str = "test", first: int = 0) -> dict[str, Any]:
    """The teacher's MAE / RMSE on a split's windows ({} when its file lacks them)."""
    ids = windows.ids(split)
    if first:  # the engine's quick validation scores only the first batches
        ids = ids[:first]
    if not teacher.covers(ids):
        return {}
    lookup = teacher.aligned(windows, splits=())
    m = evaluate_metrics(lookup.get(ids), windows.targets(ids), threshold)
    return {"mae": m["mae"], "rmse": m["rmse"]}


def teacher_val_known(spec: RunSpec) -> bool:
    """Whether the switch ``teacher_until="outgrown"`` can read ``spec.teacher``'s validation MAE:
    its file covers the validation windows, or (slimmed) carries the score measured before."""
    if spec.teacher is None:
        return False
    ids, meta = TeacherPredictions.load_index(spec.teacher)
    if meta.get("scores", {}).get("val"):
        return True
    windows = Windows(cached_dataset(spec), WindowConfig(train_ratio=spec.train_ratio))
    return covers(ids, windows.ids("val"))


# Files a run writes into OUT besides metrics.json (written last: it marks a finished run).
RUN_OUTPUTS = ("model.pt", "model.json", "model-graph.npy", "gnn-teacher")


def check_outputs(spec: RunSpec, out_dir: str | Path) -> RunDir:
    """Refuse (before any loading or training) outputs that exist or cannot be written; with
    ``spec.force`` clear the old run's files; with ``spec.resume`` check the saved settings."""
    spec.train.validate()
    extra = [spec.save_teacher] if spec.save_teacher else []
    if extra and not str(extra[0]).endswith(".npz"):
        extra = [str(Path(extra[0]).with_suffix(".npz"))]
    return prepare_run_dir(out_dir, spec.to_dict(), force=spec.force, resume=spec.resume,
                           outputs=RUN_OUTPUTS, extra_files=extra,
                           defaults=RunSpec(model=spec.model).to_dict())


def run(spec: RunSpec, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Train ``spec.model`` and score it on the test windows; write metrics.json if ``out_dir``."""
    spec.train.validate()
    if out_dir is not None and os.environ.get("RANK", "0") == "0":
        check_outputs(spec, out_dir)
    ds = cached_dataset(spec)
    windows = Windows(ds, WindowConfig(train_ratio=spec.train_ratio))
    ctx = ModelContext.from_windows(windows)
    train_cfg = TrainConfig(**{**spec.train.to_dict(), "seed": spec.seed})
    trainer = Trainer(train_cfg)
    torch.manual_seed(spec.seed)
    out = Path(out_dir) if out_dir is not None else None

    options = dict(spec.model_options)
    objective = None
    extras = None
    teacher_info: dict[str, Any] | None = None
    if spec.model == "flowdistill":
        options.setdefault("use_ib", spec.distill.use_ib)
        if spec.teacher is None and spec.distill.needs_teacher:
            raise DataError(
                "flowdistill",
                "the student needs --teacher FILE (make one with `flowdistill teacher predict`, or "
                "from any model with `flowdistill train --model stid --save-teacher FILE`), or "
                "--no-teacher to train it on its data alone",
            )
        if spec.teacher is not None:
            teacher = TeacherPredictions.load(spec.teacher)
            extras = {"teacher": teacher.aligned(windows, splits=("train",))}
            teacher_info = {"file": str(spec.teacher), "model": teacher.model,
                            "fingerprint": teacher.fingerprint(),
                            "probe": teacher_probe(teacher, windows), **{
                k: teacher.meta.get(k) for k in ("train_ratio", "backbone", "layers",
                                                 "prompt_layout", "trained_on")
                if k in teacher.meta
            }}
            # a slimmed file (training windows only) carries the score measured before slimming
            for split in ("val", "test"):  # val: whether the student outgrew its teacher
                teacher_info[split] = (
                    teacher_scores(teacher, windows, train_cfg.mask_threshold, split)
                    or teacher.meta.get("scores", {}).get(split, {}))
        t_val = ((teacher_info or {}).get("val") or {}).get("mae")
        if (train_cfg.limit_val_batches and spec.teacher is not None
                and spec.distill.teacher_until != "end"):  # only the switch reads it
            # the student is scored on the first validation batches only: compare like with like
            t_val = teacher_scores(teacher, windows, train_cfg.mask_threshold, "val",
                                    train_cfg.limit_val_batches * train_cfg.eval_batch_size
                                    ).get("mae")
        objective = DistillObjective(spec.distill, neighbours_for(ds, spec.distill.k_r), t_val)
        if teacher_info is not None and spec.distill.teacher_until != "end":
            teacher_info["val_compared"] = t_val  # the teacher's score on the student's batches
            teacher_info["switch_below"] = objective.switch_below  # less the margin
    elif spec.model in KD_BASELINES:
        module = importlib.import_module(KD_BASELINES[spec.model])
        teacher_path = spec.teacher
        if teacher_path is None:
            sub = RunSpec(
                model=module.TEACHER_MODEL, dataset=spec.dataset, data_dir=spec.data_dir,
                start=spec.start, end=spec.end, train_ratio=spec.train_ratio, seed=spec.seed,
                train=spec.train, resume=spec.resume, force=spec.force,
                save_teacher=str((out or Path(".")) / "gnn-teacher" / "teacher.npz"),
            )
            run(sub, (out / "gnn-teacher") if out is not None else None)
            teacher_path = sub.save_teacher
        teacher = TeacherPredictions.load(teacher_path)
        extras = {"teacher": teacher.aligned(windows, splits=("train",))}
        objective = module.make_objective(train_cfg.mask_threshold)
        teacher_info = {"file": str(teacher_path), "model": teacher.model}
        teacher_info["test"] = teacher_scores(teacher, windows, train_cfg.mask_threshold)

    model = build_model(spec.model, ctx, options)
    fit = trainer.fit(model, windows, objective, out, extras, resume=spec.resume)
    val = trainer.evaluate(model, windows, "val")
    test = trainer.evaluate(model, windows, "test")
    result: dict[str, Any] = {
        "model": spec.model,
        "teacher": teacher_info,
        "dataset": {k: v for k, v in ds.summary().items() if k != "source"},
        "windows": windows.describe()["windows"],
        "params": count_parameters(model),
        "fit": {
            "best_epoch": fit.best_epoch_number,  # from 1, as printed; null: nothing trained
            "epochs_run": fit.epochs_run,
            "stopped_early": fit.stopped_early,
            "seconds": round(fit.seconds, 3),
            "seconds_per_epoch": round(fit.seconds_per_epoch, 3),
            "history": fit.history,
        },
        "val": _brief(val),
        "test": test,
        "config": {
            "run": spec.to_dict(),
            "model": model_config(spec.model, options),
        },
        **provenance(spec.train.device),
    }
    is_main = not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0
    result["world_size"] = (
        torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    )
    if spec.save_teacher and is_main:  # before metrics.json, which marks the run finished
        ids = windows.all_ids
        preds = trainer.predict(model, windows, ids)
        saved = TeacherPredictions.create(
            windows, ids, preds, model=spec.model, seed=spec.seed,
            trained_on=f"train split, ratio {spec.train_ratio}",
        ).save(spec.save_teacher)
        result["saved_teacher"] = str(saved)
    if out is not None and is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(model.state_dict(), out / "model.pt")
        write_run_bundle(out, spec.model, options, windows, {  # lets predict/export/serve rebuild it
            k: getattr(spec, k) for k in ("dataset", "data_dir", "start", "end", "train_ratio")})
        write_json(out / "metrics.json", result)
    return result


def _brief(m: dict[str, Any]) -> dict[str, float]:
    return {"mae": m["mae"], "rmse": m["rmse"], "mape": m["mape"]}

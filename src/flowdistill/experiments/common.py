"""What every `flowdistill bench` experiment shares: presets, the run cache, teachers and outputs.

Each run lives in ``OUT/runs/<variant>/r<ratio>/s<seed>/`` (metrics.json, model.pt, checkpoints). A
run whose metrics.json exists is reused, so an interrupted suite resumes where it stopped and
experiments that share a folder share their runs (e.g. ``horizons`` at 10 % reuses ``ratios``).
A finished run made with other settings is refused rather than silently mixed in.
"""

from __future__ import annotations

import functools
import importlib
import io
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from flowdistill.data.dataset import atomic_write_text
from flowdistill.data.errors import DataError
from flowdistill.engine.trainer import TrainConfig, write_json
from flowdistill.experiments.runs import KD_BASELINES, RunSpec, cpu_model, provenance, run
from flowdistill.losses.distill import DistillConfig, active_settings

ALL_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
BASELINES = ("stid", "stwa", "bigst", "stsgcn", "astgcn", "stmlp", "easyst")
DEFAULT_MODELS = ("flowdistill", *BASELINES, "ha", "last-value")


@dataclass(frozen=True)
class Preset:
    """Seeds, ratios and training length of a suite."""

    name: str
    seeds: tuple[int, ...]
    ratios: tuple[float, ...]
    epochs: int
    patience: int
    batches_per_epoch: int = 0  # 0: every training window each epoch
    val_batches: int = 0  # 0: all validation windows for early stopping


FULL = Preset("full", (0, 1, 2), ALL_RATIOS, 100, 15)
# Sized so that all six experiments with every baseline fit in about 1.5 h on 2 CPU cores
# (docs/experiments.md has the arithmetic): short epochs of 8 batches of 80 windows.
QUICK = Preset("quick", (0,), (0.1, 0.4, 0.7), 6, 3, batches_per_epoch=8, val_batches=2)


def is_full_protocol(epochs: int, patience: int, train_batches: int, val_batches: int) -> bool:
    """The paper's training settings: FULL's epochs and patience, every window (0: no limit)."""
    return (epochs >= FULL.epochs and patience >= FULL.patience and not train_batches
            and not val_batches)


@dataclass
class BenchConfig:
    """Options common to every experiment (the CLI fills it; tests build it directly)."""

    out: Path
    dataset: str = "nyc-taxi-manhattan"
    data_dir: str | None = None
    start: str | None = None
    end: str | None = None
    models: tuple[str, ...] = DEFAULT_MODELS
    seeds: tuple[int, ...] = FULL.seeds
    ratios: tuple[float, ...] = FULL.ratios
    epochs: int = FULL.epochs
    patience: int = FULL.patience
    batches_per_epoch: int = 0
    val_batches: int = 0
    device: str = "cpu"
    teacher: str | None = None
    teacher_model: str | None = None
    quick: bool = False
    progress: bool = True
    # Where the per-dataset copies of the outputs go (RESULTS/<dataset>/NAME.json …); None: nowhere.
    results: Path | None = None
    # Where each finished run's metrics.json is also kept (STORE/<variant>/r<ratio>/s<seed>.json),
    # to be committed: a later session, whose runs/ folder is gone, reuses those cells. None: off.
    store: Path | None = None
    # per-model option overrides, e.g. {"flowdistill": {"embed_dim": 32}} (tests use tiny models)
    model_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def make(
        cls,
        out: str | os.PathLike[str],
        quick: bool = False,
        seeds: Sequence[int] | None = None,
        ratios: Sequence[float] | None = None,
        epochs: int | None = None,
        patience: int | None = None,
        models: Sequence[str] | None = None,
        batches_per_epoch: int | None = None,
        val_batches: int | None = None,
        **kw: Any,
    ) -> BenchConfig:
        """Preset values, overridden by whatever was given explicitly."""
        p = QUICK if quick else FULL
        cfg = cls(
            out=Path(out),
            seeds=tuple(seeds) if seeds else p.seeds,
            ratios=tuple(ratios) if ratios else p.ratios,
            epochs=epochs if epochs is not None else p.epochs,
            patience=patience if patience is not None else p.patience,
            models=tuple(models) if models else DEFAULT_MODELS,
            batches_per_epoch=(batches_per_epoch if batches_per_epoch is not None
                               else p.batches_per_epoch),
            val_batches=val_batches if val_batches is not None else p.val_batches,
            quick=quick,
            **kw,
        )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        from flowdistill.models.base import available_models

        known = available_models()
        bad = [m for m in self.models if m not in known]
        if bad:
            raise DataError("--models", f"unknown model(s) {bad}; choose from {sorted(known)}")
        if not self.seeds:
            raise DataError("--seeds", "give at least one seed")
        for r in self.ratios:
            if not 0.0 < r < 1.0:
                raise DataError("--ratios", f"training ratio must be in (0, 1), got {r}")
        if self.epochs < 1 or self.patience < 1:
            raise DataError("--epochs/--patience", "must be at least 1")
        if self.batches_per_epoch < 0 or self.val_batches < 0:
            raise DataError("--batches-per-epoch", "must be 0 (all) or positive")
        if self.teacher is not None and not Path(self.teacher).exists():
            raise DataError(self.teacher, "teacher file not found")
        from flowdistill.engine.outputs import check_writable

        check_writable(self.out, "--out folder")  # before the first of many runs, not after
        if self.teacher_model is not None:
            if self.teacher_model not in known or self.teacher_model == "flowdistill":
                raise DataError("--teacher-model", f"{self.teacher_model!r} cannot be a teacher; "
                                f"choose from {sorted(set(known) - {'flowdistill'})}")

    def needs_teacher(self, models: Iterable[str]) -> None:
        """Fail before any training when the student would later lack a teacher."""
        if "flowdistill" in models and self.teacher is None and self.teacher_model is None:
            raise DataError(
                "flowdistill",
                "the student needs a teacher: give --teacher FILE (a teacher file) or "
                "--teacher-model NAME (train that model at each run's ratio and use its forecasts)",
            )

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out)
        d["results"] = str(self.results) if self.results is not None else None
        d["store"] = str(self.store) if self.store is not None else None
        d["preset"] = self.protocol()
        return d

    def protocol(self) -> str:
        """"full" only with the paper's training settings (FULL's epochs and patience, every
        training and validation window); "quick" for the preset; "custom" for anything shorter.
        Seeds and ratios are coverage, not protocol: they are stated beside every table."""
        if self.quick:
            return "quick"
        return "full" if is_full_protocol(self.epochs, self.patience, self.batches_per_epoch,
                                          self.val_batches) else "custom"

    def teacher_label(self) -> str:
        if self.teacher:
            return f"file {self.teacher} ({_teacher_model_name(self.teacher)})"
        if self.teacher_model:
            return f"{self.teacher_model}, trained at each run's own ratio and seed"
        return "none"


def _teacher_model_name(path: str) -> str:
    try:
        from flowdistill.teacher.file import TeacherPredictions

        return TeacherPredictions.load(path).model
    except Exception:
        return "unknown model"


def ratio_tag(ratio: float) -> str:
    return f"r{ratio:g}"


# The student's control (no teacher) and the row a user who checks the teacher would deploy.
CONTROL = "flowdistill@no-teacher"
VAL_PICK = "flowdistill, teacher kept by validation"
# the student whose teacher is switched off once it validates 3 % below it (DistillConfig)
OUTGROWN = "flowdistill@until-outgrown-3pct"
OUTGROWN_SETTINGS: dict[str, Any] = {"teacher_until": "outgrown", "teacher_margin": 0.03}


def pick_by_validation(with_teacher: dict[str, Any], control: dict[str, Any]) -> dict[str, Any]:
    """Of one seed's distilled student and its no-teacher control, the run with the lower
    validation MAE: a teacher helps only where it knows more than the student, and only
    validation (never the test windows) may say so."""
    return min((with_teacher, control), key=lambda x: float(x["val"]["mae"]))


@dataclass(frozen=True)
class RunKey:
    """One run of an experiment: a model (or a student variant), a training ratio and a seed."""

    model: str
    ratio: float
    seed: int
    variant: str = ""  # folder name; the model name when empty
    distill: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def name(self) -> str:
        return self.variant or self.model


class RunCache:
    """Runs (or reuses) the runs of a configuration under ``cfg.out / "runs"``."""

    def __init__(self, cfg: BenchConfig) -> None:
        self.cfg = cfg
        self.root = cfg.out / "runs"
        self._probes: dict[float, list[float]] = {}

    def folder(self, key: RunKey) -> Path:
        return self.root / key.name / ratio_tag(key.ratio) / f"s{key.seed}"

    def stored(self, key: RunKey) -> Path | None:
        """The kept copy of the run's metrics.json under ``cfg.store`` (None without a store)."""
        if self.cfg.store is None:
            return None
        return Path(self.cfg.store) / key.name / ratio_tag(key.ratio) / f"s{key.seed}.json"

    def finished(self, key: RunKey) -> Path | None:
        """metrics.json of the finished run: in its run folder, else the kept copy; None if
        the run has not finished."""
        path = self.folder(key) / "metrics.json"
        if path.exists():
            return path
        kept = self.stored(key)
        return kept if kept is not None and kept.exists() else None

    def _keep(self, key: RunKey, result: dict[str, Any]) -> None:
        kept = self.stored(key)
        if kept is not None and not kept.exists():
            kept.parent.mkdir(parents=True, exist_ok=True)
            write_json(kept, result)

    def train_config(self) -> TrainConfig:
        return TrainConfig(max_epochs=self.cfg.epochs, patience=self.cfg.patience,
                           device=self.cfg.device, progress=False,
                           limit_train_batches=self.cfg.batches_per_epoch,
                           limit_val_batches=self.cfg.val_batches)

    def spec(self, key: RunKey, teacher: str | None = None) -> RunSpec:
        c = self.cfg
        return RunSpec(
            model=key.model, dataset=c.dataset, data_dir=c.data_dir, start=c.start, end=c.end,
            train_ratio=key.ratio, seed=key.seed, teacher=teacher,
            model_options=dict(c.model_options.get(key.model, {})),
            distill=replace(DistillConfig(), **key.distill), train=self.train_config(),
        )

    @staticmethod
    def reads_teacher(key: RunKey) -> bool:
        """Whether a student run reads a teacher: the no-teacher control (every term on the
        truth, no L_tbl) trains on its data alone and names no teacher file."""
        return replace(DistillConfig(), **key.distill).needs_teacher

    def teacher_for(self, ratio: float, seed: int) -> str:
        """The teacher file the student uses at this ratio and seed (trained on demand)."""
        c = self.cfg
        if c.teacher:
            return c.teacher
        if not c.teacher_model:
            c.needs_teacher(["flowdistill"])
        return self.model_teacher(str(c.teacher_model), ratio, seed)

    def teacher_path(self, model: str, ratio: float, seed: int) -> Path:
        return self.cfg.out / "teachers" / model / ratio_tag(ratio) / f"s{seed}" / "teacher.npz"

    def model_teacher(self, model: str, ratio: float, seed: int) -> str:
        """A teacher file of ``model``'s forecasts at this ratio and seed, trained once and shared
        (by the student's --teacher-model and by ST-MLP / EasyST, whose GNN teacher it is)."""
        path = self.teacher_path(model, ratio, seed)
        if not path.exists():
            run(replace(self.spec(RunKey(model, ratio, seed)), save_teacher=str(path)),
                path.parent)
        return str(path)

    def _shared_teachers(self) -> set[str]:
        """Models whose forecasts serve as a teacher in this configuration."""
        names = {str(self.cfg.teacher_model)} if self.cfg.teacher_model else set()
        for m in self.cfg.models:
            if m in KD_BASELINES:
                names.add(importlib.import_module(KD_BASELINES[m]).TEACHER_MODEL)
        return names

    def _same_teacher(self, saved: dict[str, Any], ratio: float) -> bool:
        """Was a saved student run distilled from the teacher this configuration names? Compared
        by its forecasts (exact fingerprint, else the per-region means the student saw), wherever
        the file now lies; runs older than both, by the file's path."""
        c = self.cfg
        if c.teacher:
            if saved.get("fingerprint") and saved["fingerprint"] == self._teacher_fingerprint:
                return True
            if saved.get("probe") is not None:
                return bool(np.allclose(saved["probe"], self.teacher_probe(ratio), rtol=1e-4,
                                        atol=1e-3))
            if saved.get("fingerprint"):
                return False
            return Path(saved.get("file", "")).resolve() == Path(c.teacher).resolve()
        parts = Path(saved.get("file", "")).parts  # …/teachers/<model>/r<ratio>/s<seed>/…
        return saved.get("model") == c.teacher_model and "teachers" in parts

    @functools.cached_property
    def _teacher_file(self) -> Any:
        from flowdistill.teacher.file import TeacherPredictions

        return TeacherPredictions.load(str(self.cfg.teacher))

    @functools.cached_property
    def _teacher_fingerprint(self) -> str:
        """:meth:`TeacherPredictions.fingerprint` of ``cfg.teacher`` (read once)."""
        return self._teacher_file.fingerprint()

    def teacher_val(self, ratio: float, seed: int) -> float | None:
        """The student's teacher's MAE on the validation windows of a ratio's split (None when
        its file lacks them), scored as a run scores it."""
        from flowdistill.data.windows import WindowConfig, Windows
        from flowdistill.experiments.runs import cached_dataset, teacher_scores
        from flowdistill.teacher.file import TeacherPredictions

        teacher = (self._teacher_file if self.cfg.teacher
                   else TeacherPredictions.load(self.teacher_for(ratio, seed)))
        windows = Windows(cached_dataset(self.spec(RunKey("flowdistill", ratio, seed))),
                          WindowConfig(train_ratio=ratio))
        return teacher_scores(teacher, windows, self.train_config().mask_threshold,
                              "val").get("mae")

    def teacher_probe(self, ratio: float) -> list[float]:
        """:func:`~flowdistill.experiments.runs.teacher_probe` of ``cfg.teacher`` at a ratio."""
        if ratio not in self._probes:
            from flowdistill.data.windows import WindowConfig, Windows
            from flowdistill.experiments.runs import cached_dataset, teacher_probe

            windows = Windows(cached_dataset(self.spec(RunKey("flowdistill", ratio, 0))),
                              WindowConfig(train_ratio=ratio))
            self._probes[ratio] = teacher_probe(self._teacher_file, windows)
        return self._probes[ratio]

    def done(self, key: RunKey) -> bool:
        return self.finished(key) is not None

    def get(self, key: RunKey) -> dict[str, Any]:
        """metrics.json of the run: reused when finished with the same settings (in its folder or
        kept in ``cfg.store``), else trained; a finished run is kept in the store."""
        result = self._reuse(key)
        if result is None:
            result = self._never_switched(key)
        if result is None:
            result = self._train(key)
        self._keep(key, result)
        return result

    def _never_switched(self, key: RunKey) -> dict[str, Any] | None:
        """A student with ``teacher_until="outgrown"`` whose paper-reading twin (same ratio, seed
        and teacher) never validated below the switch's bar before its last epoch: the switch
        cannot have fired, every epoch's objective is the paper's, so the run is that twin's,
        reused and marked so."""
        cfg = replace(DistillConfig(), **key.distill)
        rest = {k: v for k, v in key.distill.items() if k not in ("teacher_until", "teacher_margin")}
        if (key.model != "flowdistill" or cfg.teacher_until != "outgrown" or rest
                or self.cfg.val_batches or not cfg.needs_teacher):
            return None  # quick validation scores the teacher on other windows than kept runs
        twin_key = RunKey("flowdistill", key.ratio, key.seed)
        try:
            twin = self._reuse(twin_key)
        except DataError:
            return None
        if twin is None:
            return None
        # cells kept before the teacher's validation score was recorded: score the same file
        t_val = ((twin.get("teacher") or {}).get("val") or {}).get("mae")
        if t_val is None:
            t_val = self.teacher_val(key.ratio, key.seed)
        if t_val is None:
            return None
        bar = cfg.switch_below(t_val)
        history = twin["fit"]["history"]
        # below the bar after the last epoch would switch an epoch that never ran
        if not history or any(row["val_mae"] < bar for row in history[:-1]):
            return None
        result = json.loads(json.dumps(twin))
        result["config"]["run"]["distill"] = cfg.to_dict()
        result["teacher"].update(val_compared=t_val, switch_below=bar)
        for row in result["fit"]["history"]:
            row["teacher_on"] = 1.0
        result["never_switched"] = (
            f"the run of {twin_key.name} {ratio_tag(key.ratio)} s{key.seed}: its validation MAE "
            f"never fell below {bar:.3f} before its last epoch, so the switch could not fire and "
            "the runs are one")
        return result

    def _reuse(self, key: RunKey) -> dict[str, Any] | None:
        path = self.finished(key)
        if path is not None:  # the teacher is compared by its forecasts' fingerprint or path
            result = json.loads(path.read_text())
            diff = spec_differences(result.get("config", {}).get("run", {}),
                                    self.spec(key).to_dict())
            if key.model == "flowdistill" and (
                    not self._same_teacher(result.get("teacher") or {}, key.ratio)
                    if self.reads_teacher(key) else bool(result.get("teacher"))):
                diff.append("teacher")
            if key.model != "flowdistill" and not same_architecture(result, key.model,
                                                                    self.spec(key).model_options):
                diff.append("model defaults")
            if diff:
                where = self.folder(key) if path.name == "metrics.json" else path
                raise DataError(
                    where,
                    f"holds a finished run made with other settings ({', '.join(diff)}); use "
                    f"another --out{' and --store' if where == path else ''}, or delete it to "
                    "retrain it",
                )
            return result
        return None

    def _train(self, key: RunKey) -> dict[str, Any]:
        folder = self.folder(key)
        if key.model == "flowdistill":
            teacher = self.teacher_for(key.ratio, key.seed) if self.reads_teacher(key) else None
            return run(self.spec(key, teacher), folder)
        if key.model in KD_BASELINES:
            # The same GNN teacher run() would train inside the run (same model, ratio, seed and
            # training settings), trained once and shared by ST-MLP and EasyST.
            gnn = importlib.import_module(KD_BASELINES[key.model]).TEACHER_MODEL
            return run(self.spec(key, self.model_teacher(gnn, key.ratio, key.seed)), folder)
        spec = self.spec(key)
        path = self.teacher_path(key.model, key.ratio, key.seed)
        if not key.variant and key.model in self._shared_teachers() and not path.exists():
            spec = replace(spec, save_teacher=str(path))  # this run is also someone's teacher
        return run(spec, folder)


def same_architecture(result: dict[str, Any], model: str, options: dict[str, Any]) -> bool:
    """Was a finished baseline run built with today's resolved config? A changed default (e.g. a
    width taken from a reference setting) must not let an old run stand in for a new one. The
    student is left out: its options are compared, its defaults are tuned by the headline work."""
    from flowdistill.models.base import model_config

    saved = result.get("config", {}).get("model")
    return saved is None or _norm(saved) == _norm(model_config(model, options))


_COMPARED = ("model", "dataset", "start", "end", "train_ratio", "seed", "model_options", "distill")


def spec_differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Names of the settings in which a saved run differs from the one wanted."""
    def setting(d: dict[str, Any], k: str) -> Any:
        v = _norm(d.get(k))
        # the student's loss settings as they act: a term that is off ignores its readings
        return active_settings(v) if k == "distill" and isinstance(v, dict) else v

    diff = [k for k in _COMPARED if setting(saved, k) != setting(wanted, k)]
    for k in ("max_epochs", "patience", "limit_train_batches", "limit_val_batches"):
        if saved.get("train", {}).get(k) != wanted.get("train", {}).get(k):
            diff.append(k)
    return diff


def _norm(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))


def run_all(cache: RunCache, keys: Sequence[RunKey], title: str) -> dict[RunKey, dict[str, Any]]:
    """Every run of an experiment, with one progress bar over the runs."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flowdistill.cli.common import console

    results: dict[RunKey, dict[str, Any]] = {}
    # Ratio by ratio, seed by seed, and within each the teachers first: a baseline that is also
    # the student's or a KD model's teacher writes its teacher file during its own run, and the
    # runs that read it follow at once, so a sweep cut between sessions (its run folders gone, its
    # kept cells left) never has to train that teacher again; the columns fill from 10 % up.
    shared = cache._shared_teachers()
    keys = sorted(keys, key=lambda k: (k.ratio, k.seed, 0 if (k.model in shared and not k.variant)
                                       else 1))
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("{task.fields[run]}"),
        console=console, disable=not cache.cfg.progress or not console.is_terminal,
        transient=False,
    ) as bar:
        task = bar.add_task(title, total=len(keys), run="")
        for i, key in enumerate(keys, 1):
            state = "reused" if cache.done(key) else "training"
            if cache.cfg.progress and not console.is_terminal:  # a log file: plain lines
                console.print(f"{title}: run {i}/{len(keys)} {key.name} {ratio_tag(key.ratio)} "
                              f"s{key.seed} ({state})", soft_wrap=True)
            bar.update(task, run=f"{key.name} {ratio_tag(key.ratio)} s{key.seed} ({state})")
            results[key] = cache.get(key)
            bar.advance(task)
        bar.update(task, run="done")
    return results


# ----------------------------------------------------------------------------------- statistics
def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single seed)."""
    a = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if a.size == 0:
        return float("nan"), float("nan")
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def fmt(v: float | None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}f}"


def fmt_pm(mean: float, std: float, n: int, digits: int = 3) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


# ----------------------------------------------------------------------------------- outputs
def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import pandas as pd

    buf = io.StringIO()
    pd.DataFrame(rows).to_csv(buf, index=False)
    atomic_write_text(path, buf.getvalue())


def save_figure(fig: Any, path: Path) -> None:
    """PNG written under a temporary name, then renamed."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def dataset_slug(dataset: str) -> str:
    """Folder name of a dataset's results: the name itself, or a file's stem for a path."""
    name = Path(dataset).stem if ("/" in dataset or dataset.endswith(".npz")) else dataset
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "dataset"


def machine_description() -> str:
    """CPU model, cores, torch threads and the load when the outputs were written: timings on a
    shared machine mean little without the load beside them."""
    import torch

    cpu = cpu_model()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    try:
        load = ", load average " + "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = ""
    return f"{cpu}, {cores} cores, {torch.get_num_threads()} torch thread(s){load}"


def teacher_file_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of a teacher file without loading its forecasts (they can be 100+ MB)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(str(z["meta"]))
    except Exception:
        return {}


def describe_teacher(cfg: BenchConfig, runs: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    """What the FlowDistill student distilled from, in words that name it (the LLM or a baseline),
    with the teacher's own test score as the student runs measured it (mean per ratio)."""
    if cfg.teacher:
        meta = teacher_file_meta(cfg.teacher)
        model = str(meta.get("model", "unknown"))
        # "llm-teacher", or "llm-teacher-seeds(0,1,2)": the mean of fine-tunes of one recipe
        kind = "llm" if model.startswith("llm-teacher") else "file"
        trained = meta.get("trained_on") or (f"training ratio {meta['train_ratio']}"
                                             if "train_ratio" in meta else "unknown data")
        if kind == "llm":
            if model.startswith("llm-teacher-crossfit"):  # teacher.file.cross_fitted
                mean = (f"{meta.get('folds', '?')} fold teachers joined by cross-fitting, "
                        f"seed {meta.get('seed', '?')}, ")
            else:
                mean = (f"the window-by-window mean of {len(meta['members'])} fine-tunes "
                        f"({model.removeprefix('llm-teacher-')}), "
                        if model != "llm-teacher" and meta.get("members") else "")
            desc = (f"LLM teacher ({mean}{meta.get('backbone', 'LLM')}, "
                    f"{meta.get('layers', '?')} layer(s), prompt layout "
                    f"{meta.get('prompt_layout', '?')}, LoRA-tuned; trained on {trained}), "
                    f"forecasts from {cfg.teacher}")
        else:
            desc = (f"{model} forecasts from {cfg.teacher} (a non-LLM teacher; trained on "
                    f"{trained})")
        out: dict[str, Any] = {"kind": kind, "model": model, "file": str(cfg.teacher),
                               "description": desc}
    elif cfg.teacher_model:
        out = {"kind": "baseline", "model": cfg.teacher_model, "file": None,
               "description": f"{cfg.teacher_model} trained at each run's own ratio and seed with "
               "the run's settings (a baseline as teacher, not the LLM)"}
    else:
        out = {"kind": "none", "model": None, "file": None, "description": "none"}
    by_ratio: dict[float, list[dict[str, float]]] = {}
    for r in runs:
        t = (r.get("teacher") or {}) if r.get("model") == "flowdistill" else {}
        test = t.get("test") or {}
        if "mae" in test:
            ratio = float(r.get("config", {}).get("run", {}).get("train_ratio", float("nan")))
            by_ratio.setdefault(ratio, []).append(test)
    if by_ratio:
        out["test_by_ratio"] = {
            f"{k:g}": {"mae": mean_std([t["mae"] for t in v])[0],
                       "rmse": mean_std([t["rmse"] for t in v])[0], "runs": len(v)}
            for k, v in sorted(by_ratio.items())}
        everything = [t for v in by_ratio.values() for t in v]
        out["test"] = {"mae": mean_std([t["mae"] for t in everything])[0],
                       "rmse": mean_std([t["rmse"] for t in everything])[0]}
    kd = sorted(m for m in cfg.models if m in KD_BASELINES)
    if kd:
        gnn = {importlib.import_module(KD_BASELINES[m]).TEACHER_MODEL for m in kd}
        out["kd_baselines"] = (f"{', '.join(kd)} distil from {', '.join(sorted(gnn))} trained at "
                               "each run's own ratio and seed")
    return out


def teacher_line(t: dict[str, Any] | str | None) -> str:
    """One line: the teacher's description and its own test score."""
    if not isinstance(t, dict):
        return f"{t or 'none'} (its own test score was not recorded)"
    line = t.get("description", "none")
    if t.get("kind") == "none":
        return line
    test = t.get("test")
    if test:
        per = t.get("test_by_ratio") or {}
        line += f"; its own test MAE / RMSE {test['mae']:.3f} / {test['rmse']:.3f}"
        if len(per) > 1:
            line += " (mean over ratios; " + ", ".join(
                f"{100 * float(k):g}%: {v['mae']:.2f}" for k, v in per.items()) + ")"
    else:
        line += "; its own test score: not measured (the teacher file does not cover the test " \
                "windows, or no student run used it)"
    return line


def protocol_line(cfg: BenchConfig) -> str:
    """Preset, seeds and training length, as every table states them."""
    p = cfg.protocol()
    label = {"full": "FULL protocol (the paper's training settings)",
             "quick": "QUICK preset (a smoke reading, not the paper's protocol)",
             "custom": "SHORTENED settings (not the paper's protocol)"}[p]
    return (f"{label}; seeds {list(cfg.seeds)}; at most {cfg.epochs} epochs, patience "
            f"{cfg.patience}"
            + (f", {cfg.batches_per_epoch} batches per epoch" if cfg.batches_per_epoch
               else ", every training window each epoch")
            + (f", early stopping on {cfg.val_batches} validation batches" if cfg.val_batches
               else ""))


def header_lines(title: str, cfg: BenchConfig, meta: dict[str, Any], extra: str = "") -> str:
    """The provenance header every Markdown output starts with."""
    p = meta["provenance"]
    lines = [
        f"# {title}",
        "",
        f"- {protocol_line(cfg)}",
        f"- dataset {cfg.dataset}"
        + (f" from {cfg.start or 'start'} to {cfg.end or 'end'}" if cfg.start or cfg.end else ""),
        f"- teacher of the FlowDistill student: {teacher_line(meta.get('teacher'))}",
        f"- created {p['created']}, git {p['git']}, torch {p['torch']}; machine "
        f"{meta.get('machine', p['machine'])}",
    ]
    if extra:
        lines.append(f"- {extra}")
    return "\n".join(lines) + "\n\n"


def _cells(runs: dict[RunKey, dict[str, Any]] | None) -> list[list[Any]]:
    return sorted([k.name, k.ratio, k.seed] for k in (runs or {}))


def on_cpu(cell: dict[str, Any]) -> bool:
    """Whether a run trained on the CPU (a run lent a GPU says so in its run config)."""
    device = cell.get("config", {}).get("run", {}).get("train", {}).get("device", "cpu")
    return not str(device).startswith("cuda")


def _gpu_cells(runs: dict[RunKey, dict[str, Any]] | None) -> dict[str, list[Any]]:
    """The cells of a table trained on a GPU and the machines they name (none: nothing)."""
    gpu = {k: r for k, r in (runs or {}).items() if not on_cpu(r)}
    if not gpu:
        return {}
    return {"gpu_cells": sorted([k.name, k.ratio, k.seed] for k in gpu),
            "gpu_machines": sorted({str(r.get("machine")) for r in gpu.values()})}


_STRENGTH = {"full": 2, "custom": 1, "quick": 1}


def publish_folder(cfg: BenchConfig, name: str, new: dict[str, Any]) -> Path | None:
    """RESULTS/<dataset>/, or RESULTS/<dataset>/partial/ when the new result is weaker than the one
    there: a smoke reading over a full-protocol one, another period (a test's two weeks over the
    year), or fewer cells (one part of a sweep run in parts) — so nothing published is lost."""
    if cfg.results is None:
        return None
    dest = Path(cfg.results) / dataset_slug(cfg.dataset)
    old_path = dest / f"{name}.json"
    if old_path.exists():
        try:
            old = json.loads(old_path.read_text())
        except (OSError, json.JSONDecodeError):
            old = {}
        old_preset = old.get("preset") or ("quick" if old.get("quick", True) else "full")
        new_preset = new.get("preset") or ("quick" if new.get("quick", True) else "full")
        oc = old.get("config", {})
        old_period = old.get("period") or [oc.get("start"), oc.get("end")]
        new_period = new.get("period") or [None, None]
        fewer = not {tuple(c) for c in old.get("cells", [])} <= {
            tuple(c) for c in new.get("cells", [])}
        if (_STRENGTH[new_preset] < _STRENGTH[old_preset] or list(old_period) != list(new_period)
                or fewer):
            return dest / "partial"
    return dest


def finish(
    name: str,
    title: str,
    cfg: BenchConfig,
    rows: list[dict[str, Any]],
    body: str,
    plot: Callable[[Path], None] | None,
    extra_meta: dict[str, Any] | None = None,
    extra_header: str = "",
    extra_csv: dict[str, list[dict[str, Any]]] | None = None,
    runs: dict[RunKey, dict[str, Any]] | None = None,
) -> dict[str, Path]:
    """Write NAME.csv, NAME.md, NAME.png and the NAME.json sidecar into ``cfg.out``, and the same
    files into ``cfg.results/<dataset>/`` (see :func:`publish_folder`)."""
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    prov = provenance()
    meta = {
        "experiment": name,
        "title": title,
        "quick": cfg.protocol() != "full",
        "preset": cfg.protocol(),
        "dataset": cfg.dataset,
        "period": [cfg.start, cfg.end],
        "seeds": list(cfg.seeds),
        "epochs": cfg.epochs,
        "patience": cfg.patience,
        "batches_per_epoch": cfg.batches_per_epoch,
        "val_batches": cfg.val_batches,
        "teacher": describe_teacher(cfg, (runs or {}).values()),
        "git": prov["git"],
        "machine": machine_description(),
        "provenance": prov,
        "config": cfg.describe(),
        "cells": _cells(runs),
        **_gpu_cells(runs),
        **(extra_meta or {}),
    }
    paths = {"csv": out / f"{name}.csv", "md": out / f"{name}.md", "png": out / f"{name}.png",
             "json": out / f"{name}.json"}
    write_csv(paths["csv"], rows)
    for extra_name, extra_rows in (extra_csv or {}).items():
        write_csv(out / f"{name}-{extra_name}.csv", extra_rows)
    if plot is not None:
        plot(paths["png"])
    md = header_lines(title, cfg, meta, extra_header) + body
    if plot is not None:
        md += f"\n![{title}]({paths['png'].name})\n"
    atomic_write_text(paths["md"], md)
    sidecar = {**meta, "rows": rows, **{f"rows_{k}": v for k, v in (extra_csv or {}).items()}}
    atomic_write_text(paths["json"], json.dumps(sidecar, indent=2, default=str) + "\n")
    dest = publish_folder(cfg, name, sidecar)
    if dest is not None:
        dest.mkdir(parents=True, exist_ok=True)
        files = [paths["csv"], paths["md"], paths["json"]]
        files += [out / f"{name}-{k}.csv" for k in (extra_csv or {})]
        files += [paths["png"]] if plot is not None else []
        for f in files:
            tmp = dest / f".{f.name}.tmp"
            shutil.copyfile(f, tmp)
            os.replace(tmp, dest / f.name)
        paths["published"] = dest / f"{name}.json"
    return paths


def cpu_sample() -> tuple[float, float, float] | None:
    """(wall seconds, CPU seconds the whole machine was busy, CPU seconds of this process), or
    None where /proc/stat is missing: two samples tell how much other work shared the run."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 8:
        return None
    # user nice system idle iowait irq softirq [steal ...]: busy = all but idle and iowait
    ticks = [int(x) for x in fields[1:8]]
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    own = os.times()
    return time.monotonic(), busy, own.user + own.system


def other_cores(before: tuple[float, float, float] | None,
                after: tuple[float, float, float] | None) -> float | None:
    """Cores other processes kept busy on average between two :func:`cpu_sample` calls."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    busy, own = after[1] - before[1], after[2] - before[2]
    return max(0.0, (busy - own) / (after[0] - before[0]))


# Below this many cores of other work on average, a timed run counts as alone on the machine.
QUIET_CORES = 0.2


def machine_share(others: float | None) -> str:
    """Words for :func:`other_cores`: whether timings are this process's alone or upper bounds."""
    if others is None:  # no /proc/stat (or an older file): only the load average is known
        return ("the load average counts this process's own thread(s); above that, other work "
                "shared the machine and the timings are upper bounds for a quiet machine")
    if others < QUIET_CORES:
        return f"other processes kept {others:.2f} cores busy on average during the run: a quiet machine"
    return (f"other processes kept {others:.2f} cores busy on average during the run: timings are "
            "upper bounds for a quiet machine")

"""`flowdistill train` (any model) and `flowdistill distill` (the FlowDistill student)."""

from __future__ import annotations

import json
import os
from dataclasses import fields, replace
from pathlib import Path
from typing import Annotated, Any

import typer

from flowdistill.cli.common import (
    DataDirOpt,
    DatasetOpt,
    EndOpt,
    ForceOpt,
    ResumeOpt,
    StartOpt,
    ThreadsOpt,
    check_device_option,
    check_ratio,
    console,
    out,
    set_threads,
)
from flowdistill.engine.trainer import TrainConfig
from flowdistill.losses.distill import TEACHER_UNTIL, DistillConfig

# `distill`'s default margin: the teacher is switched off once the student validates 3 % below it
# (measured over three seeds on both NYC datasets: docs/design-decisions.md, "Three seeds on taxi")
DISTILL_MARGIN = 0.03

OutOpt = Annotated[
    Path, typer.Option("--out", help="Output folder (metrics.json, checkpoints); must not hold a "
                       "finished run unless --force.")
]
RatioOpt = Annotated[
    float, typer.Option("--train-ratio", callback=check_ratio,
                        help="Share of the series used to train (0 < r < 1).")
]
SeedOpt = Annotated[int, typer.Option("--seed")]
EpochsOpt = Annotated[
    int, typer.Option("--epochs", min=1, help="Most epochs (early stopping may end sooner).")
]
PatienceOpt = Annotated[int, typer.Option("--patience", min=1, help="Epochs without validation gain.")]
DeviceOpt = Annotated[
    str, typer.Option("--device", callback=check_device_option, help="cpu, cuda, cuda:1 …")
]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1)]
LrOpt = Annotated[float, typer.Option("--lr", min=0.0)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a model or loss option: --set lambda_spa=0.4 (repeatable)."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``key=value`` pairs; values parsed as JSON when they can be (numbers, booleans, null)."""
    result: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            result[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            result[key.strip()] = raw
    return result


def split_sets(sets: dict[str, Any], model: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Route overrides to the distillation config (loss options) or to the model config."""
    loss_keys = {f.name for f in fields(DistillConfig)} if model == "flowdistill" else set()
    loss = {k: v for k, v in sets.items() if k in loss_keys}
    model_opts = {k: v for k, v in sets.items() if k not in loss_keys}
    return loss, model_opts


def _report(result: dict[str, Any], out_dir: Path) -> None:
    from rich.table import Table

    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return
    t = Table(title=f"{result['model']} on {result['dataset']['name']} — test windows")
    for col in ("", "MAE", "RMSE", "MAPE"):
        t.add_column(col, justify="right" if col else "left")
    t.add_row(result["model"], *(f"{result['test'][k]:.3f}" for k in ("mae", "rmse", "mape")))
    teacher = result.get("teacher") or {}
    if teacher.get("test"):
        t.add_row(f"teacher: {teacher['model']}", f"{teacher['test']['mae']:.3f}",
                  f"{teacher['test']['rmse']:.3f}", "")
    out.print(t)
    fit = result["fit"]
    if fit["epochs_run"] == 0 or fit.get("best_epoch") is None:
        trained = f"no training needed (statistics of the training slots, {fit['seconds']:.1f} s)"
    else:
        trained = (f"{fit['epochs_run']} epochs in {fit['seconds']:.1f} s "
                   f"(best epoch {fit['best_epoch']})")
    console.print(f"{trained}; {result['params']:,} parameters; written to "
                  f"{out_dir / 'metrics.json'}", soft_wrap=True)
    hint = outgrown_teacher(result)
    if hint:
        console.print(f"[yellow]note:[/] {hint}", soft_wrap=True)


def control_config(cfg: DistillConfig) -> DistillConfig:
    """The no-teacher control's losses: no teacher, so no switch to record (the experiments'
    ``DistillConfig.without_teacher`` keeps the switch fields, which their cells are keyed by)."""
    return replace(cfg.without_teacher(), teacher_until="end", teacher_margin=0.0)


def _check_teacher(spec: Any, out_dir: Path, threads: int | None) -> None:
    """The student with its teacher and without, on the same split and seed; the one with the
    lower validation MAE is named in OUT/choice.json (never chosen by the test windows)."""
    from flowdistill.data.dataset import atomic_write_text
    from flowdistill.experiments.common import spec_differences
    from flowdistill.experiments.runs import run

    control = replace(spec, teacher=None, distill=control_config(spec.distill))
    runs = {"with-teacher": spec, "no-teacher": control}
    choice = out_dir / "choice.json"
    if choice.exists() and not spec.force:
        raise typer.BadParameter(f"{choice} exists: a finished check (use --force to replace it)")
    results: dict[str, Any] = {}
    for name, s in runs.items():  # both outputs checked before either trains
        saved = out_dir / name / "metrics.json"
        if saved.exists() and not s.force:  # an interrupted check: the finished half is kept
            done = json.loads(saved.read_text())
            if not spec_differences(done.get("config", {}).get("run", {}), s.to_dict()):
                results[name] = done
                console.print(f"{name}: finished run reused ({saved})", soft_wrap=True)
                continue
        _start(s, out_dir / name, threads)
    for name, s in runs.items():
        if name in results:
            continue
        console.print(f"[bold]{name}[/]")
        results[name] = run(s, out_dir / name)
        _report(results[name], out_dir / name)
    kept = min(results, key=lambda n: results[n]["val"]["mae"])
    doc = {"kept": kept, "folder": str(out_dir / kept), "chosen_by": "validation MAE",
           **{n: {"val": r["val"], "test": r["test"]} for n, r in results.items()}}
    atomic_write_text(choice, json.dumps(doc, indent=2) + "\n")
    console.print(f"kept [bold]{kept}[/] (validation MAE {results[kept]['val']['mae']:.3f} "
                  f"against {min(r['val']['mae'] for n, r in results.items() if n != kept):.3f}): "
                  f"use {out_dir / kept} as the run folder; written {choice}", soft_wrap=True)


def outgrown_teacher(result: dict[str, Any]) -> str:
    """A hint when the student validates below its teacher: from there the teacher's pull can
    hold it back (measured on taxi at 40 %: docs/design-decisions.md), and only a run without it
    on the same split can say which to keep."""
    t_val = ((result.get("teacher") or {}).get("val") or {}).get("mae")
    s_val = (result.get("val") or {}).get("mae")
    bar = (result.get("teacher") or {}).get("switch_below")
    history = (result.get("fit") or {}).get("history") or []
    if bar is not None:  # teacher_until=outgrown: say whether and when the switch fired
        off = next((row["epoch"] for row in history if row.get("teacher_on") == 0.0), None)
        if off is None:
            return (f"the teacher stayed on: no epoch validated below {bar:.3f} (teacher_until="
                    "outgrown)")
        return (f"the teacher was switched off from epoch {off} on: epoch {off - 1} validated "
                f"below {bar:.3f} (teacher_until=outgrown)")
    if result.get("model") != "flowdistill" or t_val is None or s_val is None or s_val >= t_val:
        return ""
    return (f"the student's validation MAE ({s_val:.3f}) is below its teacher's ({t_val:.3f}): "
            "the teacher may hold it back here; train the control with --no-teacher on the same "
            "split and keep whichever validates lower")


def _start(spec: Any, out_dir: Path, threads: int | None) -> None:
    """Check every output before loading anything, say whether the run resumes, fix threads."""
    from flowdistill.experiments.runs import check_outputs

    set_threads(threads)
    if os.environ.get("RANK", "0") != "0":  # under torchrun rank 0 checks and writes
        return
    line = check_outputs(spec, out_dir).describe()
    if line:
        console.print(line, soft_wrap=True)


def _train_config(epochs: int, patience: int, device: str, quiet: bool, batch_size: int,
                  lr: float) -> TrainConfig:
    return TrainConfig(max_epochs=epochs, patience=patience, device=device, progress=not quiet,
                       batch_size=batch_size, lr=lr)


def register(app: typer.Typer) -> None:
    """Add the training commands to the top-level app."""

    @app.command("train")
    def train(
        model: Annotated[str, typer.Option("--model", help="Model name (see `flowdistill models`).")],
        out_dir: OutOpt,
        dataset: DatasetOpt = "nyc-taxi-manhattan",
        data_dir: DataDirOpt = None,
        start: StartOpt = None,
        end: EndOpt = None,
        train_ratio: RatioOpt = 0.1,
        seed: SeedOpt = 0,
        teacher: Annotated[
            Path | None, typer.Option("--teacher", help="Teacher file (flowdistill, easyst, stmlp).")
        ] = None,
        epochs: EpochsOpt = 100,
        patience: PatienceOpt = 15,
        batch_size: BatchOpt = 80,
        lr: LrOpt = 0.0055,
        device: DeviceOpt = "cpu",
        sets: SetOpt = None,
        save_teacher: Annotated[
            Path | None,
            typer.Option("--save-teacher", help="Also write this model's forecasts as a teacher file."),
        ] = None,
        resume: ResumeOpt = False,
        force: ForceOpt = False,
        threads: ThreadsOpt = None,
        quiet: QuietOpt = False,
    ) -> None:
        """Train any model through the one engine; writes OUT/metrics.json."""
        from flowdistill.experiments.runs import RunSpec, run

        loss_sets, model_sets = split_sets(parse_sets(sets), model)
        spec = RunSpec(
            model=model, dataset=dataset, data_dir=str(data_dir) if data_dir else None,
            start=start, end=end, train_ratio=train_ratio, seed=seed,
            teacher=str(teacher) if teacher else None, model_options=model_sets,
            distill=replace(DistillConfig(), **loss_sets),
            train=_train_config(epochs, patience, device, quiet, batch_size, lr),
            save_teacher=str(save_teacher) if save_teacher else None, resume=resume, force=force,
        )
        _start(spec, out_dir, threads)
        _report(run(spec, out_dir), out_dir)

    @app.command("distill")
    def distill(
        out_dir: OutOpt,
        teacher: Annotated[
            Path | None, typer.Option("--teacher", help="Teacher-prediction file (.npz).")
        ] = None,
        no_teacher: Annotated[
            bool,
            typer.Option("--no-teacher", help="Train the same student on its data alone: no L_tbl, "
                         "the truth instead of the teacher in L_spa/L_tem (the control run)."),
        ] = False,
        dataset: DatasetOpt = "nyc-taxi-manhattan",
        data_dir: DataDirOpt = None,
        start: StartOpt = None,
        end: EndOpt = None,
        train_ratio: RatioOpt = 0.1,
        seed: SeedOpt = 0,
        no_tbl: Annotated[bool, typer.Option("--no-tbl", help="Drop the teacher-bounded loss.")] = False,
        no_ib: Annotated[bool, typer.Option("--no-ib", help="Drop the information bottleneck.")] = False,
        no_spatial: Annotated[bool, typer.Option("--no-spatial", help="Drop L_spa.")] = False,
        no_temporal: Annotated[bool, typer.Option("--no-temporal", help="Drop L_tem.")] = False,
        epochs: EpochsOpt = 100,
        patience: PatienceOpt = 15,
        batch_size: BatchOpt = 80,
        lr: LrOpt = 0.0055,
        device: DeviceOpt = "cpu",
        sets: SetOpt = None,
        resume: ResumeOpt = False,
        force: ForceOpt = False,
        threads: ThreadsOpt = None,
        quiet: QuietOpt = False,
        check_teacher: Annotated[
            bool,
            typer.Option("--check-teacher", help="Also train the control without the teacher "
                         "(OUT/with-teacher, OUT/no-teacher) and keep whichever validates lower "
                         "(OUT/choice.json): a teacher helps only where it knows more than the "
                         "student."),
        ] = False,
        teacher_until: Annotated[
            str | None,
            typer.Option("--teacher-until", help="outgrown (default): switch the teacher off "
                         "once an epoch validates --teacher-margin below it; end: the paper's "
                         "reading, the teacher in every epoch (docs/design-decisions.md)."),
        ] = None,
        teacher_margin: Annotated[
            float, typer.Option("--teacher-margin", min=0.0, max=0.99,
                                help="How far below the teacher's validation MAE (a fraction) "
                                "the student must validate before its teacher is switched off."),
        ] = DISTILL_MARGIN,
    ) -> None:
        """Distil a teacher file into the FlowDistill student; writes OUT/metrics.json."""
        from flowdistill.experiments.runs import RunSpec, run, teacher_val_known

        loss_sets, model_sets = split_sets(parse_sets(sets), "flowdistill")
        if teacher_until is not None and teacher_until not in TEACHER_UNTIL:
            raise typer.BadParameter(f"--teacher-until must be one of {', '.join(TEACHER_UNTIL)}, "
                                     f"got {teacher_until!r}")
        # the product default is the 3 % switch; the paper's reading is --teacher-until end
        chosen = teacher_until is not None or "teacher_until" in loss_sets
        until = teacher_until or "outgrown"
        cfg = replace(
            DistillConfig(teacher_until=until,
                          teacher_margin=teacher_margin if until == "outgrown" else 0.0),
            **loss_sets, use_tbl=not no_tbl, use_ib=not no_ib,
            use_spatial=not no_spatial, use_temporal=not no_temporal,
        )
        if no_teacher and teacher is not None:
            raise typer.BadParameter("give either --teacher FILE or --no-teacher, not both")
        if check_teacher and (no_teacher or teacher is None):
            raise typer.BadParameter("--check-teacher compares a --teacher FILE with the control; "
                                     "it needs --teacher and not --no-teacher")
        if no_teacher:  # the control: no teacher, so nothing to switch off
            cfg = control_config(cfg)
        elif teacher is None:
            raise typer.BadParameter("needs --teacher FILE (or --no-teacher for the control run)")
        spec = RunSpec(
            model="flowdistill", dataset=dataset, data_dir=str(data_dir) if data_dir else None,
            start=start, end=end, train_ratio=train_ratio, seed=seed,
            teacher=str(teacher) if teacher else None,
            model_options=model_sets, distill=cfg,
            train=_train_config(epochs, patience, device, quiet, batch_size, lr), resume=resume,
            force=force,
        )
        note = ""
        if not chosen and cfg.teacher_until == "outgrown" and not teacher_val_known(spec):
            note = ("the teacher file covers no validation window, so the switch could not compare "
                    "the student with it: the teacher stayed on in every epoch (--teacher-until "
                    "end); predict the teacher with --splits train,val,test to enable it")
            spec = replace(spec, distill=replace(cfg, teacher_until="end", teacher_margin=0.0))
        if check_teacher:
            _check_teacher(spec, out_dir, threads)
        else:
            _start(spec, out_dir, threads)
            _report(run(spec, out_dir), out_dir)
        if note:
            console.print(f"[yellow]note:[/] {note}", soft_wrap=True)

    @app.command("models")
    def models() -> None:
        """List the models `flowdistill train --model` accepts."""
        from flowdistill.models.base import available_models

        for name, summary in available_models().items():
            out.print(f"[bold]{name:>12}[/]  {summary}")

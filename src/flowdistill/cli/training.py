"""`flowdistill train` (any model) and `flowdistill distill` (the FlowDistill student)."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path
from typing import Annotated, Any

import typer

from flowdistill.cli.common import DataDirOpt, DatasetOpt, EndOpt, StartOpt, console, out
from flowdistill.engine.trainer import TrainConfig
from flowdistill.losses.distill import DistillConfig

OutOpt = Annotated[Path, typer.Option("--out", help="Output folder (metrics.json, checkpoints).")]
RatioOpt = Annotated[float, typer.Option("--train-ratio", help="Share of the series used to train.")]
SeedOpt = Annotated[int, typer.Option("--seed")]
EpochsOpt = Annotated[int, typer.Option("--epochs", help="Most epochs (early stopping may end sooner).")]
PatienceOpt = Annotated[int, typer.Option("--patience", help="Epochs without validation gain.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1 …")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a model or loss option: --set lambda_spa=0.4 (repeatable)."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]
ResumeOpt = Annotated[
    bool, typer.Option("--resume/--no-resume", help="Continue from OUT/checkpoints/last.pt if there.")
]


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
    import os

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
    console.print(
        f"{fit['epochs_run']} epochs in {fit['seconds']:.1f} s (best epoch {fit['best_epoch'] + 1}); "
        f"{result['params']:,} parameters; written to {out_dir / 'metrics.json'}"
    )


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
        batch_size: Annotated[int, typer.Option("--batch-size")] = 80,
        lr: Annotated[float, typer.Option("--lr")] = 0.0055,
        device: DeviceOpt = "cpu",
        sets: SetOpt = None,
        save_teacher: Annotated[
            Path | None,
            typer.Option("--save-teacher", help="Also write this model's forecasts as a teacher file."),
        ] = None,
        resume: ResumeOpt = True,
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
            save_teacher=str(save_teacher) if save_teacher else None, resume=resume,
        )
        _report(run(spec, out_dir), out_dir)

    @app.command("distill")
    def distill(
        teacher: Annotated[Path, typer.Option("--teacher", help="Teacher-prediction file (.npz).")],
        out_dir: OutOpt,
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
        batch_size: Annotated[int, typer.Option("--batch-size")] = 80,
        lr: Annotated[float, typer.Option("--lr")] = 0.0055,
        device: DeviceOpt = "cpu",
        sets: SetOpt = None,
        resume: ResumeOpt = True,
        quiet: QuietOpt = False,
    ) -> None:
        """Distil a teacher file into the FlowDistill student; writes OUT/metrics.json."""
        from flowdistill.experiments.runs import RunSpec, run

        loss_sets, model_sets = split_sets(parse_sets(sets), "flowdistill")
        cfg = replace(
            DistillConfig(), **loss_sets, use_tbl=not no_tbl, use_ib=not no_ib,
            use_spatial=not no_spatial, use_temporal=not no_temporal,
        )
        spec = RunSpec(
            model="flowdistill", dataset=dataset, data_dir=str(data_dir) if data_dir else None,
            start=start, end=end, train_ratio=train_ratio, seed=seed, teacher=str(teacher),
            model_options=model_sets, distill=cfg,
            train=_train_config(epochs, patience, device, quiet, batch_size, lr), resume=resume,
        )
        _report(run(spec, out_dir), out_dir)

    @app.command("models")
    def models() -> None:
        """List the models `flowdistill train --model` accepts."""
        from flowdistill.models.base import available_models

        for name, summary in available_models().items():
            out.print(f"[bold]{name:>12}[/]  {summary}")

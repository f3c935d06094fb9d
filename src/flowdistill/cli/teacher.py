"""`flowdistill teacher ...`: fine-tune the LLM teacher, write teacher files, import others' files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
    metrics_table,
    out,
    set_resume_hint,
    set_threads,
)

app = typer.Typer(help="LLM teacher: train, predict, import teacher files.", no_args_is_help=True)
import_app = typer.Typer(help="Import teacher forecasts made elsewhere.", no_args_is_help=True)
app.add_typer(import_app, name="import")

TrainRatioOpt = Annotated[
    float, typer.Option("--train-ratio", callback=check_ratio, help="Share of slots for training.")
]
DeviceOpt = Annotated[
    str, typer.Option("--device", callback=check_device_option, help="cpu, cuda, cuda:1 ...")
]
def _check_teacher_out(out_file: Path, force: bool) -> None:
    """Before anything is read: the teacher file must be new (or --force) and writable."""
    from flowdistill.engine.outputs import check_output_file

    if out_file.is_dir():  # not silently FOLDER.npz beside it
        check_output_file(out_file, force, "teacher file (--out)")
    target = out_file if out_file.suffix == ".npz" else out_file.with_suffix(".npz")
    check_output_file(target, force, "teacher file (--out)")


def _windows(dataset: str, data_dir: Path | None, start, end, train_ratio: float):
    from flowdistill.teacher.train import DataSpec

    spec = DataSpec(dataset, str(data_dir) if data_dir else None, start, end, train_ratio)
    return spec, spec.windows()


def _report(tp, windows) -> None:
    from flowdistill.teacher.train import file_metrics

    rows = []
    for split in ("val", "test"):
        ids = windows.ids(split)
        have = set(tp.window_ids.tolist())
        if all(int(w) in have for w in ids):
            rows.append((f"{tp.model} ({split})", file_metrics(tp, windows, split)))
    if rows:
        out.print(metrics_table("teacher file", rows))


def _written(tp, out_file: Path, windows, what: str = "") -> None:
    """Save a teacher file made by a command, say where, and score it on val/test."""
    path = tp.save(out_file)
    out.print(f"wrote {path} ({len(tp.window_ids)} windows{what})")
    _report(tp, windows)


def _weights_tag(model_dir: Path) -> str:
    """Ties part files to these exact weights, so a retrained model never reuses stale parts."""
    import hashlib

    from flowdistill.teacher.train import WEIGHTS_NAME

    digest = hashlib.sha256((model_dir / WEIGHTS_NAME).read_bytes()).hexdigest()[:16]
    return f"{model_dir.resolve()}|{digest}"


def _fold(text: str) -> tuple[int, int]:
    """'2/3' -> (2, 3)."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise typer.BadParameter(f"--holdout takes k/K, e.g. 1/2; got {text!r}") from None
    if not (n >= 2 and 1 <= k <= n):
        raise typer.BadParameter(f"--holdout k/K needs 1 <= k <= K and K >= 2; got {text!r}")
    return k, n


@app.command("train")
def train(
    out_dir: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    dataset: DatasetOpt = "nyc-taxi-manhattan",
    data_dir: DataDirOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    train_ratio: TrainRatioOpt = 0.1,
    backbone: Annotated[
        str, typer.Option("--backbone", help="'smollm2-135m', a HF folder/id, or a .gguf file.")
    ] = "smollm2-135m",
    layers: Annotated[int, typer.Option("--layers", help="Keep the first L blocks (0 = all).")] = 2,
    layout: Annotated[str, typer.Option("--layout", help="city (one prompt per window) or region.")] = (
        "city"
    ),
    steps: Annotated[int, typer.Option("--steps", help="Optimiser steps in all.")] = 300,
    val_every: Annotated[int, typer.Option("--val-every", help="Steps between validations.")] = 50,
    val_batches: Annotated[int, typer.Option("--val-batches", help="Batches per validation.")] = 2,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Windows per step.")] = 8,
    grad_accumulation: Annotated[int, typer.Option("--grad-accumulation")] = 1,
    lr: Annotated[float, typer.Option("--lr")] = 2e-3,
    lr_decay: Annotated[
        float, typer.Option("--lr-decay", help="Multiply the learning rate by this (1 = constant)…")
    ] = 1.0,
    lr_decay_every: Annotated[
        int, typer.Option("--lr-decay-every", help="…every this many validation periods (0 = never).")
    ] = 0,
    lora_r: Annotated[int, typer.Option("--lora-r", help="LoRA rank (0: no LoRA).")] = 8,
    pool: Annotated[
        str,
        typer.Option("--pool", help="Target slots to tune on: 'train' (the student's own training "
                     "slots: the strict teacher) or 'val' (every slot before validation)."),
    ] = "train",
    extra: Annotated[
        list[str] | None,
        typer.Option("--extra", help="Another dataset on the same regions to tune on, e.g. "
                     "nyc-bike-manhattan (its slots before validation; repeatable)."),
    ] = None,
    target_repeat: Annotated[
        int,
        typer.Option("--target-repeat", min=1, help="Draw each target training window this many "
                     "times (with --extra: the strict teacher's target is otherwise a small share)."),
    ] = 1,
    holdout: Annotated[
        str | None,
        typer.Option("--holdout", help="k/K: leave out block k of K of the student's training "
                     "windows (with --pool train), for `teacher crossfit`."),
    ] = None,
    pre_query: Annotated[
        str, typer.Option("--pre-query", help="<ST_PRE> input: shared, region or region+his.")
    ] = "region+his",
    head_his: Annotated[
        str, typer.Option("--head-his", help="<ST_HIS> states in the head: detached, attached, none.")
    ] = "detached",
    cache_prefix: Annotated[
        bool, typer.Option("--cache-prefix/--no-cache-prefix", help="Reuse the constant prefix's K/V.")
    ] = True,
    level: Annotated[
        str, typer.Option("--level", help="Anchor to the window's level: none, window-mean, linear.")
    ] = "none",
    device: DeviceOpt = "cpu",
    dtype: Annotated[str, typer.Option("--dtype", help="float32 or bfloat16 (GPU).")] = "float32",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    threads: ThreadsOpt = None,
    resume: ResumeOpt = False,
    force: ForceOpt = False,
) -> None:
    """Fine-tune the teacher (LoRA + ST encoder + head) on the training windows."""
    set_threads(threads)
    from flowdistill.engine.outputs import prepare_run_dir
    from flowdistill.teacher.model import TeacherConfig
    from flowdistill.teacher.train import (
        CONFIG_NAME,
        WEIGHTS_NAME,
        DataSpec,
        train_config,
        train_teacher,
    )

    spec = DataSpec(dataset, str(data_dir) if data_dir else None, start, end, train_ratio,
                    pool=pool, extra=tuple(extra or ()), target_repeat=target_repeat,
                    holdout=_fold(holdout) if holdout else None)
    cfg = TeacherConfig(backbone=backbone, layers=layers, layout=layout, dtype=dtype, lora_r=lora_r,
                        pre_query=pre_query, head_his=head_his, cache_prefix=cache_prefix,
                        level=level)
    tcfg = train_config(steps, val_every, batch_size, lr, val_batches, seed=seed, device=device,
                        grad_accumulation=grad_accumulation, lr_decay=lr_decay,
                        lr_decay_every=lr_decay_every)
    tcfg.validate()
    run_dir = prepare_run_dir(
        out_dir, {"teacher": cfg.to_dict(), "data": spec.settings(), "train": tcfg.to_dict()},
        force=force, resume=resume, finished=CONFIG_NAME, outputs=(WEIGHTS_NAME,),
        checkpoint_dir="engine/checkpoints",
    )
    if run_dir.describe():
        console.print(run_dir.describe())
    windows = spec.windows()
    console.print(
        f"teacher: {backbone} ({layers or 'all'} layers, {layout} prompts), {steps} steps of "
        f"{batch_size} windows on {len(windows.ids('train'))} training windows ({spec.describe()})"
    )
    _, result = train_teacher(spec, cfg, tcfg, out_dir, windows)
    out.print(
        f"saved {out_dir} — best val MAE {result.best_val_mae:.3f} (epoch {result.best_epoch_number}),"
        f" {result.seconds:.0f} s training"
    )


@app.command("predict")
def predict(
    model_dir: Annotated[Path, typer.Option("--model", help="Folder from `teacher train`.")],
    out_file: Annotated[Path, typer.Option("--out", help="Teacher file (.npz) to write.")],
    data_dir: DataDirOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Windows per forward.")] = 64,
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="Windows per part file.")] = 1024,
    device: DeviceOpt = "cpu",
    splits: Annotated[
        str,
        typer.Option(
            "--splits",
            help="'all' (every window) or a comma list of train,val,test: the windows between the "
            "training and validation parts are used by nothing, so skipping them saves time.",
        ),
    ] = "all",
    threads: ThreadsOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the part files of an interrupted run.")
    ] = False,
    force: ForceOpt = False,
) -> None:
    """Forecast every window of the dataset (or of some splits) into a teacher file (resumable)."""
    set_threads(threads)
    import numpy as np

    from flowdistill.engine.outputs import check_partial

    if out_file.is_dir():
        _check_teacher_out(out_file, force)  # refused: a folder, not a file name
    out_file = out_file if out_file.suffix == ".npz" else out_file.with_suffix(".npz")
    check_partial(out_file, out_file.with_name(out_file.name + ".parts"), force, resume)
    set_resume_hint("run the same command with --resume: the finished part files are kept",
                    outside_training=True)

    from flowdistill.teacher.train import load_teacher, predict_to_file

    model, windows, meta = load_teacher(model_dir, str(data_dir) if data_dir else None)
    if splits == "all":
        ids = windows.all_ids
    else:
        own = getattr(windows, "target", windows)  # the student's windows, not the tuning pool
        ids = np.unique(np.concatenate([own.ids(s.strip()) for s in splits.split(",")]))
    tp = predict_to_file(
        model, windows, out_file, ids=ids, batch_size=batch_size, chunk_size=chunk_size, device=device,
        tag=_weights_tag(model_dir), info={"seed": meta.get("train", {}).get("seed", 0),
                                            "model_dir": str(model_dir), "splits": splits,
                                            **({"holdout": meta["data"]["holdout"]}
                                               if meta["data"].get("holdout") else {}),
                                            "trained_on": meta.get("data_description", "")},
    )
    out.print(f"wrote {out_file} ({len(tp.window_ids)} windows)")
    _report(tp, windows)


@app.command("slim")
def slim(
    file: Annotated[Path, typer.Argument(help="A teacher file covering train, val and test.")],
    out_file: Annotated[Path, typer.Option("--out", help="Smaller teacher file to write.")],
    dataset: DatasetOpt = "nyc-taxi-manhattan",
    data_dir: DataDirOpt = None,
    train_ratio: TrainRatioOpt = 0.1,
    splits: Annotated[str, typer.Option("--splits", help="Windows to keep (comma list).")] = "train",
    dtype: Annotated[str, typer.Option("--dtype", help="float32 or float16.")] = "float16",
) -> None:
    """Keep only the windows a student needs (its training windows), in float16: a file small
    enough to ship. The teacher's own val/test scores are measured first and kept in the metadata."""
    import numpy as np

    from flowdistill.teacher.file import TeacherPredictions
    from flowdistill.teacher.train import file_metrics

    if dtype not in ("float32", "float16"):
        raise typer.BadParameter(f"--dtype must be float32 or float16, got {dtype}")
    _, windows = _windows(dataset, data_dir, None, None, train_ratio)
    tp = TeacherPredictions.load(file)
    scores = {}
    for split in ("val", "test"):
        if set(windows.ids(split).tolist()) <= set(tp.window_ids.tolist()):
            m = file_metrics(tp, windows, split)
            scores[split] = {"mae": m["mae"], "rmse": m["rmse"]}
    keep = np.unique(np.concatenate([windows.ids(s.strip()) for s in splits.split(",")]))
    small = tp.subset(keep, scores=scores or tp.meta.get("scores", {}), slimmed_from=str(file),
                      splits=splits)
    path = small.save(out_file, dtype=dtype)
    out.print(f"wrote {path} ({len(keep)} windows, {dtype}, {path.stat().st_size / 1e6:.1f} MB); "
              f"teacher scores kept: {scores}")


@app.command("ensemble")
def ensemble(
    files: Annotated[list[Path], typer.Argument(help="Two or more teacher files of the same data.")],
    out_file: Annotated[Path, typer.Option("--out", help="Teacher file to write.")],
    force: ForceOpt = False,
) -> None:
    """Average several teachers' forecasts window by window (e.g. the LLM and a baseline)."""
    from flowdistill.teacher.file import TeacherPredictions

    if out_file.exists() and not force:
        raise typer.BadParameter(f"{out_file} exists; --force replaces it")
    tp = TeacherPredictions.mean_of([TeacherPredictions.load(f) for f in files])
    path = tp.save(out_file)
    out.print(f"wrote {path} ({len(tp.window_ids)} windows, {tp.model})")


@app.command("crossfit")
def crossfit(
    files: Annotated[list[Path], typer.Argument(help="The forecasts of the K fold teachers "
                                                "(`teacher train --holdout k/K`, then `predict "
                                                "--splits train,val,test`).")],
    out_file: Annotated[Path, typer.Option("--out", help="Teacher file to write.")],
    dataset: DatasetOpt = "nyc-taxi-manhattan",
    data_dir: DataDirOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    train_ratio: TrainRatioOpt = 0.1,
    force: ForceOpt = False,
) -> None:
    """Join the fold teachers of a cross-fit: each training window forecast by the teacher that
    never saw it, validation and test by their mean."""
    from flowdistill.teacher.file import TeacherPredictions

    _check_teacher_out(out_file, force)
    _, windows = _windows(dataset, data_dir, start, end, train_ratio)
    tp = TeacherPredictions.cross_fitted([TeacherPredictions.load(f) for f in files], windows)
    _written(tp, out_file, windows, f", {tp.model}")


@import_app.command("urbangpt")
def import_urbangpt_cmd(
    files: Annotated[list[Path], typer.Argument(help="UrbanGPT result JSON files.")],
    out_file: Annotated[Path, typer.Option("--out", help="Teacher file to write.")],
    dataset: DatasetOpt = "nyc-taxi-manhattan",
    data_dir: DataDirOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    train_ratio: TrainRatioOpt = 0.1,
    first_window: Annotated[
        int | None, typer.Option("--first-window", help="Window id of sample 0 (default: first test window).")
    ] = None,
    no_check: Annotated[bool, typer.Option("--no-check", help="Skip the truth comparison.")] = False,
    force: ForceOpt = False,
) -> None:
    """UrbanGPT evaluation records -> teacher file."""
    from flowdistill.teacher.importers import import_urbangpt

    _check_teacher_out(out_file, force)
    _, windows = _windows(dataset, data_dir, start, end, train_ratio)
    tp = import_urbangpt(files, windows, first_window, check_truth=not no_check)
    _written(tp, out_file, windows)


@import_app.command("npz")
def import_npz_cmd(
    file: Annotated[Path, typer.Argument(help="Teacher series .npz of the reference code.")],
    out_file: Annotated[Path, typer.Option("--out", help="Teacher file to write.")],
    layout: Annotated[str, typer.Option("--layout", help="NTC or TNC.")] = "NTC",
    key: Annotated[str | None, typer.Option("--key", help="Array name (default: data).")] = None,
    dataset: DatasetOpt = "nyc-taxi-manhattan",
    data_dir: DataDirOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    train_ratio: TrainRatioOpt = 0.1,
    force: ForceOpt = False,
) -> None:
    """A whole-period [N, T, C] teacher series -> teacher file for every window."""
    from flowdistill.teacher.importers import import_npz

    _check_teacher_out(out_file, force)
    _, windows = _windows(dataset, data_dir, start, end, train_ratio)
    tp = import_npz(file, windows, layout, key)
    _written(tp, out_file, windows)

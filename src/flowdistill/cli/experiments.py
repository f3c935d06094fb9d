"""`flowdistill bench ...`: the paper's experiments (§4) and the results report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flowdistill.cli.common import (
    DataDirOpt,
    DatasetOpt,
    EndOpt,
    StartOpt,
    ThreadsOpt,
    check_device_option,
    console,
    set_resume_hint,
    set_threads,
)

app = typer.Typer(help="The paper's experiments (§4) and docs/results.md.", no_args_is_help=True)

OutOpt = Annotated[Path, typer.Option("--out", help="Output folder (CSV, Markdown, PNG, runs/).")]
ModelsOpt = Annotated[
    str | None,
    typer.Option("--models", help="Comma list of models (default: flowdistill, all baselines, ha, "
                 "last-value; scalability: the paper's seven)."),
]
SeedsOpt = Annotated[str | None, typer.Option("--seeds", help="Comma list, e.g. 0,1,2.")]
RatiosOpt = Annotated[
    str | None, typer.Option("--ratios", help="Comma list of training ratios, e.g. 0.1,0.4,0.7.")
]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", help="Most epochs per run.")]
PatienceOpt = Annotated[int | None, typer.Option("--patience", help="Early-stopping patience.")]
TeacherOpt = Annotated[
    Path | None,
    typer.Option("--teacher", help="Teacher file the FlowDistill student distils from."),
]
TeacherModelOpt = Annotated[
    str | None,
    typer.Option("--teacher-model", help="Instead of --teacher: train this model at each run's "
                 "ratio and seed and use its forecasts as the teacher file."),
]
QuickOpt = Annotated[
    bool, typer.Option("--quick", help="Quick preset: 1 seed, ratios 10/40/70%, ≤12 epochs, "
                       "patience 4 (outputs say so). Explicit options override it.")
]
DeviceOpt = Annotated[str, typer.Option("--device", callback=check_device_option, help="cpu, cuda …")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bar.")]
RatioOpt = Annotated[float | None, typer.Option("--train-ratio", help="Training ratio.")]
BatchesOpt = Annotated[
    int | None,
    typer.Option("--batches-per-epoch", help="Training batches per epoch (0: all windows; "
                 "quick preset: 8)."),
]
ResultsOpt = Annotated[
    Path, typer.Option("--results", help="Also copy the outputs to RESULTS/<dataset>/ (a smoke "
                       "reading never replaces a full-protocol one there).")
]
PublishOpt = Annotated[
    bool, typer.Option("--publish/--no-publish", help="Copy the outputs to --results.")
]
StoreOpt = Annotated[
    Path | None,
    typer.Option("--store", help="Also keep each finished run's metrics.json in STORE/<model>/"
                 "r<ratio>/s<seed>.json and reuse the runs kept there: commit that folder and a "
                 "later session (or machine) skips those cells even without OUT's run folders."),
]
OptionOpt = Annotated[
    list[str] | None,
    typer.Option("--model-option", help="MODEL.KEY=VALUE, e.g. flowdistill.embed_dim=32 "
                 "(repeatable; value parsed as JSON when it can be)."),
]


def _model_options(items: list[str] | None) -> dict[str, dict]:
    import json

    result: dict[str, dict] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        model, dot, name = key.partition(".")
        if not sep or not dot or not model or not name:
            raise ValueError(f"--model-option expects MODEL.KEY=VALUE, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        result.setdefault(model.strip(), {})[name.strip()] = value
    return result


def _ints(s: str | None) -> list[int] | None:
    if not s:
        return None
    try:
        return [int(x) for x in s.split(",") if x.strip()]
    except ValueError as exc:
        raise ValueError(f"expected a comma list of integers, got {s!r}") from exc


def _floats(s: str | None) -> list[float] | None:
    if not s:
        return None
    try:
        return [float(x) for x in s.split(",") if x.strip()]
    except ValueError as exc:
        raise ValueError(f"expected a comma list of numbers, got {s!r}") from exc


def _names(s: str | None) -> list[str] | None:
    return [x.strip() for x in s.split(",") if x.strip()] if s else None


def _config(out, dataset, data_dir, start, end, models, seeds, ratios, epochs, patience, teacher,
            teacher_model, quick, device, quiet, default_models=None, options=None,
            batches=None, results=None, store=None):
    from flowdistill.experiments.common import BenchConfig

    return BenchConfig.make(
        out, quick=quick, seeds=_ints(seeds), ratios=_floats(ratios), epochs=epochs,
        patience=patience, models=_names(models) or default_models, dataset=dataset,
        data_dir=str(data_dir) if data_dir else None, start=start, end=end, device=device,
        teacher=str(teacher) if teacher else None, teacher_model=teacher_model,
        progress=not quiet, model_options=_model_options(options), batches_per_epoch=batches,
        results=results, store=store,
    )


def _prepare(threads: int | None) -> None:
    """Threads before any torch work; how an interrupted suite continues."""
    set_threads(threads)
    set_resume_hint("run the same command again: finished runs are reused and the interrupted "
                    "one resumes from its checkpoint")


def _done(paths: dict[str, Path]) -> None:
    console.print("written: " + ", ".join(str(p) for p in paths.values()))


def _command(name: str, doc: str, default_ratio: float | None = None, default_models=None):
    """Register one experiment command with the common options."""

    def cmd(
        out: OutOpt,
        dataset: DatasetOpt = "nyc-taxi-manhattan",
        data_dir: DataDirOpt = None,
        start: StartOpt = None,
        end: EndOpt = None,
        models: ModelsOpt = None,
        seeds: SeedsOpt = None,
        ratios: RatiosOpt = None,
        train_ratio: RatioOpt = None,
        epochs: EpochsOpt = None,
        patience: PatienceOpt = None,
        teacher: TeacherOpt = None,
        teacher_model: TeacherModelOpt = None,
        quick: QuickOpt = False,
        device: DeviceOpt = "cpu",
        quiet: QuietOpt = False,
        options: OptionOpt = None,
        batches: BatchesOpt = None,
        threads: ThreadsOpt = None,
        results: ResultsOpt = Path("docs/results"),
        publish: PublishOpt = True,
        store: StoreOpt = None,
        variants: Annotated[
            str | None, typer.Option("--variants", help="ablation only: the variants to run "
                                     "(comma list; 'full' is always one), e.g. full,no-teacher; "
                                     "default the paper's five and no-teacher; until-outgrown "
                                     "and until-outgrown-3pct (teacher off once the student "
                                     "validates below it, or 3 % below) on request")
        ] = None,
        control: Annotated[
            bool, typer.Option("--control", help="ratios only: also the student without its "
                               "teacher at every ratio and seed, and the row that keeps, per "
                               "seed, whichever of the two validates lower")
        ] = False,
        outgrown: Annotated[
            bool, typer.Option("--outgrown", help="ratios only: also the student whose teacher "
                               "is switched off once it validates 3 % below it (one run per "
                               "ratio and seed)")
        ] = False,
    ) -> None:
        if variants is not None and name != "ablation":
            raise ValueError("--variants is an option of `bench ablation` only")
        if (control or outgrown) and name != "ratios":
            raise ValueError(f"{'--control' if control else '--outgrown'} is an option of "
                             "`bench ratios` only")
        _prepare(threads)
        from flowdistill.experiments import suite

        cfg = _config(out, dataset, data_dir, start, end, models, seeds, ratios, epochs, patience,
                      teacher, teacher_model, quick, device, quiet, default_models, options,
                      batches, results if publish else None, store)
        fn = getattr(suite, name)
        if name == "ratios":
            _done(fn(cfg, control=control, outgrown=outgrown))
        elif name == "scalability":
            kw = {"ratio": train_ratio} if train_ratio is not None else {}
            if quick:
                kw.update(batch_sizes=(16, 64, 256), multiples=(1, 3, 5))
            _done(fn(cfg, **kw))
        else:
            kw = {"variants": tuple(_names(variants) or ())} if variants is not None else {}
            _done(fn(cfg, ratio=train_ratio if train_ratio is not None else default_ratio, **kw))

    cmd.__doc__ = doc
    app.command(name)(cmd)


_command("ratios", "Table 3 / Fig. 3: every model × training ratio, MAE/RMSE over seeds, plus "
         "data efficiency.")
_command("horizons", "Fig. 5: error per horizon step 1…12 at one ratio (default 10%).", 0.1)
_command("volume", "Fig. 6: error per regional traffic-volume bucket (default 50% training).", 0.5)
_command("hparams", "Fig. 7–9: each loss weight over the paper's grid, student at 10%.", 0.1,
         ["flowdistill"])
_command("ablation", "Table 4: the student without TB / IB / spatial / temporal (default 10%; the "
         "paper's Table 4 is at 30%).", 0.1, ["flowdistill"])
_command("scalability", "Fig. 10: forward memory vs batch size, latency vs test size, FLOPs.",
         None, ["flowdistill", "stid", "bigst", "stsgcn", "astgcn", "stwa", "easyst"])


@app.command("all")
def all_(
    out: OutOpt,
    dataset: DatasetOpt = "nyc-taxi-manhattan",
    data_dir: DataDirOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    models: ModelsOpt = None,
    seeds: SeedsOpt = None,
    ratios: RatiosOpt = None,
    epochs: EpochsOpt = None,
    patience: PatienceOpt = None,
    teacher: TeacherOpt = None,
    teacher_model: TeacherModelOpt = None,
    quick: QuickOpt = False,
    device: DeviceOpt = "cpu",
    quiet: QuietOpt = False,
    options: OptionOpt = None,
    batches: BatchesOpt = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Also write this results file at the end.")
    ] = None,
    threads: ThreadsOpt = None,
    results: ResultsOpt = Path("docs/results"),
    publish: PublishOpt = True,
    store: StoreOpt = None,
) -> None:
    """All six experiments into one folder (they share runs), then optionally the report."""
    _prepare(threads)
    from flowdistill.experiments import suite
    from flowdistill.experiments.report import build_report

    res = results if publish else None
    cfg = _config(out, dataset, data_dir, start, end, models, seeds, ratios, epochs, patience,
                  teacher, teacher_model, quick, device, quiet, None, options,
                  batches, res, store)
    cfg.needs_teacher(["flowdistill"])
    student = _config(out, dataset, data_dir, start, end, "flowdistill", seeds, ratios, epochs,
                      patience, teacher, teacher_model, quick, device, quiet, None, options,
                      batches, res, store)
    scale_models = [m for m in cfg.models if m not in ("ha", "last-value", "stmlp")]
    scale_cfg = _config(out, dataset, data_dir, start, end, ",".join(scale_models), seeds, ratios,
                        epochs, patience, teacher, teacher_model, quick, device, quiet, None,
                        options, batches, res, store)
    _done(suite.ratios(cfg))
    _done(suite.horizons(cfg, ratio=min(cfg.ratios)))
    _done(suite.ablation(student, ratio=min(cfg.ratios)))
    _done(suite.hparams(student, ratio=min(cfg.ratios)))
    # Fig. 6 is at 50%; when 50% is not among the ratios run, the nearest one (runs are shared).
    _done(suite.volume(cfg, ratio=min(cfg.ratios, key=lambda r: (abs(r - 0.5), r))))
    kw = {"batch_sizes": (16, 64, 256), "multiples": (1, 3, 5)} if quick else {}
    _done(suite.scalability(scale_cfg, **kw))
    if report is not None:
        console.print(f"written: {build_report([res or out], report)}")


@app.command("report")
def report_cmd(
    runs: Annotated[
        list[Path], typer.Option("--runs", help="Experiment output folder (repeatable or a,b).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Markdown file to write.")] = Path(
        "docs/results.md"
    ),
) -> None:
    """docs/results.md from experiment output folders (numbers only from what they wrote)."""
    from flowdistill.experiments.report import build_report

    folders = [Path(p) for r in runs for p in str(r).split(",") if p]
    console.print(f"written: {build_report(folders, out)}")


@app.command("cost")
def cost_cmd(
    dataset: DatasetOpt = "nyc-taxi-manhattan",
    data_dir: DataDirOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    models: ModelsOpt = None,
    train_ratio: Annotated[float, typer.Option("--train-ratio", help="An epoch = the training "
                                               "windows at this ratio.")] = 0.1,
    steps: Annotated[int, typer.Option("--steps", help="Timed optimiser steps per model.")] = 3,
    repeats: Annotated[int, typer.Option("--repeats", help="Forward passes per latency.")] = 5,
    teacher_model_dir: Annotated[
        Path | None, typer.Option("--teacher-model-dir", help="An LLM teacher model folder "
                                  "(`flowdistill teacher train --out`): also measure it.")
    ] = None,
    teacher_budget: Annotated[
        float, typer.Option("--teacher-budget", help="Seconds the LLM teacher may take; parts "
                            "past it are left out and said so.")
    ] = 300.0,
    results: Annotated[Path, typer.Option("--results", help="Writes RESULTS/<dataset>/cost.json "
                                          "and cost.md.")] = Path("docs/results"),
    options: OptionOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Parameters, training time per epoch, latency per window (batch 1 / 64), peak memory."""
    set_threads(threads)
    from flowdistill.experiments.cost import COST_MODELS, CostConfig, measure_costs

    cfg = CostConfig(dataset=dataset, data_dir=str(data_dir) if data_dir else None, start=start,
                     end=end, ratio=train_ratio, models=tuple(_names(models) or COST_MODELS),
                     timed_steps=steps, latency_repeats=repeats,
                     teacher_model_dir=teacher_model_dir, teacher_budget_s=teacher_budget,
                     results=results, model_options=_model_options(options),
                     log=lambda m: console.print(f"[dim]{m}[/]"))
    doc = measure_costs(cfg)
    console.print(doc["markdown"], soft_wrap=True, markup=False)
    if doc.get("paths"):
        console.print("written: " + ", ".join(doc["paths"]))


@app.command("headline")
def headline_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder for the teachers and runs.")] = Path(
        "runs/headline"
    ),
    dataset: DatasetOpt = "nyc-taxi-manhattan",
    data_dir: DataDirOpt = None,
    train_ratio: Annotated[float, typer.Option("--train-ratio")] = 0.1,
    seeds: SeedsOpt = "0,1,2",
    epochs: Annotated[int, typer.Option("--epochs", help="Most epochs per run.")] = 100,
    patience: Annotated[int, typer.Option("--patience")] = 15,
    teacher_layers: Annotated[int, typer.Option("--teacher-layers")] = 1,
    teacher_steps: Annotated[int, typer.Option("--teacher-steps")] = 2600,
    teacher_batch: Annotated[int, typer.Option("--teacher-batch-size")] = 16,
    teacher_lr: Annotated[float, typer.Option("--teacher-lr")] = 2e-3,
    teacher_seeds: Annotated[
        str, typer.Option("--teacher-seeds", help="Seeds of the wide LLM teacher (a,b,...): each is "
                          "trained and scored for the teacher's mean; the first serves the "
                          "students.")
    ] = "0,1,2",
    teacher_extra: Annotated[
        str, typer.Option("--teacher-extra", help="Other sources to tune the teacher on (a,b; "
                          "'' for none).")
    ] = "nyc-bike-manhattan",
    strict: Annotated[
        bool, typer.Option("--strict/--no-strict", help="Also the strict teacher (the student's "
                           "own slots + the other sources) and its student.")
    ] = True,
    strict_steps: Annotated[int | None, typer.Option("--strict-steps")] = None,
    strict_seeds: Annotated[
        str | None, typer.Option("--strict-seeds", help="Student seeds for the strict teacher "
                                 "(default: --seeds; 'none': only the strict teacher's own score).")
    ] = None,
    ensemble: Annotated[
        bool, typer.Option("--ensemble/--no-ensemble", help="Also the student of the LLM+STID "
                           "ensemble teacher (STID fitted on the same slots as the wide teacher).")
    ] = True,
    seed_mean: Annotated[
        bool, typer.Option("--seed-mean/--no-seed-mean", help="Also the student of the mean of the "
                           "LLM teacher's seeds (when --teacher-seeds has several).")
    ] = True,
    results: Annotated[Path, typer.Option("--results", help="Where headline.json goes.")] = Path(
        "docs/results"
    ),
    doc: Annotated[Path, typer.Option("--doc", help="Markdown file whose headline section is "
                                      "rewritten.")] = Path("docs/results.md"),
    controls_only: Annotated[
        bool, typer.Option("--controls-only", help="Only HA, STID and the student without a "
                           "teacher (no teacher needed: run them while the teacher trains).")
    ] = False,
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """The headline: LLM teacher → student vs STID and the student without a teacher at 10 %."""
    from flowdistill.cli.common import set_threads
    from flowdistill.experiments.headline import HeadlineConfig, TeacherPlan, run_headline

    set_threads(threads)
    tseeds = tuple(_ints(teacher_seeds) or (0,))
    plan = TeacherPlan(layers=teacher_layers, steps=teacher_steps, batch_size=teacher_batch,
                       lr=teacher_lr, extra=tuple(_names(teacher_extra) or ()), seed=tseeds[0])
    cfg = HeadlineConfig(out=out, dataset=dataset, data_dir=str(data_dir) if data_dir else None,
                         train_ratio=train_ratio, seeds=tuple(_ints(seeds) or (0, 1, 2)),
                         epochs=epochs, patience=patience, teacher=plan, teacher_seeds=tseeds,
                         strict=strict,
                         strict_steps=strict_steps, ensemble=ensemble, seed_mean=seed_mean,
                         strict_seeds=(() if strict_seeds == "none" else tuple(_ints(strict_seeds))
                                       if strict_seeds else None),
                         device=device, results_dir=results,
                         results_doc=doc, progress=not quiet, controls_only=controls_only)
    result = run_headline(cfg, log=lambda m: console.print(f"[dim]headline:[/] {m}"))
    if controls_only:
        for row in result["controls"]:
            console.print(f"{row['model']:>24}  s{row['seed']}  MAE {row['mae']:.3f}")
        return
    for s in result["summary"]:
        console.print(f"{s['model']:>24}  MAE {s['mae']:.3f} ± {s['mae_std']:.3f}  "
                      f"RMSE {s['rmse']:.3f} ± {s['rmse_std']:.3f}")
    _done({"json": results / "headline.json", "doc": doc})

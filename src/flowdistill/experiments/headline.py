"""The headline table: does distilling the LLM teacher beat STID when 10 % of the data is there?

One command (`flowdistill bench headline`) trains or reuses the LLM teacher, writes its teacher file,
then runs STID, the FlowDistill student, the same student without a teacher and the historical
average for every seed, at the paper's protocol (up to 100 epochs, early stopping with patience 15),
and writes ``docs/results/headline.json`` plus a section of ``docs/results.md``. Every part is
resumable: a teacher whose model folder is complete is reused, its engine checkpoints resume an
interrupted fine-tune, the teacher file's part files resume an interrupted prediction, and each
student/baseline run is reused once its metrics.json exists (`RunCache`).

Two teachers are reported side by side when ``strict`` is on:

* the *wide* teacher is tuned on every target slot before validation (never a validation or test
  slot) plus the other sources (Citi Bike) — the paper's setting, where the teacher knows more than
  the student;
* the *strict* teacher is tuned on the student's own training slots plus the other sources only.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from flowdistill.data.dataset import atomic_write_text
from flowdistill.data.errors import DataError
from flowdistill.experiments.common import BenchConfig, RunCache, RunKey, mean_std, ratio_tag
from flowdistill.experiments.runs import provenance, run
from flowdistill.losses.distill import DistillConfig

MODELS = ("teacher-llm", "ha", "stid", "flowdistill-no-teacher", "flowdistill")
START, END = "<!-- headline:start -->", "<!-- headline:end -->"


@dataclass
class TeacherPlan:
    """How to train one LLM teacher (its folder is OUT/<name>)."""

    name: str = "teacher-llm"
    pool: str = "val"
    extra: tuple[str, ...] = ("nyc-bike-manhattan",)
    layers: int = 1
    steps: int = 2600
    batch_size: int = 16
    lr: float = 2e-3
    val_every: int = 200
    val_batches: int = 4
    seed: int = 0


@dataclass
class HeadlineConfig:
    out: Path = Path("runs/headline")
    dataset: str = "nyc-taxi-manhattan"
    data_dir: str | None = None
    train_ratio: float = 0.1
    seeds: tuple[int, ...] = (0, 1, 2)
    # Seeds of the wide LLM teacher: each is trained and scored on the test windows (the teacher's
    # own mean ± std); the first serves every student seed.
    teacher_seeds: tuple[int, ...] = (0,)
    epochs: int = 100
    patience: int = 15
    teacher: TeacherPlan = field(default_factory=TeacherPlan)
    strict: bool = True
    strict_steps: int | None = None  # default: the wide teacher's steps
    # student seeds of the strict teacher (None: all; (): none — the strict teacher's own score only)
    strict_seeds: tuple[int, ...] | None = None
    # Also distil from the average of the LLM teacher and STID fitted on the same target slots
    # (every slot before validation): which teacher makes the student win, when the LLM alone
    # does not know enough more than the student.
    ensemble: bool = True
    # Also distil from the mean of the wide LLM teacher's seeds (an LLM-only teacher: averaging
    # seeds removes part of each fine-tune's error) when there are several teacher seeds.
    seed_mean: bool = True
    device: str = "cpu"
    results_dir: Path = Path("docs/results")
    results_doc: Path = Path("docs/results.md")
    progress: bool = True
    # Only the runs that need no teacher (HA, STID, the student without a teacher): they can run
    # while the teacher trains; nothing is written to the results.
    controls_only: bool = False

    def plans(self) -> list[TeacherPlan]:
        plans = [self.teacher]
        plans += [replace(self.teacher, name=f"teacher-llm-s{s}", seed=s)
                  for s in self.teacher_seeds if s != self.teacher.seed]
        if self.strict:
            steps = self.strict_steps or self.teacher.steps
            plans.append(replace(self.teacher, name="teacher-llm-strict", pool="train", steps=steps))
        return plans


# ----------------------------------------------------------------------------------- teachers
def _data_spec(cfg: HeadlineConfig, plan: TeacherPlan):
    from flowdistill.teacher.train import DataSpec

    return DataSpec(cfg.dataset, cfg.data_dir, None, None, cfg.train_ratio, pool=plan.pool,
                    extra=tuple(plan.extra))


def _check_same(meta: dict[str, Any], cfg: HeadlineConfig, plan: TeacherPlan, folder: Path) -> None:
    want = {"layers": plan.layers, "pool": plan.pool, "extra": list(plan.extra),
            "dataset": cfg.dataset, "train_ratio": cfg.train_ratio, "seed": plan.seed}
    have = {"layers": meta["teacher"].get("layers"), "pool": meta["data"].get("pool", "train"),
            "extra": list(meta["data"].get("extra", [])), "dataset": meta["data"].get("dataset"),
            "train_ratio": meta["data"].get("train_ratio"),
            "seed": meta.get("train", {}).get("seed", plan.seed)}
    diff = [k for k in want if str(want[k]) != str(have[k])]
    if diff:
        raise DataError(folder, f"holds a teacher made with other settings ({', '.join(diff)}: "
                        f"{[have[k] for k in diff]} vs {[want[k] for k in diff]}); use another "
                        "--out or delete it")


def ensure_teacher(cfg: HeadlineConfig, plan: TeacherPlan) -> dict[str, Any]:
    """Train (or resume, or reuse) one teacher and write its teacher file; returns its facts."""
    import torch

    from flowdistill.teacher.model import TeacherConfig
    from flowdistill.teacher.train import (
        CONFIG_NAME,
        load_teacher,
        predict_to_file,
        train_config,
        train_teacher,
    )

    folder = cfg.out / plan.name
    meta_path = folder / CONFIG_NAME
    trained = False
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        _check_same(meta, cfg, plan, folder)
        want_epochs = math.ceil(plan.steps / max(1, min(plan.val_every, plan.steps)))
        trained = meta.get("fit", {}).get("epochs_run", 0) >= want_epochs
    if not trained:
        spec = _data_spec(cfg, plan)
        tcfg = train_config(plan.steps, plan.val_every, plan.batch_size, plan.lr, plan.val_batches,
                            seed=plan.seed, device=cfg.device, progress=cfg.progress)
        tc = TeacherConfig(layers=plan.layers, layout="city")
        train_teacher(spec, tc, tcfg, folder)
    meta = json.loads(meta_path.read_text())
    file = folder / "teacher.npz"
    predict_seconds = meta.get("predict_seconds")
    if not file.exists():
        model, windows, meta = load_teacher(folder, cfg.data_dir)
        own = getattr(windows, "target", windows)
        ids = np.unique(np.concatenate([own.ids(s) for s in ("train", "val", "test")]))
        t0 = time.perf_counter()
        predict_to_file(model, windows, file, ids=ids, batch_size=64, device=cfg.device,
                        progress=cfg.progress, tag=f"{folder.resolve()}|headline",
                        info={"seed": plan.seed, "model_dir": str(folder), "splits": "train,val,test",
                              "trained_on": meta.get("data_description", "")})
        predict_seconds = time.perf_counter() - t0
        meta["predict_seconds"] = predict_seconds
        meta["predict_threads"] = torch.get_num_threads()
        atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
    scores = _file_test(cfg, file)
    fit = meta.get("fit", {})
    threads = int(meta.get("threads", 1))
    seconds = float(fit.get("seconds", 0.0)) + float(meta.get("load_seconds", 0.0))
    cpu_s = seconds * threads + float(predict_seconds or 0.0) * int(meta.get("predict_threads", 1))
    return {
        "kind": "llm",
        "name": plan.name,
        "seed": plan.seed,
        "backbone": meta["teacher"]["backbone"],
        "layers": meta["teacher"]["layers"],
        "train_steps": plan.steps,
        "batch_size": plan.batch_size,
        "lr": plan.lr,
        "device": meta.get("train", {}).get("device", cfg.device),
        "threads": threads,
        "cpu_hours": round(cpu_s / 3600.0, 3),
        "fit_seconds": round(seconds, 1),
        "predict_seconds": round(float(predict_seconds or 0.0), 1),
        "best_val_mae": fit.get("best_val_mae"),
        "trained_on": meta.get("data_description", ""),
        "train_windows": meta.get("windows", {}).get("windows", {}).get("train"),
        "test": {"mae": scores["mae"], "rmse": scores["rmse"]},
        "pre_query": meta["teacher"].get("pre_query", "shared"),
        "file": str(file),
    }


@functools.lru_cache(maxsize=2)
def _student_windows(dataset: str, data_dir: str | None, train_ratio: float):
    """The student's windows, loaded once for every teacher file the headline scores."""
    from flowdistill.teacher.train import DataSpec

    return DataSpec(dataset, data_dir, None, None, train_ratio).windows()


def _file_test(cfg: HeadlineConfig, file: Path) -> dict[str, float]:
    """A teacher file's MAE/RMSE on the student's test windows."""
    from flowdistill.teacher.file import TeacherPredictions
    from flowdistill.teacher.train import file_metrics

    own = _student_windows(cfg.dataset, cfg.data_dir, cfg.train_ratio)
    m = file_metrics(TeacherPredictions.load(file), own, "test")
    return {"mae": m["mae"], "rmse": m["rmse"]}


def ensure_ensemble(cfg: HeadlineConfig, llm_file: str) -> dict[str, Any]:
    """STID fitted on the wide teacher's target slots (seed 0), and the LLM+STID average."""
    from flowdistill.engine.trainer import TrainConfig
    from flowdistill.experiments.runs import RunSpec
    from flowdistill.teacher.file import TeacherPredictions

    stid_dir = cfg.out / "teacher-stid-wide"
    stid_file = stid_dir / "teacher.npz"
    wide_ratio = 0.8  # train_end = validation start (validation and test are 10 % each)
    if not (stid_dir / "metrics.json").exists():
        spec = RunSpec(model="stid", dataset=cfg.dataset, data_dir=cfg.data_dir,
                       train_ratio=wide_ratio, seed=0, save_teacher=str(stid_file),
                       train=TrainConfig(max_epochs=cfg.epochs, patience=cfg.patience,
                                         device=cfg.device, progress=False))
        run(spec, stid_dir)
    stid = json.loads((stid_dir / "metrics.json").read_text())
    ens_file = cfg.out / "teacher-ensemble" / "teacher.npz"
    if not ens_file.exists():
        members = [TeacherPredictions.load(llm_file), TeacherPredictions.load(stid_file)]
        members[1].meta.setdefault("trained_on", f"{cfg.dataset}: every slot before validation")
        TeacherPredictions.mean_of(members).save(ens_file)
    return {
        "kind": "ensemble",
        "name": "teacher-ensemble",
        "members": ["teacher-llm", "teacher-stid-wide"],
        "trained_on": f"LLM teacher's data; STID on {cfg.dataset}: every slot before validation",
        "test": _file_test(cfg, ens_file),
        "stid_wide": {"test_mae": stid["test"]["mae"], "test_rmse": stid["test"]["rmse"],
                      "epochs": stid["fit"]["epochs_run"], "seconds": stid["fit"]["seconds"]},
        "file": str(ens_file),
    }


def ensure_seed_mean(cfg: HeadlineConfig, seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """The window-by-window mean of the wide LLM teacher's seeds (only LLM forecasts in it)."""
    from flowdistill.teacher.file import TeacherPredictions

    file = cfg.out / "teacher-llm-mean" / "teacher.npz"
    members = [t["file"] for t in seeds]
    if file.exists():
        have = TeacherPredictions.load(file).meta.get("member_files")
        if have is not None and list(have) != members:
            raise DataError(file, "averages other teacher files; delete it to rebuild")
    else:
        seeds_txt = ",".join(str(t["seed"]) for t in seeds)
        TeacherPredictions.mean_of([TeacherPredictions.load(f) for f in members],
                                   model=f"llm-teacher-seeds({seeds_txt})",
                                   member_files=members).save(file)
    return {
        "kind": "llm-seed-mean",
        "name": "teacher-llm-mean",
        "members": [t["name"] for t in seeds],
        "seeds": [t["seed"] for t in seeds],
        "trained_on": seeds[0]["trained_on"],
        "cpu_hours": round(sum(t["cpu_hours"] for t in seeds), 3),
        "test": _file_test(cfg, file),
        "file": str(file),
    }


def _other_seed(name: str) -> bool:
    """A wide teacher trained with another seed (named teacher-llm-s<seed>)."""
    return re.fullmatch(r"teacher-llm-s\d+", name) is not None


# ----------------------------------------------------------------------------------- runs
def _bench(cfg: HeadlineConfig, teacher_file: str | None) -> BenchConfig:
    return BenchConfig(out=cfg.out, dataset=cfg.dataset, data_dir=cfg.data_dir,
                       models=("flowdistill", "stid", "ha"), seeds=cfg.seeds,
                       ratios=(cfg.train_ratio,), epochs=cfg.epochs, patience=cfg.patience,
                       device=cfg.device, teacher=teacher_file, progress=False)


def _no_teacher(cache: RunCache, seed: int) -> dict[str, Any]:
    distill = DistillConfig().without_teacher()
    key = RunKey("flowdistill", cache.cfg.ratios[0], seed, variant="flowdistill-no-teacher",
                 distill={k: v for k, v in asdict(distill).items()})
    return cache.get(key)


def run_headline(cfg: HeadlineConfig, log: Any = print) -> dict[str, Any]:
    """Everything the headline table needs, trained or reused; writes the JSON and the doc."""
    if cfg.controls_only:
        cache = RunCache(_bench(cfg, None))
        done = []
        for seed in cfg.seeds:
            for model in ("ha", "stid"):
                log(f"{model} s{seed}")
                done.append(cache.get(RunKey(model, cfg.train_ratio, seed)))
            log(f"flowdistill-no-teacher s{seed}")
            done.append(_no_teacher(cache, seed))
        return {"controls": [{"model": d["model"], "seed": d["config"]["run"]["seed"],
                              "mae": d["test"]["mae"]} for d in done]}
    teachers = {}
    for plan in cfg.plans():
        log(f"teacher {plan.name}: {plan.layers} layer(s), {plan.steps} steps, pool={plan.pool}, "
            f"extra={','.join(plan.extra) or '-'}")
        teachers[plan.name] = ensure_teacher(cfg, plan)
    wide = teachers["teacher-llm"]
    other_seeds = [t for n, t in teachers.items() if _other_seed(n)]
    if cfg.ensemble:
        log("teacher-ensemble: STID on the wide slots (seed 0) + the LLM teacher, averaged")
        teachers["teacher-ensemble"] = ensure_ensemble(cfg, wide["file"])
    seed_teachers = [wide, *other_seeds]
    if cfg.seed_mean and len(seed_teachers) > 1:
        log(f"teacher-llm-mean: the mean of the LLM teacher's seeds "
            f"{', '.join(str(t['seed']) for t in seed_teachers)}")
        teachers["teacher-llm-mean"] = ensure_seed_mean(cfg, seed_teachers)
    cache = RunCache(_bench(cfg, wide["file"]))
    rows: list[dict[str, Any]] = []

    def add(model: str, seed: int, result: dict[str, Any]) -> None:
        rows.append({"model": model, "seed": seed, "mae": result["test"]["mae"],
                     "rmse": result["test"]["rmse"], "val_mae": result.get("val", {}).get("mae"),
                     "epochs": result.get("fit", {}).get("epochs_run"),
                     "seconds": result.get("fit", {}).get("seconds")})

    r = cfg.train_ratio
    # one teacher (its own seed) serves every student seed; the other teacher seeds are scored only
    rows.append({"model": "teacher-llm", "seed": cfg.teacher.seed, **wide["test"],
                 "note": "serves every student seed"})
    rows += [{"model": "teacher-llm", "seed": t["seed"], **t["test"], "note": "scored only"}
             for t in other_seeds]
    for name in ("teacher-ensemble", "teacher-llm-mean"):
        if name in teachers:
            rows.append({"model": name, "seed": 0, **teachers[name]["test"],
                         "note": "serves every student seed"})
    if "teacher-llm-strict" in teachers:
        rows.append({"model": "teacher-llm-strict", "seed": cfg.teacher.seed,
                     **teachers["teacher-llm-strict"]["test"]})
    # the students of the other teachers: (row/variant name, the student seeds it runs, its runs)
    strict_seeds = cfg.seeds if cfg.strict_seeds is None else cfg.strict_seeds
    variants = [(student, seeds, RunCache(_bench(cfg, teachers[name]["file"])))
                for student, name, seeds in (("flowdistill-strict", "teacher-llm-strict",
                                              strict_seeds),
                                             ("flowdistill-ensemble", "teacher-ensemble", cfg.seeds),
                                             ("flowdistill-llm-mean", "teacher-llm-mean", cfg.seeds))
                if name in teachers]
    for seed in cfg.seeds:
        for model in ("ha", "stid"):
            log(f"{model} s{seed}")
            add(model, seed, cache.get(RunKey(model, r, seed)))
        log(f"flowdistill-no-teacher s{seed}")
        add("flowdistill-no-teacher", seed, _no_teacher(cache, seed))
        log(f"flowdistill s{seed}")
        res = cache.get(RunKey("flowdistill", r, seed))
        add("flowdistill", seed, res)
        for student, seeds, runs in variants:
            if seed in seeds:
                log(f"{student} s{seed}")
                add(student, seed, runs.get(RunKey("flowdistill", r, seed, variant=student)))
    summary = summarise(rows)
    doc = {
        "experiment": "headline",
        "quick": False,
        "dataset": cfg.dataset,
        "train_ratio": cfg.train_ratio,
        "seeds": list(cfg.seeds),
        "epochs": cfg.epochs,
        "patience": cfg.patience,
        "teacher": wide,
        "strict_teacher": teachers.get("teacher-llm-strict"),
        "other_teacher_seeds": other_seeds,
        "ensemble_teacher": teachers.get("teacher-ensemble"),
        "llm_mean_teacher": teachers.get("teacher-llm-mean"),
        "student_trained_on": f"{cfg.dataset}: the first {100 * r:g} % of slots (training windows)",
        "rows": rows,
        "summary": summary,
        "verdict": verdict(summary),
        **provenance(),
    }
    cfg.results_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cfg.results_dir / "headline.json", json.dumps(doc, indent=2) + "\n")
    write_section(cfg.results_doc, render(doc))
    return doc


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± sample std over seeds, per model, in table order."""
    order = ["teacher-llm", "teacher-llm-mean", "teacher-llm-strict", "teacher-ensemble", "ha",
             "stid", "flowdistill-no-teacher", "flowdistill", "flowdistill-llm-mean",
             "flowdistill-strict", "flowdistill-ensemble"]
    out = []
    for m in order:
        rr = [x for x in rows if x["model"] == m]
        if not rr:
            continue
        mae, mae_sd = mean_std([x["mae"] for x in rr])
        rmse, rmse_sd = mean_std([x["rmse"] for x in rr])
        out.append({"model": m, "n": len({x["seed"] for x in rr}), "mae": mae, "mae_std": mae_sd,
                    "rmse": rmse, "rmse_std": rmse_sd})
    return out


def verdict(summary: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's bar: a student ≥ 2 % below STID and below itself without a teacher."""
    by = {s["model"]: s for s in summary}
    out: dict[str, Any] = {}
    for student in ("flowdistill", "flowdistill-llm-mean", "flowdistill-strict",
                    "flowdistill-ensemble"):
        if student not in by or "stid" not in by:
            continue
        fd = by[student]["mae"]
        v: dict[str, Any] = {"vs_stid_pct": 100.0 * (by["stid"]["mae"] - fd) / by["stid"]["mae"]}
        if "flowdistill-no-teacher" in by:
            nt = by["flowdistill-no-teacher"]["mae"]
            v["vs_no_teacher_pct"] = 100.0 * (nt - fd) / nt
        v["student_wins"] = bool(v["vs_stid_pct"] >= 2.0 and v.get("vs_no_teacher_pct", 0.0) >= 2.0)
        if student == "flowdistill":
            out.update(v)
        else:
            out[student] = v
    if "teacher-llm" in by and "stid" in by:
        out["teacher_at_or_below_stid"] = bool(by["teacher-llm"]["mae"] <= by["stid"]["mae"])
    return out


LABELS = {
    "teacher-llm": "LLM teacher (wide: taxi slots before validation + Citi Bike)",
    "teacher-llm-strict": "LLM teacher (strict: student's taxi slots + Citi Bike)",
    "ha": "historical average",
    "stid": "STID",
    "flowdistill-no-teacher": "FlowDistill student, no teacher",
    "flowdistill": "FlowDistill student ← wide LLM teacher",
    "flowdistill-strict": "FlowDistill student ← strict LLM teacher",
    "teacher-ensemble": "ensemble teacher: mean of the wide LLM teacher and STID on the same slots",
    "flowdistill-ensemble": "FlowDistill student ← ensemble teacher",
    "teacher-llm-mean": "LLM teacher, mean of its seeds (wide; LLM forecasts only)",
    "flowdistill-llm-mean": "FlowDistill student ← mean of the LLM teacher's seeds",
}


def render(doc: dict[str, Any]) -> str:
    """The Markdown section of docs/results.md (every number read from the JSON)."""
    lines = [
        "## Headline: FlowDistill vs STID at 10 % (full protocol)",
        "",
        f"Generated by `flowdistill bench headline` from `docs/results/headline.json` "
        f"(git {doc['git']}, {doc['created']}, {doc['machine']}). Dataset **{doc['dataset']}** "
        f"(2019; test = last 10 % of slots, validation = the 10 % before), training ratio "
        f"**{100 * doc['train_ratio']:g} %**, seeds {', '.join(map(str, doc['seeds']))}, up to "
        f"{doc['epochs']} epochs with early stopping (patience {doc['patience']}) on validation MAE.",
        "",
        "| model | seeds | test MAE (mean ± std) | test RMSE (mean ± std) |",
        "|---|---:|---:|---:|",
    ]
    for s in doc["summary"]:
        lines.append(f"| {LABELS.get(s['model'], s['model'])} | {s['n']} | {s['mae']:.3f} ± "
                     f"{s['mae_std']:.3f} | {s['rmse']:.3f} ± {s['rmse_std']:.3f} |")
    lines += ["", "What each model trained on:", "",
              f"- students, STID, HA: {doc['student_trained_on']}."]
    for key in ("teacher", "strict_teacher"):
        tt = doc.get(key)
        if not tt:
            continue
        lines.append(
            f"- {tt['name']}: {tt['trained_on']} ({tt['train_windows']} training windows); "
            f"{tt['backbone']} cut to {tt['layers']} layer(s), LoRA, {tt['train_steps']} steps of "
            f"{tt['batch_size']} windows on {tt['device']} ({tt['threads']} thread(s)), "
            f"{tt['cpu_hours']:.2f} CPU-hours including its forecasts"
            + ("; one teacher (seed 0) serves every student seed." if key == "teacher" else "."))
        if key == "teacher" and doc.get("other_teacher_seeds"):
            more = doc["other_teacher_seeds"]
            seeds = ", ".join(str(t["seed"]) for t in more)
            hours = ", ".join(f"{t['cpu_hours']:.2f}" for t in more)
            lines.append(
                f"- teacher-llm seeds {seeds}: the same recipe with another seed ({hours} "
                "CPU-hours), scored on the test windows for the teacher's mean; no student uses "
                "them.")
    lm = doc.get("llm_mean_teacher")
    if lm:
        lines.append(f"- teacher-llm-mean: the forecasts of the wide LLM teacher's seeds "
                     f"{', '.join(map(str, lm['seeds']))} averaged window by window "
                     f"({lm['cpu_hours']:.2f} CPU-hours for its {len(lm['seeds'])} fine-tunes "
                     "and their forecasts).")
    ens = doc.get("ensemble_teacher")
    if ens:
        sw = ens["stid_wide"]
        lines.append(f"- teacher-ensemble: the wide LLM teacher's forecasts averaged with STID's, "
                     f"STID fitted (seed 0) on {doc['dataset']}'s slots before validation "
                     f"(its own test MAE {sw['test_mae']:.3f}, {sw['epochs']} epochs).")
    v = doc.get("verdict", {})
    lines.append("")
    others = ("flowdistill-llm-mean", "flowdistill-strict", "flowdistill-ensemble")
    for student, vv in [("flowdistill", v)] + [(k, v[k]) for k in others if k in v]:
        if "vs_stid_pct" not in vv:
            continue
        lines.append(
            f"- {LABELS.get(student, student)}: {vv['vs_stid_pct']:+.1f} % below STID"
            + (f", {vv['vs_no_teacher_pct']:+.1f} % below the student without a teacher"
               if "vs_no_teacher_pct" in vv else "")
            + f" (mean test MAE; the bar is 2 % on both): "
              f"**{'met' if vv['student_wins'] else 'not met'}**.")
    if "teacher_at_or_below_stid" in v:
        lines.append(f"- the wide LLM teacher's test MAE is at or below STID's (mean): "
                     f"**{'yes' if v['teacher_at_or_below_stid'] else 'no'}**.")
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace the headline section of ``path`` (between markers), or put it first."""
    path = Path(path)
    text = path.read_text() if path.exists() else "# Results\n"
    block = f"{START}\n{section}{END}\n"
    if START in text and END in text:
        a, b = text.index(START), text.index(END) + len(END)
        text = text[:a] + block.rstrip("\n") + text[b:]
    else:
        head, sep, rest = text.partition("\n")
        text = f"{head}\n\n{block}{rest}" if sep else f"{text}\n\n{block}"
    atomic_write_text(path, text)


__all__ = ["HeadlineConfig", "TeacherPlan", "run_headline", "render", "summarise", "verdict",
           "ratio_tag", "MODELS"]

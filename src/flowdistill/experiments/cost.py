"""The cost table (issue 9, item 4): what each model costs to train and to run, on this CPU, in one run.

For every model — the FlowDistill student, the baselines, the trivial references and, when a teacher
model folder is given, the LLM teacher — one process measures:

- parameters (trainable; the LLM teacher also reports its frozen backbone's);
- training time per epoch, *estimated*: a few optimiser steps at the engine's batch size are timed
  (after one warm-up step) and their median is multiplied by the number of training batches of one
  epoch at the chosen ratio, plus one validation pass (a timed validation batch scaled to every
  validation window). Each step includes the model's own objective (the student's distillation loss
  and the KD baselines' losses, with a stand-in teacher row of the same shape);
- inference latency per window at batch 1 and at batch 64 (median of repeated forward passes,
  no_grad, eval mode, inputs already in tensors, divided by the batch size);
- peak memory: of one inference forward at batch 64 and of one training step (forward + backward +
  optimiser step), measured as the peak of the running sum of torch's allocations and frees
  (`scale.forward_peak_bytes`); weights and inputs that exist before the pass are not counted.

Nothing is written to the run cache and no model is trained to convergence: weights do not change
these costs. The load average before and after is recorded, because on a shared machine it matters
more than any other setting.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from flowdistill.data.dataset import atomic_write_text
from flowdistill.data.errors import DataError
from flowdistill.data.windows import WindowAligned, WindowConfig, Windows
from flowdistill.engine.trainer import SupervisedObjective, TrainConfig
from flowdistill.experiments.common import (
    cpu_sample,
    dataset_slug,
    machine_description,
    machine_share,
    markdown_table,
    other_cores,
)
from flowdistill.experiments.runs import KD_BASELINES, RunSpec, cached_dataset, neighbours_for
from flowdistill.experiments.runs import provenance as run_provenance
from flowdistill.experiments.scale import forward_peak_bytes
from flowdistill.losses.distill import DistillConfig, DistillObjective
from flowdistill.models.base import ModelContext, as_output, build_model, count_parameters

COST_MODELS = ("flowdistill", "stid", "stwa", "bigst", "stsgcn", "astgcn", "stmlp", "easyst", "ha",
               "last-value")


@dataclass
class CostConfig:
    """What to measure; the CLI fills it, tests use tiny models and few repeats."""

    dataset: str = "nyc-taxi-manhattan"
    data_dir: str | None = None
    start: str | None = None
    end: str | None = None
    ratio: float = 0.1
    models: tuple[str, ...] = COST_MODELS
    timed_steps: int = 3
    latency_repeats: int = 5
    teacher_model_dir: Path | None = None
    # The LLM teacher's share of the run: skipped parts are said so in the table, never guessed.
    teacher_budget_s: float = 300.0
    results: Path | None = Path("docs/results")
    model_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: Callable[[str], None] = print


def _forward(model: nn.Module, batch: dict[str, torch.Tensor]) -> Any:
    if "index" in inspect.signature(model.forward).parameters:
        return as_output(model(batch["x"], batch["tod"], batch["dow"], index=batch["index"]))
    return as_output(model(batch["x"], batch["tod"], batch["dow"]))


def _median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _objective_and_extras(
    name: str, windows: Windows, threshold: float | None
) -> tuple[Any, dict[str, WindowAligned]]:
    """The model's own training objective; a distilling model gets the targets as a stand-in
    teacher row (same shape, same arithmetic, so the same cost as a real teacher file)."""
    train_ids = windows.ids("train")
    stand_in = {"teacher": WindowAligned(train_ids, windows.targets(train_ids), "teacher")}
    if name == "flowdistill":
        cfg = DistillConfig()
        return DistillObjective(cfg, neighbours_for(windows.dataset, cfg.k_r)), stand_in
    if name in KD_BASELINES:
        return importlib.import_module(KD_BASELINES[name]).make_objective(threshold), stand_in
    return SupervisedObjective(threshold), {}


def measure_model(
    name: str,
    model: nn.Module,
    windows: Windows,
    objective: Any,
    extras: dict[str, WindowAligned],
    batch_size: int,
    eval_batch_size: int,
    timed_steps: int,
    latency_repeats: int,
    test_windows: Windows | None = None,
    budget_s: float | None = None,
) -> dict[str, Any]:
    """One row of the cost table (see the module docstring for what each number is)."""
    test_windows = test_windows or windows
    t_start = time.perf_counter()
    row: dict[str, Any] = {"model": name, "params": count_parameters(model),
                           "params_total": int(sum(p.numel() for p in model.parameters())),
                           "notes": []}

    def over_budget() -> bool:
        return budget_s is not None and time.perf_counter() - t_start > budget_s

    train_ids = windows.ids("train")
    val_ids = windows.ids("val")
    row["train_windows"] = int(len(train_ids))
    row["train_batches_per_epoch"] = math.ceil(len(train_ids) / batch_size)
    row["batch_size"] = batch_size
    if hasattr(model, "fit_statistics"):
        b = windows.bounds
        t0 = time.perf_counter()
        model.fit_statistics(windows.scaled[: b.train_end], windows.tod[: b.train_end],
                             windows.dow[: b.train_end])
        row["fit_statistics_s"] = time.perf_counter() - t0
    # ------------------------------------------------------------------ training
    if row["params"] == 0:
        row["notes"].append("no gradient training" + (" (statistics of the training slots)"
                                                       if hasattr(model, "fit_statistics")
                                                       else ": nothing to learn"))
        row.update(train_step_s=None, train_epoch_s=None, peak_train_mib=None)
    else:
        data = windows.torch_dataset("train", extras)
        order = np.random.default_rng(0).permutation(train_ids)
        batches = [order[i * batch_size:(i + 1) * batch_size] for i in range(timed_steps + 1)]
        batches = [b for b in batches if len(b)]
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=1e-4)
        model.train()

        def step(ids: np.ndarray) -> None:
            batch = data.get_batch(ids)
            loss, _ = objective(_forward(model, batch), batch, windows.scaler)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        step(batches[0])  # warm-up: lazy buffers, optimiser state
        times = []
        for ids in batches[1:]:
            t0 = time.perf_counter()
            step(ids)
            times.append(time.perf_counter() - t0)
            if over_budget():
                row["notes"].append(f"training timed on {len(times)} step(s) (time budget)")
                break
        row["train_step_s"] = statistics.median(times) if times else None
        row["timed_steps"] = len(times)
        row["peak_train_mib"] = forward_peak_bytes(lambda: step(batches[-1]),
                                                   torch.device("cpu")) / 2**20
        model.eval()
        vdata = windows.torch_dataset("val")
        vids = val_ids[:eval_batch_size]
        with torch.no_grad():
            vbatch = vdata.get_batch(vids)
            _forward(model, vbatch)
            val_batch_s = _median_seconds(lambda: _forward(model, vbatch), 1)
        row["val_pass_s"] = val_batch_s * len(val_ids) / max(len(vids), 1)
        if row["train_step_s"] is not None:
            row["train_epoch_s"] = (row["train_step_s"] * row["train_batches_per_epoch"]
                                    + row["val_pass_s"])
    # ------------------------------------------------------------------ inference
    model.eval()
    test = test_windows.torch_dataset("test")
    test_ids = test_windows.ids("test")
    for bs in (1, 64):
        key = f"latency_b{bs}_ms"
        if over_budget():
            row[key] = None
            row["notes"].append(f"batch-{bs} latency not measured (time budget)")
            continue
        batch = test.get_batch(np.resize(test_ids, bs))
        with torch.no_grad():
            t0 = time.perf_counter()
            _forward(model, batch)  # warm-up
            first = time.perf_counter() - t0
            reps = latency_repeats if budget_s is None else max(
                1, min(latency_repeats, int((budget_s / 4) / max(first, 1e-6))))
            row[key] = 1000 * _median_seconds(lambda b=batch: _forward(model, b), reps) / bs
        if bs == 64:
            if over_budget():
                row["peak_infer_mib_b64"] = None
            else:
                row["peak_infer_mib_b64"] = forward_peak_bytes(
                    lambda b=batch: _forward(model, b), torch.device("cpu")) / 2**20
    row["seconds_measuring"] = time.perf_counter() - t_start
    return row


def _llm_teacher_row(cfg: CostConfig, timed_steps: int) -> tuple[dict[str, Any] | None, str]:
    """The LLM teacher's row within its time budget, or None and why."""
    from flowdistill.teacher.sources import SourceScaledMAE, TeacherWindows
    from flowdistill.teacher.train import load_teacher

    t0 = time.perf_counter()
    model, windows, meta = load_teacher(cfg.teacher_model_dir, cfg.data_dir)
    load_s = time.perf_counter() - t0
    tc = meta.get("train", {})
    threshold = tc.get("mask_threshold", 0.0)
    if isinstance(windows, TeacherWindows):
        objective, extras = SourceScaledMAE(windows, threshold), windows.source_extra()
    else:
        objective, extras = SupervisedObjective(threshold), {}
    own = getattr(windows, "target", windows)
    row = measure_model(
        "llm-teacher", model, windows, objective, extras, int(tc.get("batch_size", 16)),
        int(tc.get("eval_batch_size", 32)), timed_steps, cfg.latency_repeats, test_windows=own,
        budget_s=max(cfg.teacher_budget_s - load_s, 1.0))
    t = meta.get("teacher", {})
    row["load_s"] = load_s
    row["notes"].append(f"{t.get('backbone')} cut to {t.get('layers')} layer(s), LoRA; its own "
                        f"training batch ({row['batch_size']}), not 80; model "
                        f"folder {cfg.teacher_model_dir}; an epoch = its own training windows "
                        f"(pool {meta.get('data', {}).get('pool', 'train')}, incl. other sources)")
    return row, f"LLM teacher measured from {cfg.teacher_model_dir} ({load_s:.0f} s to load)"


def measure_costs(cfg: CostConfig) -> dict[str, Any]:
    """Every row, in this one process, then cost.json and cost.md under RESULTS/<dataset>/."""
    from flowdistill.models.base import available_models

    bad = [m for m in cfg.models if m not in available_models()]
    if bad:
        raise DataError("--models", f"unknown model(s) {bad}")
    if cfg.teacher_model_dir is not None and not Path(cfg.teacher_model_dir).is_dir():
        raise DataError(cfg.teacher_model_dir, "teacher model folder not found")
    load_before = os.getloadavg()
    cpu_before = cpu_sample()
    t_all = time.perf_counter()
    spec = RunSpec(model="stid", dataset=cfg.dataset, data_dir=cfg.data_dir, start=cfg.start,
                   end=cfg.end, train_ratio=cfg.ratio)
    windows = Windows(cached_dataset(spec), WindowConfig(train_ratio=cfg.ratio))
    ctx = ModelContext.from_windows(windows)
    tcfg = TrainConfig()
    rows = []
    for name in cfg.models:
        cfg.log(f"cost: {name}")
        torch.manual_seed(0)
        model = build_model(name, ctx, dict(cfg.model_options.get(name, {})))
        objective, extras = _objective_and_extras(name, windows, tcfg.mask_threshold)
        rows.append(measure_model(name, model, windows, objective, extras, tcfg.batch_size,
                                  tcfg.eval_batch_size, cfg.timed_steps, cfg.latency_repeats))
        del model
    teacher_note = ("LLM teacher not measured: no --teacher-model-dir was given")
    if cfg.teacher_model_dir is not None:
        cfg.log("cost: llm-teacher")
        try:
            row, teacher_note = _llm_teacher_row(cfg, cfg.timed_steps)
        except DataError:
            raise
        except Exception as exc:  # the small models' rows are worth keeping; say why it is missing
            row, teacher_note = None, f"LLM teacher row left out: {type(exc).__name__}: {exc}"
        if row is not None:
            rows.append(row)
    load_after = os.getloadavg()
    others = other_cores(cpu_before, cpu_sample())
    prov = run_provenance()
    doc = {
        "experiment": "cost",
        "title": "Cost of each model (parameters, training time, latency, memory)",
        "quick": False,
        "dataset": cfg.dataset,
        "ratio": cfg.ratio,
        "method": (f"one process, {torch.get_num_threads()} torch thread(s); training time per "
                   f"epoch estimated from {cfg.timed_steps} timed optimiser steps (median, after a "
                   f"warm-up) at batch {tcfg.batch_size} × the batches of one epoch at "
                   f"{100 * cfg.ratio:g}% training + one validation pass; latency = median of "
                   f"{cfg.latency_repeats} forward passes / batch size; peak memory = peak of "
                   "torch's running allocations during one pass (weights and inputs excluded)"),
        "teacher_note": teacher_note,
        "load_before": list(load_before),
        "load_after": list(load_after),
        "other_cores": others,
        "seconds": time.perf_counter() - t_all,
        "machine": machine_description(),
        "threads": torch.get_num_threads(),
        "created": prov["created"],
        "git": prov["git"],
        "provenance": prov,
        "rows": rows,
    }
    doc["markdown"] = render(doc)
    if cfg.results is not None:
        dest = Path(cfg.results) / dataset_slug(cfg.dataset)
        dest.mkdir(parents=True, exist_ok=True)
        atomic_write_text(dest / "cost.json", json.dumps(doc, indent=2, default=str) + "\n")
        atomic_write_text(dest / "cost.md", f"# {doc['title']}\n\n" + doc["markdown"])
        doc["paths"] = [str(dest / "cost.json"), str(dest / "cost.md")]
    return doc


def _f(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:,.{digits}f}"


def render(doc: dict[str, Any]) -> str:
    """The Markdown table and its notes (every number read from ``doc``)."""
    head = ["model", "parameters", "train s / epoch (est.)", "s / step", "ms / window, batch 1",
            "ms / window, batch 64", "peak MiB, inference b64", "peak MiB, train step"]
    rows = []
    for r in doc["rows"]:
        params = f"{r['params']:,}"
        if r["params_total"] != r["params"]:
            params += f" trainable ({r['params_total']:,} total)"
        rows.append([r["model"], params, _f(r.get("train_epoch_s"), 1),
                     _f(r.get("train_step_s"), 3), _f(r.get("latency_b1_ms"), 3),
                     _f(r.get("latency_b64_ms"), 3), _f(r.get("peak_infer_mib_b64"), 1),
                     _f(r.get("peak_train_mib"), 1)])
    lb, la = doc["load_before"], doc["load_after"]
    share = machine_share(doc.get("other_cores"))
    text = (f"Measured in one run on {doc['machine']} (git {doc['git']}, {doc['created']}); "
            f"1-minute load average {lb[0]:.1f} before and {la[0]:.1f} after ({share}). "
            f"{doc['method']}. Dataset "
            f"{doc['dataset']}; an epoch = the training windows at {100 * doc['ratio']:g}% "
            f"training ({doc['rows'][0]['train_windows'] if doc['rows'] else '?'} windows).\n\n")
    text += markdown_table(head, rows)
    notes = [f"- {r['model']}: {'; '.join(r['notes'])}" for r in doc["rows"] if r.get("notes")]
    notes.append(f"- teacher: {doc['teacher_note']}")
    return text + "\n" + "\n".join(notes) + "\n"

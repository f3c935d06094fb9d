"""Training-step time with glibc's default allocator against freed memory kept in the process.

    python benchmarks/bench_allocator.py [--data-dir ../shared/data] [--models astgcn,stwa,...]
        [--steps 6] [--rounds 2] [--json FILE]

Each (model, setting) runs in a fresh process, one torch thread, on the nyc-taxi-manhattan graph
(69 regions) with a batch of 80 random windows: forward, MAE, backward, Adam; ``llm-teacher-L``
is the LLM teacher with L blocks, one fine-tuning step on 16 real windows. The setting is the
environment variable ``FLOWDISTILL_KEEP_FREED_MEMORY`` (0 = glibc's defaults) read by
``flowdistill.engine.allocator.retain_freed_memory``, which the engine calls; the worker calls it the
same way. Reported: median seconds per step over the rounds, and minor page faults per step.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
MODELS = "astgcn,stwa,stsgcn,stmlp,stid,flowdistill"


def worker(model_name: str, data_dir: str, steps: int) -> dict[str, float]:
    import torch

    from flowdistill.data import load_dataset
    from flowdistill.engine.allocator import retain_freed_memory
    from flowdistill.models import ModelContext, build_model
    from flowdistill.models.base import as_output

    torch.set_num_threads(1)
    kept = retain_freed_memory()
    ds = load_dataset("nyc-taxi-manhattan", data_dir=data_dir)
    torch.manual_seed(0)
    if model_name.startswith("llm-teacher"):
        step = _teacher_step(ds, int(model_name.rsplit("-", 1)[-1]))
    else:
        ctx = ModelContext(num_regions=ds.num_regions, adjacency=ds.adjacency)
        model = build_model(model_name, ctx)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        x, y = torch.randn(80, 12, ds.num_regions, 2), torch.randn(80, 12, ds.num_regions, 2)
        t = torch.zeros(80, 12, dtype=torch.long)

        def step() -> None:
            opt.zero_grad()
            loss = (as_output(model(x, t, t)).pred - y).abs().mean()
            loss.backward()
            opt.step()

    for _ in range(2):  # warm-up: the first steps allocate everything once
        step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - t0) / steps
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps
    return {"kept": kept, "step_s": seconds, "faults": faults}


def _teacher_step(ds: object, layers: int) -> object:
    """One fine-tuning step of the LLM teacher (SmolLM2 cut to ``layers`` blocks, city prompts,
    16 real training windows at 10 %), as `teacher train` runs it: forward, MAE, backward, AdamW."""
    import torch
    from bench_teacher import untrained_teacher  # this folder is on sys.path when run as a script

    from flowdistill.data import WindowConfig, Windows
    from flowdistill.teacher.model import TeacherConfig

    windows = Windows(ds, WindowConfig(train_ratio=0.1))
    model = untrained_teacher(windows, TeacherConfig(layers=layers))
    model.train()
    data = windows.torch_dataset("train")
    b = data.get_batch(data.ids[:16])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)

    def step() -> None:
        opt.zero_grad()
        pred = windows.scaler.inverse(model(b["x"], b["tod"], b["dow"], index=b["index"]))
        (pred - b["y"]).abs().mean().backward()
        opt.step()

    return step


def run(model: str, keep: bool, data_dir: str, steps: int) -> dict[str, float]:
    env = dict(os.environ, FLOWDISTILL_KEEP_FREED_MEMORY="1" if keep else "0")
    out = subprocess.run([sys.executable, __file__, "--worker", model, "--data-dir", data_dir,
                          "--steps", str(steps)], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--models", default=MODELS)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", default=None)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.data_dir, args.steps)))
        return
    rows = []
    for model in args.models.split(","):
        got: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        for _ in range(args.rounds):  # alternate, so a change in the machine's load hits both
            for keep in (False, True):
                got[keep].append(run(model, keep, args.data_dir, args.steps))
        row = {"model": model}
        for keep, tag in ((False, "default"), (True, "kept")):
            row[f"{tag}_step_s"] = statistics.median(r["step_s"] for r in got[keep])
            row[f"{tag}_faults"] = statistics.median(r["faults"] for r in got[keep])
        row["speedup"] = row["default_step_s"] / row["kept_step_s"]
        rows.append(row)
    table = Table(title="training step, 1 thread, batch 80 (LLM teacher: 16), median over rounds")
    for col in ("model", "s / step, default", "s / step, kept", "speed-up",
                "faults / step, default", "faults / step, kept"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        table.add_row(r["model"], f"{r['default_step_s']:.3f}", f"{r['kept_step_s']:.3f}",
                      f"{r['speedup']:.2f}×", f"{r['default_faults']:,.0f}",
                      f"{r['kept_faults']:,.0f}")
    Console().print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Benchmark of the LLM teacher on real data: forward / train-step speed per layout and depth, and
the results of a finished real run (fine-tune time, inference time, test MAE/RMSE beside HA).

    python benchmarks/bench_teacher.py --data-dir ../shared/data --layers 1 2 --run /work/runs/teacher-nyc-r10

CPU timings are noisy when other jobs share the cores; the table says what was measured, not more.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from flowdistill.data.windows import Windows
from flowdistill.engine.trainer import TrainConfig, Trainer
from flowdistill.models import ModelContext, build_model
from flowdistill.teacher.backbone import load_causal_lm, load_tokenizer, prepare_decoder
from flowdistill.teacher.file import TeacherPredictions
from flowdistill.teacher.model import TeacherConfig
from flowdistill.teacher.train import DataSpec, file_metrics, teacher_for


def untrained_teacher(windows: Windows, cfg: TeacherConfig) -> torch.nn.Module:
    """The LLM teacher as `teacher train` builds it (SmolLM2 cut to ``cfg.layers``), untrained."""
    tok = load_tokenizer()
    decoder, _ = prepare_decoder(load_causal_lm(), tok, cfg.layers)
    return teacher_for(windows, cfg, decoder=decoder, tokenizer=tok)


def speed(windows: Windows, layers: int, layout: str, batch: int, repeats: int,
          cache_prefix: bool = True) -> dict:
    """Seconds per inference batch and per training step (forward + backward + AdamW)."""
    model = untrained_teacher(windows, TeacherConfig(layers=layers, layout=layout,
                                                     cache_prefix=cache_prefix))
    data = windows.torch_dataset("train")
    b = data.get_batch(data.ids[:batch])
    tokens = model.tokenize(b["index"].tolist()).ids.shape
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    infer, train = [], []
    for _ in range(repeats + 1):  # first round warms up
        model.eval()
        t0 = time.perf_counter()
        with torch.no_grad():
            model(b["x"], b["tod"], b["dow"], index=b["index"])
        infer.append(time.perf_counter() - t0)
        model.train()
        t0 = time.perf_counter()
        pred = windows.scaler.inverse(model(b["x"], b["tod"], b["dow"], index=b["index"]))
        (pred - b["y"]).abs().mean().backward()
        opt.step()
        opt.zero_grad()
        train.append(time.perf_counter() - t0)
    prefix = model.prefix_ids().shape[1] if model.uses_prefix_cache else 0
    return {
        "layers": layers,
        "layout": layout,
        "cached prefix": f"{prefix} tokens" if prefix else "no",
        "prompts x tokens": f"{tokens[0]} x {tokens[1]}",
        "infer s/batch": float(np.median(infer[1:])),
        "windows/s": batch / float(np.median(infer[1:])),
        "train s/step": float(np.median(train[1:])),
    }


def historical_average(windows: Windows) -> dict:
    model = build_model("ha", ModelContext.from_windows(windows))
    trainer = Trainer(TrainConfig(progress=False))
    trainer.fit(model, windows)
    return trainer.evaluate(model, windows, "test")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data-dir", default=str(Path(__file__).parents[1] / ".." / "shared" / "data"))
    ap.add_argument("--train-ratio", type=float, default=0.1)
    ap.add_argument("--layers", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--layouts", nargs="*", default=["city"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--prefix-cache", choices=["both", "on", "off"], default="both",
                    help="Time with the instruction prefix's keys/values cached, recomputed, or both.")
    ap.add_argument("--run", type=Path, default=None,
                    help="A teacher model folder (teacher.json + teacher.npz) to report.")
    args = ap.parse_args()
    torch.manual_seed(0)
    windows = DataSpec(data_dir=args.data_dir, train_ratio=args.train_ratio).windows()
    console = Console()

    if args.layers:
        table = Table(title=f"teacher speed, batch of {args.batch} windows, "
                            f"{torch.get_num_threads()} threads")
        caches = {"both": [True, False], "on": [True], "off": [False]}[args.prefix_cache]
        rows = [speed(windows, n, lay, args.batch, args.repeats, c)
                for lay in args.layouts for n in args.layers for c in caches]
        for col in rows[0]:
            table.add_column(col, justify="right")
        for r in rows:
            table.add_row(*[f"{v:.2f}" if isinstance(v, float) else str(v) for v in r.values()])
        console.print(table)

    if args.run is not None:
        folder = args.run if (args.run / "teacher.json").exists() else args.run / "model"
        meta = json.loads((folder / "teacher.json").read_text())
        tp = TeacherPredictions.load(args.run / "teacher.npz")
        teacher = file_metrics(tp, windows, "test")
        ha = historical_average(windows)
        fit = meta.get("fit", {})
        table = Table(title=f"real run {args.run}")
        for col in ("model", "test MAE", "test RMSE", "fine-tune s", "inference s", "windows"):
            table.add_column(col, justify="right")
        table.add_row(
            f"LLM teacher ({meta['teacher']['layers']} layers, {meta['teacher']['layout']})",
            f"{teacher['mae']:.2f}", f"{teacher['rmse']:.2f}", f"{fit.get('seconds', 0):.0f}",
            f"{meta.get('predict_seconds', tp.meta.get('predict_seconds_this_run', float('nan'))):.0f}",
            str(len(tp.window_ids)),
        )
        table.add_row("historical average", f"{ha['mae']:.2f}", f"{ha['rmse']:.2f}", "-", "-", "-")
        console.print(table)


if __name__ == "__main__":
    main()

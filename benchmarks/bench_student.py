"""Student speed and memory on nyc-taxi-manhattan 2019: inference for 1×…5× the test set (paper
Fig. 10), the ratio of measured latency to the FLOP count at this machine's matmul rate, and training
time per epoch and to early stop at 10 %.

    python benchmarks/bench_student.py [--data-dir ../shared/data] [--teacher FILE] [--skip-train]

Each inference size runs in a fresh process so its peak resident memory (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def matmul_gflops(n: int = 1024, reps: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def _infer(args: tuple[str, int, int, mp.Queue]) -> None:
    data_dir, times, batch, queue = args
    from flowdistill.data import WindowConfig, Windows, load_dataset
    from flowdistill.models import ModelContext, build_model

    torch.manual_seed(0)
    ds = load_dataset("nyc-taxi-manhattan", data_dir=data_dir)
    w = Windows(ds, WindowConfig(train_ratio=0.1))
    model = build_model("flowdistill", ModelContext.from_windows(w)).eval()
    ids = np.tile(w.ids("test"), times)
    data = w.torch_dataset("test")
    batches = [data.get_batch(ids[i : i + batch]) for i in range(0, len(ids), batch)]
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.no_grad():
        model(batches[0]["x"], batches[0]["tod"], batches[0]["dow"])  # warm-up
        t0 = time.perf_counter()
        for b in batches:
            model(b["x"], b["tod"], b["dow"])
        seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put(
        {
            "windows": len(ids),
            "seconds": seconds,
            "peak_rss_mb": peak / 1024,
            "forward_rss_growth_mb": (peak - base_rss) / 1024,
            "flops": model.flops_per_window() * len(ids),
        }
    )


def inference_rows(data_dir: str, batch: int) -> list[dict]:
    ctx = mp.get_context("spawn")
    rows = []
    for times in range(1, 6):
        q = ctx.Queue()
        p = ctx.Process(target=_infer, args=((data_dir, times, batch, q),))
        p.start()
        rows.append({"size": f"{times}x", **q.get()})
        p.join()
    return rows


def training_row(data_dir: str, teacher: str | None) -> dict:
    from flowdistill.engine import TrainConfig
    from flowdistill.experiments.runs import RunSpec, run

    with tempfile.TemporaryDirectory() as tmp:
        if teacher is None:
            teacher = str(Path(tmp) / "ha-teacher.npz")
            run(RunSpec(model="ha", data_dir=data_dir, save_teacher=teacher))
        spec = RunSpec(data_dir=data_dir, teacher=teacher, train=TrainConfig(progress=False))
        result = run(spec, Path(tmp) / "student")
    fit = result["fit"]
    return {
        "teacher": Path(teacher).name,
        "epochs": fit["epochs_run"],
        "best_epoch": fit["best_epoch"],  # counted from 1 in metrics.json
        "seconds_per_epoch": fit["seconds_per_epoch"],
        "seconds_to_stop": fit["seconds"],
        "test_mae": result["test"]["mae"],
        "test_rmse": result["test"]["rmse"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA.resolve()))
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--teacher", default=None, help="teacher file for the training timing")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--json", default=None, help="also write the numbers here")
    args = ap.parse_args()
    console = Console()
    rate = matmul_gflops()
    rows = inference_rows(args.data_dir, args.batch)
    t = Table(title=f"Student inference, CPU, {torch.get_num_threads()} threads, batch {args.batch}"
              f" (matmul rate {rate:.1f} GFLOP/s)")
    for col in ("test size", "windows", "latency s", "ms/window", "peak RSS MB", "GFLOP",
                "latency / (FLOP/rate)"):
        t.add_column(col, justify="right")
    for r in rows:
        ideal = r["flops"] / (rate * 1e9)
        t.add_row(r["size"], str(r["windows"]), f"{r['seconds']:.3f}",
                  f"{1000 * r['seconds'] / r['windows']:.3f}", f"{r['peak_rss_mb']:.0f}",
                  f"{r['flops'] / 1e9:.1f}", f"{r['seconds'] / ideal:.2f}")
    console.print(t)
    out = {"matmul_gflops": rate, "inference": rows}
    if not args.skip_train:
        tr = training_row(args.data_dir, args.teacher)
        t2 = Table(title="Student training at 10 % (paper defaults, early stop on validation MAE)")
        for col in tr:
            t2.add_column(col, justify="right")
        t2.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in tr.values()))
        console.print(t2)
        out["training"] = tr
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

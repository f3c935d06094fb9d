"""Torch against onnxruntime: forecast latency of a trained run at batch 1 and 64 on this CPU.

    python benchmarks/bench_export.py --run runs/student [--data DATASET] [--threads 1] [--repeats 200]

Exports the run's model to ONNX (checked against torch on real windows, as `flowdistill export`
does), then times one forward pass of each runtime on real windows of the run's dataset. Both run
with the same number of intra-op threads. Prints a table and writes nothing but a temporary file.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from flowdistill.serving.export import (
    export_onnx,
    latency,
    ort_session,
    real_windows,
    run_onnx,
    verify_onnx,
)
from flowdistill.serving.forecaster import Forecaster
from flowdistill.serving.inputs import load_input


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path, help="Run folder (train/distill --out).")
    parser.add_argument("--data", default=None, help="Dataset (default: the run's).")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=1, help="Intra-op threads for both.")
    parser.add_argument("--repeats", type=int, default=200, help="Timed calls per cell.")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    forecaster = Forecaster.from_run(args.run)
    x, tod, dow = real_windows(forecaster, load_input(args.data, forecaster, args.data_dir), 64)
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(forecaster, Path(tmp) / "model.onnx", (x[:2], tod[:2], dow[:2]))
        check = verify_onnx(forecaster, path, (x, tod, dow))
        sess = ort_session(path, threads=args.threads)
        table = Table(title=f"{forecaster.bundle.model} ({args.run}): forecast latency, "
                      f"{args.threads} thread(s), {args.repeats} calls")
        for col in ("batch", "torch p50 ms", "torch p90 ms", "ort p50 ms", "ort p90 ms",
                    "speed-up", "ort windows/s"):
            table.add_column(col, justify="right")
        for batch in (1, 64):
            xb, tb, db = x[:batch], tod[:batch], dow[:batch]
            t = latency(lambda xb=xb, tb=tb, db=db: forecaster.predict_scaled(xb, tb, db),
                        args.repeats)
            o = latency(lambda xb=xb, tb=tb, db=db: run_onnx(sess, xb, tb, db), args.repeats)
            table.add_row(
                str(batch), f"{t['median_ms']:.3f}", f"{t['p90_ms']:.3f}", f"{o['median_ms']:.3f}",
                f"{o['p90_ms']:.3f}", f"{t['median_ms'] / o['median_ms']:.2f}×",
                f"{batch / o['median_ms'] * 1000:,.0f}",
            )
    console.print(table)
    console.print(f"onnxruntime vs torch on {check.windows} real windows: max abs diff "
                  f"{check.max_abs_diff:.2e} (scaled units)")


if __name__ == "__main__":
    main()

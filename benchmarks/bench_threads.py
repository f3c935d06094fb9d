"""Two training jobs side by side: do they each keep at least about half their speed?

One student epoch (the FlowDistill VIB-MLP at 10 % on nyc-taxi-manhattan 2019, validation
included) is timed in four settings:

* alone with 2 threads, alone with 1 thread;
* two processes side by side, each with 1 thread (what ``--threads`` picks when the other job
  already loads one core), and each with 2 threads (both taking every core, torch's default).

The student needs a teacher file; a tiny one is made on the fly from the historical average (a
teacher's quality does not change the cost of an epoch). Each job loads its data first and then
waits for the others, so the timed epochs really overlap. The first epoch is a warm-up; the table
reports the median of the others.

    python benchmarks/bench_threads.py [--data-dir ../shared/data] [--epochs 4] [--json FILE]
    python benchmarks/bench_threads.py --end 2019-02-28 --epochs 2   # a quick check of the script
    python benchmarks/bench_threads.py --report benchmarks/bench_threads.json  # the saved table
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def worker(args: argparse.Namespace) -> None:
    """One job: threads first, then data, then wait for the start signal, then the epochs."""
    from flowdistill.cli.common import set_threads

    threads = set_threads(args.threads)
    from flowdistill.engine.trainer import TrainConfig
    from flowdistill.experiments.runs import RunSpec, cached_dataset, run

    spec = RunSpec(model="flowdistill", data_dir=args.data_dir, start=args.start, end=args.end,
                   train_ratio=0.1, seed=0, teacher=args.teacher,
                   train=TrainConfig(max_epochs=args.epochs, patience=args.epochs, progress=False))
    cached_dataset(spec)  # loaded before the start line, so only training overlaps
    Path(args.ready).touch()
    while not Path(args.go).exists():
        time.sleep(0.05)
    result = run(spec, None)
    seconds = [row["seconds"] for row in result["fit"]["history"]]
    print(json.dumps({"threads": threads, "epoch_seconds": seconds}), flush=True)


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def scenario(name: str, threads: int, jobs: int, teacher: str, args: argparse.Namespace,
             tmp: Path) -> dict:
    """Start ``jobs`` workers with ``threads`` each, release them together, collect epoch times."""
    procs, ready = [], []
    go = tmp / f"{name}.go"
    for j in range(jobs):
        flag = tmp / f"{name}.{j}.ready"
        ready.append(flag)
        cmd = [sys.executable, __file__, "--worker", "--threads", str(threads), "--teacher",
               teacher, "--epochs", str(args.epochs), "--ready", str(flag), "--go", str(go)]
        for opt in ("data_dir", "start", "end"):
            if getattr(args, opt):
                cmd += ["--" + opt.replace("_", "-"), str(getattr(args, opt))]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env))
    while not all(f.exists() for f in ready):
        if any(p.poll() not in (None, 0) for p in procs):
            raise SystemExit(f"{name}: a worker failed")
        time.sleep(0.05)
    load_before = _load()
    go.touch()
    per_job = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"{name}: a worker failed (exit {p.returncode})")
        times = json.loads(out.strip().splitlines()[-1])["epoch_seconds"]
        per_job.append(statistics.median(times[1:] if len(times) > 1 else times))
    return {"scenario": name, "threads_each": threads, "jobs": jobs,
            "epoch_seconds": per_job, "slowest": max(per_job), "load_1min_at_start": load_before}


def make_teacher(args: argparse.Namespace, tmp: Path) -> str:
    from flowdistill.experiments.runs import RunSpec, run

    path = tmp / "ha-teacher.npz"
    run(RunSpec(model="ha", data_dir=args.data_dir, start=args.start, end=args.end,
                train_ratio=0.1, save_teacher=str(path)))
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA) if DEFAULT_DATA.exists() else None)
    ap.add_argument("--epochs", type=int, default=4, help="epochs per job (the first is warm-up)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    ap.add_argument("--start", default=None, help="first day (default: the whole year; a short "
                    "period only for a quick check of this script)")
    ap.add_argument("--end", default=None, help="last day")
    ap.add_argument("--report", type=Path, default=None, help="print the table of a saved --json")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--teacher", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--ready", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--go", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    if args.report:
        report(json.loads(args.report.read_text()))
        return

    import platform

    import torch

    torch.set_num_threads(1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        teacher = make_teacher(args, tmp)
        rows = [
            scenario("alone, 2 threads", 2, 1, teacher, args, tmp),
            scenario("alone, 1 thread", 1, 1, teacher, args, tmp),
            scenario("side by side, 1 thread each", 1, 2, teacher, args, tmp),
            scenario("side by side, 2 threads each", 2, 2, teacher, args, tmp),
        ]
    load1 = os.getloadavg()
    data = {"cores": cores, "machine": platform.machine(), "torch": torch.__version__,
            "load_before": list(load0), "load_after": list(load1), "epochs": args.epochs,
            "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    report(data)


def report(data: dict) -> None:
    """The table: each setting's epoch time and its speed against the settings alone."""
    rows = data["rows"]
    by_name = {r["scenario"]: r for r in rows}
    alone2 = by_name["alone, 2 threads"]["slowest"]
    fastest = min(r["slowest"] for r in rows if r["jobs"] == 1)
    lb, la = data["load_before"], data["load_after"]
    print(f"\nstudent epoch at 10 % on nyc-taxi-manhattan (validation included), median of "
          f"epochs 2..{data['epochs']}; {data['cores']} cores, {data.get('machine', '')}, "
          f"torch {data.get('torch', '')}")
    print(f"load average (1/5/15 min) before: {lb[0]:.2f} {lb[1]:.2f} {lb[2]:.2f}, "
          f"after: {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}\n")
    print("| setting | s / epoch (each job) | speed vs alone, 2 threads | speed vs fastest alone |")
    print("|---|---:|---:|---:|")
    for r in rows:
        each = ", ".join(f"{s:.2f}" for s in r["epoch_seconds"])
        print(f"| {r['scenario']} | {each} | {alone2 / r['slowest']:.2f} | "
              f"{fastest / r['slowest']:.2f} |")
    side1 = fastest / by_name["side by side, 1 thread each"]["slowest"]
    side2 = fastest / by_name["side by side, 2 threads each"]["slowest"]
    verdict = "yes" if side1 >= 0.45 else "NO"
    print(f"\nside by side with --threads 1 each, every job at ≥ about half the speed of the "
          f"fastest job alone: {verdict} ({side1:.2f}; with 2 threads each: {side2:.2f})")

if __name__ == "__main__":
    main()

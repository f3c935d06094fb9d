"""Load test of `flowdistill serve` on this machine's loopback: p50/p99 latency and requests/s.

    python benchmarks/bench_serve.py --run runs/student [--requests 400] [--concurrency 4]
    python benchmarks/bench_serve.py --port 8000 [--requests 400]   # a server already running

Starts `flowdistill serve --host 127.0.0.1` on a free port (unless --port names one already
running), waits for /health, then sends a bounded number of POST /forecast requests — half with the
12 slots of flows in the body, half with a timestamp of the served data — from a few client threads
with keep-alive connections. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

HOST = "127.0.0.1"  # never anything else
MAX_REQUESTS = 20_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def get(port: int, path: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def wait_up(port: int, proc: subprocess.Popen | None, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"the server exited with code {proc.returncode}")
        try:
            if get(port, "/health")[0] == 200:
                return
        except OSError:
            time.sleep(0.3)
    sys.exit(f"no answer from http://{HOST}:{port}/health after {seconds:.0f} s")


def bodies(port: int, count: int) -> list[bytes]:
    """Half timestamp requests, half flows requests (flows drawn once, realistic magnitudes)."""
    info = get(port, "/model")[1]
    served = info.get("served_data")
    rng = np.random.default_rng(0)
    zones, ch = len(info["zones"]), len(info["channels"])
    flows = rng.poisson(30, size=(info["input_len"], zones, ch)).tolist()
    out = []
    for i in range(count):
        if served and i % 2:
            # a slot start inside the served data, 12 slots after its start
            offset = int(rng.integers(info["input_len"], served["slots"]))
            at = np.datetime64(served["start"]) + np.timedelta64(offset * info["interval_minutes"], "m")
            out.append(json.dumps({"at": str(at)}).encode())
        else:
            out.append(json.dumps({"at": "2024-05-06T08:00:00", "flows": flows}).encode())
    return out


def worker(port: int, work: list[bytes], lat: list[float], errors: list[str]) -> None:
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    for body in work:
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/forecast", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                errors.append(str(resp.status))
        except OSError as exc:
            errors.append(type(exc).__name__)
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=60)
        lat.append((time.perf_counter() - t0) * 1000)
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="Run folder to serve (starts a server).")
    parser.add_argument("--port", type=int, help="Port of a server already running on 127.0.0.1.")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    if (args.run is None) == (args.port is None):
        parser.error("give --run (start a server) or --port (use one already running)")
    if not 1 <= args.requests <= MAX_REQUESTS:
        parser.error(f"--requests must be 1…{MAX_REQUESTS}")
    proc = None
    port = args.port
    if args.run is not None:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "flowdistill", "serve", "--run", str(args.run), "--host", HOST,
             "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
    try:
        wait_up(port, proc)
        work = bodies(port, args.requests + args.warmup)
        worker(port, work[: args.warmup], [], [])
        work = work[args.warmup :]
        lat: list[float] = []
        errors: list[str] = []
        threads = [
            threading.Thread(target=worker, args=(port, work[i :: args.concurrency], lat, errors))
            for i in range(args.concurrency)
        ]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        model = get(port, "/model")[1]["model"]
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    a = np.asarray(lat)
    table = Table(title=f"POST /forecast on http://{HOST}:{port} ({model}), "
                  f"{args.concurrency} client threads")
    for col in ("requests", "errors", "p50 ms", "p90 ms", "p99 ms", "req/s"):
        table.add_column(col, justify="right")
    table.add_row(str(len(a)), str(len(errors)), f"{np.percentile(a, 50):.1f}",
                  f"{np.percentile(a, 90):.1f}", f"{np.percentile(a, 99):.1f}",
                  f"{len(a) / wall:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()

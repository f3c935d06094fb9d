"""Cost measurements for the scalability experiment (Fig. 10): memory, latency, FLOPs, matmul rate.

Memory of one forward pass (no_grad, eval mode):
- CUDA: ``torch.cuda.max_memory_allocated`` after resetting the peak, minus what was allocated
  before the pass (weights and the input batch), so it is the activations' peak.
- CPU: torch keeps no allocator statistics on CPU and RSS is blurred by the allocator's caching, so
  we record the pass with ``torch.profiler`` (``profile_memory=True``) and take the peak of the
  running sum of every allocation and free in the order they happened (each op's *self* bytes,
  plus the profiler's ``[memory]`` free events). Same quantity as on CUDA: the activations' peak.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from flowdistill.experiments.common import (
    BenchConfig,
    RunCache,
    RunKey,
    cpu_sample,
    other_cores,
)


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence the profiler's native start/stop lines (written straight to file descriptor 2)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def cpu_forward_peak_bytes(fn: Any) -> int:
    """Peak live bytes allocated on CPU while ``fn()`` runs (torch.profiler memory events)."""
    from torch.profiler import ProfilerActivity, profile

    with _quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU],
                                         profile_memory=True) as prof:
        fn()
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    live = peak = 0
    for e in events:
        live += int(e.self_cpu_memory_usage)
        peak = max(peak, live)
    return peak


def forward_peak_bytes(fn: Any, device: torch.device) -> int:
    """Peak activation bytes of ``fn()`` on ``device``."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    return cpu_forward_peak_bytes(fn)


def matmul_gflops(n: int = 1024, repeats: int = 3, device: str = "cpu") -> float:
    """Measured dense float32 matmul rate of this machine (best of ``repeats``), GFLOP/s."""
    dev = torch.device(device)
    a = torch.randn(n, n, device=dev)
    b = torch.randn(n, n, device=dev)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        torch.mm(a, b)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _batch(windows: Any, ids: np.ndarray, device: torch.device) -> tuple[torch.Tensor, ...]:
    tod, dow = windows.calendar(ids)
    return (torch.from_numpy(windows.inputs(ids)).to(device), torch.from_numpy(tod).to(device),
            torch.from_numpy(dow).to(device), torch.as_tensor(ids).to(device))


def _call(model: nn.Module, x, tod, dow, index) -> Any:
    import inspect

    if "index" in inspect.signature(model.forward).parameters:
        return model(x, tod, dow, index=index)
    return model(x, tod, dow)


def measure(
    cfg: BenchConfig,
    models: list[str],
    batch_sizes: tuple[int, ...],
    multiples: tuple[int, ...],
    ratio: float,
    latency_batch: int,
    repeats: int,
) -> dict[str, Any]:
    """All measurements in this one process: rows of (model, kind, x, value)."""
    from rich.progress import Progress

    from flowdistill.cli.common import console
    from flowdistill.data.windows import WindowConfig, Windows
    from flowdistill.experiments.runs import cached_dataset
    from flowdistill.models.base import ModelContext, build_model

    device = torch.device(cfg.device)
    spec = RunCache(cfg).spec(RunKey("stid", ratio, 0))
    windows = Windows(cached_dataset(spec), WindowConfig(train_ratio=ratio))
    ctx = ModelContext.from_windows(windows)
    test_ids = windows.ids("test")
    rows: list[dict[str, Any]] = []
    flops: dict[str, Any] = {}
    before = cpu_sample()
    total = len(models) * (len(batch_sizes) + len(multiples))
    with Progress(console=console, disable=not cfg.progress) as bar:
        task = bar.add_task("scalability", total=total)
        for name in models:
            torch.manual_seed(0)
            model = build_model(name, ctx, cfg.model_options.get(name, {})).to(device).eval()
            if hasattr(model, "fit_statistics"):
                b = windows.bounds
                model.fit_statistics(windows.scaled[: b.train_end], windows.tod[: b.train_end],
                                     windows.dow[: b.train_end])
            with torch.no_grad():
                for bs in batch_sizes:
                    ids = np.resize(test_ids, bs)
                    args = _batch(windows, ids, device)
                    _call(model, *args)  # warm-up: lazy buffers, kernels
                    peak = forward_peak_bytes(lambda a=args, mdl=model: _call(mdl, *a), device)
                    rows.append({"model": name, "kind": "memory", "x": bs,
                                 "value": peak / 2**20, "unit": "MiB"})
                    bar.advance(task)
                for k in multiples:
                    ids = np.tile(test_ids, k)
                    chunks = [_batch(windows, ids[i : i + latency_batch], device)
                              for i in range(0, len(ids), latency_batch)]
                    _call(model, *chunks[0])  # warm-up at the timed batch size
                    times = []
                    for _ in range(max(repeats, 1)):
                        if device.type == "cuda":
                            torch.cuda.synchronize(device)
                        t0 = time.perf_counter()
                        for args in chunks:
                            _call(model, *args)
                        if device.type == "cuda":
                            torch.cuda.synchronize(device)
                        times.append(time.perf_counter() - t0)
                    rows.append({"model": name, "kind": "latency", "x": k,
                                 "windows": int(len(ids)), "value": statistics.median(times),
                                 "unit": "s"})
                    bar.advance(task)
            if name == "flowdistill" and hasattr(model, "flops_per_window"):
                rate = matmul_gflops(device=cfg.device)
                lat = rows[-1]
                per = int(model.flops_per_window())
                ideal = per * lat["windows"] / (rate * 1e9)
                flops = {"flops_per_window": per, "matmul_gflops": rate, "matmul_n": 1024,
                         "windows": lat["windows"], "latency_s": lat["value"], "ideal_s": ideal,
                         "ratio": lat["value"] / ideal if ideal > 0 else float("nan")}
            del model
    method = ("torch.cuda.max_memory_allocated minus memory allocated before the pass"
              if device.type == "cuda" else
              "peak of the running sum of allocations and frees recorded by torch.profiler "
              "(profile_memory=True) during one forward pass; weights and input excluded")
    return {"rows": rows, "device": str(device), "memory_method": method,
            "test_windows": int(len(test_ids)), "flops": flops,
            "other_cores": other_cores(before, cpu_sample())}

"""ONNX export of a trained model, checked against torch on real windows.

An edge device runs onnxruntime, not torch. The exported graph is the network itself: inputs ``x``
(B, L, N, C) scaled flows, ``tod`` and ``dow`` (B, L) calendar indices; output ``forecast``
(B, H, N, C) scaled. The scaler, zone ids, channels and clock travel in the file's metadata
(``flowdistill.scaler_mean`` …), so a device turns counts into inputs and back with two lines.
Comparing in the network's own units keeps the 1e-4 check about the graph, not float rounding of
large counts.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from flowdistill.data.errors import DataError
from flowdistill.models.base import as_output
from flowdistill.serving.forecaster import Forecaster

OPSET = 17
TOLERANCE = 1e-4


class _PredOnly(nn.Module):
    """The forecast tensor alone (the student also returns its KL term and latent stats)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, tod: torch.Tensor, dow: torch.Tensor) -> torch.Tensor:
        return as_output(self.model(x, tod, dow)).pred


@dataclass
class ExportCheck:
    """How close onnxruntime came to torch on real windows."""

    windows: int
    max_abs_diff: float  # network units (scaled flows): the exported graph's own output
    max_abs_diff_counts: float  # after undoing the scaler (trips per slot), for information
    passed: bool


def export_onnx(
    forecaster: Forecaster, path: str | os.PathLike[str], example: tuple[np.ndarray, ...]
) -> Path:
    """Trace the network on ``example`` (x, tod, dow) and write ``path`` with a dynamic batch axis."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = _PredOnly(forecaster.model).eval()
    args = tuple(torch.as_tensor(a) for a in example)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper, args, str(tmp), dynamo=False, opset_version=OPSET,
                input_names=["x", "tod", "dow"], output_names=["forecast"],
                dynamic_axes={n: {0: "batch"} for n in ("x", "tod", "dow", "forecast")},
            )
        model = onnx.load(str(tmp))
        b = forecaster.bundle
        meta = {
            "model": b.model,
            "scaler_mean": json.dumps(b.scaler.mean.tolist()),
            "scaler_std": json.dumps(b.scaler.std.tolist()),
            "zones": json.dumps(list(b.region_ids)),
            "channels": json.dumps(list(b.channels)),
            "interval_minutes": str(b.interval_minutes),
            "input_len": str(b.input_len),
            "output_len": str(b.output_len),
        }
        for k, v in meta.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = f"flowdistill.{k}", v
        onnx.save(model, str(tmp))
        os.replace(tmp, path)
    except DataError:
        raise
    except Exception as exc:
        if tmp.exists():
            tmp.unlink()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(b_name(forecaster), f"cannot be exported to ONNX: {first}") from exc
    return path


def b_name(forecaster: Forecaster) -> str:
    return f"model {forecaster.bundle.model}"


def ort_session(path: str | os.PathLike[str], threads: int = 1) -> Any:
    """An onnxruntime CPU session (``threads`` intra-op threads; 0 lets it choose)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def verify_onnx(
    forecaster: Forecaster, path: str | os.PathLike[str], inputs: tuple[np.ndarray, ...],
    tolerance: float = TOLERANCE,
) -> ExportCheck:
    """Run torch and onnxruntime on the same windows (batch 1 and the whole set) and compare."""
    x, tod, dow = inputs
    try:
        sess = ort_session(path)
    except Exception as exc:  # the graph was written but onnxruntime cannot load it
        first = str(exc).strip().splitlines()[0]
        raise DataError(b_name(forecaster), f"exported graph does not load in onnxruntime: {first}"
                        ) from exc
    torch_out = forecaster.predict_scaled(x, tod, dow)
    ort_out = run_onnx(sess, x, tod, dow)
    one = run_onnx(sess, x[:1], tod[:1], dow[:1])
    diff = max(float(np.abs(torch_out - ort_out).max()), float(np.abs(torch_out[:1] - one).max()))
    std = forecaster.bundle.scaler.std
    diff_counts = float(np.abs((torch_out - ort_out) * std).max())
    return ExportCheck(len(x), diff, diff_counts, diff <= tolerance)


def run_onnx(sess: Any, x: np.ndarray, tod: np.ndarray, dow: np.ndarray) -> np.ndarray:
    """One onnxruntime call; inputs a model ignores (a calendar-free model's tod/dow) are
    dropped by the exporter, so only those the graph declares are fed."""
    feed = {"x": x, "tod": tod, "dow": dow}
    names = [i.name for i in sess.get_inputs()]
    return sess.run(["forecast"], {n: feed[n] for n in names})[0]


def real_windows(
    forecaster: Forecaster, ds: Any, count: int = 64, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` windows of real data (scaled x, tod, dow), spread over the series."""
    ds = forecaster.conform(ds)
    L, H = forecaster.input_len, forecaster.output_len
    ok = ~ds.missing_mask()
    candidates = [t for t in range(L, ds.num_slots - H + 1) if ok[t - L : t].all()]
    if not candidates:
        raise DataError(ds.source or ds.name, f"no run of {L} complete slots to test the export on")
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(candidates, size=min(count, len(candidates)), replace=False))
    raw = np.stack([ds.flows[t - L : t] for t in ids]).astype(np.float32)
    at = ds.timestamps[ids]
    tod, dow = forecaster.calendar(at)
    x = forecaster.bundle.scaler.transform(raw).astype(np.float32)
    return x, tod, dow


def latency(fn: Any, repeats: int, warmup: int = 3) -> dict[str, float]:
    """Median and p90 wall time of ``fn()`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90))}

"""Masked MAE / RMSE / MAPE on the original scale: overall, per horizon step, per channel.

By default only targets > 0 are scored, as the paper's reference code does (zero slots are mostly
closed hours; scoring them rewards predicting zero). ``null_value=None`` scores every element.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


@dataclass(frozen=True)
class MaskConfig:
    """Which targets count: those strictly above ``threshold`` (None: all)."""

    threshold: float | None = 0.0


def _t(x: ArrayLike) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x), dtype=torch.float64)


def make_mask(target: ArrayLike, threshold: float | None = 0.0) -> torch.Tensor:
    y = _t(target)
    if threshold is None:
        return torch.ones_like(y, dtype=torch.bool)
    return y > threshold


def masked_mae(pred: ArrayLike, target: ArrayLike, threshold: float | None = 0.0) -> torch.Tensor:
    """Mean |pred − target| over the scored elements (differentiable; 0 if none are scored)."""
    p, y = _t(pred), _t(target)
    m = make_mask(y, threshold)
    n = m.sum()
    if n == 0:
        return (p * 0).sum()
    return ((p - y).abs() * m).sum() / n


def masked_mse(pred: ArrayLike, target: ArrayLike, threshold: float | None = 0.0) -> torch.Tensor:
    p, y = _t(pred), _t(target)
    m = make_mask(y, threshold)
    n = m.sum()
    if n == 0:
        return (p * 0).sum()
    return (((p - y) ** 2) * m).sum() / n


def masked_rmse(pred: ArrayLike, target: ArrayLike, threshold: float | None = 0.0) -> torch.Tensor:
    return masked_mse(pred, target, threshold).sqrt()


def masked_mape(pred: ArrayLike, target: ArrayLike, threshold: float | None = 0.0) -> torch.Tensor:
    """Mean |pred − target| / |target|, over scored elements with a non-zero target."""
    p, y = _t(pred), _t(target)
    m = make_mask(y, threshold) & (y != 0)
    n = m.sum()
    if n == 0:
        return (p * 0).sum()
    return ((p - y).abs() / torch.where(m, y.abs(), torch.ones_like(y)) * m).sum() / n


def scores(pred: ArrayLike, target: ArrayLike, threshold: float | None = 0.0) -> dict[str, float]:
    return {
        "mae": float(masked_mae(pred, target, threshold)),
        "rmse": float(masked_rmse(pred, target, threshold)),
        "mape": float(masked_mape(pred, target, threshold)),
    }


def evaluate(
    pred: ArrayLike,
    target: ArrayLike,
    threshold: float | None = 0.0,
    channels: tuple[str, ...] = ("inflow", "outflow"),
) -> dict[str, Any]:
    """Full breakdown for predictions and truth shaped (B, H, N, C)."""
    p, y = _t(pred).double(), _t(target).double()
    if p.shape != y.shape:
        raise ValueError(f"prediction shape {tuple(p.shape)} != target shape {tuple(y.shape)}")
    if p.ndim != 4:
        raise ValueError(f"expected (B, H, N, C), got {tuple(p.shape)}")
    out: dict[str, Any] = scores(p, y, threshold)
    out["horizon"] = [scores(p[:, h], y[:, h], threshold) for h in range(p.shape[1])]
    out["channel"] = {
        (channels[c] if c < len(channels) else str(c)): scores(p[..., c], y[..., c], threshold)
        for c in range(p.shape[-1])
    }
    out["masked_share"] = float(1 - make_mask(y, threshold).double().mean())
    return out


def by_volume(
    pred: ArrayLike,
    target: ArrayLike,
    volume: np.ndarray,
    edges: list[float],
    threshold: float | None = 0.0,
) -> list[dict[str, Any]]:
    """Scores per bucket of regions by volume (``volume`` per region; buckets [e_i, e_{i+1}))."""
    p, y = _t(pred).double(), _t(target).double()
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = np.where((volume >= lo) & (volume < hi))[0]
        if len(sel) == 0:
            continue
        s = scores(p[:, :, sel], y[:, :, sel], threshold)
        s.update({"low": float(lo), "high": float(hi), "regions": int(len(sel))})
        out.append(s)
    return out

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
    out["region"] = region_sums(p, y, threshold)
    return out


def region_sums(pred: ArrayLike, target: ArrayLike, threshold: float | None = 0.0) -> dict[str, list]:
    """Per region (axis 2 of (B, H, N, C)): the sums of |error| and error² over the scored
    elements, and their count. Any grouping of regions is scored exactly from these (see
    :func:`scores_from_sums`), so a finished run's metrics.json alone gives the per-volume table,
    without its weights."""
    p, y = _t(pred).double(), _t(target).double()
    m = make_mask(y, threshold).double()
    e = (p - y) * m
    dims = (0, 1, 3)
    return {"abs_sum": e.abs().sum(dim=dims).tolist(), "sq_sum": (e * e).sum(dim=dims).tolist(),
            "count": m.sum(dim=dims).long().tolist()}


def scores_from_sums(sums: dict[str, list], regions: np.ndarray) -> dict[str, float]:
    """MAE and RMSE of the regions ``regions`` from :func:`region_sums` (NaN when none scored)."""
    sel = np.asarray(regions, dtype=np.int64)
    n = float(np.asarray(sums["count"], dtype=np.float64)[sel].sum())
    if n == 0:
        return {"mae": float("nan"), "rmse": float("nan")}
    return {"mae": float(np.asarray(sums["abs_sum"], dtype=np.float64)[sel].sum() / n),
            "rmse": float(np.sqrt(np.asarray(sums["sq_sum"], dtype=np.float64)[sel].sum() / n))}


def volume_buckets(volume: np.ndarray, edges: list[float]) -> list[tuple[float, float, np.ndarray]]:
    """(low, high, region indices) of each non-empty bucket [e_i, e_{i+1}) of ``volume``."""
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = np.where((volume >= lo) & (volume < hi))[0]
        if len(sel):
            out.append((float(lo), float(hi), sel))
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
    for lo, hi, sel in volume_buckets(volume, edges):
        s = scores(p[:, :, sel], y[:, :, sel], threshold)
        s.update({"low": lo, "high": hi, "regions": int(len(sel))})
        out.append(s)
    return out


def by_volume_from_sums(
    sums: dict[str, list], volume: np.ndarray, edges: list[float]
) -> list[dict[str, Any]]:
    """:func:`by_volume`'s MAE / RMSE from a run's saved per-region sums (no forecasts needed)."""
    out = []
    for lo, hi, sel in volume_buckets(volume, edges):
        s = scores_from_sums(sums, sel)
        s.update({"low": lo, "high": hi, "regions": int(len(sel))})
        out.append(s)
    return out

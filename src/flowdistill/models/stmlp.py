"""ST-MLP (Zhang et al., 2023): a spatio-temporal mixing MLP student distilled from an STGNN.

Student: each (step, region) cell is embedded with its flows plus region, time-of-day and
day-of-week embeddings; mixing blocks alternate an MLP across the L input steps (temporal mixing),
an MLP across the N regions (spatial mixing, which replaces the teacher's message passing) and an
MLP across features, each pre-normalised and residual; a linear head maps each region's L×d
features to its H×C forecast.

Objective (its knowledge distillation): masked MAE to the truth + α · MAE to the teacher's
predictions (the teacher is a soft target here, unlike EasyST).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from flowdistill.metrics import masked_mae
from flowdistill.models.base import ForecastOutput, ModelContext, register
from flowdistill.models.layers import check_input

# The GNN teacher the engine trains first for this baseline (a model registered in this package).
TEACHER_MODEL = "astgcn"


@dataclass
class STMLPConfig:
    """32-dim cell features, 2 mixing blocks, expansion 2 in every mixing MLP."""

    hidden_dim: int = 32
    num_blocks: int = 2
    expansion: int = 2
    dropout: float = 0.1


class _MixMLP(nn.Module):
    """LayerNorm → MLP applied along one axis (moved last), residual."""

    def __init__(self, norm_dim: int, size: int, expansion: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(norm_dim)
        self.mlp = nn.Sequential(
            nn.Linear(size, size * expansion),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(size * expansion, size),
        )

    def forward(self, h: torch.Tensor, axis: int) -> torch.Tensor:
        # h: (B, L, N, d); normalise features, mix along `axis`.
        last = h.dim() - 1  # a positive index: the ONNX exporter mistranslates movedim(-1, …)
        z = self.norm(h).movedim(axis, last)
        return h + self.mlp(z).movedim(last, axis)


class _MixBlock(nn.Module):
    def __init__(self, L: int, N: int, d: int, expansion: int, dropout: float) -> None:
        super().__init__()
        self.temporal = _MixMLP(d, L, expansion, dropout)
        self.spatial = _MixMLP(d, N, expansion, dropout)
        self.channel = _MixMLP(d, d, expansion, dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.temporal(h, 1)
        h = self.spatial(h, 2)
        return self.channel(h, 3)


class STMLP(nn.Module):
    """Spatio-temporal mixing MLP: (B, L, N, C) → (B, H, N, C), no graph at inference."""

    def __init__(self, ctx: ModelContext, cfg: STMLPConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or STMLPConfig()
        self.ctx = ctx
        d = cfg.hidden_dim
        self.input = nn.Linear(ctx.num_channels, d)
        self.node = nn.Parameter(torch.empty(ctx.num_regions, d))
        self.tod = nn.Parameter(torch.empty(ctx.slots_per_day, d))
        self.dow = nn.Parameter(torch.empty(7, d))
        for p in (self.node, self.tod, self.dow):
            nn.init.xavier_uniform_(p)
        self.blocks = nn.ModuleList(
            [
                _MixBlock(ctx.input_len, ctx.num_regions, d, cfg.expansion, cfg.dropout)
                for _ in range(cfg.num_blocks)
            ]
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(ctx.input_len * d, ctx.output_len * ctx.num_channels)

    def forward(self, x: torch.Tensor, tod: torch.Tensor, dow: torch.Tensor) -> torch.Tensor:
        c = self.ctx
        check_input(x, c.num_regions, c.input_len, c.num_channels)
        b = x.shape[0]
        h = self.input(x) + self.node[None, None]
        h = h + (self.tod[tod.long()] + self.dow[dow.long()]).unsqueeze(2)
        for block in self.blocks:
            h = block(h)
        h = self.norm(h).permute(0, 2, 1, 3).reshape(b, c.num_regions, -1)
        out = self.head(h).reshape(b, c.num_regions, c.output_len, c.num_channels)
        return out.permute(0, 2, 1, 3)


class STMLPObjective:
    """Masked MAE to the truth + α · masked MAE to the teacher (original scale)."""

    def __init__(self, alpha: float = 0.5, mask_threshold: float | None = 0.0) -> None:
        self.alpha = alpha
        self.mask_threshold = mask_threshold

    def __call__(
        self, out: ForecastOutput, batch: dict[str, torch.Tensor], scaler: Any
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if "teacher" not in batch:
            raise ValueError("STMLPObjective needs batch['teacher'] (teacher predictions)")
        pred = scaler.inverse(out.pred)
        sup = masked_mae(pred, batch["y"], self.mask_threshold)
        # The teacher is scored where the truth is scored, so closed-hour zeros weigh the same.
        mask = batch["y"] > self.mask_threshold if self.mask_threshold is not None else None
        teacher = batch["teacher"].to(pred.dtype)
        if mask is None:
            kd = (pred - teacher).abs().mean()
        else:
            kd = ((pred - teacher).abs() * mask).sum() / mask.sum().clamp(min=1)
        loss = sup + self.alpha * kd
        return loss, {"mae": float(sup.detach()), "kd": float(kd.detach())}


def make_objective(mask_threshold: float | None = 0.0) -> STMLPObjective:
    """The objective the distillation run trains this student with (α = 0.5)."""
    return STMLPObjective(mask_threshold=mask_threshold)


@register("stmlp", STMLPConfig, "ST-MLP spatio-temporal mixing MLP student (Zhang et al. 2023)")
def build(ctx: ModelContext, cfg: STMLPConfig) -> nn.Module:
    return STMLP(ctx, cfg)

"""EasyST (Tang et al., CIKM 2024): an information-bottleneck MLP distilled from a GNN teacher.

Student: STID-style encoder (window embedding + spatial / temporal prompts + residual MLP blocks)
whose last hidden vector is split into the mean and (softplus) scale of a Gaussian latent; one
reparameterised sample is decoded in training, the mean in evaluation. Its KL to N(0, I) is returned
as ``aux["kl"]``.

Objective: masked MAE to the truth, up-weighted by (1 + λ) while the student's batch loss is not
better than the teacher's by the margin δ (teacher-bounded regression, one gate per batch), plus
β·KL. The teacher is a bound, never a target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from flowdistill.metrics import masked_mae
from flowdistill.models.base import ForecastOutput, ModelContext, register
from flowdistill.models.layers import IdentityEmbeddings, ResidualMLP, check_input

# The GNN teacher the engine trains first for this baseline (a model registered in this package).
TEACHER_MODEL = "astgcn"


@dataclass
class EasySTConfig:
    """EasyST's IB-MLP: 32-dim embeddings / prompts, 3 blocks, latent = half the hidden width."""

    embed_dim: int = 32
    node_dim: int = 32
    tod_dim: int = 32
    dow_dim: int = 32
    num_layers: int = 3
    dropout: float = 0.1


class EasySTStudent(nn.Module):
    """IB-MLP: ForecastOutput(pred, aux={"kl"}) in training, the mean-path forecast in eval."""

    def __init__(self, ctx: ModelContext, cfg: EasySTConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or EasySTConfig()
        self.ctx = ctx
        self.series = nn.Linear(ctx.input_len * ctx.num_channels, cfg.embed_dim)
        self.prompts = IdentityEmbeddings(
            ctx.num_regions, ctx.slots_per_day, cfg.node_dim, cfg.tod_dim, cfg.dow_dim
        )
        hidden = cfg.embed_dim + self.prompts.dim
        if hidden % 2:
            raise ValueError(f"EasyST hidden width must be even (mu/sigma split), got {hidden}")
        self.latent_dim = hidden // 2
        self.encoder = nn.Sequential(
            *[ResidualMLP(hidden, cfg.dropout) for _ in range(cfg.num_layers)]
        )
        self.decoder = nn.Linear(self.latent_dim, ctx.output_len * ctx.num_channels)

    def forward(
        self, x: torch.Tensor, tod: torch.Tensor, dow: torch.Tensor
    ) -> ForecastOutput | torch.Tensor:
        c = self.ctx
        check_input(x, c.num_regions, c.input_len, c.num_channels)
        b = x.shape[0]
        h = self.series(x.permute(0, 2, 1, 3).reshape(b, c.num_regions, -1))
        h = self.encoder(torch.cat([h, self.prompts(tod, dow, b)], dim=-1))
        mu, raw = h[..., : self.latent_dim], h[..., self.latent_dim :]
        sigma = F.softplus(raw) + 1e-6
        z = mu + sigma * torch.randn_like(sigma) if self.training else mu
        out = self.decoder(z).reshape(b, c.num_regions, c.output_len, c.num_channels)
        pred = out.permute(0, 2, 1, 3)
        if not self.training:
            return pred
        kl = (0.5 * (mu.pow(2) + sigma.pow(2) - 1.0) - torch.log(sigma)).mean()
        return ForecastOutput(pred, aux={"kl": kl})


class EasySTObjective:
    """Teacher-bounded masked MAE + β·KL (EasyST's λ = 0.3, δ = 0.1, β = 1e-3).

    ``loss = (1 + λ)·L_stu if L_tea − L_stu < δ else L_stu``, decided once per batch on the scalar
    losses (NOTES.md item 1), then ``+ β·KL``. ``batch["teacher"]`` and ``batch["y"]`` are on the
    original scale.
    """

    def __init__(
        self,
        kd_weight: float = 0.3,
        kd_margin: float = 0.1,
        beta: float = 1e-3,
        mask_threshold: float | None = 0.0,
    ) -> None:
        self.kd_weight = kd_weight
        self.kd_margin = kd_margin
        self.beta = beta
        self.mask_threshold = mask_threshold

    def __call__(
        self, out: ForecastOutput, batch: dict[str, torch.Tensor], scaler: Any
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if "teacher" not in batch:
            raise ValueError("EasySTObjective needs batch['teacher'] (teacher predictions)")
        pred = scaler.inverse(out.pred)
        y = batch["y"]
        stu = masked_mae(pred, y, self.mask_threshold)
        with torch.no_grad():
            tea = masked_mae(batch["teacher"].to(pred.dtype), y, self.mask_threshold)
        gate = bool((tea - stu.detach()) < self.kd_margin)
        reg = (1.0 + self.kd_weight) * stu if gate else stu
        kl = out.aux.get("kl")
        kl = kl if kl is not None else pred.new_zeros(())
        loss = reg + self.beta * kl
        return loss, {
            "mae": float(stu.detach()),
            "teacher_mae": float(tea),
            "gate": float(gate),
            "kl": float(kl.detach()),
        }


def make_objective(mask_threshold: float | None = 0.0) -> EasySTObjective:
    """The objective the distillation run trains this student with (EasyST's defaults)."""
    return EasySTObjective(mask_threshold=mask_threshold)


@register("easyst", EasySTConfig, "EasyST IB-MLP student (Tang et al. 2024); distilled")
def build(ctx: ModelContext, cfg: EasySTConfig) -> nn.Module:
    return EasySTStudent(ctx, cfg)

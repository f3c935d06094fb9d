"""The FlowDistill student: a VIB-MLP on STID identity embeddings (paper §2.4, Eq. 3–9).

One latent per region (the complexity section's O(N·K·d²) reading of §2.4.2): the 12-step history of
a region is embedded by a fully connected layer, concatenated with its region, time-of-day and
day-of-week embeddings, passed through residual MLP layers that output μ_Z and σ_Z (softplus), and
decoded from Z = μ_Z + σ_Z ⊙ ε to 12 steps × 2 channels.

In evaluation the mean path Z = μ_Z is used: it is deterministic (the same input always gives the same
forecast, which a traffic team deploying the model expects), costs one pass instead of several
samples, and is the expectation that averaging samples approximates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from flowdistill.models.base import ForecastOutput, ModelContext, register
from flowdistill.models.layers import ResidualMLP


@dataclass
class StudentConfig:
    """Paper §4.1.4: 3 layers, embedding size 64 for the series, region, time of day, day of week."""

    embed_dim: int = 64  # d: series embedding and each identity embedding
    num_layers: int = 3
    bottleneck: int = 128  # K: latent size per region (half of the 4·d hidden width, as in the code)
    dropout: float = 0.15
    use_ib: bool = True  # False: deterministic MLP (the w/o-IB ablation)
    sigma_floor: float = 1e-4
    eval_samples: int = 0  # 0: mean path in eval; >0: average of that many samples


def gaussian_kl(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Eq. (8): KL(N(μ, σ²) ‖ N(0, I)), summed over the latent dimension (last axis)."""
    var = sigma.pow(2)
    return 0.5 * (-torch.log(var) - 1.0 + var + mu.pow(2)).sum(dim=-1)


class VIBStudent(nn.Module):
    """VIB-MLP student. Returns ``ForecastOutput(pred, aux={"kl", "mu", "sigma"})``."""

    def __init__(self, ctx: ModelContext, cfg: StudentConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or StudentConfig()
        self.ctx = ctx
        d = cfg.embed_dim
        self.series = nn.Linear(ctx.input_len * ctx.num_channels, d)
        self.region = nn.Parameter(torch.empty(ctx.num_regions, d))
        self.tod = nn.Parameter(torch.empty(ctx.slots_per_day, d))
        self.dow = nn.Parameter(torch.empty(7, d))
        for p in (self.region, self.tod, self.dow):
            nn.init.xavier_uniform_(p)
        width = 4 * d
        self.encoder = nn.Sequential(*[ResidualMLP(width, cfg.dropout) for _ in range(cfg.num_layers)])
        latent_out = 2 * cfg.bottleneck if cfg.use_ib else cfg.bottleneck
        self.to_latent = nn.Linear(width, latent_out)
        self.decoder = nn.Linear(cfg.bottleneck, ctx.output_len * ctx.num_channels)

    def embed(self, x: torch.Tensor, tod: torch.Tensor, dow: torch.Tensor) -> torch.Tensor:
        """Eq. (3): E = FC(X) ‖ E_s ‖ E_tod ‖ E_dow, one row per (window, region)."""
        b, L, n, c = x.shape
        series = self.series(x.permute(0, 2, 1, 3).reshape(b, n, L * c))
        region = self.region.unsqueeze(0).expand(b, -1, -1)
        t = self.tod[tod[:, -1]].unsqueeze(1).expand(-1, n, -1)
        w = self.dow[dow[:, -1]].unsqueeze(1).expand(-1, n, -1)
        return torch.cat([series, region, t, w], dim=-1)

    def forward(self, x: torch.Tensor, tod: torch.Tensor, dow: torch.Tensor) -> ForecastOutput:
        h = self.encoder(self.embed(x, tod, dow))
        stats = self.to_latent(h)
        aux: dict[str, torch.Tensor] = {}
        if self.cfg.use_ib:
            mu, raw = stats.chunk(2, dim=-1)
            sigma = F.softplus(raw) + self.cfg.sigma_floor
            if self.training:
                z = mu + sigma * torch.randn_like(sigma)  # Eq. (7), reparameterisation
                pred = self._decode(z, x.shape)
            elif self.cfg.eval_samples > 0:
                preds = [
                    self._decode(mu + sigma * torch.randn_like(sigma), x.shape)
                    for _ in range(self.cfg.eval_samples)
                ]
                pred = torch.stack(preds).mean(0)
            else:
                pred = self._decode(mu, x.shape)
            aux = {"kl": gaussian_kl(mu, sigma).mean(), "mu": mu, "sigma": sigma}
        else:
            pred = self._decode(stats, x.shape)
        return ForecastOutput(pred, aux)

    def _decode(self, z: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        b, _, n, c = shape
        out = self.decoder(z).reshape(b, n, self.ctx.output_len, c)  # Eq. (9)
        return out.permute(0, 2, 1, 3)

    def flops_per_window(self) -> int:
        """Multiply-adds ×2 of one forward pass over one window (all regions), mean path."""
        d, n = self.cfg.embed_dim, self.ctx.num_regions
        width = 4 * d
        lin = (
            self.ctx.input_len * self.ctx.num_channels * d
            + self.cfg.num_layers * 2 * width * width
            + width * self.to_latent.out_features
            + self.cfg.bottleneck * self.ctx.output_len * self.ctx.num_channels
        )
        return 2 * n * lin


@register("flowdistill", StudentConfig, "FlowDistill VIB-MLP student (distilled from a teacher file)")
def _build_student(ctx: ModelContext, cfg: StudentConfig) -> nn.Module:
    return VIBStudent(ctx, cfg)

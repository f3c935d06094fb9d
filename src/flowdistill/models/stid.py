"""STID (Shao et al., CIKM 2022): spatial and temporal identity embeddings + a residual MLP.

The whole input window of a region is embedded by one linear map (the paper's 1×1 conv over the
flattened L×C history), concatenated with its region, time-of-day and day-of-week identities, passed
through residual MLP blocks and regressed to all H×C outputs at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from flowdistill.models.base import ModelContext, register
from flowdistill.models.layers import IdentityEmbeddings, ResidualMLP, check_input


@dataclass
class STIDConfig:
    """Paper defaults: 32-dim series / identity embeddings, 3 MLP layers, dropout 0.15."""

    embed_dim: int = 32
    node_dim: int = 32
    tod_dim: int = 32
    dow_dim: int = 32
    num_layers: int = 3
    dropout: float = 0.15


class STID(nn.Module):
    """Identity-embedding MLP: (B, L, N, C) → (B, H, N, C), all regions share the weights."""

    def __init__(self, ctx: ModelContext, cfg: STIDConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or STIDConfig()
        self.ctx = ctx
        self.series = nn.Linear(ctx.input_len * ctx.num_channels, cfg.embed_dim)
        self.ids = IdentityEmbeddings(
            ctx.num_regions, ctx.slots_per_day, cfg.node_dim, cfg.tod_dim, cfg.dow_dim
        )
        hidden = cfg.embed_dim + self.ids.dim
        self.encoder = nn.Sequential(
            *[ResidualMLP(hidden, cfg.dropout) for _ in range(cfg.num_layers)]
        )
        self.head = nn.Linear(hidden, ctx.output_len * ctx.num_channels)

    def forward(self, x: torch.Tensor, tod: torch.Tensor, dow: torch.Tensor) -> torch.Tensor:
        c = self.ctx
        check_input(x, c.num_regions, c.input_len, c.num_channels)
        b = x.shape[0]
        h = self.series(x.permute(0, 2, 1, 3).reshape(b, c.num_regions, -1))
        h = self.encoder(torch.cat([h, self.ids(tod, dow, b)], dim=-1))
        out = self.head(h).reshape(b, c.num_regions, c.output_len, c.num_channels)
        return out.permute(0, 2, 1, 3)


@register("stid", STIDConfig, "STID: identity embeddings + residual MLP (Shao et al. 2022)")
def build(ctx: ModelContext, cfg: STIDConfig) -> nn.Module:
    return STID(ctx, cfg)

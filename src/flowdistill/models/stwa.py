"""ST-WA (Cirstea et al., 2022): spatio-temporal aware window attention.

Model parameters are not shared across regions and time: every region has a location latent
vector and every (window, region) a time-varying latent vector inferred from the recent input; their
sum is decoded by per-layer generators into that region's own query / key / value projections.
Each layer splits the sequence into non-overlapping windows of S steps and lets a learned proxy
attend over the steps of each window with the generated projections, so the sequence shrinks by S
per layer (12 → 4 → 2 → 1 with windows 3, 2, 2) at cost linear in its length. Layer outputs feed a
skip connection to the predictor. A one-hop aggregation on the normalised region graph after
each layer provides the spatial mixing.

Simplification: the paper treats the latents as stochastic (variational posteriors with a KL
term); here they are deterministic (the posterior mean), since the supervised objective has no KL
slot for this baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from flowdistill.models.base import ModelContext, register
from flowdistill.models.layers import check_input, sym_normalized


@dataclass
class STWAConfig:
    """32-dim features, 16-dim latents, 4 heads, windows (3, 2, 2), one proxy per window."""

    hidden_dim: int = 32
    latent_dim: int = 16
    heads: int = 4
    windows: list[int] = field(default_factory=lambda: [3, 2, 2])
    skip_dim: int = 128
    dropout: float = 0.1


class _WindowAttentionLayer(nn.Module):
    """ST-aware window attention: generated Q/K/V per region, one proxy query per window."""

    def __init__(self, d: int, z: int, heads: int, window: int, dropout: float) -> None:
        super().__init__()
        if d % heads:
            raise ValueError(f"hidden_dim {d} is not divisible by heads {heads}")
        self.d, self.heads, self.window = d, heads, window
        # latent → W_Q, W_K, W_V of this region / time (d×d each, generated per (window, region))
        self.gen_q = nn.Linear(z, d * d)
        self.gen_k = nn.Linear(z, d * d)
        self.gen_v = nn.Linear(z, d * d)
        self.proxy = nn.Parameter(torch.randn(d) / math.sqrt(d))
        self.out = nn.Linear(d, d)
        self.norm1 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))
        self.norm2 = nn.LayerNorm(d)
        self.spatial = nn.Linear(d, d)
        self.drop = nn.Dropout(dropout)

    def proxy_query(self, z: torch.Tensor) -> torch.Tensor:
        """proxy · W_Q(z) for every (window, region), without building the d×d W_Q: the generated
        matrix is linear in z, so the proxy is contracted with the generator's weight and bias."""
        d = self.d
        q_weight = torch.einsum("d,dej->ej", self.proxy, self.gen_q.weight.view(d, d, -1))
        q_bias = self.proxy @ self.gen_q.bias.view(d, d)
        return z @ q_weight.t() + q_bias

    def forward(self, h: torch.Tensor, z: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        # h: (B, N, T, d); z: (B, N, latent) → (B, N, T // window, d)
        b, n, t, d = h.shape
        s, nh = self.window, self.heads
        w = t // s
        scale = 1.0 / math.sqrt(d)  # of the generated projections, applied to their (smaller) outputs
        hw = h[:, :, t - w * s :].reshape(b, n, w, s, d)  # drop the oldest steps if t % s
        rows = hw.reshape(b * n, w * s, d)
        # einsum, not bmm: its backward over 5,520 tiny matrices ran several times faster here.
        wk = self.gen_k(z).view(b * n, d, d)
        wv = self.gen_v(z).view(b * n, d, d)
        k = (torch.einsum("bti,bio->bto", rows, wk) * scale).view(b, n, w, s, nh, d // nh)
        v = (torch.einsum("bti,bio->bto", rows, wv) * scale).view(b, n, w, s, nh, d // nh)
        q = (self.proxy_query(z) * scale).view(b, n, nh, d // nh)
        # One query against s ≤ 3 keys per head: products and sums, not millions of tiny matmuls.
        att = (q[:, :, None, None] * k).sum(-1) / math.sqrt(d // nh)  # (B, N, W, S, heads)
        o = (torch.softmax(att, 3).unsqueeze(-1) * v).sum(3).reshape(b, n, w, d)
        h = self.norm1(hw.mean(3) + self.drop(self.out(o)))
        h = self.norm2(h + self.drop(self.ffn(h)))
        return h + torch.relu(torch.einsum("nm,bmtd->bntd", adj, self.spatial(h)))


class STWA(nn.Module):
    """Spatio-temporal aware window attention network: (B, L, N, C) → (B, H, N, C)."""

    def __init__(self, ctx: ModelContext, cfg: STWAConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or STWAConfig()
        self.ctx = ctx
        d, zd = cfg.hidden_dim, cfg.latent_dim
        self.input = nn.Linear(ctx.num_channels, d)
        self.loc_latent = nn.Parameter(torch.randn(ctx.num_regions, zd) * 0.1)
        self.time_encoder = nn.Sequential(
            nn.Linear(ctx.input_len * ctx.num_channels, 2 * zd), nn.ReLU(), nn.Linear(2 * zd, zd)
        )
        self.register_buffer("adj", sym_normalized(ctx.graph(self_loops=True)))
        layers, skips, t = [], [], ctx.input_len
        for s in cfg.windows:
            if s < 1 or t // s < 1:
                raise ValueError(f"STWA windows {cfg.windows} do not fit {ctx.input_len} steps")
            layers.append(_WindowAttentionLayer(d, zd, cfg.heads, s, cfg.dropout))
            t //= s
            skips.append(nn.Linear(t * d, cfg.skip_dim))
        self.layers = nn.ModuleList(layers)
        self.skips = nn.ModuleList(skips)
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.Linear(cfg.skip_dim, cfg.skip_dim),
            nn.ReLU(),
            nn.Linear(cfg.skip_dim, ctx.output_len * ctx.num_channels),
        )

    def forward(self, x: torch.Tensor, tod: torch.Tensor, dow: torch.Tensor) -> torch.Tensor:
        c = self.ctx
        check_input(x, c.num_regions, c.input_len, c.num_channels)
        b = x.shape[0]
        xn = x.permute(0, 2, 1, 3)  # (B, N, L, C)
        z = self.loc_latent.unsqueeze(0) + self.time_encoder(xn.reshape(b, c.num_regions, -1))
        h = self.input(xn)
        skip = 0.0
        for layer, proj in zip(self.layers, self.skips, strict=True):
            h = layer(h, z, self.adj)
            skip = skip + proj(h.reshape(b, c.num_regions, -1))
        out = self.head(skip).reshape(b, c.num_regions, c.output_len, c.num_channels)
        return out.permute(0, 2, 1, 3)


@register("stwa", STWAConfig, "ST-WA: ST-aware window attention (Cirstea et al. 2022)")
def build(ctx: ModelContext, cfg: STWAConfig) -> nn.Module:
    return STWA(ctx, cfg)

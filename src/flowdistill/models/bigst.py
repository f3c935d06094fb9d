"""BigST (Han et al., PVLDB 2024): linear-complexity spatio-temporal prediction.

BigST decouples a long-history feature extractor (pre-trained on e.g. a week of history, producing
one long-term vector per region) from a short-term predictor whose spatial convolution is a global
graph convolution on an adaptive graph softmax(Q Kᵀ), linearised with positive random features
(φ(q)ᵀ Σ_j φ(k_j) v_jᵀ costs O(N) instead of O(N²)).

Here only the predictor is built: the windows carry 12 input steps, so there is no long history to
extract features from; this is BigST's "without long-term features" variant. The predictor embeds
each region's window, adds region / time-of-day / day-of-week embeddings, and applies a stack of
linearised global spatial convolutions (residual, LayerNorm); the per-layer outputs are
concatenated and regressed to H×C. The road graph enters BigST only through a training-time
edge regulariser on the learned graph, which is not built (the adaptive graph is learned freely).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from flowdistill.models.base import ModelContext, register
from flowdistill.models.layers import IdentityEmbeddings, check_input


@dataclass
class BigSTConfig:
    """BasicTS's BigST setting (baselines/BigST, PEMS08): hidden 32 per embedding, 3 linearised
    spatial-conv layers, 64 random features, tau 0.25, dropout 0.3."""

    embed_dim: int = 32
    node_dim: int = 32
    tod_dim: int = 32
    dow_dim: int = 32
    num_layers: int = 3
    qk_dim: int = 32
    random_features: int = 64
    tau: float = 0.25
    dropout: float = 0.3


def positive_random_features(u: torch.Tensor, omega: torch.Tensor, is_query: bool) -> torch.Tensor:
    """φ(u) = exp(uΩ − |u|²/2) / √m, so E[φ(q)·φ(k)] = exp(q·k) (Performer's FAVOR+ map).

    A per-row constant is subtracted for queries and a per-sample one for keys: both cancel in the
    normalised kernel attention and keep exp() finite.
    """
    proj = u @ omega  # (B, N, m)
    sq = 0.5 * u.pow(2).sum(-1, keepdim=True)
    logits = proj - sq
    if is_query:
        stab = logits.amax(dim=-1, keepdim=True)
    else:
        stab = logits.amax(dim=(-2, -1), keepdim=True)
    return torch.exp(logits - stab.detach()) / math.sqrt(omega.shape[1]) + 1e-6


class _LinearizedSpatialConv(nn.Module):
    """h + FFN(kernel-attention aggregation over all regions), O(N) in the number of regions."""

    def __init__(self, d: int, cfg: BigSTConfig, seed: int) -> None:
        super().__init__()
        self.q = nn.Linear(d, cfg.qk_dim)
        self.k = nn.Linear(d, cfg.qk_dim)
        self.v = nn.Linear(d, d)
        self.out = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)
        self.scale = (cfg.qk_dim**-0.25) / math.sqrt(cfg.tau)
        # Fixed random projection (a buffer, not learned), seeded so a rebuilt model matches.
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("omega", torch.randn(cfg.qk_dim, cfg.random_features, generator=gen))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # h: (B, N, d)
        q = positive_random_features(self.q(h) * self.scale, self.omega, True)  # (B, N, m)
        k = positive_random_features(self.k(h) * self.scale, self.omega, False)
        v = self.v(h)
        kv = torch.einsum("bnm,bnd->bmd", k, v)  # Σ_j φ(k_j) v_jᵀ
        num = torch.einsum("bnm,bmd->bnd", q, kv)
        den = torch.einsum("bnm,bm->bn", q, k.sum(1)).unsqueeze(-1)
        agg = num / den
        return self.norm(h + self.drop(self.out(torch.relu(agg))))


class BigST(nn.Module):
    """Short-term BigST predictor: (B, L, N, C) → (B, H, N, C)."""

    def __init__(self, ctx: ModelContext, cfg: BigSTConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or BigSTConfig()
        self.ctx = ctx
        self.series = nn.Linear(ctx.input_len * ctx.num_channels, cfg.embed_dim)
        self.ids = IdentityEmbeddings(
            ctx.num_regions, ctx.slots_per_day, cfg.node_dim, cfg.tod_dim, cfg.dow_dim
        )
        d = cfg.embed_dim + self.ids.dim
        self.layers = nn.ModuleList(
            [_LinearizedSpatialConv(d, cfg, i) for i in range(cfg.num_layers)]
        )
        self.head = nn.Sequential(
            nn.Linear(d * (cfg.num_layers + 1), d),
            nn.ReLU(),
            nn.Linear(d, ctx.output_len * ctx.num_channels),
        )

    def forward(self, x: torch.Tensor, tod: torch.Tensor, dow: torch.Tensor) -> torch.Tensor:
        c = self.ctx
        check_input(x, c.num_regions, c.input_len, c.num_channels)
        b = x.shape[0]
        h = self.series(x.permute(0, 2, 1, 3).reshape(b, c.num_regions, -1))
        h = torch.cat([h, self.ids(tod, dow, b)], dim=-1)
        outs = [h]
        for layer in self.layers:
            h = layer(h)
            outs.append(h)
        out = self.head(torch.cat(outs, dim=-1)).reshape(b, c.num_regions, c.output_len, -1)
        return out.permute(0, 2, 1, 3)


@register("bigst", BigSTConfig, "BigST predictor: linearised kernel-attention GCN (Han 2024)")
def build(ctx: ModelContext, cfg: BigSTConfig) -> nn.Module:
    return BigST(ctx, cfg)

"""ASTGCN (Guo et al., AAAI 2019), recent component: attention + Chebyshev graph convolution.

Each ST block computes a temporal attention matrix E (L×L) from the input, re-weights the input
over time with it, computes a spatial attention matrix S (N×N) from that, and convolves the input
on the graph with Chebyshev polynomials T_k(L~) modulated elementwise by S; a 1×3 convolution
along time and a 1×1 residual convolution follow (ReLU, LayerNorm). A final convolution maps the L
steps × filters of every region to H×C outputs. Only the *recent* component is built: the daily-
and weekly-periodic components (and their learned fusion) need inputs from the same slot of
earlier days / weeks, which a 12-step window does not contain.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from flowdistill.models.base import ModelContext, register
from flowdistill.models.layers import chebyshev_polynomials, check_input


@dataclass
class ASTGCNConfig:
    """Paper defaults: K = 3, 64 Chebyshev and 64 temporal filters, 2 ST blocks."""

    cheb_order: int = 3
    cheb_filters: int = 64
    time_filters: int = 64
    num_blocks: int = 2
    time_kernel: int = 3


class _TemporalAttention(nn.Module):
    def __init__(self, N: int, F_in: int, T: int) -> None:
        super().__init__()
        self.U1 = nn.Parameter(torch.empty(N))
        self.U2 = nn.Parameter(torch.empty(F_in, N))
        self.U3 = nn.Parameter(torch.empty(F_in))
        self.be = nn.Parameter(torch.zeros(1, T, T))
        self.Ve = nn.Parameter(torch.empty(T, T))
        for p in (self.U2, self.Ve):
            nn.init.xavier_uniform_(p)
        nn.init.uniform_(self.U1, -0.1, 0.1)
        nn.init.uniform_(self.U3, -0.1, 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, N, T, F) → E: (B, T, T), columns sum to one.
        lhs = torch.einsum("bntf,n->btf", x, self.U1) @ self.U2  # (B, T, N)
        rhs = x @ self.U3  # (B, N, T)
        e = self.Ve @ torch.sigmoid(lhs @ rhs + self.be)
        return torch.softmax(e, dim=1)


class _SpatialAttention(nn.Module):
    def __init__(self, N: int, F_in: int, T: int) -> None:
        super().__init__()
        self.W1 = nn.Parameter(torch.empty(T))
        self.W2 = nn.Parameter(torch.empty(F_in, T))
        self.W3 = nn.Parameter(torch.empty(F_in))
        self.bs = nn.Parameter(torch.zeros(1, N, N))
        self.Vs = nn.Parameter(torch.empty(N, N))
        for p in (self.W2, self.Vs):
            nn.init.xavier_uniform_(p)
        nn.init.uniform_(self.W1, -0.1, 0.1)
        nn.init.uniform_(self.W3, -0.1, 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, N, T, F) → S: (B, N, N), columns sum to one.
        lhs = torch.einsum("bntf,t->bnf", x, self.W1) @ self.W2  # (B, N, T)
        rhs = (x @ self.W3).transpose(1, 2)  # (B, T, N)
        s = self.Vs @ torch.sigmoid(lhs @ rhs + self.bs)
        return torch.softmax(s, dim=1)


class _ASTBlock(nn.Module):
    def __init__(self, cheb: torch.Tensor, F_in: int, T: int, cfg: ASTGCNConfig) -> None:
        super().__init__()
        K, N, _ = cheb.shape
        self.register_buffer("cheb", cheb)
        self.tatt = _TemporalAttention(N, F_in, T)
        self.satt = _SpatialAttention(N, F_in, T)
        self.theta = nn.Parameter(torch.empty(K, F_in, cfg.cheb_filters))
        nn.init.xavier_uniform_(self.theta)
        pad = cfg.time_kernel // 2
        self.time_conv = nn.Conv2d(
            cfg.cheb_filters, cfg.time_filters, (1, cfg.time_kernel), padding=(0, pad)
        )
        self.res_conv = nn.Conv2d(F_in, cfg.time_filters, (1, 1))
        self.norm = nn.LayerNorm(cfg.time_filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, N, T, F), channels last: every product below is a plain matmul on it.
        b, n, t, f = x.shape
        e = self.tatt(x)
        x_hat = e.transpose(1, 2).unsqueeze(1) @ x  # re-weighted over time, (B, N, T, F)
        s = self.satt(x_hat)
        # Σ_k (T_k ⊙ S)ᵀ x_t Θ_k for every step t (graph signal on the original input).
        adj = self.cheb.unsqueeze(0) * s.unsqueeze(1)  # (B, K, N, N)
        k = adj.shape[1]
        y = adj.transpose(-1, -2) @ x.reshape(b, 1, n, t * f)  # (B, K, N, T*F)
        y = y.reshape(b, k, n, t, f).permute(0, 2, 3, 1, 4).reshape(b, n, t, k * f)
        g = torch.relu(y @ self.theta.reshape(k * f, -1))  # (B, N, T, F_cheb)
        # The 1×3 time convolution as one product: the zero-padded steps t-1, t, t+1 side by side.
        w = self.time_conv.weight  # (F_time, F_cheb, 1, taps)
        taps, pad = w.shape[-1], w.shape[-1] // 2
        gp = nn.functional.pad(g, (0, 0, pad, pad))
        u = torch.cat([gp[:, :, j : j + t] for j in range(taps)], dim=-1)  # (B, N, T, taps·F_cheb)
        h = u @ w[:, :, 0].permute(2, 1, 0).reshape(-1, w.shape[0]) + self.time_conv.bias
        res = x @ self.res_conv.weight[:, :, 0, 0].t() + self.res_conv.bias
        return self.norm(torch.relu(h + res))  # (B, N, T, F_time)


class ASTGCN(nn.Module):
    """Recent-component ASTGCN: (B, L, N, C) → (B, H, N, C)."""

    def __init__(self, ctx: ModelContext, cfg: ASTGCNConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or ASTGCNConfig()
        self.ctx = ctx
        cheb = chebyshev_polynomials(ctx.graph(self_loops=False), cfg.cheb_order)
        blocks, f_in = [], ctx.num_channels
        for _ in range(cfg.num_blocks):
            blocks.append(_ASTBlock(cheb, f_in, ctx.input_len, cfg))
            f_in = cfg.time_filters
        self.blocks = nn.ModuleList(blocks)
        # Conv over (step as channel) × filters: the paper's final 1×F convolution.
        self.final = nn.Conv2d(ctx.input_len, ctx.output_len * ctx.num_channels, (1, f_in))

    def forward(self, x: torch.Tensor, tod: torch.Tensor, dow: torch.Tensor) -> torch.Tensor:
        c = self.ctx
        check_input(x, c.num_regions, c.input_len, c.num_channels)
        b = x.shape[0]
        h = x.transpose(1, 2)  # (B, N, T, C)
        for block in self.blocks:
            h = block(h)
        # The final 1×F convolution with the steps as channels: one product over (T, F).
        w = self.final.weight  # (H*C, T, 1, F)
        out = h.reshape(b, c.num_regions, -1) @ w.reshape(w.shape[0], -1).t() + self.final.bias
        return out.reshape(b, c.num_regions, c.output_len, c.num_channels).transpose(1, 2)


@register("astgcn", ASTGCNConfig, "ASTGCN (recent part): ST attention + Chebyshev GCN (Guo 2019)")
def build(ctx: ModelContext, cfg: ASTGCNConfig) -> nn.Module:
    return ASTGCN(ctx, cfg)

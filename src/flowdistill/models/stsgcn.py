"""STSGCN (Song et al., AAAI 2020): synchronous GCN on localized spatio-temporal graphs.

For every 3 consecutive steps a localized graph of 3N nodes is built: the region graph A on each of
the three diagonal blocks and an identity link from each region to itself at the neighbouring step.
A synchronous module (STSGCM) runs stacked graph convolutions (GLU activation) on that graph,
crops the middle step's N nodes from every layer's output and max-pools them. A layer (STSGCL)
slides the module over time (individual weights per window, as in the paper), so each layer shortens
the sequence by 2 (12 → 10 → 8 → 6 → 4 with 4 layers); learnable temporal / spatial position
embeddings are added before each layer and a learnable mask re-weights the localized adjacency.
Each horizon step has its own two-layer output MLP over the remaining steps × features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from flowdistill.models.base import ModelContext, register
from flowdistill.models.layers import check_input, sym_normalized


@dataclass
class STSGCNConfig:
    """Paper: 4 STSGCLs, 3 GCN ops each, GLU, output MLP 128; 32 filters (paper: 64) for CPU."""

    hidden_dim: int = 32
    num_layers: int = 4
    gcn_per_module: int = 3
    out_hidden: int = 128
    window: int = 3


def localized_adjacency(adj: np.ndarray, steps: int = 3) -> np.ndarray:
    """(steps·N)² matrix: A on the diagonal blocks, I between consecutive steps, 0 elsewhere."""
    n = adj.shape[0]
    a = np.zeros((steps * n, steps * n), dtype=np.float32)
    eye = np.eye(n, dtype=np.float32)
    for i in range(steps):
        a[i * n : (i + 1) * n, i * n : (i + 1) * n] = adj
        if i + 1 < steps:
            a[i * n : (i + 1) * n, (i + 1) * n : (i + 2) * n] = eye
            a[(i + 1) * n : (i + 2) * n, i * n : (i + 1) * n] = eye
    return a


class _STSGCL(nn.Module):
    """One layer: the synchronous module slid over every window of `window` steps.

    The learnable mask only matters on the non-zero entries of the localized graph (A-blocks on the
    diagonal, identity links between consecutive steps), so it is stored that way and never assembled
    into the (s·N)² matrix. Features travel as (T, d, B, N): a window's step i
    is the slice h[i : i + W] (no copy), the graph product is done block by block (one N×N product
    per step plus element-wise identity links, a third of the dense product's work), and the
    per-window weights are one batched product of W large matrices. Measured on one CPU thread
    (batch 80, 69 regions, forward + backward + Adam): 1.26× faster per training step than one dense
    (s·N)² product in (T, B, d, N), itself 1.6–1.8× faster than slicing the graph block by block in
    (B, W, s, N, d); all three give the same values to float rounding.
    """

    def __init__(self, adj_local: torch.Tensor, N: int, T: int, d: int, cfg: STSGCNConfig) -> None:
        super().__init__()
        s = cfg.window
        self.win = s
        self.num_windows = T - s + 1

        def blk(i: int, j: int) -> torch.Tensor:
            return adj_local[i * N : (i + 1) * N, j * N : (j + 1) * N]

        blocks = [blk(i, i) for i in range(s)]
        up = [blk(i, i + 1).diagonal() for i in range(s - 1)]
        down = [blk(i + 1, i).diagonal() for i in range(s - 1)]
        self.register_buffer("a_diag", torch.stack(blocks))  # (s, N, N)
        self.register_buffer("a_up", torch.stack(up))  # (s-1, N): step i ← step i+1
        self.register_buffer("a_down", torch.stack(down))  # (s-1, N): step i+1 ← step i
        self.mask_diag = nn.Parameter(torch.ones(s, N, N))
        self.mask_up = nn.Parameter(torch.ones(s - 1, N))
        self.mask_down = nn.Parameter(torch.ones(s - 1, N))
        self.t_emb = nn.Parameter(torch.empty(1, T, 1, d))
        self.s_emb = nn.Parameter(torch.empty(1, 1, N, d))
        nn.init.xavier_uniform_(self.t_emb)
        nn.init.xavier_uniform_(self.s_emb)
        W = self.num_windows
        # Individual (per-window) GCN weights: d → 2d then GLU back to d.
        self.weight = nn.ParameterList(
            [nn.Parameter(torch.empty(W, d, 2 * d)) for _ in range(cfg.gcn_per_module)]
        )
        self.bias = nn.ParameterList(
            [nn.Parameter(torch.zeros(W, 1, 1, 2 * d)) for _ in range(cfg.gcn_per_module)]
        )
        for w in self.weight:
            for i in range(W):
                nn.init.xavier_uniform_(w.data[i])

    def _graph(self, z: list[torch.Tensor], rows: range) -> list[torch.Tensor]:
        """The localized graph product, block by block, for the output steps in `rows`.

        Step i's nodes take the region graph of step i (one N×N product) plus each region's own
        value at steps i±1 (an element-wise product): a third of the dense (s·N)² product's work.
        """
        s = self.win
        diag = (self.a_diag * self.mask_diag).transpose(1, 2)
        up, down = self.a_up * self.mask_up, self.a_down * self.mask_down
        out = []
        for i in rows:
            y = torch.matmul(z[i], diag[i])
            if i + 1 < s:
                y = torch.addcmul(y, up[i], z[i + 1])
            if i > 0:
                y = torch.addcmul(y, down[i - 1], z[i - 1])
            out.append(y)
        return out

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # h: (T, d, B, N) → (T-2, d, B, N)
        s, W = self.win, self.num_windows
        h = h + self.t_emb.permute(1, 3, 0, 2) + self.s_emb.permute(0, 3, 1, 2)
        z = [h[i : i + W] for i in range(s)]  # window step i of every window: (W, d, B, N) views
        mid = s // 2
        crops = []
        last = len(self.weight) - 1
        for j, (w, bias) in enumerate(zip(self.weight, self.bias, strict=True)):
            # The last operation's output is only needed at the middle step (it is cropped).
            rows = range(mid, mid + 1) if j == last else range(s)
            wt, b = w.transpose(1, 2), bias.reshape(W, -1, 1)
            z = [
                F.glu(torch.baddbmm(b, wt, y.flatten(2)).view(W, -1, *y.shape[2:]), dim=1)
                for y in self._graph(z, rows)
            ]
            crops.append(z[0] if j == last else z[mid])
        return torch.stack(crops, 0).amax(0)


class STSGCN(nn.Module):
    """Stacked STSGCLs + per-horizon output MLPs: (B, L, N, C) → (B, H, N, C)."""

    def __init__(self, ctx: ModelContext, cfg: STSGCNConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or STSGCNConfig()
        self.ctx = ctx
        T_out = ctx.input_len - cfg.num_layers * (cfg.window - 1)
        if T_out < 1:
            raise ValueError(
                f"STSGCN with {cfg.num_layers} layers of window {cfg.window} needs more than "
                f"{ctx.input_len} input steps"
            )
        n, d = ctx.num_regions, cfg.hidden_dim
        local = localized_adjacency(ctx.graph(self_loops=True), cfg.window)
        adj_local = sym_normalized(local, self_loops=True)
        self.input = nn.Linear(ctx.num_channels, d)
        layers, T = [], ctx.input_len
        for _ in range(cfg.num_layers):
            layers.append(_STSGCL(adj_local, n, T, d, cfg))
            T -= cfg.window - 1
        self.layers = nn.ModuleList(layers)
        H, C = ctx.output_len, ctx.num_channels
        self.out_w1 = nn.Parameter(torch.empty(H, T_out * d, cfg.out_hidden))
        self.out_b1 = nn.Parameter(torch.zeros(H, cfg.out_hidden))
        self.out_w2 = nn.Parameter(torch.empty(H, cfg.out_hidden, C))
        self.out_b2 = nn.Parameter(torch.zeros(H, C))
        for w in (self.out_w1, self.out_w2):
            for i in range(H):
                nn.init.xavier_uniform_(w.data[i])

    def forward(self, x: torch.Tensor, tod: torch.Tensor, dow: torch.Tensor) -> torch.Tensor:
        c = self.ctx
        check_input(x, c.num_regions, c.input_len, c.num_channels)
        b = x.shape[0]
        h = torch.relu(self.input(x)).permute(1, 3, 0, 2)  # (T, d, B, N): see _STSGCL
        for layer in self.layers:
            h = layer(h)
        h = h.permute(2, 3, 0, 1).reshape(b, c.num_regions, -1)  # (B, N, T_out*d)
        z = torch.relu(torch.einsum("bnf,hfo->bhno", h, self.out_w1) + self.out_b1[None, :, None])
        return torch.einsum("bhno,hoc->bhnc", z, self.out_w2) + self.out_b2[None, :, None]


@register("stsgcn", STSGCNConfig, "STSGCN: synchronous GCN on 3-step localized graphs (Song 2020)")
def build(ctx: ModelContext, cfg: STSGCNConfig) -> nn.Module:
    return STSGCN(ctx, cfg)

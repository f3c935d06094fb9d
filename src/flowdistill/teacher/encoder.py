"""Spatio-temporal encoder: a dilated-inception temporal convolution over each region's history.

As in UrbanGPT, each region's 12-step inflow/outflow history is encoded by gated dilated temporal
convolutions with several kernel widths in parallel (graph convolution off), and the result is
projected to the language model's width so it can stand in for an ``<ST_HIS>`` token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DilatedInception(nn.Module):
    """Parallel causal temporal convolutions of widths ``kernels`` (dilated), concatenated.

    Written as a sum of per-tap matrix products with a mask that gives branch ``k`` only its first
    ``k`` taps, instead of one small Conv2d per width: the same function, much faster on CPU for
    these tiny channel counts.
    """

    def __init__(
        self, cin: int, cout: int, kernels: tuple[int, ...] = (2, 3, 6, 7), dilation: int = 1
    ) -> None:
        super().__init__()
        if cout % len(kernels):
            raise ValueError(f"channels {cout} not divisible by {len(kernels)} kernels")
        self.kernels, self.dilation, self.kmax = tuple(kernels), dilation, max(kernels)
        per = cout // len(kernels)
        self.weight = nn.Parameter(torch.empty(self.kmax, cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout))
        mask = torch.zeros(self.kmax, cout, 1)
        for b, k in enumerate(self.kernels):  # branch b sees taps 0..k-1 (0 = the current step)
            mask[:k, b * per : (b + 1) * per] = 1.0
        self.register_buffer("mask", mask, persistent=False)
        for b, k in enumerate(self.kernels):
            bound = 1.0 / (cin * k) ** 0.5
            nn.init.uniform_(self.weight[:, b * per : (b + 1) * per], -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., L, cin) -> (..., L, cout), causal in time: sum over taps of shifted products."""
        length = x.shape[-2]
        pad = (self.kmax - 1) * self.dilation
        xp = F.pad(x, (0, 0, pad, 0))
        w = self.weight * self.mask  # (kmax, cout, cin); tap j looks j*dilation steps back
        out = None
        for j in range(self.kmax):
            lo = pad - j * self.dilation
            term = F.linear(xp[..., lo : lo + length, :], w[j])
            out = term if out is None else out + term
        return out + self.bias


class STEncoder(nn.Module):
    """(B, L, N, C) scaled history -> (B, N, d_model) one vector per region."""

    def __init__(
        self,
        num_channels: int,
        input_len: int,
        d_model: int,
        hidden: int = 32,
        layers: int = 2,
        num_regions: int = 0,
        slots_per_day: int = 0,
    ) -> None:
        super().__init__()
        self.inp = nn.Linear(num_channels, hidden)
        self.filters = nn.ModuleList(
            DilatedInception(hidden, hidden, dilation=2**i) for i in range(layers)
        )
        self.gates = nn.ModuleList(
            DilatedInception(hidden, hidden, dilation=2**i) for i in range(layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
        self.out = nn.Linear(hidden * input_len, d_model)
        # Optional identity/calendar embeddings (see docs/teacher.md: the city-batched prompt has no
        # room for every region's POI text, so a region embedding tells the regions apart).
        self.region = nn.Embedding(num_regions, d_model) if num_regions else None
        self.tod = nn.Embedding(slots_per_day, d_model) if slots_per_day else None
        self.dow = nn.Embedding(7, d_model) if slots_per_day else None
        for emb in (self.region, self.tod, self.dow):
            if emb is not None:
                nn.init.normal_(emb.weight, std=0.02)

    def forward(
        self, x: torch.Tensor, tod: torch.Tensor | None = None, dow: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = self.inp(x.permute(0, 2, 1, 3))  # (B, N, L, hidden)
        for filt, gate, norm in zip(self.filters, self.gates, self.norms, strict=True):
            h = norm(h + torch.tanh(filt(h)) * torch.sigmoid(gate(h)))
        out = self.out(h.flatten(-2))  # (B, N, d)
        if self.region is not None:
            out = out + self.region.weight[: out.shape[1]]
        if self.tod is not None and tod is not None and dow is not None:
            out = out + (self.tod(tod[:, -1].long()) + self.dow(dow[:, -1].long()))[:, None, :]
        return out

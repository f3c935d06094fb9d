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
    """Parallel causal 1-D convolutions of widths ``kernels`` over time, concatenated."""

    def __init__(
        self, cin: int, cout: int, kernels: tuple[int, ...] = (2, 3, 6, 7), dilation: int = 1
    ) -> None:
        super().__init__()
        if cout % len(kernels):
            raise ValueError(f"channels {cout} not divisible by {len(kernels)} kernels")
        self.kernels = kernels
        self.dilation = dilation
        self.convs = nn.ModuleList(
            nn.Conv2d(cin, cout // len(kernels), (1, k), dilation=(1, dilation)) for k in kernels
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, N, L) -> (B, cout, N, L); left padding keeps every step causal."""
        outs = []
        for k, conv in zip(self.kernels, self.convs, strict=True):
            outs.append(conv(F.pad(x, ((k - 1) * self.dilation, 0))))
        return torch.cat(outs, dim=1)


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
        self.inp = nn.Conv2d(num_channels, hidden, 1)
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
        h = self.inp(x.permute(0, 3, 2, 1))  # (B, hidden, N, L)
        for filt, gate, norm in zip(self.filters, self.gates, self.norms, strict=True):
            z = torch.tanh(filt(h)) * torch.sigmoid(gate(h))
            h = norm((h + z).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        b, c, n, length = h.shape
        out = self.out(h.permute(0, 2, 1, 3).reshape(b, n, c * length))  # (B, N, d)
        if self.region is not None:
            out = out + self.region.weight[:n]
        if self.tod is not None and tod is not None and dow is not None:
            out = out + (self.tod(tod[:, -1].long()) + self.dow(dow[:, -1].long()))[:, None, :]
        return out

"""Pieces the baseline forecasters share: graph operators, calendar embeddings, residual MLPs.

Kept here so every baseline computes its graph normalisation and its time-of-day / day-of-week
features the same way, which makes their parameter counts and results comparable.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def sym_normalized(adj: np.ndarray, self_loops: bool = True) -> torch.Tensor:
    """D^-1/2 (A [+ I]) D^-1/2 as a float tensor: the usual GCN propagation matrix."""
    a = np.asarray(adj, dtype=np.float64).copy()
    if self_loops:
        np.fill_diagonal(a, 1.0)
    deg = a.sum(axis=1)
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0)
    return torch.as_tensor(inv[:, None] * a * inv[None, :], dtype=torch.float32)


def scaled_laplacian(adj: np.ndarray) -> np.ndarray:
    """L~ = 2 L / lambda_max - I with L = I - D^-1/2 A D^-1/2 (A without self loops)."""
    a = np.asarray(adj, dtype=np.float64).copy()
    np.fill_diagonal(a, 0.0)
    n = a.shape[0]
    deg = a.sum(axis=1)
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0)
    lap = np.eye(n) - inv[:, None] * a * inv[None, :]
    lam = float(np.linalg.eigvalsh(lap).max()) if n > 0 else 2.0
    lam = lam if lam > 1e-8 else 2.0
    return 2.0 * lap / lam - np.eye(n)


def chebyshev_polynomials(adj: np.ndarray, order: int) -> torch.Tensor:
    """T_0 … T_{K-1} of the scaled Laplacian, stacked as (K, N, N)."""
    if order < 1:
        raise ValueError(f"Chebyshev order must be >= 1, got {order}")
    lt = scaled_laplacian(adj)
    n = lt.shape[0]
    polys = [np.eye(n)]
    if order > 1:
        polys.append(lt)
    for _ in range(2, order):
        polys.append(2.0 * lt @ polys[-1] - polys[-2])
    return torch.as_tensor(np.stack(polys), dtype=torch.float32)


class ResidualMLP(nn.Module):
    """fc → ReLU → dropout → fc with an identity shortcut (STID's encoder block)."""

    def __init__(self, dim: int, dropout: float = 0.15) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(self.drop(torch.relu(self.fc1(h))))


class IdentityEmbeddings(nn.Module):
    """Region identity plus time-of-day / day-of-week identity of the last input step.

    STID's observation: these identities alone make an MLP competitive; EasyST calls the same
    vectors spatial and temporal prompts.
    """

    def __init__(
        self, num_regions: int, slots_per_day: int, node_dim: int, tod_dim: int, dow_dim: int
    ) -> None:
        super().__init__()
        self.node = nn.Parameter(torch.empty(num_regions, node_dim))
        self.tod = nn.Parameter(torch.empty(slots_per_day, tod_dim))
        self.dow = nn.Parameter(torch.empty(7, dow_dim))
        for p in (self.node, self.tod, self.dow):
            nn.init.xavier_uniform_(p)

    @property
    def dim(self) -> int:
        return self.node.shape[1] + self.tod.shape[1] + self.dow.shape[1]

    def forward(self, tod: torch.Tensor, dow: torch.Tensor, batch: int) -> torch.Tensor:
        """(B, N, node_dim + tod_dim + dow_dim) identity features for each region."""
        n = self.node.shape[0]
        t = self.tod[tod[:, -1].long()].unsqueeze(1).expand(-1, n, -1)
        d = self.dow[dow[:, -1].long()].unsqueeze(1).expand(-1, n, -1)
        return torch.cat([self.node.unsqueeze(0).expand(batch, -1, -1), t, d], dim=-1)


def check_input(x: torch.Tensor, num_regions: int, input_len: int, channels: int) -> None:
    """Refuse a batch of the wrong geometry with a message naming the expected shape."""
    if x.dim() != 4 or tuple(x.shape[1:]) != (input_len, num_regions, channels):
        raise ValueError(
            f"expected x of shape (B, {input_len}, {num_regions}, {channels}), got {tuple(x.shape)}"
        )

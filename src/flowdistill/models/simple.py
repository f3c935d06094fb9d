"""Reference forecasters with no learned weights: last value and historical average."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from flowdistill.models.base import ModelContext, register, target_calendar


class LastValue(nn.Module):
    """Repeats the last observed step over the whole horizon."""

    def __init__(self, output_len: int = 12) -> None:
        super().__init__()
        self.output_len = output_len

    def forward(self, x: torch.Tensor, tod: torch.Tensor, dow: torch.Tensor) -> torch.Tensor:
        return x[:, -1:].expand(-1, self.output_len, -1, -1).clone()


@dataclass
class HistoricalAverageConfig:
    """HA is a lookup table of day-of-week × time-of-day means over the training slots."""

    by_day_of_week: bool = True


class HistoricalAverage(nn.Module):
    """Mean of the training slots with the same day of week and time of day (scaled units)."""

    def __init__(self, ctx: ModelContext, cfg: HistoricalAverageConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or HistoricalAverageConfig()
        self.slots_per_day = ctx.slots_per_day
        self.output_len = ctx.output_len
        table = torch.zeros(7, ctx.slots_per_day, ctx.num_regions, ctx.num_channels)
        self.register_buffer("table", table)

    @torch.no_grad()
    def fit_statistics(self, scaled: np.ndarray, tod: np.ndarray, dow: np.ndarray) -> HistoricalAverage:
        """Fill the table from training slots (scaled flows (T, N, C) with their calendar)."""
        overall = scaled.mean(axis=0)
        table = np.empty(tuple(self.table.shape), dtype=np.float32)
        for d in range(7):
            for h in range(self.slots_per_day):
                sel = (tod == h) & ((dow == d) if self.cfg.by_day_of_week else True)
                if not sel.any():
                    sel = tod == h
                table[d, h] = scaled[sel].mean(axis=0) if sel.any() else overall
        self.table.copy_(torch.from_numpy(table))
        return self

    def forward(self, x: torch.Tensor, tod: torch.Tensor, dow: torch.Tensor) -> torch.Tensor:
        t_tod, t_dow = target_calendar(tod, dow, self.output_len, self.slots_per_day)
        return self.table[t_dow, t_tod]


@register("last-value", None, "repeat the last observed step (no training)")
def _build_last(ctx: ModelContext, cfg: dict) -> nn.Module:
    return LastValue(ctx.output_len)


@register("ha", HistoricalAverageConfig, "historical average by day of week × time of day")
def _build_ha(ctx: ModelContext, cfg: HistoricalAverageConfig) -> nn.Module:
    return HistoricalAverage(ctx, cfg)

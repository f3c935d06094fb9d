"""What every forecaster shares: the facts it is built from, its output, and the model registry.

A model is a plain ``nn.Module``. ``forward(x, tod, dow)`` takes scaled history ``x`` (B, L, N, C) and
the time-of-day / day-of-week index of each input step (B, L), and returns the scaled forecast
(B, H, N, C) — or a :class:`ForecastOutput` when it has more to say (the VIB student's KL term).
Models know nothing of losses, optimisers or files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass
class ModelContext:
    """Facts of the dataset a model is built for (never the data itself, except the graph)."""

    num_regions: int
    input_len: int = 12
    output_len: int = 12
    num_channels: int = 2
    slots_per_day: int = 48
    adjacency: np.ndarray | None = None

    @classmethod
    def from_windows(cls, windows: Any) -> ModelContext:
        ds = windows.dataset
        return cls(
            num_regions=ds.num_regions,
            input_len=windows.cfg.input_len,
            output_len=windows.cfg.output_len,
            num_channels=ds.num_channels,
            slots_per_day=ds.slots_per_day,
            adjacency=ds.adjacency,
        )

    def graph(self, self_loops: bool = True) -> np.ndarray:
        """The 0/1-or-weighted adjacency (identity if the dataset has none), optionally with loops."""
        a = (
            np.eye(self.num_regions, dtype=np.float32)
            if self.adjacency is None
            else np.asarray(self.adjacency, dtype=np.float32).copy()
        )
        np.fill_diagonal(a, 1.0 if self_loops else 0.0)
        return a


@dataclass
class ForecastOutput:
    """A forecast plus the auxiliary terms some models expose (e.g. ``kl`` of the VIB student)."""

    pred: torch.Tensor
    aux: dict[str, torch.Tensor] = field(default_factory=dict)


def as_output(out: torch.Tensor | ForecastOutput) -> ForecastOutput:
    return out if isinstance(out, ForecastOutput) else ForecastOutput(out)


def target_calendar(
    tod: torch.Tensor, dow: torch.Tensor, horizon: int, slots_per_day: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Time-of-day / day-of-week of the H target steps that follow the last input step."""
    steps = torch.arange(1, horizon + 1, device=tod.device)
    total = tod[:, -1:] + steps
    return total % slots_per_day, (dow[:, -1:] + total // slots_per_day) % 7


# ---------------------------------------------------------------------------------- registry
Builder = Callable[[ModelContext, dict[str, Any]], nn.Module]
_REGISTRY: dict[str, tuple[Builder, type | None, str]] = {}


def register(name: str, config_cls: type | None = None, summary: str = "") -> Callable:
    """Decorator: ``@register("stid", STIDConfig)`` on a ``build(ctx, cfg) -> nn.Module``."""

    def deco(fn: Builder) -> Builder:
        _REGISTRY[name] = (fn, config_cls, summary)
        return fn

    return deco


def make_config(config_cls: type, overrides: dict[str, Any] | None) -> Any:
    """A config dataclass with the paper's defaults, refusing unknown override names."""
    overrides = dict(overrides or {})
    known = {f.name for f in fields(config_cls)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"{config_cls.__name__} has no option(s) {sorted(unknown)}; known: {sorted(known)}")
    return config_cls(**overrides)


def build_model(name: str, ctx: ModelContext, overrides: dict[str, Any] | None = None) -> nn.Module:
    _load_all()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(_REGISTRY)}")
    fn, config_cls, _ = _REGISTRY[name]
    cfg = make_config(config_cls, overrides) if config_cls is not None else dict(overrides or {})
    return fn(ctx, cfg)


def model_config(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The resolved config of a model as a dict (written beside every result)."""
    from dataclasses import asdict

    _load_all()
    _, config_cls, _ = _REGISTRY[name]
    return asdict(make_config(config_cls, overrides)) if config_cls is not None else {}


def available_models() -> dict[str, str]:
    _load_all()
    return {k: v[2] for k, v in sorted(_REGISTRY.items())}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _load_all() -> None:
    # Importing the package registers every model module listed in it.
    import flowdistill.models  # noqa: F401

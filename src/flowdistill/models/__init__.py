"""Forecasters as plain ``nn.Module``s; importing this package registers every model."""

from flowdistill.models import (  # noqa: F401
    astgcn,
    bigst,
    easyst,
    simple,
    stid,
    stmlp,
    stsgcn,
    student,
    stwa,
)
from flowdistill.models.base import (
    ForecastOutput,
    ModelContext,
    available_models,
    build_model,
    count_parameters,
    model_config,
)

__all__ = [
    "ForecastOutput",
    "ModelContext",
    "available_models",
    "build_model",
    "count_parameters",
    "model_config",
]

"""The one training engine for every model."""

from flowdistill.engine.trainer import (
    FitResult,
    SupervisedObjective,
    TrainConfig,
    Trainer,
    seed_everything,
    write_json,
)

__all__ = ["FitResult", "SupervisedObjective", "TrainConfig", "Trainer", "seed_everything", "write_json"]

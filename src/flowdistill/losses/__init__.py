"""Loss terms of Eq. (12) as pure functions, and the FlowDistill objective that combines them."""

from flowdistill.losses.distill import DistillConfig, DistillObjective
from flowdistill.losses.terms import (
    kl_term,
    spatial_correlation_loss,
    teacher_bounded_loss,
    temporal_correlation_loss,
)

__all__ = [
    "DistillConfig",
    "DistillObjective",
    "kl_term",
    "spatial_correlation_loss",
    "teacher_bounded_loss",
    "temporal_correlation_loss",
]

"""The stages, in pipeline order. Each is one file and one registration here."""

from harness.stages import (
    backward,
    config,
    data,
    forward,
    loss,
    metrics,
    optimizer,
    scaler,
    split,
    train,
    weights,
)
from harness.stages.base import Stage

STAGES: list[Stage] = [
    config.STAGE,
    data.STAGE,
    split.STAGE,
    scaler.STAGE,
    weights.STAGE,
    forward.STAGE,
    loss.STAGE,
    backward.STAGE,
    optimizer.STAGE,
    train.STAGE,
    metrics.STAGE,
]
STAGE_NAMES = [s.name for s in STAGES]

"""The stages' names, in pipeline order: the registration harness/stages reads, and what the configuration
checks stage names against. Its own module, below every other, so the configuration does not import the
stages (which import the reference, and torch)."""

from __future__ import annotations

STAGE_NAMES = [
    "config",
    "data",
    "split",
    "scaler",
    "weights",
    "forward",
    "loss",
    "backward",
    "optimizer",
    "train",
    "metrics",
]

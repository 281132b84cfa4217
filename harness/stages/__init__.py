"""The stages, in pipeline order. Each is one file, named for its stage, and one registration here: its
name in STAGE_NAMES. The names are read without importing the stages (the configuration checks stage names
in harness.toml without torch); STAGES imports them on first use."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.stages.base import Stage

    STAGES: list[Stage]

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


def __getattr__(name: str) -> Any:
    if name != "STAGES":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    stages = [importlib.import_module(f"{__name__}.{n}").STAGE for n in STAGE_NAMES]
    # A stage's module is named for it: the registration above cannot name a stage its file does not.
    assert [s.name for s in stages] == STAGE_NAMES, [s.name for s in stages]
    globals()["STAGES"] = stages
    return stages

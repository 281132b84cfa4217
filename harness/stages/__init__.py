"""The stages, in pipeline order. Each is one file, named for its stage, and one registration: its name in
STAGE_NAMES (harness/stage_names.py, read without importing the stages: the configuration checks stage
names in harness.toml without torch). STAGES imports them on first use."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from harness.stage_names import STAGE_NAMES

if TYPE_CHECKING:
    from harness.stages.base import Stage

    STAGES: list[Stage]

__all__ = ["STAGES", "STAGE_NAMES", "load"]


def load(names: list[str] | None = None) -> list[Stage]:
    """The stages named (all when None), in pipeline order, importing only their modules: a run of the
    config stage alone loads neither torch nor the reference."""
    if names is None:
        return __getattr__("STAGES")
    return [importlib.import_module(f"{__name__}.{n}").STAGE for n in STAGE_NAMES if n in names]


def __getattr__(name: str) -> Any:
    if name != "STAGES":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    stages = [importlib.import_module(f"{__name__}.{n}").STAGE for n in STAGE_NAMES]
    # A stage's module is named for it: the registration cannot name a stage its file does not.
    assert [s.name for s in stages] == STAGE_NAMES, [s.name for s in stages]
    globals()["STAGES"] = stages
    return stages

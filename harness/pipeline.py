"""Runs stages in order, records each result, and localizes the first divergence."""

from __future__ import annotations

import time
from collections.abc import Callable

from harness import progress
from harness.config import RunConfig
from harness.errors import HarnessError, PortFailure, PortStructureError, PortUnsupported
from harness.results import ERROR, FAIL, SKIP, Report, StageResult
from harness.stages import load
from harness.stages.base import Context


def run(
    cfg: RunConfig, stages: list[str] | None = None, on_stage: Callable[[StageResult], None] | None = None
) -> Report:
    ctx = Context(cfg)
    try:
        return run_with(ctx, stages, on_stage)
    finally:
        ctx.close()


def _unsupported(stage: str, why: str, required: bool) -> StageResult:
    """A stage whose method the port does not implement: SKIP with the reason (a partial port, an
    inference-only one, is a first-class use), or FAIL when the stage was required."""
    if required:
        hint = f"required (--require) but not implemented by the port: {why}"
        return StageResult(stage, FAIL, hint=hint, metrics={"required": True, "unsupported": why})
    return StageResult(stage, SKIP, hint=f"not implemented by the port: {why}", metrics={"unsupported": why})


def _structure(stage: str, why: str, first: str, required: bool) -> StageResult:
    """A stage that cannot feed the reference's parameters to the port's model: the first to find it
    FAILs with the port's words (a model that differs is a divergence, not a broken run); a later one is
    SKIP, pointing there, unless it was required."""
    if first and not required:
        return StageResult(stage, SKIP, hint=f"the port's model does not take the reference's parameters (see {first})")
    hint = f"the port's model does not take the reference's parameters: {why}"
    return StageResult(stage, FAIL, hint=hint, metrics={"structure": why})


def run_with(
    ctx: Context, stages: list[str] | None = None, on_stage: Callable[[StageResult], None] | None = None
) -> Report:
    report = Report(ctx.cfg)
    t0 = time.perf_counter()
    selected = load(stages)
    if any(s.name in ("train", "metrics") for s in selected):
        try:
            ctx.start_ensemble()
        except Exception:  # bad input: the stages that need it report it, one by one
            pass
    structure = ""  # the first stage that found the port's model not taking the reference's parameters
    for stage in selected:
        progress.current().stage(stage.name, selected.index(stage) + 1, len(selected))
        t = time.perf_counter()
        try:
            res = stage.run(ctx)
        except PortUnsupported as e:
            res = _unsupported(stage.name, str(e), stage.name in ctx.cfg.require)
        except PortStructureError as e:
            res = _structure(stage.name, str(e), structure, stage.name in ctx.cfg.require)
        except (HarnessError, PortFailure) as e:
            res = StageResult(stage.name, ERROR, error=str(e), error_kind=type(e).__name__)
        except Exception as e:  # a stage that could not run is ERROR, never PASS
            res = StageResult(stage.name, ERROR, error=f"{type(e).__name__}: {e}", error_kind=type(e).__name__)
        res.seconds = time.perf_counter() - t
        if not structure and res.metrics.get("structure"):
            structure = res.stage
        report.results.append(res)
        if on_stage:
            on_stage(res)
    report.seconds = time.perf_counter() - t0
    report.port = ctx.port_identity()
    # The kernel-dependent cache first (its key names the run); a run that only needed the static one
    # (config alone) reports that one.
    caches = [c for c in (ctx.__dict__.get("cache"), ctx.__dict__.get("static_cache")) if c is not None]
    if caches:
        parts = {part: how for c in caches for part, how in c.status.items()}
        report.cache = {"dir": str(caches[0].root), "key": caches[0].key, "parts": parts}
    return report

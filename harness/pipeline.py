"""Runs stages in order, records each result, and localizes the first divergence."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness import __version__, progress
from harness.config import RunConfig
from harness.errors import HarnessError, PortFailure, PortStructureError, PortUnsupported
from harness.port import PortError
from harness.report.owner import DIFF_REPORT
from harness.stages import STAGES
from harness.stages.base import ERROR, FAIL, FREE_RUN_CHECKS, PASS, SKIP, Context, StageResult

# The schema id also marks the file as the harness's own (harness/report/owner.py).
SCHEMA_NAME = DIFF_REPORT
# 1.1, 1.2: additions (fields marked "since" in schema.json). 1.2 also judges independent runs against the
# reference's seed-to-seed spread, so the metrics stage no longer has the end_to_end.mcnemar_p check (the
# p-values stay in its metrics).
SCHEMA_VERSION = "1.6"


@dataclass
class Report:
    cfg: RunConfig
    results: list[StageResult] = field(default_factory=list)
    seconds: float = 0.0
    # What a subprocess port said about itself in `hello` (name, backend, faults, protocol), if it did.
    port: dict[str, Any] | None = None
    # The reference cache: its directory, key and what each part was ("hit", "miss", "stale: why"); None
    # when caching is off.
    cache: dict[str, Any] | None = None

    @property
    def first_divergence(self) -> StageResult | None:
        return next((r for r in self.results if r.status == FAIL), None)

    def downstream_of(self, r: StageResult) -> str | None:
        """The earlier failing stage a failing stage may only echo, or None. Every stage is teacher-forced
        (fed the reference's data, parameters and state), so a later failure is its own divergence; only
        checks that compound everything before them, the free runs (FREE_RUN_CHECKS), can come from an
        earlier stage, and only a stage whose every failing check is one of them is marked."""
        first = self.first_divergence
        if first is None or r is first or r.status != FAIL:
            return None
        failing = [c.name for c in r.checks if not c.passed]
        return first.stage if failing and all(n.startswith(FREE_RUN_CHECKS) for n in failing) else None

    @property
    def errored(self) -> bool:
        return any(r.status == ERROR for r in self.results)

    @property
    def passed(self) -> bool:
        """No stage failed or errored: a stage the port does not implement is SKIP and fails nothing,
        unless it was required (RunConfig.require), when run_with made it a FAIL."""
        return all(r.status in (PASS, SKIP) for r in self.results)

    @property
    def skipped(self) -> list[StageResult]:
        return [r for r in self.results if r.status == SKIP]

    @property
    def exit_code(self) -> int:
        if self.errored:
            return 2
        return 0 if self.passed else 1

    def to_dict(self) -> dict[str, Any]:
        first = self.first_divergence
        fd = None
        if first is not None:
            worst = first.first_failure
            fd = {"stage": first.stage, "hint": first.hint, "check": worst.to_dict() if worst else None}
        return {
            "schema": SCHEMA_NAME,
            "schema_version": SCHEMA_VERSION,
            "harness_version": __version__,
            "passed": self.passed,
            "exit_code": self.exit_code,
            "first_divergence": fd,
            "config": {
                "data": str(self.cfg.data),
                "label": self.cfg.label,
                # With a port command, the port decides these; record what it said, not unused defaults.
                "backend": self.cfg.backend if self.cfg.port_cmd is None else (self.port or {}).get("backend"),
                "fault": self.cfg.fault
                if self.cfg.port_cmd is None
                else ",".join((self.port or {}).get("faults") or []),
                "seed": self.cfg.seed,
                "epochs": self.cfg.epochs,
                "seeds": self.cfg.seeds,
                "tolerance_overrides": self.cfg.tolerances,
                # Since 1.3: the reference model, loss, optimizer and task ("" reference: the classifier).
                "model": {
                    "reference": self.cfg.reference,
                    "task": self.cfg.task,
                    "loss": self.cfg.loss,
                    "optimizer": self.cfg.optimizer,
                },
                "port": None
                if self.cfg.port_cmd is None
                else {
                    "cmd": self.cfg.port_cmd,
                    "timeout_s": self.cfg.port_timeout,
                    # Since 1.5: what the port's harness.toml declares about it.
                    "loss_input": self.cfg.loss_input,
                    # Since 1.6: "output" when the port reports its model's output only.
                    "layers": self.cfg.layers,
                    "rename": [list(rule) for rule in self.cfg.rename],
                    **(self.port or {}),
                },
            },
            "seconds": round(self.seconds, 3),
            # Since 1.5: which parts of the reference came from the cache.
            "cache": self.cache,
            "stages": [
                {
                    **r.to_dict(),
                    "downstream_of": self.downstream_of(r),
                }
                for r in self.results
            ],
        }


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
    selected = [s for s in STAGES if not stages or s.name in stages]
    if any(s.name in ("train", "metrics") for s in selected):
        try:
            ctx.start_ensemble()
        except Exception:  # bad input: the stages that need it report it, one by one
            pass
    structure = ""  # the first stage that found the port's model not taking the reference's parameters
    for stage in STAGES:
        if stages and stage.name not in stages:
            continue
        progress.current().stage(stage.name, selected.index(stage) + 1, len(selected))
        t = time.perf_counter()
        try:
            res = stage.run(ctx)
        except PortUnsupported as e:
            res = _unsupported(stage.name, str(e), stage.name in ctx.cfg.require)
        except PortStructureError as e:
            res = _structure(stage.name, str(e), structure, stage.name in ctx.cfg.require)
        except (HarnessError, PortError, PortFailure) as e:
            res = StageResult(stage.name, ERROR, error=str(e))
        except Exception as e:  # a stage that could not run is ERROR, never PASS
            res = StageResult(stage.name, ERROR, error=f"{type(e).__name__}: {e}")
        res.seconds = time.perf_counter() - t
        if not structure and res.metrics.get("structure"):
            structure = res.stage
        report.results.append(res)
        if on_stage:
            on_stage(res)
    report.seconds = time.perf_counter() - t0
    report.port = ctx.port_identity()
    c = ctx.__dict__.get("cache")
    if c is not None:
        report.cache = {"dir": str(c.root), "key": c.key, "parts": dict(c.status)}
    return report

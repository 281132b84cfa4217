"""What a diff produces: each stage's result and the whole report, as plain values that the reports (table,
JSON, JUnit, HTML) render. Torch-free and below every other layer: the pipeline and the stages build these,
harness/report reads them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness import __version__
from harness.compare import ArrayDiff

if TYPE_CHECKING:
    from harness.config import RunConfig

PASS, FAIL, ERROR, SKIP = "PASS", "FAIL", "ERROR", "SKIP"
# Checks of a free run (the port trained on its own, judged against the envelope or its shadow, and the
# end-to-end accuracy of independent runs): the only checks an earlier stage's divergence can reach.
# Every other check is teacher-forced, fed the reference's inputs.
FREE_RUN_CHECKS = ("envelope.", "shadow.params", "shadow.epoch_loss", "end_to_end.")


@dataclass
class StageResult:
    stage: str
    status: str
    checks: list[ArrayDiff] = field(default_factory=list)
    hint: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    # What stopped an ERROR stage: the failure's class (PortPanic, PortTimeout, HarnessError, ...).
    error_kind: str = ""
    seconds: float = 0.0
    # Counterfactual causes that reproduce the port's numbers (harness/diagnosis), best first; failing
    # stages with a catalogue only.
    diagnosis: list[dict[str, Any]] = field(default_factory=list)
    # What the diagnosis came to, so that nothing reads it from the hint: "named" (causes above),
    # "unexplained" (the stage's catalogue was tried and no candidate reproduces the port) or "" (the
    # stage passed, has no catalogue, or stopped before trying it: a NaN loss, a gradient check).
    diagnosis_outcome: str = ""

    @property
    def first_failure(self) -> ArrayDiff | None:
        return next((c for c in self.checks if not c.passed), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "status": self.status,
            "hint": self.hint,
            "error": self.error,
            "error_kind": self.error_kind,
            "seconds": round(self.seconds, 3),
            "metrics": self.metrics,
            "checks": [c.to_dict() for c in self.checks],
            "diagnosis": self.diagnosis,
            "diagnosis_outcome": self.diagnosis_outcome,
        }


def result(
    stage: str,
    checks: list[ArrayDiff],
    hint: str = "",
    diagnosis: list[dict[str, Any]] | None = None,
    tried: bool | None = None,
    **metrics: Any,
) -> StageResult:
    """A stage's result from its checks. `diagnosis`: the causes its catalogue named, given (even empty)
    when the catalogue was tried; `tried` says so explicitly where a stage passes causes it did not fit
    (or stopped before its catalogue)."""
    ok = all(c.passed for c in checks)
    tried = diagnosis is not None if tried is None else tried
    outcome = "" if ok else "named" if diagnosis else "unexplained" if tried else ""
    return StageResult(
        stage,
        PASS if ok else FAIL,
        checks,
        "" if ok else hint,
        metrics,
        diagnosis=diagnosis or [],
        diagnosis_outcome=outcome,
    )


# The schema id also marks the file as the harness's own (harness/report/owner.py).
SCHEMA_NAME = "burn-torch-harness/diff-report"
# 1.1, 1.2: additions (fields marked "since" in schema.json). 1.2 also judges independent runs against the
# reference's seed-to-seed spread, so the metrics stage no longer has the end_to_end.mcnemar_p check (the
# p-values stay in its metrics). 1.7: a stage's error_kind. 1.8: a stage's diagnosis_outcome. 1.9: the
# built-in classifier's forward causes take the ids every model's forward gives (docs/design.md has the
# old ids and their new ones). 1.10: a configured Adam or AdamW model's optimizer causes take the ids the
# classifier's gave (`adam.lr`, `adam.eps`, `adam.beta1`, `adam.beta2`), from the one optimizer catalogue.
SCHEMA_VERSION = "1.10"


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

"""What a stage returns, and the shared, lazily computed inputs every stage draws from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from harness.compare import ArrayDiff
from harness.config import RunConfig
from harness.data import Prepared, prepare
from harness.port import BurnPort
from harness.reference import model as ref_model
from harness.reference import train as ref_train
from harness.tolerances import ENVELOPE_RUNS, tolerance

PASS, FAIL, ERROR, SKIP = "PASS", "FAIL", "ERROR", "SKIP"
ENVELOPE_DITHER_SEED = 7919


@dataclass
class StageResult:
    stage: str
    status: str
    checks: list[ArrayDiff] = field(default_factory=list)
    hint: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    seconds: float = 0.0

    @property
    def first_failure(self) -> ArrayDiff | None:
        return next((c for c in self.checks if not c.passed), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "status": self.status,
            "hint": self.hint,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "metrics": self.metrics,
            "checks": [c.to_dict() for c in self.checks],
        }


def result(stage: str, checks: list[ArrayDiff], hint: str = "", **metrics: Any) -> StageResult:
    ok = all(c.passed for c in checks)
    return StageResult(stage, PASS if ok else FAIL, checks, "" if ok else hint, metrics)


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    run: Callable[[Context], StageResult]


# Lockstep traces record every step of the first epoch (parameters, gradients, optimizer state).
def first_epoch_steps(n_train: int, batch_size: int) -> int:
    return -(-n_train // batch_size)


class Context:
    """Everything stages share, computed once on first use. Data flows one way: the reference's
    inputs are handed to the port stage by stage (teacher forcing)."""

    def __init__(self, cfg: RunConfig, port: BurnPort | None = None) -> None:
        self.cfg = cfg
        self._port = port

    def tol(self, key: str):
        return tolerance(key, self.cfg.tolerances)

    @cached_property
    def port(self) -> BurnPort:
        return self._port or BurnPort(self.cfg.backend, self.cfg.fault, self.cfg.epochs)

    @cached_property
    def prepared(self) -> Prepared:
        return prepare(self.cfg)

    @cached_property
    def n_features(self) -> int:
        return self.prepared.x_train.shape[1]

    @cached_property
    def init(self) -> dict[str, np.ndarray]:
        return ref_model.init_params(self.n_features, self.cfg.seed)

    @cached_property
    def orders(self) -> np.ndarray:
        return ref_train.batch_orders(len(self.prepared.y_train), self.cfg.epochs, self.cfg.seed)

    @cached_property
    def steps_per_epoch(self) -> int:
        return first_epoch_steps(len(self.prepared.y_train), self.cfg.batch_size)

    @cached_property
    def ref_trace(self) -> ref_train.Trace:
        p = self.prepared
        return ref_train.train(p.x_train, p.y_train, self.init, self.orders, self.cfg, self.steps_per_epoch)

    @cached_property
    def envelope_traces(self) -> list[ref_train.Trace]:
        """How far float32 rounding alone carries the reference from itself: the reference in float64
        (the float32 run's distance from it is its rounding noise), plus ENVELOPE_RUNS - 1 float32 runs
        from initial weights one ULP away with one-ULP noise in every gradient. Chaotic drift takes off
        at a random epoch, so one run is a noisy yardstick; the harness uses the ensemble's largest drift."""
        p = self.prepared
        nudged = ref_model.nudge(self.init)
        runs = [ref_train.train(p.x_train, p.y_train, self.init, self.orders, self.cfg, float64=True)]
        runs += [
            ref_train.train(
                p.x_train,
                p.y_train,
                nudged,
                self.orders,
                self.cfg,
                dither_seed=ENVELOPE_DITHER_SEED + 1000 * k + self.cfg.seed,
            )
            for k in range(ENVELOPE_RUNS - 1)
        ]
        return runs

    @cached_property
    def port_trace(self) -> dict[str, Any]:
        p = self.prepared
        return self.port.train(
            p.x_train,
            p.y_train,
            params=self.init,
            orders=self.orders,
            epochs=self.cfg.epochs,
            seed=self.cfg.seed,
            record_steps=self.steps_per_epoch,
        )

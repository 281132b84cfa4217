"""Independent runs are judged against the reference's own seed-to-seed spread (harness/tolerances.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harness.pipeline import run_with
from harness.stages.base import Context
from harness.stages.metrics import end_to_end_verdict, seed_spread_pp
from harness.tolerances import REFERENCE_SEEDS

# Float32 and float64 claims that must hold on any CPU: .ci/run repeats them under each kernel level.
pytestmark = pytest.mark.numeric


def test_seed_spread_is_a_student_t_prediction_bound() -> None:
    accs = [0.90, 0.92] * 4  # 8 seeds, sample sd 0.0106904
    # t(0.9995, 7) = 5.4079 (tables); one port seed: sqrt(1 + 1/8).
    assert seed_spread_pp(accs, 1) == pytest.approx(100 * 5.4079 * 0.0106904 * np.sqrt(1 + 1 / 8), rel=1e-4)
    # Three port seeds average out: sqrt(1/3 + 1/8).
    assert seed_spread_pp(accs, 3) == pytest.approx(100 * 5.4079 * 0.0106904 * np.sqrt(1 / 3 + 1 / 8), rel=1e-4)
    assert seed_spread_pp([0.9] * 8, 1) == 0.0
    assert seed_spread_pp([0.9], 1) == 0.0


def test_a_gap_within_the_reference_spread_passes_and_beyond_it_fails() -> None:
    # 2,000 test rows; the reference's seeds spread enough to allow 2.5 points.
    assert end_to_end_verdict(2.0, 30, 70, 2000, spread_pp=2.5) == ("pass", 2.5)
    # The same gap with a tight reference (allowance 0.5 point) is more than McNemar's noise: fail.
    assert end_to_end_verdict(2.0, 30, 70, 2000, spread_pp=0.5)[0] == "fail"


class _MisalignedPort:
    """The faithful port, except that its own training shuffles the labels apart from the features (a
    real porting bug: two shuffles where one permutation must index both), which only the end-to-end
    comparison sees, since the lockstep stages hand the port the reference's batches."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def train(self, x: np.ndarray, y: np.ndarray, **kw: Any) -> dict[str, Any]:
        if kw.get("params") is None:
            y = y[np.random.default_rng(kw.get("seed", 0)).permutation(len(y))]
        return self._inner.train(x, y, **kw)


def test_faithful_independent_runs_pass_and_a_misaligned_port_fails(faithful_run) -> None:
    base, report = faithful_run
    metrics = next(r for r in report.results if r.stage == "metrics")
    assert metrics.status == "PASS", metrics.checks
    e2e = metrics.metrics["end_to_end"]
    assert len(metrics.metrics["accuracy_ref_seeds"]) == 1 + REFERENCE_SEEDS and e2e["seed_spread_pp"] > 0
    ctx = Context(base.cfg, port=_MisalignedPort(base.port))
    ctx.adopt_reference(base)
    bad = run_with(ctx, ["metrics"]).results[0]
    assert bad.status == "FAIL"
    check = next(c for c in bad.checks if c.name == "end_to_end.accuracy_gap_pp")
    assert not check.passed and check.abs_err * 100 > check.tolerance["atol"]
    assert f"reference, {1 + REFERENCE_SEEDS} seeds" in check.reason

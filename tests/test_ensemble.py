"""The reference's other runs, trained in a second process: same numbers as in this process, and a worker
that fails is an ERROR with one line."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from harness.config import BUNDLED_DATA, RunConfig
from harness.data import prepare
from harness.pipeline import run_with
from harness.reference import ensemble
from harness.reference import model as ref_model
from harness.reference import train as ref_train
from harness.stages.base import Context
from harness.tolerances import ENVELOPE_DITHERED

# Float32 and float64 claims that must hold on any CPU: .ci/run repeats them under each kernel level.
pytestmark = pytest.mark.numeric


def test_worker_process_gives_the_same_numbers_as_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = RunConfig(data=BUNDLED_DATA, epochs=2, seed=4)
    p = prepare(cfg)
    init = ref_model.init_params(p.x_train.shape[1], cfg.seed)
    orders = ref_train.batch_orders(len(p.y_train), cfg.epochs, cfg.seed)
    there = ensemble.start(p.x_train, p.y_train, init, orders, cfg, [5, 6]).result()
    monkeypatch.setattr(ensemble, "IN_PROCESS", True)
    here = ensemble.start(p.x_train, p.y_train, init, orders, cfg, [5, 6]).result()
    assert [r.label for r in there.envelope] == [r.label for r in here.envelope]
    assert len(here.envelope) == 2 + ENVELOPE_DITHERED and sorted(there.seeds) == [5, 6]
    for a, b in zip(there.envelope, here.envelope, strict=True):
        np.testing.assert_array_equal(a.step_loss, b.step_loss)
        np.testing.assert_array_equal(a.epoch_loss, b.epoch_loss)
        assert len(a.epoch_params) == cfg.epochs
        for pa, pb in zip(a.epoch_params, b.epoch_params, strict=True):
            assert pa.keys() == init.keys()
            for k in init:
                np.testing.assert_array_equal(pa[k], pb[k])
    for s in (5, 6):
        for k in init:
            np.testing.assert_array_equal(there.seeds[s][k], here.seeds[s][k])
    # Negative control: the seeds' runs are not the envelope's.
    assert not np.array_equal(there.seeds[5]["fc1.weight"], there.envelope[1].final["fc1.weight"])


def test_a_worker_that_fails_is_an_error_with_one_line(faithful_run, monkeypatch: pytest.MonkeyPatch) -> None:
    base, _ = faithful_run
    ctx = Context(base.cfg)
    for name in Context.REFERENCE_SIDE:
        if name != "ensemble" and name in base.__dict__:
            ctx.__dict__[name] = base.__dict__[name]
    monkeypatch.setattr(sys, "executable", "/bin/false")
    report = run_with(ctx, ["train", "metrics"])
    assert [r.status for r in report.results] == ["ERROR", "ERROR"]
    for r in report.results:
        assert r.error.startswith("the reference's envelope runs failed in the worker process (exit 1)")
        assert "\n" not in r.error
    assert report.exit_code == 2

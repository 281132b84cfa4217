"""The batched trainer (harness/reference/batched.py) trains the reference's own network, loss and Adam:
held against the nn.Module loop it stands in for, with negative controls that the comparison can fail."""

from __future__ import annotations

import numpy as np
import pytest

from harness.config import BUNDLED_DATA, RunConfig
from harness.data import prepare
from harness.reference import batched
from harness.reference import model as ref_model
from harness.reference import train as ref_train
from harness.reference.batched import Member

# Float32 and float64 claims that must hold on any CPU: .ci/run repeats them under each kernel level.
pytestmark = pytest.mark.numeric

EPOCHS = 2


@pytest.fixture(scope="module")
def setup():
    cfg = RunConfig(data=BUNDLED_DATA, epochs=EPOCHS)
    p = prepare(cfg)
    init = ref_model.init_params(p.x_train.shape[1], 3)
    orders = ref_train.batch_orders(len(p.y_train), EPOCHS, 3)
    return cfg, p, init, orders


def _params_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a)


def test_float64_member_is_the_reference_loop_in_float64(setup) -> None:
    cfg, p, init, orders = setup
    ref = ref_train.train(p.x_train, p.y_train, init, orders, cfg, float64=True)
    got = batched.train(p.x_train, p.y_train, [Member(init, orders)], cfg, float64=True)
    # Same formulas in float64, other summation order: differences at float64 rounding (measured 2e-15
    # in step loss; 3e-8 in parameters after 20 epochs, float64 chaos).
    assert np.abs(got.step_loss[0] - ref.step_loss).max() < 1e-12
    np.testing.assert_allclose(got.epoch_loss[0], ref.epoch_loss, rtol=1e-12)
    assert _params_diff(got.final(0), ref.final) < 1e-9


@pytest.mark.parametrize("float32_adam", [False, True])
def test_float32_member_tracks_the_reference_loop(setup, float32_adam: bool) -> None:
    cfg, p, init, orders = setup
    ref = ref_train.train(p.x_train, p.y_train, init, orders, cfg, float32_adam=float32_adam)
    got = batched.train(p.x_train, p.y_train, [Member(init, orders, float32_adam=float32_adam)], cfg)
    steps = -(-len(p.y_train) // cfg.batch_size)
    # The lockstep bar of the train stage: per-step loss to 1e-5 relative over the first epoch.
    np.testing.assert_allclose(got.step_loss[0][:steps], ref.step_loss[:steps], rtol=1e-5, atol=1e-7)


def test_negative_control_another_learning_rate_is_told_apart(setup) -> None:
    cfg, p, init, orders = setup
    ref = ref_train.train(p.x_train, p.y_train, init, orders, cfg)
    got = batched.train(p.x_train, p.y_train, [Member(init, orders)], cfg.with_(lr=cfg.lr * 1.01))
    steps = -(-len(p.y_train) // cfg.batch_size)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(got.step_loss[0][:steps], ref.step_loss[:steps], rtol=1e-5, atol=1e-7)


def test_members_train_their_own_seeds_and_orders(setup) -> None:
    """A member from another seed is that seed's reference run, not a copy of its neighbour."""
    cfg, p, init, orders = setup
    init5 = ref_model.init_params(p.x_train.shape[1], 5)
    orders5 = ref_train.batch_orders(len(p.y_train), EPOCHS, 5)
    got = batched.train(p.x_train, p.y_train, [Member(init, orders), Member(init5, orders5)], cfg, float64=True)
    ref5 = ref_train.train(p.x_train, p.y_train, init5, orders5, cfg, float64=True)
    assert _params_diff(got.final(1), ref5.final) < 1e-9
    assert _params_diff(got.final(0), ref5.final) > 1e-2


def test_dither_moves_each_nonzero_element_one_ulp() -> None:
    g = np.array([[1.0, -2.5, 0.0, 3e-30, -1e-38]], dtype=np.float32)
    for sign in (1, -1):
        out = g.copy()
        batched.nudge_ulp_(out, np.full(g.shape, sign, dtype=np.int32))
        mag = np.abs(g)
        expect = np.sign(g) * np.nextafter(mag, np.float32(np.inf if sign > 0 else 0))
        np.testing.assert_array_equal(out, expect.astype(np.float32))
    untouched = g.copy()
    batched.nudge_ulp_(untouched, np.zeros(g.shape, dtype=np.int32))
    np.testing.assert_array_equal(untouched, g)


def test_dithered_member_leaves_the_undithered_one(setup) -> None:
    cfg, p, init, orders = setup
    got = batched.train(p.x_train, p.y_train, [Member(init, orders), Member(init, orders, dither=True)], cfg)
    d = _params_diff(got.final(0), got.final(1))
    # One-ULP noise, amplified by Adam where gradients are near zero, but nowhere near a different run.
    assert 0 < d < 1e-3

"""The regression losses (harness/specs.py): L1Loss, HuberLoss and SmoothL1Loss follow torch's formulas
through the reference, load from a harness.toml with their options checked, and the loss stage's
catalogue (harness/diagnosis/criteria.py) names a port that applies another regression loss, each with a
control that no candidate reproduces."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.config import RunConfig, load_model_settings
from harness.diagnosis import criteria
from harness.diagnosis.loss import Case
from harness.errors import HarnessError
from harness.reference.reference import Reference
from harness.tolerances import tolerance

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _ref(loss: str, **options: float) -> Reference:
    return Reference(RunConfig(task="regression", loss=loss, loss_options=options), 4, 1)


def _huber(r: np.ndarray, d: float) -> np.ndarray:
    return np.where(np.abs(r) <= d, 0.5 * r**2, d * (np.abs(r) - 0.5 * d))


@pytest.mark.parametrize(
    ("loss", "options", "value", "grad"),
    [
        ("L1Loss", {}, lambda r: np.abs(r), lambda r: np.sign(r)),
        ("HuberLoss", {}, lambda r: _huber(r, 1.0), lambda r: np.clip(r, -1.0, 1.0)),
        ("HuberLoss", {"delta": 2.5}, lambda r: _huber(r, 2.5), lambda r: np.clip(r, -2.5, 2.5)),
        ("SmoothL1Loss", {"beta": 0.5}, lambda r: _huber(r, 0.5) / 0.5, lambda r: np.clip(r, -0.5, 0.5) / 0.5),
    ],
)
def test_each_regression_loss_is_torchs_formula(loss: str, options: dict, value, grad) -> None:
    rng = np.random.default_rng(5)
    p = rng.normal(0, 2, 40).astype(np.float32)
    y = rng.normal(0, 2, 40).astype(np.float32)
    r = p.astype(np.float64) - y
    v, g = _ref(loss, **options).loss_and_grad(p, y)
    assert v == pytest.approx(float(np.mean(value(r))), rel=1e-6)
    np.testing.assert_allclose(g, grad(r) / len(y), rtol=1e-5, atol=1e-9)


def test_the_suite_straddles_the_size_where_the_loss_changes_form() -> None:
    """A Huber reference's suite holds residuals on both sides of its delta (so a port with another delta
    differs on it), spread from a tenth to ten times it."""
    suite = _ref("HuberLoss", delta=20.0).loss_suite()
    p, y = suite["around_delta"]
    r = np.abs(p.astype(np.float64) - y)
    assert r.min() == pytest.approx(2.0, rel=1e-4) and r.max() == pytest.approx(200.0, rel=1e-4)
    assert "around_delta" not in _ref("MSELoss").loss_suite()


def test_a_loss_option_loads_from_the_config_and_is_a_hyperparameter(tmp_path: Path) -> None:
    f = tmp_path / "harness.toml"
    f.write_text('[model]\ntask = "regression"\n[model.loss]\nname = "HuberLoss"\ndelta = 2\n')
    settings = load_model_settings(f)
    assert (settings["loss"], settings["loss_options"]) == ("HuberLoss", {"delta": 2.0})
    cfg = RunConfig(**settings)
    assert cfg.reference_hyperparameters()["delta"] == 2.0
    # An option left out is torch's default, stated to the port all the same.
    assert RunConfig(task="regression", loss="SmoothL1Loss").reference_hyperparameters()["beta"] == 1.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "HuberLoss"\ndelta = 0\n', "[model.loss] delta must be in (0, inf], got 0"),
        ('name = "SmoothL1Loss"\nbeta = -1\n', "[model.loss] beta must be in [0, inf], got -1"),
        ('name = "L1Loss"\ndelta = 1\n', "unknown key 'delta' in [loss]; keys are name"),
        ('name = "HuberLoss"\nbeta = 1\n', "unknown key 'beta' in [loss]; keys are name, delta"),
    ],
)
def test_a_bad_loss_option_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "harness.toml"
    f.write_text(f'[model]\ntask = "regression"\n[model.loss]\n{text}')
    with pytest.raises(HarnessError) as e:
        load_model_settings(f)
    assert message in str(e.value) and "\n" not in str(e.value)


# -- diagnosis -------------------------------------------------------------------------------------------


def _cases(ref: Reference, fn: LossFn) -> list[Case]:
    """The loss stage's evidence from a port whose loss is `fn` (on [n] outputs and targets)."""
    out = []
    for name, (p, y) in ref.loss_suite().items():
        pt = torch.tensor(p, requires_grad=True)
        value = fn(pt, torch.from_numpy(y))
        value.backward()
        assert pt.grad is not None
        out.append(Case(name, p, y, float(value.item()), pt.grad.numpy().copy()))
    return out


def _diagnose(ref: Reference, fn: LossFn) -> list:
    return criteria.diagnose(ref, _cases(ref, fn), tolerance("loss", {}))


@pytest.mark.parametrize(
    ("reference", "port", "cause", "fitted"),
    [
        # Burn's HuberLossConfig::new(delta) has no default: a port passing another delta.
        (("HuberLoss", {}), lambda p, y: F.huber_loss(p, y, delta=2.0), "loss.huber_delta", ("delta", 2.0)),
        # SmoothL1(beta) where the reference is Huber(delta = beta): the loss divided by beta.
        (
            ("HuberLoss", {"delta": 2.0}),
            lambda p, y: F.smooth_l1_loss(p, y, beta=2.0),
            "loss.smooth_l1_beta",
            ("beta", 2.0),
        ),
        # Huber(delta = beta) where the reference is SmoothL1(beta): the loss multiplied by beta.
        (
            ("SmoothL1Loss", {"beta": 0.5}),
            lambda p, y: F.huber_loss(p, y, delta=0.5),
            "loss.huber_delta",
            ("delta", 0.5),
        ),
        (("HuberLoss", {}), F.mse_loss, "loss.mse", None),
        (("MSELoss", {}), lambda p, y: 0.5 * F.mse_loss(p, y), "loss.half_mse", None),
        (("HuberLoss", {}), F.l1_loss, "loss.l1", None),
        (("L1Loss", {}), lambda p, y: F.l1_loss(p, y, reduction="sum"), "loss.sum", None),
        # Targets [1, n] against outputs [n, 1]: every output against every target.
        (
            ("HuberLoss", {"delta": 2.0}),
            lambda p, y: F.huber_loss(*torch.broadcast_tensors(p[:, None], y[None, :]), delta=2.0),
            "loss.broadcast",
            None,
        ),
    ],
)
def test_another_regression_loss_is_named(reference: tuple, port: LossFn, cause: str, fitted) -> None:
    ref = _ref(reference[0], **reference[1])
    causes = _diagnose(ref, port)
    assert [c.cause for c in causes][:1] == [cause], [c.sentence() for c in causes]
    if cause not in ("loss.sum", "loss.broadcast"):  # a change of loss says which loss it replaces
        assert f"instead of the reference's {reference[0]}(" in causes[0].description
    if fitted is not None:
        assert causes[0].parameters[fitted[0]] == pytest.approx(fitted[1], rel=1e-3)


@pytest.mark.parametrize(
    ("reference", "port"),
    [
        # The reference's own loss scaled by 1%: no other loss nor delta gives it (quadratic near 0 and
        # linear far out cannot both be scaled by one delta).
        (("HuberLoss", {}), lambda p, y: 1.01 * F.huber_loss(p, y)),
        # The right delta plus a small L1 term: no single loss reproduces both the value and the gradient.
        (("HuberLoss", {"delta": 2.0}), lambda p, y: F.huber_loss(p, y, delta=2.0) + 1e-3 * (p - y).abs().mean()),
    ],
)
def test_a_regression_loss_off_by_something_else_names_no_cause(reference: tuple, port: LossFn) -> None:
    ref = _ref(reference[0], **reference[1])
    cases = _cases(ref, port)
    own = _cases(ref, lambda p, y: ref.criterion()(p, y))
    assert any(abs(c.value - o.value) > 1e-4 for c, o in zip(cases, own, strict=True))  # the port does differ
    assert criteria.diagnose(ref, cases, tolerance("loss", {})) == []

"""Every stage passes on the faithful port and fails first on its own fault (negative controls).

The reference side is computed once and shared; each fault runs the port afresh.
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from harness import port as port_module
from harness.pipeline import run_with
from harness.port import available_faults
from harness.report.files import SCHEMA_PATH, report_json
from harness.stages import STAGE_NAMES
from harness.stages.base import Context

CATALOGUE = available_faults()
# Faults the harness must report as a divergence (exit 1); the others make the port unable to answer
# (a panic: ERROR, exit 2) and are tested below.
FAULTS = {f["name"]: f["stage"] for f in CATALOGUE if f["outcome"] == "fail"} | {"user-port": "config"}
CRASHES = {f["name"]: f["stage"] for f in CATALOGUE if f["outcome"] == "error"}
CAUSES = {f["name"]: f["cause"] for f in CATALOGUE} | {"user-port": "config.eps"}


def test_faithful_port_passes_every_stage(faithful_run) -> None:
    _, report = faithful_run
    assert [r.stage for r in report.results] == STAGE_NAMES
    assert all(r.status == "PASS" for r in report.results), [
        (r.stage, r.status, r.error, r.hint) for r in report.results
    ]
    assert report.exit_code == 0
    jsonschema.validate(report_json(report), json.loads(SCHEMA_PATH.read_text()))


def test_every_stage_has_a_fault() -> None:
    assert set(FAULTS.values()) == set(STAGE_NAMES)


# The fast tier keeps one fault per kind of stage it exercises (forward, optimizer, all of the report's at
# once); the whole matrix is in the full tier (./dev test --all).
FAST_FAULTS = ("missing-relu", "adam-eps", "user-port")
assert set(FAST_FAULTS) <= set(FAULTS), set(FAST_FAULTS) - set(FAULTS)


@pytest.mark.parametrize(
    "fault", [pytest.param(f, marks=() if f in FAST_FAULTS else pytest.mark.slow) for f in sorted(FAULTS)]
)
def test_fault_fails_first_at_its_stage_with_a_hint(faithful_run, fault: str) -> None:
    base, _ = faithful_run
    ctx = Context(base.cfg.with_(fault=fault))
    ctx.adopt_reference(base)
    report = run_with(ctx)
    first = report.first_divergence
    assert report.exit_code == 1
    assert first is not None and first.stage == FAULTS[fault], [(r.stage, r.status, r.hint) for r in report.results]
    # The diagnosis names the fault's cause (from the catalogue, never read by the harness's stages), or,
    # where no replay of the reference can reproduce the fault, names none and says so.
    named = [d["cause"] for d in first.diagnosis]
    if CAUSES[fault]:
        assert CAUSES[fault] in named, (first.hint, named)
        assert first.diagnosis_outcome == "named"
    else:
        assert named == [] and first.diagnosis_outcome == "unexplained", first.hint
    d = report_json(report)
    assert next(r for r in d["stages"] if r["stage"] == FAULTS[fault])["diagnosis_outcome"] == first.diagnosis_outcome
    assert d["first_divergence"]["stage"] == FAULTS[fault]
    jsonschema.validate(d, json.loads(SCHEMA_PATH.read_text()))
    if fault == "user-port":
        failing = {r.stage for r in report.results if r.status == "FAIL"}
        assert {"config", "split", "scaler", "loss", "train", "metrics"} <= failing
        assert all(r.hint for r in report.results if r.status == "FAIL")


@pytest.mark.parametrize("fault", sorted(CRASHES))
def test_a_port_that_panics_is_an_error_at_its_stage(faithful_run, fault: str) -> None:
    base, _ = faithful_run
    ctx = Context(base.cfg.with_(fault=fault))
    ctx.adopt_reference(base)
    report = run_with(ctx)
    errored = [r for r in report.results if r.status == "ERROR"]
    assert report.exit_code == 2
    assert errored and errored[0].stage == CRASHES[fault], [(r.stage, r.status, r.error) for r in report.results]
    assert "the port panicked: index out of bounds" in errored[0].error
    assert "\n" not in errored[0].error
    assert errored[0].error_kind == "PortPanic"
    assert report_json(report)["stages"][[r.stage for r in report.results].index(errored[0].stage)]["error_kind"] == (
        "PortPanic"
    )


def test_failing_element_is_named_with_minimum_tolerance(faithful_run) -> None:
    base, _ = faithful_run
    ctx = Context(base.cfg.with_(fault="missing-relu"))
    ctx.adopt_reference(base)
    report = run_with(ctx, ["forward"])
    bad = report.results[0].first_failure
    assert bad is not None and bad.name == "relu2"
    assert bad.worst_index is not None and bad.worst_ref is not None and bad.worst_got is not None
    assert bad.abs_err is not None and bad.rel_err is not None and bad.min_atol is not None and bad.min_rtol is not None
    assert "would pass with atol" in bad.summary()


# The user-port optimizer diagnosis fits a pair and then clipping over three steps (about a minute): full tier.
@pytest.mark.slow
def test_same_hint_from_a_different_route(faithful_run) -> None:
    """Diagnosis reads numbers, not the fault's name: the user-port combination (where eps comes with the
    learning rate, clipping and other faults) is reproduced by the three changes at once (clipping shows
    only at the run's largest-gradient step), and adam-eps by epsilon alone."""
    base, _ = faithful_run
    found = {}
    for fault in ("adam-eps", "user-port"):
        ctx = Context(base.cfg.with_(fault=fault))
        ctx.adopt_reference(base)
        found[fault] = run_with(ctx, ["optimizer"]).results[0]
    eps, user = found["adam-eps"], found["user-port"]
    assert eps.diagnosis[0]["cause"] == "adam.eps"
    assert eps.diagnosis[0]["parameters"]["eps"] == pytest.approx(1e-5, rel=1e-3)
    assert user.diagnosis[0]["cause"] == "adam.lr+eps+clip.norm_per_tensor"
    assert user.diagnosis[0]["parameters"]["eps"] == pytest.approx(1e-5, rel=1e-3)
    assert user.diagnosis[0]["parameters"]["lr"] == pytest.approx(1e-4, rel=1e-3)
    assert user.diagnosis[0]["parameters"]["max_norm"] == pytest.approx(1.0, rel=0.05)
    assert "remove with_grad_clipping(...)" in user.hint, user.hint
    for r in (eps, user):
        assert "eps = 1e-05" in r.hint and "with_epsilon(1e-08)" in r.hint, r.hint


def test_stage_that_cannot_run_is_error_and_exit_2(faithful_run, monkeypatch: pytest.MonkeyPatch) -> None:
    base, _ = faithful_run
    monkeypatch.setattr(port_module, "_burn", None)
    ctx = Context(base.cfg)
    ctx.adopt_reference(base)
    report = run_with(ctx, ["config", "loss"])
    assert [r.status for r in report.results] == ["ERROR", "ERROR"]
    assert "extension" in report.results[0].error
    assert report.exit_code == 2 and not report.passed


def test_user_port_reproduces_the_reports_symptoms(faithful_run) -> None:
    """NaN/inf losses, and accuracy equal to the share of class 0 by the port's own metric (the report: 46 %)."""
    import numpy as np

    base, _ = faithful_run
    ctx = Context(base.cfg.with_(fault="user-port"))
    ctx.adopt_reference(base)
    report = run_with(ctx, ["train", "metrics"])
    train, metrics = report.results
    assert not np.isfinite(train.metrics["epoch_loss_port"]).all()
    share0 = float((ctx.prepared.y_test == 0).mean())
    assert metrics.metrics["accuracy_port"][0] == pytest.approx(share0, abs=0.5 / len(ctx.prepared.y_test))
    assert "share of class 0" in metrics.hint


def test_faults_check_rejects_a_diagnosis_that_misses_the_cause(faithful_run) -> None:
    """Negative control of the matrix rule: the same missing-ReLU run, held to another cause, is a miss."""
    from harness.faults import _row

    base, _ = faithful_run
    ctx = Context(base.cfg.with_(fault="missing-relu"))
    ctx.adopt_reference(base)
    report = run_with(ctx, ["forward"])
    assert _row("missing-relu", "forward", report, "fail", CAUSES["missing-relu"])["ok"]
    assert not _row("missing-relu", "forward", report, "fail", "forward.activation.gelu")["ok"]
    assert not _row("missing-relu", "forward", report, "fail", "")["ok"]


def test_the_shadow_does_not_forgive_a_loop_that_differs_late_in_epoch_one(faithful_run) -> None:
    """Negative control of the train stage's shadow run (the positive case is in tests/test_digits.py):
    a port that clips gradients differs only where clipping engages, after the first re-synchronized
    steps, and leaves the envelope at epoch 3. Every step of epoch 1 is then re-synchronized, clipping
    shows there, and the divergence stays a divergence."""

    base, _ = faithful_run
    ctx = Context(base.cfg.with_(fault="grad-clip"))
    ctx.adopt_reference(base)
    train = run_with(ctx, ["train"]).results[0]
    assert train.status == "FAIL" and train.metrics["shadowed"] is False
    assert any(c.name.startswith("envelope.") and not c.passed for c in train.checks)


def test_clipping_is_found_from_the_numbers_at_the_largest_gradient_step(faithful_run) -> None:
    """The optimizer stage steps from the reference's state at epoch 1's largest-gradient step, where
    clipping at norm 1.0 engages (steps 1 and 6 have small gradients): grad-clip fails there, named as
    per-tensor norm clipping with its threshold, from the numbers alone (this stage never reads the
    port's declared config). The negative control is the faithful port, which passes the same three
    steps (test_faithful_port_passes_every_stage)."""
    base, _ = faithful_run
    ctx = Context(base.cfg.with_(fault="grad-clip"))
    ctx.adopt_reference(base)
    opt = run_with(ctx, ["optimizer"]).results[0]
    failing = {c.name.split(".")[0] for c in opt.checks if not c.passed}
    assert opt.status == "FAIL" and failing and "step1" not in failing and "step6" not in failing, failing
    assert opt.diagnosis and opt.diagnosis[0]["cause"] == "clip.norm_per_tensor", opt.hint
    threshold = next(iter(opt.diagnosis[0]["parameters"].values()))
    assert abs(threshold - 1.0) < 0.05, opt.diagnosis[0]


def test_a_schedule_is_named_only_if_it_reproduces_the_resynchronized_epoch_starts(faithful_run) -> None:
    """A cause fitted on the free run's band (a learning-rate schedule) must also reproduce the tight,
    re-synchronized first step of every later epoch. Here the port's steps come from the reference's own
    Adam with gradients clipped (a per-step cause): a LinearLR schedule does not reproduce them and is
    refused; steps taken with that schedule's learning rates are accepted (the negative control)."""
    import numpy as np

    from harness.diagnosis import Cause
    from harness.stages.train import _reproduces_epoch_starts

    ctx, _ = faithful_run
    ref, p, names = ctx.ref_trace, ctx.prepared, ctx.reference.param_names
    bs, epochs = ctx.cfg.batch_size, len(ref.epoch_states)
    linear = tuple(max(0.0, 1 - e / 14) for e in range(epochs + 1))
    schedule = Cause("train.lr_schedule_linear", "LinearLR", {"total_iters": 14.0}, 0.5, "", lr_per_epoch=linear)

    def starts(step) -> list[tuple]:
        out = []
        for e in range(1, epochs):
            rows = ctx.orders[e][:bs]
            _, g = ctx.reference.backward(ref.epoch_params[e - 1], p.x_train[rows], p.y_train[rows])
            g = {k: g[k] for k in names}
            got, _ = step(e, g)
            out.append((None, g, None, np.concatenate([got[n].ravel() for n in names])))
        return out

    def clipped(e: int, g: dict) -> tuple:
        norm = max(float(np.linalg.norm(v)) for v in g.values())
        c = {k: v * min(1.0, 0.01 / norm) for k, v in g.items()}
        return ctx.reference.optimizer_step(ref.epoch_params[e - 1], c, ref.epoch_states[e - 1])

    def scheduled(e: int, g: dict) -> tuple:
        return ctx.reference.optimizer_step(ref.epoch_params[e - 1], g, ref.epoch_states[e - 1], lr_factor=linear[e])

    assert not _reproduces_epoch_starts(ctx, schedule, starts(clipped))
    assert _reproduces_epoch_starts(ctx, schedule, starts(scheduled))


def test_a_port_that_shuffles_on_its_own_is_told_by_the_orders_it_reports() -> None:
    import numpy as np

    from harness.stages.train import _orders_check

    sent = np.stack([np.random.default_rng(e).permutation(10) for e in range(3)])
    assert _orders_check(sent, sent.copy()).passed
    own = sent.copy()
    own[1] = own[1][::-1]
    check = _orders_check(sent, own)
    assert not check.passed
    assert check.reason.startswith("the port trained in batch orders other than the ones it was sent: epoch 2 differs")
    assert not _orders_check(sent, sent[:2]).passed

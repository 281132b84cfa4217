"""A port whose loss takes logits (`[port] loss_input = "logits"`: a model that returns logits and Burn's
BCE with logits) is fed logits, saturating ones included, and compared with the reference's BCELoss on
their float32 sigmoid: BCE with logits is then a named cause, never a NaN false alarm from feeding a
logits loss probabilities. The ports are the in-process Burn port behind the subprocess transport with
its loss replaced (tests/fake_ports/proxy_port.py --loss-on)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.config import BUNDLED_DATA, RunConfig, load_port_layers, load_port_loss_input
from harness.errors import HarnessError
from harness.pipeline import run_with
from harness.results import FAIL, PASS
from harness.stages.base import Context
from tests.needs import burn

PROXY = Path(__file__).resolve().parent / "fake_ports" / "proxy_port.py"


def _loss_stage(loss_on: str, loss_input: str):
    cmd = shlex.join([sys.executable, str(PROXY), "--loss-on", loss_on])
    ctx = Context(RunConfig(data=BUNDLED_DATA, port_cmd=cmd, loss_input=loss_input))
    try:
        [res] = run_with(ctx, ["loss"]).results
    finally:
        ctx.close()
    return res


def test_bce_with_logits_is_named_on_logits_without_a_nan_alarm() -> None:
    burn()
    res = _loss_stage("with-logits", "logits")
    assert res.status == FAIL
    assert [d["cause"] for d in res.diagnosis][:1] == ["loss.with_logits"], res.hint
    assert res.hint.startswith("reproduced by BCE with logits on the pre-sigmoid output")
    assert "non-finite" not in res.hint and "nan" not in res.hint.lower()
    # Where sigmoid saturates the two differ: the checks that fail are the saturated cases only.
    failed = {c.name.split(".")[0] for c in res.checks if not c.passed}
    assert failed <= {"large", "saturated_wrong"} and "saturated_wrong" in failed, failed
    assert all(np.isfinite(c.worst_got) for c in res.checks if c.worst_got is not None)


def test_a_logits_port_whose_loss_is_the_references_on_sigmoid_passes() -> None:
    # Negative control: the port takes logits and applies the reference's own BCELoss to sigmoid(z).
    burn()
    res = _loss_stage("sigmoid", "logits")
    assert res.status == PASS, res.hint


def test_a_logits_loss_fed_probabilities_is_told_so() -> None:
    # Without the declaration the port is fed probabilities, which its loss takes as logits.
    burn()
    res = _loss_stage("with-logits", "probabilities")
    assert res.status == FAIL and res.diagnosis[0]["cause"] == "loss.on_logits", res.hint


def test_loss_input_is_checked(tmp_path: Path) -> None:
    toml = tmp_path / "harness.toml"
    toml.write_text('[port]\nloss_input = "logits"\n')
    assert load_port_loss_input(file=toml) == "logits"
    toml.write_text('[port]\nloss_input = "probs"\n')
    with pytest.raises(HarnessError, match="loss_input must be one of probabilities, logits, got 'probs'"):
        load_port_loss_input(file=toml)


def test_a_logits_model_is_compared_up_to_its_logits() -> None:
    # The port's forward has no output sigmoid (its loss applies it); declared, that is no missing layer.
    # Control: the same port without the declaration is told it has no layer 'sigmoid'.
    burn()
    cmd = shlex.join([sys.executable, str(PROXY), "--loss-on", "with-logits"])
    for loss_input, status in (("logits", PASS), ("probabilities", FAIL)):
        ctx = Context(RunConfig(data=BUNDLED_DATA, port_cmd=cmd, loss_input=loss_input))
        try:
            [res] = run_with(ctx, ["forward"]).results
        finally:
            ctx.close()
        assert res.status == status, res.hint
        if status == FAIL:
            assert "the port has no layer 'sigmoid'" in res.hint, res.hint


def _stage(stage: str, *proxy_args: str, **cfg: object):
    cmd = shlex.join([sys.executable, str(PROXY), *proxy_args])
    ctx = Context(RunConfig(**{"data": BUNDLED_DATA, "port_cmd": cmd, **cfg}))
    try:
        [res] = run_with(ctx, [stage]).results
    finally:
        ctx.close()
    return res


def test_a_forward_reported_as_written_is_compared_on_its_output() -> None:
    """`[port] layers = "output"`: the port's forward reports its model's output alone (no second pass to
    expose layers); it is compared there, and a wrong layer before it still fails there."""
    burn()
    logits = ("--loss-on", "with-logits", "--output-only")
    res = _stage("forward", *logits, loss_input="logits", layers="output")
    assert res.status == PASS, res.hint
    assert [c.name for c in res.checks] == ["layer names", "fc3"]
    # Negative control: the ReLU after fc2 left out; only the output shows it, and the hint says the layers
    # before it were not reported.
    res = _stage("forward", *logits, "--fault", "missing-relu", loss_input="logits", layers="output")
    assert res.status == FAIL and res.metrics["first_divergent_layer"] == "fc3", res.hint
    assert 'reports its model\'s output only ([port] layers = "output")' in res.hint
    # Control: without the declaration the missing layers are a divergence of their own.
    res = _stage("forward", *logits, loss_input="logits")
    assert res.status == FAIL and "the port has no layer 'fc1'" in res.hint, res.hint


def test_layers_is_checked(tmp_path: Path) -> None:
    toml = tmp_path / "harness.toml"
    toml.write_text('[port]\nlayers = "output"\n')
    assert load_port_layers(file=toml) == "output"
    toml.write_text('[port]\nlayers = "last"\n')
    with pytest.raises(HarnessError, match="layers must be one of all, output, got 'last'"):
        load_port_layers(file=toml)


def test_a_logits_ports_metric_reads_logits() -> None:
    """The metric stage gives a logits port's metric logits (the logit of each probability, on the same side
    of the threshold), and reads its predictions as logits. A port that thresholds its logits passes; one
    that counts p > 0.7 is named from the probe, through the logits."""
    burn()
    logits = ("--loss-on", "with-logits")
    res = _stage("metrics", *logits, "--epochs", "2", loss_input="logits", epochs=2, seeds=1)
    assert res.status == PASS, res.hint
    res = _stage(
        "metrics", *logits, "--epochs", "2", "--fault", "threshold-0.7", loss_input="logits", epochs=2, seeds=1
    )
    assert res.status == FAIL and res.diagnosis[0]["cause"] == "metrics.threshold", res.hint
    assert res.diagnosis[0]["description"].startswith("a decision threshold of 0.7 instead of 0.5"), res.diagnosis[0]

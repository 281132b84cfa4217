"""A port implements the methods it has: a stage whose method is missing is SKIP ("not implemented by the
port"), not ERROR, and FAIL only where the user required it (--require, [port] require). An
inference-only port (weights, forward, the metric on the reference's predictions) passes. The port here
is the in-process Burn port behind the subprocess transport with methods taken away
(tests/fake_ports/proxy_port.py), both ways a port can lack one: hello does not list it, or it answers
`unsupported`. The negative control is the same proxy with every method (tests/test_protocol.py), where
every stage runs and passes."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import BUNDLED_DATA, RunConfig
from harness.pipeline import run_with
from harness.results import FAIL, PASS, SKIP
from harness.stages.base import Context
from tests.needs import burn

ROOT = Path(__file__).resolve().parent.parent
PROXY = ROOT / "tests" / "fake_ports" / "proxy_port.py"
# Everything but loading the data, the model's weights and forward, and the metric.
TRAINING = "split,fit_scaler,transform,prepare,effective_config,loss,backward,optimizer_step,train"


def proxy(*args: str) -> str:
    return shlex.join([sys.executable, str(PROXY), *args])


@pytest.mark.parametrize("listed", [True, False], ids=["hello omits them", "answers unsupported"])
def test_an_inference_only_port_passes_and_says_what_it_skipped(faithful_run, listed: bool) -> None:
    burn()
    cmd = proxy("--without", TRAINING, *([] if listed else ["--unlisted"]))
    ctx = Context(RunConfig(data=BUNDLED_DATA, port_cmd=cmd))
    ctx.adopt_reference(faithful_run[0])
    try:
        report = run_with(ctx)
    finally:
        ctx.close()
    status = {r.stage: r.status for r in report.results}
    ran = {"data", "weights", "forward", "metrics"}
    assert {s for s, v in status.items() if v == PASS} == ran, status
    assert all(v == SKIP for s, v in status.items() if s not in ran), status
    assert report.exit_code == 0
    for r in report.skipped:
        assert r.hint.startswith("not implemented by the port:"), r.hint
    metrics = next(r for r in report.results if r.stage == "metrics")
    assert [c.name for c in metrics.checks] == ["same_predictions.accuracy"]
    assert metrics.metrics["end_to_end"]["verdict"] == "skipped"
    assert "train" in metrics.metrics["end_to_end"]["reason"]


def test_a_required_stage_the_port_lacks_fails(faithful_run) -> None:
    burn()
    ctx = Context(RunConfig(data=BUNDLED_DATA, port_cmd=proxy("--without", TRAINING), require=("train",)))
    ctx.adopt_reference(faithful_run[0])
    try:
        report = run_with(ctx, ["optimizer", "train"])
    finally:
        ctx.close()
    optimizer, train = report.results
    assert optimizer.status == SKIP and train.status == FAIL
    assert train.hint.startswith("required (--require) but not implemented by the port:"), train.hint
    assert report.exit_code == 1


def test_a_loop_that_takes_no_injected_order_skips_lockstep_and_is_judged_free(faithful_run) -> None:
    """A port whose training builds its own model and DataLoader answers `unsupported` when sent an
    initialization or a batch order: the lockstep train stage is SKIP with its reason, and the metric
    stage's independent runs (the port's own init and shuffling) still judge it; required, it FAILs."""
    burn()
    for require, status, code in (((), SKIP, 0), (("train",), FAIL, 1)):
        ctx = Context(RunConfig(data=BUNDLED_DATA, port_cmd=proxy("--own-loop"), require=require))
        ctx.adopt_reference(faithful_run[0])
        try:
            report = run_with(ctx, ["train", "metrics"])
        finally:
            ctx.close()
        train, metrics = report.results
        assert train.status == status, train.hint
        assert "the training loop builds its own model and DataLoader" in train.hint, train.hint
        assert metrics.status == PASS, metrics.hint
        assert metrics.metrics["end_to_end"]["verdict"] == "pass", metrics.metrics["end_to_end"]
        assert report.exit_code == code


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=600, cwd=cwd
    )


def test_require_on_the_command_line_and_in_harness_toml(tmp_path: Path) -> None:
    burn()
    lacking = proxy("--without", "effective_config")
    r = _cli("diff", "config", "--port-cmd", lacking)
    assert r.returncode == 0 and "SKIP" in r.stdout and "not implemented by the port" in r.stdout, r.stdout
    r = _cli("diff", "config", "--port-cmd", lacking, "--require", "config")
    assert r.returncode == 1 and "required (--require)" in r.stdout, r.stdout
    r = _cli("diff", "config", "--port-cmd", lacking, "--require", "config,nosuch")
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "unknown stage 'nosuch'" in lines[0], r.stderr
    # The same requirement from harness.toml; --require on the command line wins over it.
    (tmp_path / "harness.toml").write_text(f'[port]\ncmd = {json.dumps(lacking)}\nrequire = ["config"]\n')
    assert _cli("diff", "config", cwd=tmp_path).returncode == 1
    assert _cli("diff", "config", "--require", "", cwd=tmp_path).returncode == 0

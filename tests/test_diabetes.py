"""A regression model, end to end: scikit-learn's diabetes data (unscaled target), a small ReLU MLP trained
with HuberLoss(delta=20) (examples/diabetes), against its Burn port (Burn's HuberLoss, Adam) over the
subprocess transport. The faithful port passes `diff all`; each of its faults is caught at its stage with
its cause named (`faults check --config`)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from harness.faults import port_catalogue
from tests.examples import diff_all, fault_matrix, port_config
from tests.needs import binary, needs

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "diabetes"
CONFIG = EXAMPLE / "harness.toml"
PORT = ROOT / "rust_bridge" / "target" / "debug" / "diabetes-port"

needs_port = needs(binary, "diabetes-port")


def _diff(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    return diff_all(CONFIG, tmp_path / "r.json", capsys, *args)


def test_the_committed_data_is_what_make_data_writes(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "d.csv"
    subprocess.run([sys.executable, str(EXAMPLE / "make_data.py"), "--out", str(out)], check=True, capture_output=True)
    assert out.read_bytes() == (EXAMPLE / "diabetes.csv").read_bytes()


@needs_port
def test_the_faithful_diabetes_port_passes_diff_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = _diff(tmp_path, capsys)
    assert code == 0, capsys.readouterr().out[-3000:]
    stages = {s["stage"]: s for s in report["stages"]}
    assert all(s["status"] == "PASS" for s in stages.values()), {k: s["hint"][:200] for k, s in stages.items()}
    config = {c["name"] for c in stages["config"]["checks"]}
    assert {"loss", "delta"} <= config
    # The loss suite straddles the Huber delta (20): residuals from 2 to 200.
    loss = {c["name"] for c in stages["loss"]["checks"]}
    assert {"around_delta.value", "around_delta.grad", "large.grad"} <= loss
    # The raw target's large gradients put Adam's second moment past float32's atol, where Burn's float32
    # betas differ from torch's by 1.3e-5 relative: the later steps match Burn's arithmetic of Adam.
    arithmetic = stages["optimizer"]["metrics"]["arithmetic"]
    assert arithmetic["step6"] == "float32_adam", arithmetic
    assert stages["metrics"]["metrics"]["mse_port"][0] < 4000, stages["metrics"]["metrics"]  # variance of y: 5900


@needs_port
def test_port_catalogue_lists_the_diabetes_faults() -> None:
    faults = {f["name"]: f for f in port_catalogue(shlex.quote(str(PORT)))}
    assert set(faults) == {
        "huber-delta-default",
        "smooth-l1-for-huber",
        "target-broadcast",
        "adam-eps-default",
        "metric-mae",
    }


@needs_port
@pytest.mark.slow
def test_every_diabetes_fault_is_caught_at_its_stage_with_its_cause() -> None:
    by_name = fault_matrix(port_config(CONFIG, PORT))
    huber = by_name["huber-delta-default"]["hint"]
    assert "HuberLoss with another delta (Burn's HuberLossConfig::new(delta) has no default) instead of the " in huber
    assert "reference's HuberLoss(delta=20) (delta = 1)" in huber
    assert "SmoothL1Loss with another beta" in by_name["smooth-l1-for-huber"]["hint"]
    assert "(beta = 20)" in by_name["smooth-l1-for-huber"]["hint"]
    eps = by_name["adam-eps-default"]["hint"]
    assert eps.startswith("reproduced by Adam epsilon (eps = 1e-05)"), eps
    assert "Burn's AdamConfig defaults to epsilon 1e-5: set with_epsilon(1e-08)" in eps
    assert "broadcast to [n, n]" in by_name["target-broadcast"]["hint"]
    assert "the mean absolute error instead of the MSE" in by_name["metric-mae"]["hint"]


@needs_port
@pytest.mark.slow
@pytest.mark.sweep  # .ci/run repeats it under each kernel level of torch and numpy
@pytest.mark.parametrize("seed", [1, 2])
def test_the_faithful_diabetes_port_passes_on_other_seeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    code, report = _diff(tmp_path, capsys, "--seed", str(seed))
    assert code == 0, [(s["stage"], s["hint"][:300]) for s in report["stages"] if s["status"] != "PASS"]

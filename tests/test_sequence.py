"""A sequence model, end to end: token ids through an Embedding, self-attention, an LSTM, a GRU and a
last-step head (examples/sequence), against its Burn port over the subprocess transport. The port's
attention, LSTM and GRU take PyTorch's packed tensors (in_proj, the gate stacks) through burn-diff's layout
conversion, for parameters, gradients and optimizer state alike. The faithful port passes `diff all` on seeds 0-4;
each of its faults is caught at its stage with its cause named (`faults check --config`)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from harness.faults import port_catalogue
from tests.examples import diff_all, fault_matrix, port_config
from tests.needs import binary, needs

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "sequence"
CONFIG = EXAMPLE / "harness.toml"
PORT = ROOT / "rust_bridge" / "target" / "debug" / "sequence-port"

needs_port = needs(binary, "sequence-port")


def _diff(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    return diff_all(CONFIG, tmp_path / "r.json", capsys, *args)


def test_the_committed_data_is_what_its_script_writes(tmp_path: Path) -> None:
    committed = (EXAMPLE / "sequences.csv").read_bytes()
    script = (
        (EXAMPLE / "make_data.py")
        .read_text()
        .replace('Path(__file__).with_name("sequences.csv")', f"Path({str(tmp_path / 's.csv')!r})")
    )
    (tmp_path / "make.py").write_text(script)
    subprocess.run([sys.executable, str(tmp_path / "make.py")], check=True)
    assert (tmp_path / "s.csv").read_bytes() == committed


@needs_port
def test_the_faithful_sequence_port_passes_diff_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = _diff(tmp_path, capsys)
    assert code == 0, capsys.readouterr().out[-3000:]
    stages = {s["stage"]: s for s in report["stages"]}
    assert all(s["status"] == "PASS" for s in stages.values())
    forward = {c["name"]: c for c in stages["forward"]["checks"]}
    assert list(forward) == ["layer names", "emb", "attn", "lstm", "gru", "head"]
    assert forward["lstm"]["shape"] == [400, 8, 32]  # every step's hidden state
    weights = {c["name"] for c in stages["weights"]["checks"]}
    assert {"attn.in_proj_weight", "lstm.weight_ih_l0", "gru.bias_hh_l0", "head.weight Burn layout"} <= weights
    backward = {c["name"] for c in stages["backward"]["checks"]}
    assert {"initial.lstm.weight_hh_l0", "initial.attn.in_proj_bias", "initial.gru.weight_ih_l0"} <= backward
    optimizer = {c["name"] for c in stages["optimizer"]["checks"]}
    assert any(n.endswith("attn.in_proj_weight.exp_avg_sq") for n in optimizer), sorted(optimizer)[:20]
    assert stages["metrics"]["metrics"]["accuracy_port"][0] > 0.9


@needs_port
def test_port_catalogue_lists_the_sequence_faults() -> None:
    faults = {f["name"]: f for f in port_catalogue(shlex.quote(str(PORT)))}
    assert set(faults) == {
        "lstm-gate-order",
        "lstm-time-major",
        "gru-reset-before",
        "attn-qkv-order",
        "attn-dropout-default",
    }
    assert faults["attn-dropout-default"]["stage"] == "config"
    assert faults["lstm-gate-order"]["cause"] == "forward.lstm.gate_order"


@needs_port
@pytest.mark.slow
def test_every_sequence_fault_is_caught_at_its_stage_with_its_cause() -> None:
    by_name = fault_matrix(port_config(CONFIG, PORT))
    assert "read as (input, forget, output, cell)" in by_name["lstm-gate-order"]["hint"]
    assert "run time-major (batch_first false)" in by_name["lstm-time-major"]["hint"]
    assert "read as (key, query, value)" in by_name["attn-qkv-order"]["hint"]
    assert "reset gate applied before the hidden weights" in by_name["gru-reset-before"]["hint"]
    assert "attn.dropout 0.1 vs 0.0" in by_name["attn-dropout-default"]["hint"]


@needs_port
@pytest.mark.slow
@pytest.mark.sweep  # .ci/run repeats it under each kernel level of torch and numpy
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_faithful_sequence_port_passes_on_other_seeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    code, report = _diff(tmp_path, capsys, "--seed", str(seed))
    assert code == 0, [(s["stage"], s["hint"][:300]) for s in report["stages"] if s["status"] != "PASS"]

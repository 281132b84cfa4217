"""A transformer, end to end: padded token ids through an Embedding and a learned position embedding, two
nn.TransformerEncoderLayers that skip the pads and a head on the mean over the real tokens
(examples/transformer), against its Burn port over the
subprocess transport. The port uses Burn's TransformerEncoder, whose layers' parameters burn-diff renames
and unpacks from PyTorch's (self_attn's in_proj, linear1/2, norm1/2), for parameters, gradients and
optimizer state alike. The faithful port passes `diff all` on seeds 0-4; each of its faults is caught at its
stage with its cause named (`faults check --config`)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from harness.faults import port_catalogue
from tests.examples import diff_all, fault_matrix, port_config
from tests.needs import binary, needs

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "transformer"
CONFIG = EXAMPLE / "harness.toml"
PORT = ROOT / "rust_bridge" / "target" / "debug" / "transformer-port"

needs_port = needs(binary, "transformer-port")


def _diff(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    return diff_all(CONFIG, tmp_path / "r.json", capsys, *args)


@needs_port
def test_the_faithful_transformer_port_passes_diff_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = _diff(tmp_path, capsys)
    assert code == 0, capsys.readouterr().out[-3000:]
    stages = {s["stage"]: s for s in report["stages"]}
    assert all(s["status"] == "PASS" for s in stages.values())
    forward = {c["name"]: c for c in stages["forward"]["checks"]}
    # Each encoder layer is one layer, compared in its own shape.
    assert list(forward) == ["layer names", "emb", "enc.layers.0", "enc.layers.1", "head"]
    assert forward["enc.layers.1"]["shape"] == [400, 8, 16]
    config = {c["name"] for c in stages["config"]["checks"]}
    assert {"enc.layers.0.dropout", "enc.layers.1.num_heads", "enc.layers.0.dim_feedforward"} <= config
    weights = {c["name"] for c in stages["weights"]["checks"]}
    assert {"pos", "enc.layers.0.self_attn.in_proj_weight", "enc.layers.1.norm2.weight"} <= weights
    backward = {c["name"] for c in stages["backward"]["checks"]}
    assert {"initial.pos", "initial.enc.layers.0.linear1.weight", "initial.enc.layers.1.norm1.bias"} <= backward
    optimizer = {c["name"] for c in stages["optimizer"]["checks"]}
    assert any(n.endswith("enc.layers.1.self_attn.out_proj.weight.exp_avg") for n in optimizer)
    assert stages["metrics"]["metrics"]["accuracy_port"][0] > 0.9


@needs_port
def test_port_catalogue_lists_the_transformer_faults() -> None:
    faults = {f["name"]: f for f in port_catalogue(shlex.quote(str(PORT)))}
    assert set(faults) == {
        "encoder-gelu-default",
        "encoder-dropout-default",
        "encoder-qkv-order",
        "attn-no-scale",
        "mask-ignored",
        "mask-inverted",
        "quiet-softmax",
    }
    assert faults["encoder-dropout-default"]["stage"] == "config"
    assert faults["encoder-gelu-default"]["cause"] == "forward.encoder.activation"


@needs_port
@pytest.mark.slow
def test_every_transformer_fault_is_caught_at_its_stage_with_its_cause() -> None:
    by_name = fault_matrix(port_config(CONFIG, PORT))
    gelu = by_name["encoder-gelu-default"]["hint"]
    # Burn's config builds both layers with GELU: the cause is named for both.
    assert "every layer of its kind (enc.layers.0, enc.layers.1): the feed-forward activation exact GELU" in gelu
    assert "enc.layers.0.dropout 0.1 vs 0.0" in by_name["encoder-dropout-default"]["hint"]
    assert (
        "enc.layers.0: self_attn's in_proj blocks read as (key, query, value)" in by_name["encoder-qkv-order"]["hint"]
    )
    assert "enc.layers.0: self_attn's scores not divided by sqrt(head size)" in by_name["attn-no-scale"]["hint"]
    # The padding mask goes to every layer: left out or inverted, it is named for both.
    every = "every layer of its kind (enc.layers.0, enc.layers.1): the padding mask"
    assert f"{every} not applied" in by_name["mask-ignored"]["hint"]
    assert f"{every} inverted" in by_name["mask-inverted"]["hint"]
    # Burn's TransformerEncoderConfig sets quiet_softmax for every layer it builds.
    assert (
        "every layer of its kind (enc.layers.0, enc.layers.1): Burn's quiet softmax in the attention"
        in by_name["quiet-softmax"]["hint"]
    )


@needs_port
@pytest.mark.slow
@pytest.mark.sweep  # .ci/run repeats it under each kernel level of torch and numpy
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_faithful_transformer_port_passes_on_other_seeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    code, report = _diff(tmp_path, capsys, "--seed", str(seed))
    assert code == 0, [(s["stage"], s["hint"][:300]) for s in report["stages"] if s["status"] != "PASS"]

"""An image model, end to end: the digits as 1x8x8 images through a CNN (examples/digits-cnn), against its
Burn port over the subprocess transport (protocol 2: the port gets `[n, 1, 8, 8]` and reports each feature
map `[n, C, H, W]`). The faithful port passes `diff all` on seeds 0-4; each of its faults is caught at its
stage with its cause named (`faults check --config`)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from harness.cli import main
from harness.faults import port_catalogue
from tests.examples import diff_all, fault_matrix, port_config
from tests.needs import binary, needs

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "digits-cnn" / "harness.toml"
PORT = ROOT / "rust_bridge" / "target" / "debug" / "digits-cnn-port"

needs_port = needs(binary, "digits-cnn-port")


def _diff(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    return diff_all(CONFIG, tmp_path / "r.json", capsys, *args)


@needs_port
def test_the_faithful_cnn_port_passes_diff_all_with_its_feature_maps_compared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = _diff(tmp_path, capsys)
    assert code == 0, capsys.readouterr().out[-3000:]
    stages = {s["stage"]: s for s in report["stages"]}
    assert all(s["status"] == "PASS" for s in stages.values())
    forward = {c["name"]: c for c in stages["forward"]["checks"]}
    assert list(forward) == [
        "layer names", "conv1", "bn1", "act1", "pool1", "conv2", "act2", "pool2", "gap", "flatten", "fc",
    ]  # fmt: skip
    # Each layer compared in its own shape: the test set's 360 images.
    assert forward["conv1"]["shape"] == [360, 16, 8, 8]
    assert forward["pool1"]["shape"] == [360, 16, 4, 4]
    assert forward["flatten"]["shape"] == [360, 128]
    backward = {c["name"] for c in stages["backward"]["checks"]}
    assert {"initial.conv1.weight", "initial.bn1.running_var"} <= backward
    assert stages["config"]["metrics"]["reference"]["conv2.padding"] == [1, 1]
    assert stages["metrics"]["metrics"]["accuracy_port"][0] > 0.85


@needs_port
def test_a_shape_the_port_does_not_take_is_an_error_of_the_port_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same port given flat rows (a config without sample_shape) refuses them by name: ERROR, exit 2."""
    flat = tmp_path / "flat.toml"
    text = CONFIG.read_text().replace("sample_shape = [1, 8, 8]", "")
    text = text.replace('"../digits/digits.csv"', json.dumps(str(ROOT / "examples" / "digits" / "digits.csv")))
    text = text.replace('"model:build"', '"model:build_flat"')
    (tmp_path / "model.py").write_text(
        "from torch import nn\n"
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('cnn_ref', {str(CONFIG.parent / 'model.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "class Flat(m.DigitsCNN):\n"
        "    def forward(self, x):\n"
        "        return super().forward(x.reshape(len(x), 1, 8, 8))\n"
        "def build_flat(n_features, n_outputs):\n"
        "    return Flat(n_outputs)\n"
    )
    flat.write_text(text.replace('"../../rust_bridge/target/debug/digits-cnn-port"', json.dumps(str(PORT))))
    out = tmp_path / "r.json"
    with pytest.raises(SystemExit) as e:
        main(["diff", "forward", "--config", str(flat), "--json", str(out), "--no-cache"])
    assert e.value.code == 2
    forward = json.loads(out.read_text())["stages"][0]
    assert forward["status"] == "ERROR"
    assert "expected images of shape [1, 8, 8] per sample, got [64]" in forward["error"]


@needs_port
def test_port_catalogue_lists_the_cnn_faults() -> None:
    faults = {f["name"]: f for f in port_catalogue(shlex.quote(str(PORT)))}
    assert set(faults) == {"flatten-nhwc", "avgpool-exclude-pad", "conv-valid-padding", "bn-biased-running-var"}
    assert faults["flatten-nhwc"]["cause"] == "forward.flatten.channels_last"
    assert faults["bn-biased-running-var"]["stage"] == "backward"


@needs_port
@pytest.mark.slow
def test_every_cnn_fault_is_caught_at_its_stage_with_its_cause() -> None:
    by_name = fault_matrix(port_config(CONFIG, PORT))
    assert "flattened channels last (NHWC order)" in by_name["flatten-nhwc"]["hint"]
    assert "no padding (Burn's Valid default) where torch pads (1, 1)" in by_name["conv-valid-padding"]["hint"]
    assert "count_include_pad False (torch's is True)" in by_name["avgpool-exclude-pad"]["hint"]


@needs_port
@pytest.mark.slow
@pytest.mark.sweep  # .ci/run repeats it under each kernel level of torch and numpy
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_faithful_cnn_port_passes_on_other_seeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    code, report = _diff(tmp_path, capsys, "--seed", str(seed))
    assert code == 0, [(s["stage"], s["hint"][:300]) for s in report["stages"] if s["status"] != "PASS"]


def test_the_forward_sample_is_cut_to_the_values_it_may_hold() -> None:
    from harness.stages.forward import FORWARD_MIN_SAMPLES, FORWARD_VALUES, forward_samples

    shapes = {"conv": (16, 8, 8), "fc": (10,)}  # 1,034 values a sample
    assert forward_samples(360, shapes) == 360
    big = {"conv": (64, 224, 224)}  # 3.2 million a sample
    assert forward_samples(360, big) == FORWARD_MIN_SAMPLES
    assert forward_samples(10_000, {"fc": (1,)}) == 10_000
    assert forward_samples(100_000, {"a": (256,)}) == FORWARD_VALUES // 256


@needs_port
def test_a_cut_forward_still_localizes_and_names_the_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    """With room for one value, the forward compares the first 64 test images, says so, and still names
    the channels-last flatten; the faithful port passes on the same cut."""
    from harness.stages import forward
    from harness.stages.base import Context

    monkeypatch.setattr(forward, "FORWARD_VALUES", 1)
    for fault, status in (("", "PASS"), ("flatten-nhwc", "FAIL")):
        cmd = shlex.quote(str(PORT)) + (f" --fault {fault}" if fault else "")
        ctx = Context(port_config(CONFIG, PORT, port_cmd=cmd))
        try:
            r = forward.run(ctx)
        finally:
            ctx.close()
        assert r.status == status, r.hint
        assert (r.metrics["samples"], r.metrics["test_samples"]) == (64, 360)
        assert all(c.shape[0] == 64 for c in r.checks[1:])
    assert r.diagnosis[0]["cause"] == "forward.flatten.channels_last"
    assert "(on the test set's first 64 of 360 samples)" in r.hint

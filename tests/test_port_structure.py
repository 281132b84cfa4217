"""A port's model whose parameters are not the reference's is a divergence (FAIL at weights, with the
cause the two parameter lists show), never an ERROR; a port that keeps its own names plugs in with
`[port.rename]` rules. The ports here are the in-process Burn port behind the subprocess transport with
its model's names changed or a bias removed (tests/fake_ports/proxy_port.py `--own-names`, `--no-bias`);
the negative control, the same proxy as it is, passes every stage (tests/test_protocol.py)."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import jsonschema
import pytest

from harness.config import BUNDLED_DATA, RunConfig, load_port_rename
from harness.diagnosis import structure
from harness.errors import HarnessError
from harness.pipeline import run_with
from harness.rename import Rename
from harness.report.files import SCHEMA_PATH, report_json
from harness.results import ERROR, FAIL, PASS, SKIP
from harness.stages.base import Context
from tests.needs import burn

ROOT = Path(__file__).resolve().parent.parent
PROXY = ROOT / "tests" / "fake_ports" / "proxy_port.py"
OWN = "fc1=input_layer,fc2=hidden_layer1,fc3=output_layer"
REF = {
    "fc1.weight": (64, 20),
    "fc1.bias": (64,),
    "fc2.weight": (32, 64),
    "fc2.bias": (32,),
    "fc3.weight": (1, 32),
    "fc3.bias": (1,),
}


def proxy(*args: str) -> str:
    return shlex.join([sys.executable, str(PROXY), *args])


def own(name: str) -> str:
    return {"fc1": "input_layer", "fc2": "hidden_layer1", "fc3": "output_layer"}[name[:3]] + name[3:]


def test_a_missing_bias_is_named_from_the_parameter_lists() -> None:
    port = {k: v for k, v in REF.items() if k != "fc2.bias"}
    [cause] = structure.diagnose(REF, port)
    assert cause.cause == "weights.no_bias"
    assert cause.description.startswith("the port's fc2 has no bias")
    [extra] = structure.diagnose(port, REF)
    assert extra.cause == "weights.extra_bias" and extra.description.startswith("the port's fc2 has a bias")
    # Negative controls: a missing weight is no bias slip; the same lists have nothing to say.
    no_weight = {k: v for k, v in REF.items() if k != "fc2.weight"}
    assert structure.diagnose(REF, no_weight) == []
    assert structure.diagnose(REF, dict(REF)) == []


def test_other_names_with_the_same_shapes_get_rules_that_map_them() -> None:
    port = {own(k): v for k, v in REF.items()}
    [cause] = structure.diagnose(REF, port)
    assert cause.cause == "weights.names"
    assert "shapes match in order" in cause.description
    rules = structure.rename_rules(REF, port)
    assert rules is not None
    # The rules, as printed, map every one of the port's names to the reference's.
    printed = dict(re.findall(r"'([^']+)' = \"([^\"]+)\"", cause.description))
    assert printed == rules
    assert [Rename(printed)(n) for n in port] == list(REF)
    # Negative controls: shapes in another order, or a leaf that differs, give no rules.
    swapped = dict(zip(port, [*list(REF.values())[2:4], *list(REF.values())[:2], *list(REF.values())[4:]], strict=True))
    assert structure.rename_rules(REF, swapped) is None
    assert structure.rename_rules(REF, {k.replace("bias", "b"): v for k, v in port.items()}) is None
    assert [c.cause for c in structure.diagnose(REF, swapped)] == []


def test_rename_rules_apply_in_order_and_bad_ones_are_one_line(tmp_path: Path) -> None:
    r = Rename([(r"^layers\.(\d+)", r"block\1"), (r"^block0\b", "fc1")])
    assert r("layers.0.weight") == "fc1.weight" and r("layers.1.bias") == "block1.bias"
    with pytest.raises(HarnessError, match="rule '\\(' = 'x'"):
        Rename({"(": "x"})
    with pytest.raises(HarnessError, match="rule 'a' = '\\\\2'"):
        Rename({"a": r"\2"})
    toml = tmp_path / "harness.toml"
    toml.write_text("[port.rename]\n'^input_layer\\b' = \"fc1\"\n'^output_layer\\b' = \"fc3\"\n")
    assert load_port_rename(file=toml) == ((r"^input_layer\b", "fc1"), (r"^output_layer\b", "fc3"))
    toml.write_text("[port]\nrename = 3\n")
    with pytest.raises(HarnessError, match=r"\[port.rename\] must be a table"):
        load_port_rename(file=toml)


def _run(faithful_run, stages: list[str], *args: str, rename: tuple[tuple[str, str], ...] = ()):
    ctx = Context(RunConfig(data=BUNDLED_DATA, port_cmd=proxy(*args), rename=rename))
    ctx.adopt_reference(faithful_run[0])
    try:
        return run_with(ctx, stages)
    finally:
        ctx.close()


def test_a_model_without_a_bias_fails_at_weights_and_the_stages_that_need_it_skip(faithful_run) -> None:
    burn()
    report = _run(faithful_run, ["weights", "forward", "loss", "backward", "optimizer", "train"], "--no-bias", "fc2")
    status = {r.stage: r.status for r in report.results}
    assert status == {
        "weights": FAIL,
        "forward": SKIP,
        "loss": PASS,
        "backward": SKIP,
        "optimizer": SKIP,
        "train": SKIP,
    }, status
    assert ERROR not in status.values() and report.exit_code == 1
    weights = report.results[0]
    assert [d["cause"] for d in weights.diagnosis] == ["weights.no_bias"]
    assert weights.hint.startswith("the port's fc2 has no bias")
    assert weights.checks[0].reason == "the port has no parameter 'fc2.bias'"
    for r in report.results:
        if r.status == SKIP:
            assert r.hint == "the port's model does not take the reference's parameters (see weights)", r.hint


def test_the_first_stage_to_meet_a_model_that_differs_fails_when_weights_did_not_run(faithful_run) -> None:
    burn()
    report = _run(faithful_run, ["forward", "backward"], "--no-bias", "fc2")
    forward, backward = report.results
    assert forward.status == FAIL and "the port's model has no" in forward.hint
    assert backward.status == SKIP and backward.hint.endswith("(see forward)")
    assert report.exit_code == 1


def test_own_names_are_told_with_their_rules_and_plug_in_with_them(faithful_run) -> None:
    burn()
    report = _run(faithful_run, ["weights", "forward"], "--own-names", OWN)
    weights, forward = report.results
    assert weights.status == FAIL and forward.status == SKIP
    assert [d["cause"] for d in weights.diagnosis] == ["weights.names"]
    printed = tuple(re.findall(r"'([^']+)' = \"([^\"]+)\"", weights.hint))
    assert dict(printed) == {r"^input_layer\b": "fc1", r"^hidden_layer1\b": "fc2", r"^output_layer\b": "fc3"}
    # With the printed rules, every stage that carries names passes: parameters, layers, gradients,
    # optimizer state and the training trace all cross under the reference's names.
    stages = ["weights", "forward", "backward", "optimizer", "train"]
    report = _run(faithful_run, stages, "--own-names", OWN, rename=printed)
    assert {r.stage: r.status for r in report.results} == dict.fromkeys(stages, PASS), [
        (r.stage, r.hint, r.error) for r in report.results
    ]
    # The report says which rules it ran under.
    d = report_json(report)
    jsonschema.validate(d, json.loads(SCHEMA_PATH.read_text()))
    assert d["config"]["port"]["rename"] == [list(rule) for rule in printed]

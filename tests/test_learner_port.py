"""A port written the way most Burn users write one (examples/learner-port: its own module names, a
model returning logits, burn-train's Learner with a DataLoader and Batcher, its own CSV reader and scaler),
plugged in with one glue file. With all its bugs on, each is named at its stage from the numbers; with
each fixed in turn the others still are and nothing else is named; with all fixed it passes."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from harness.cli import main
from harness.faults import port_catalogue
from tests.needs import binary, needs

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "learner-port"
CONFIG = EXAMPLE / "harness.toml"
PORT = ROOT / "rust_bridge" / "target" / "debug" / "learner-port"
GLUE = EXAMPLE / "src" / "harness.rs"
# The glue budget: a user adds at most this many lines of code to a Learner-based project.
GLUE_LINES = 80

# Each bug: the stage that names it, and the cause it must be named by (the port's own catalogue says the
# same; the test reads it below and checks the two agree, so neither is copied from the code under test).
BUGS = {
    "adam-eps": ("optimizer", "adam.eps"),
    "grad-clip": ("optimizer", "clip.norm_per_tensor"),
    "unseeded-split": ("split", "split.unseeded"),
    "f32-parse": ("data", "data.float32_parse"),
    "f32-scaler": ("scaler", "scaler.float32"),
    "with-logits": ("loss", "loss.with_logits"),
    "accuracy-metric": ("metrics", "metrics.argmax+percent"),
}
# Where a bug also shows on later stages that feed the port the reference's inputs, the cause named there
# (BCE with logits changes the gradients of saturated outputs as well as the loss).
ALSO = {"with-logits": {"backward": "backward.logits_loss"}}

needs_port = needs(binary, "learner-port")


def code_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip() and not line.strip().startswith("//")]


def test_the_glue_is_at_most_80_lines_of_code() -> None:
    assert len(code_lines(GLUE)) <= GLUE_LINES, f"{GLUE} has {len(code_lines(GLUE))} lines of code"


def test_only_the_glue_knows_the_harness() -> None:
    """The model, loss, optimizer and training files are ordinary Burn: the contract library appears in the
    glue alone, apart from the data code's use of its sklearn-compatible split (the way to get the
    reference's rows in Rust)."""
    for path in sorted((EXAMPLE / "src").glob("*.rs")):
        uses = set(re.findall(r"burn_diff::(\w+)", path.read_text()))
        if path == GLUE:
            assert "learner" in uses
        elif path.name == "data.rs":
            assert uses == {"prep"}, uses
        else:
            assert not uses, (path.name, uses)
    training = (EXAMPLE / "src" / "training.rs").read_text()
    assert "SupervisedTraining::new" in training and "Learner::new" in training


@needs_port
def test_the_port_lists_its_bugs_as_the_harness_expects() -> None:
    listed = {f["name"]: (f["stage"], f["cause"]) for f in port_catalogue(shlex.quote(str(PORT)) + " serve")}
    assert listed == BUGS


def _diff(tmp_path: Path, faults: list[str], *extra: str) -> tuple[int, dict]:
    out = tmp_path / f"{'+'.join(faults) or 'faithful'}.json"
    cmd = f"{shlex.quote(str(PORT))} serve" + (f" --fault {','.join(faults)}" if faults else "")
    with pytest.raises(SystemExit) as e:
        main(["diff", "all", "--config", str(CONFIG), "--port-cmd", cmd, "--json", str(out), *extra])
    return int(e.value.code), json.loads(out.read_text())


def _causes(report: dict) -> dict[str, set[str]]:
    return {s["stage"]: {d["cause"] for d in s.get("diagnosis") or []} for s in report["stages"]}


def _expected(bugs: list[str]) -> dict[str, set[str]]:
    """Stage -> the causes the bugs that are on must be named by. A cause fitted together with another of
    the same stage is one id joined by '+' (adam.eps+clip.norm_per_tensor)."""
    out: dict[str, set[str]] = {}
    for bug in bugs:
        stage, cause = BUGS[bug]
        out.setdefault(stage, set()).add(cause)
        for s, c in ALSO.get(bug, {}).items():
            out.setdefault(s, set()).add(c)
    return out


def _parts(cause: str) -> set[str]:
    """A joined cause id's parts, each with its stage prefix: "adam.eps+clip.norm_per_tensor" is two causes,
    "metrics.argmax+percent" is metrics.argmax and metrics.percent."""
    first, *rest = cause.split("+")
    prefix = first.split(".")[0]
    return {first, *(r if "." in r else f"{prefix}.{r}" for r in rest)}


def _check_named(report: dict, bugs: list[str]) -> None:
    """Every bug that is on is named at its stage; every cause named anywhere belongs to a bug that is on."""
    expected = _expected(bugs)
    named = _causes(report)
    statuses = {s["stage"]: s["status"] for s in report["stages"]}
    assert "ERROR" not in statuses.values(), statuses
    for stage, causes in expected.items():
        parts = {part for cause in named[stage] for part in _parts(cause)}
        assert {p for c in causes for p in _parts(c)} <= parts, (stage, causes, named[stage])
    allowed = {part for causes in expected.values() for cause in causes for part in _parts(cause)}
    for stage, causes in named.items():
        for cause in causes:
            assert _parts(cause) <= allowed, f"{stage}: {cause} is not the cause of any bug that is on"


@pytest.mark.slow
@needs_port
def test_with_all_bugs_on_each_is_named_at_its_stage(tmp_path: Path) -> None:
    code, report = _diff(tmp_path, ["all"])
    assert code == 1
    _check_named(report, list(BUGS))
    stages = {s["stage"]: s for s in report["stages"]}
    # A logits loss is compared on logits: no NaN anywhere in the loss stage's evidence.
    loss = stages["loss"]["checks"]
    assert any(not c["passed"] for c in loss)
    assert all(c.get("got_stats", {}).get("nonfinite", 0) == 0 for c in loss), loss
    # Integer and boolean columns read exactly are no divergence: only the float columns differ in kind.
    dtypes = next(c for c in stages["data"]["checks"] if c["name"] == "dtypes")
    assert "float32" in dtypes["reason"] and "integer" in dtypes["reason"]
    port_kinds = dtypes["reason"].split("port ")[1]
    assert port_kinds.count("'integer'") == 15 and port_kinds.count("'bool'") == 1


@pytest.mark.slow
@needs_port
@pytest.mark.parametrize("fixed", list(BUGS))
def test_with_one_bug_fixed_the_others_are_still_named_and_nothing_else(tmp_path: Path, fixed: str) -> None:
    rest = [b for b in BUGS if b != fixed]
    code, report = _diff(tmp_path, rest)
    assert code == 1
    _check_named(report, rest)


@pytest.mark.slow
@needs_port
@pytest.mark.parametrize("seed", range(5))
def test_with_every_bug_fixed_the_port_passes(tmp_path: Path, seed: int) -> None:
    code, report = _diff(tmp_path, [], "--seed", str(seed))
    statuses = {s["stage"]: s["status"] for s in report["stages"]}
    assert code == 0, statuses
    # The config stage has nothing to compare: the port declares no hyperparameters (the numbers say them).
    assert statuses.pop("config") == "SKIP"
    assert set(statuses.values()) == {"PASS"}
    forward = next(s for s in report["stages"] if s["stage"] == "forward")
    assert [c["name"] for c in forward["checks"]] == ["layer names", "fc3"]

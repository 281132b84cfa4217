"""CLI behaviour: exit codes, one-line errors, the user's checks, reports."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from harness.config import BUNDLED_DATA
from harness.report.files import SCHEMA_PATH
from tests.conftest import write_csv

HEADER = "a,b,label\n"


def harness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        (HEADER + "1,2,true\n,3,false\n", "empty cell"),
        (HEADER + "1,2,true\nx,3,false\n", "is not a number"),
        (HEADER + "1,2,0\n1,3,1\n2,2,2\n", "must be binary"),
    ],
)
@pytest.mark.parametrize("framework", ["torch", "burn"])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, content: str | None, message: str, framework: str) -> None:
    path = tmp_path / "missing.csv" if content is None else write_csv(tmp_path, content)
    r = harness("train", "--framework", framework, "--data", str(path), "--epochs", "1")
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_unwritable_report_path_and_tiny_file_exit_2(tmp_path: Path) -> None:
    r = harness("diff", "config", "--json", str(tmp_path / "missing" / "r.json"))
    assert r.returncode == 2 and "does not exist" in r.stderr
    one_row = write_csv(tmp_path, HEADER + "1,2,true\n")
    for fw in ("torch", "burn"):
        r = harness("check", "labels", "--framework", fw, "--data", str(one_row))
        assert r.returncode == 2 and "cannot split" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_unknown_stage_fault_and_framework_exit_2() -> None:
    assert harness("diff", "nope").returncode == 2
    r = harness("diff", "config", "--fault", "adam-epz")
    assert r.returncode == 2 and "unknown fault 'adam-epz'" in r.stderr
    assert harness("train", "--framework", "jax").returncode == 2


def test_check_bce_prints_the_reports_values_for_both_sides() -> None:
    outs = [harness("check", "bce", "--framework", fw).stdout for fw in ("torch", "burn")]
    for out in outs:
        assert "Loss:        0.00000000" in out and "Loss:        100.00000000" in out
        assert "Loss:        0.69314718" in out
    assert outs[0] == outs[1]


def test_check_data_and_labels_identical_for_both_sides() -> None:
    for what in ("data", "labels"):
        t, b = (harness("check", what, "--framework", fw).stdout for fw in ("torch", "burn"))
        assert t.replace("(Python)", "(Rust)") == b and "Train" in t


def test_check_data_on_real_file(real_data: Path) -> None:
    b = harness("check", "data", "--framework", "burn", "--data", str(real_data)).stdout
    assert "Sample 0: [-1.00928936, -0.86094706, -0.40131254]" in b


def test_diff_reports_validate_and_refuse_to_overwrite_foreign_files(tmp_path: Path) -> None:
    js, ju = tmp_path / "r.json", tmp_path / "r.xml"
    r = harness("diff", "loss", "--json", str(js), "--junit", str(ju))
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(js.read_text())
    jsonschema.validate(report, json.loads(SCHEMA_PATH.read_text()))
    assert report["passed"] and report["first_divergence"] is None
    cases = ET.parse(ju).getroot().findall(".//testcase")
    assert [c.get("name") for c in cases] == ["loss"]
    # A second run may replace its own report, never a file it did not write.
    assert harness("diff", "loss", "--json", str(js)).returncode == 0
    foreign = tmp_path / "notes.json"
    foreign.write_text('{"mine": true}')
    r = harness("diff", "loss", "--json", str(foreign))
    assert r.returncode == 2 and foreign.read_text() == '{"mine": true}'


def test_data_generate_is_deterministic_and_matches_the_bundled_file(tmp_path: Path) -> None:
    out = tmp_path / "gen.csv"
    assert harness("data", "generate", "--out", str(out)).returncode == 0
    assert out.read_bytes() == BUNDLED_DATA.read_bytes()
    r = harness("data", "generate", "--out", str(out))
    assert r.returncode == 2 and "--force" in r.stderr


@pytest.mark.parametrize("framework", ["torch", "burn"])
def test_weights_that_do_not_match_the_feature_count_exit_2(tmp_path: Path, framework: str) -> None:
    import numpy as np

    from harness.reference.model import init_params

    w = tmp_path / "w19.npz"
    np.savez(w, **init_params(19, 0))  # the bundled data has 20 features
    r = harness("train", "--framework", framework, "--init", str(w), "--epochs", "1")
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "fc1.weight" in lines[0] and "20" in lines[0], lines[0]


def test_a_backend_this_build_lacks_is_one_line_and_exit_2() -> None:
    """NdArray is behind the cargo feature `ndarray` (a second build of Burn); a build without it says how
    to get it. Negative control: a backend that is in the build runs."""
    from tests.needs import burn

    built = burn().backends()
    assert "flex" in built
    for name in ("ndarray", "wgpu"):
        if name in built:
            continue
        r = harness("diff", "config", "--backend", name)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        want = "cargo feature `ndarray`" if name == "ndarray" else f"unknown backend '{name}'"
        assert want in lines[0], lines[0]
    assert harness("diff", "config", "--backend", "flex").returncode == 0

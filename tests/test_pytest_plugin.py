"""`pytest --harness-config`: one test per stage, a failing stage's line as the failure, reports written,
and pytest-xdist workers sharing one reference cache. Run as a user runs it: pytest in a subprocess, in
a directory holding only the config (the plugin from its pytest11 entry point)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from harness.config import BUNDLED_DATA
from harness.stages import STAGE_NAMES
from tests.needs import backend, burn

ROOT = Path(__file__).resolve().parent.parent


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HARNESS_CACHE": str(tmp_path / "cache")}
    # Installed, the pytest11 entry point loads the plugin; from a checkout not installed, -p does.
    installed = any(e.value == "harness.pytest_plugin" for e in entry_points(group="pytest11"))
    plugin = [] if installed else ["-p", "harness.pytest_plugin"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", *plugin, "-p", "no:cacheprovider", "-rA", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )


def _config(tmp_path: Path, extra: str = "") -> Path:
    toml = tmp_path / "model" / "harness.toml"
    toml.parent.mkdir()
    toml.write_text(f'[data]\npath = "{BUNDLED_DATA}"\n\n[train]\nepochs = 3\n{extra}')
    return toml


@pytest.mark.slow
def test_one_test_per_stage_over_two_workers(tmp_path: Path) -> None:
    burn()
    toml = _config(tmp_path)
    r = _pytest(tmp_path, "--harness-config", str(toml), "-n", "2", "--harness-reports", str(tmp_path / "out"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    passed = set(re.findall(r"PASSED harness\[model\]::(\w+)", r.stdout))
    assert passed == set(STAGE_NAMES), r.stdout[-3000:]
    assert (tmp_path / "out" / "harness-model.json").is_file()
    assert len(list((tmp_path / "cache").glob("*.trace.safetensors"))) == 1  # one reference, shared


@pytest.mark.slow
def test_a_failing_stage_fails_with_its_line(tmp_path: Path) -> None:
    burn()
    toml = _config(tmp_path, '\n[model.optimizer]\nname = "Adam"\nlr = 2e-3\n')
    r = _pytest(tmp_path, "--harness-config", str(toml), "--harness-seeds", "0")
    assert r.returncode == 1, r.stdout[-3000:]
    # The port trains at 1e-3: the reference's config says 2e-3.
    assert re.search(r"FAILED harness\[model-seed0\]::config", r.stdout), r.stdout[-3000:]
    assert "config FAIL: " in r.stdout and "lr" in r.stdout


def test_without_the_option_nothing_is_collected(tmp_path: Path) -> None:
    r = _pytest(tmp_path, "--collect-only", "-q")
    assert "harness[" not in r.stdout and r.returncode == 5, r.stdout


def test_backends_multiply_the_tests(tmp_path: Path) -> None:
    toml = _config(tmp_path)
    r = _pytest(
        tmp_path,
        "--harness-config",
        str(toml),
        "--harness-seeds",
        "0,1",
        "--harness-backends",
        "flex,ndarray",
        "--collect-only",
        "-q",
    )
    runs = set(re.findall(r"harness\[([\w-]+)\]::config", r.stdout))
    assert runs == {"model-seed0-flex", "model-seed0-ndarray", "model-seed1-flex", "model-seed1-ndarray"}, r.stdout


@pytest.mark.slow
def test_a_backend_reaches_the_port(tmp_path: Path) -> None:
    burn()
    backend("ndarray")
    toml = _config(tmp_path)
    out = tmp_path / "out"
    r = _pytest(tmp_path, "--harness-config", str(toml), "--harness-backends", "ndarray", "--harness-reports", str(out))
    assert r.returncode == 0, r.stdout[-3000:]
    report = (out / "harness-model-ndarray.json").read_text()
    assert '"backend": "ndarray"' in report, report[:2000]

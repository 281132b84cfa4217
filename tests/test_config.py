"""Tolerance overrides from harness.toml or [tool.harness.tolerances] in pyproject.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import load_tolerance_overrides
from harness.errors import HarnessError
from harness.tolerances import TOLERANCES, tolerance


def test_harness_toml_overrides_one_stage(tmp_path: Path) -> None:
    (tmp_path / "harness.toml").write_text("[tolerances.forward]\nrtol = 1e-4\n")
    o = load_tolerance_overrides(tmp_path)
    assert o == {"forward": {"rtol": 1e-4}}
    t = tolerance("forward", o)
    assert t.rtol == 1e-4 and t.atol == TOLERANCES["forward"].atol
    assert tolerance("backward", o) == TOLERANCES["backward"]


def test_pyproject_section_and_bad_tables(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.harness.tolerances.loss]\natol = 0.5\n")
    assert load_tolerance_overrides(tmp_path) == {"loss": {"atol": 0.5}}
    (tmp_path / "harness.toml").write_text("[tolerances.loss]\nwhatever = 1\n")
    with pytest.raises(HarnessError, match="rtol and/or atol"):
        load_tolerance_overrides(tmp_path)


def test_unknown_stage_and_non_numeric_values_are_input_errors(tmp_path: Path) -> None:
    (tmp_path / "harness.toml").write_text("[tolerances.forwad]\nrtol = 1e-4\n")
    with pytest.raises(HarnessError, match="unknown stage 'forwad'"):
        load_tolerance_overrides(tmp_path)
    (tmp_path / "harness.toml").write_text('[tolerances.forward]\nrtol = "x"\n')
    with pytest.raises(HarnessError, match="must be numbers"):
        load_tolerance_overrides(tmp_path)


def test_config_stage_follows_the_run_epochs(bundled_cfg) -> None:
    from harness.pipeline import run

    assert run(bundled_cfg.with_(epochs=5), ["config"]).exit_code == 0

"""What the tests of the example models (examples/digits, digits-cnn, sequence) share: the run their
harness.toml describes with their port binary, a `diff all` read back from its JSON report, and the fault
matrix with every row that missed its stage or its cause."""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.config import RunConfig, load_model_settings
from harness.faults import detection_matrix


def port_config(config: Path, port: Path, **kw: object) -> RunConfig:
    """The run `config` describes, against the port binary `port`."""
    return RunConfig(**{**load_model_settings(config), "port_cmd": shlex.quote(str(port)), **kw})


def diff_all(config: Path, out: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    """`harness diff all --config CONFIG` (no cache): its exit code and its JSON report."""
    with pytest.raises(SystemExit) as e:
        main(["diff", "all", "--config", str(config), "--json", str(out), "--no-cache", *args])
    code = e.value.code
    assert isinstance(code, int), capsys.readouterr().out[-3000:]
    return code, json.loads(out.read_text())


def fault_matrix(cfg: RunConfig) -> dict[str, dict[str, Any]]:
    """`faults check` on one seed, every row by its fault; fails naming each row that missed its stage or
    its cause (with the run's errors, so a run that ERRORs says why)."""
    from rich.console import Console

    rows, ok = detection_matrix(cfg, 1, [], Console(file=io.StringIO()))
    bad = [
        (r["fault"], r["first_stage"], r["expected_stage"], r["diagnosis"], r["hint"][:200], r["errors"][:2])
        for r in rows
        if not r["ok"]
    ]
    assert ok and not bad, bad
    return {r["fault"]: r for r in rows}

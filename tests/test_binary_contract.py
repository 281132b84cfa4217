"""The cargo binary `burn-port` keeps the same contract as the harness: bad input is one line on stderr
and exit code 2, never a panic, for each of its commands."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.needs import binary, needs

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "rust_bridge" / "target" / "debug" / "burn-port"
pytestmark = needs(binary, "burn-port")
COMMANDS = ["test-training-data", "test-label-percentage", "train"]


def _bad_inputs(tmp: Path) -> list[tuple[list[str], str]]:
    padded = tmp / "padded.csv"
    padded.write_text("f1,f2,label\n1, 2,1\n3,4,0\n")
    folder = tmp / "folder"
    folder.mkdir()
    return [
        (["--epochs", "0"], "--epochs"),
        (["--seed", "abc"], "not a whole number"),
        (["--seed", "18446744073709551616"], "not a whole number"),
        (["--backend", "cuda"], "unknown backend 'cuda'"),
        (["--fault", "nope"], "unknown fault 'nope'"),
        (["--data", str(tmp / "missing.csv")], "not found"),
        (["--data", str(folder)], "is a directory"),
        (["--data", str(padded)], "has spaces around it"),
        (["--label", "nope"], "label column 'nope'"),
        (["--bogus", "1"], "unknown option '--bogus'"),
        (["--epochs"], "needs a value"),
    ]


@pytest.mark.parametrize("command", COMMANDS)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    for args, expected in _bad_inputs(tmp_path):
        r = subprocess.run([str(BIN), command, *args], capture_output=True, text=True, timeout=120)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2, (command, args, r.stdout, r.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (command, args, r.stderr)
        assert "panicked" not in r.stderr


def test_unknown_command_and_no_command() -> None:
    for args in (["nope"], []):
        r = subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr

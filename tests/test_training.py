"""Independent end-to-end training: the port reaches the reference's accuracy with finite losses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config import BUNDLED_DATA, REAL_DATA
from tests.needs import backend as needs_backend

runner = CliRunner()


def _train(tmp_path: Path, data: Path, framework: str, backend: str = "flex") -> dict:
    out = tmp_path / f"{framework}-{backend}-{data.parent.name}.json"
    r = runner.invoke(
        app, ["train", "--framework", framework, "--data", str(data), "--backend", backend, "--json", str(out)]
    )
    assert r.exit_code == 0, r.output
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("which", ["bundled", "real"])
def test_burn_accuracy_within_one_point_of_torch(tmp_path: Path, which: str) -> None:
    data = BUNDLED_DATA if which == "bundled" else REAL_DATA
    if not data.is_file():
        pytest.skip(f"{data} is absent")
    torch_run = _train(tmp_path, data, "torch")
    assert len(torch_run["epoch_loss"]) == 20
    for backend in ("flex", needs_backend("ndarray")):
        burn = _train(tmp_path, data, "burn", backend)
        assert burn["finite_losses"], burn["epoch_loss"]
        assert abs(burn["test_accuracy"] - torch_run["test_accuracy"]) <= 0.01, (backend, burn, torch_run)
        assert burn["test_accuracy"] > 0.88

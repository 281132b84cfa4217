from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import BUNDLED_DATA, REAL_DATA, RunConfig
from harness.pipeline import run_with
from harness.stages.base import Context


@pytest.fixture(autouse=True)
def _own_reference_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own, empty reference cache (the CLI caches by default): no test reads another's
    entries, and none writes into the working tree."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path_factory.mktemp("harness-cache")))


@pytest.fixture(scope="session")
def bundled_cfg() -> RunConfig:
    return RunConfig(data=BUNDLED_DATA)


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL_DATA.is_file():
        pytest.skip(f"the report's real dataset is not at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def faithful_run(bundled_cfg: RunConfig):
    """One faithful `diff all` on the bundled data; its reference results are shared by fault tests."""
    ctx = Context(bundled_cfg)
    return ctx, run_with(ctx)


def write_csv(tmp_path: Path, text: str, name: str = "d.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs(check, *args): a build output the test needs (tests/needs.py)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs"):
        check, *args = mark.args
        check(*args)

"""What a test needs from the build or the machine, in one place. Missing locally, the test is skipped
with the command that builds it; under CI=true (where `./dev test --all` builds everything) it fails,
so a missing build step cannot pass as a skipped test."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "rust_bridge" / "target" / "debug"
IN_CI = os.environ.get("CI") == "true"


def require(available: bool, what: str) -> None:
    """Skip (locally) or fail (under CI=true) unless `available`; `what` says what is missing and how to get it."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} (under CI=true every build output must be present)", pytrace=False)
    pytest.skip(what)


def binary(name: str) -> Path:
    """A workspace binary, required to exist."""
    path = TARGET / name
    require(path.is_file(), f"{name} is not built (./dev setup, or cd rust_bridge && cargo build)")
    return path


def module(name: str, what: str) -> ModuleType:
    """An importable module, required: `pytest.importorskip` that fails under CI=true."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        require(False, f"{what}: {e}")
        raise


def burn() -> ModuleType:
    """The Burn extension harness._burn."""
    return module("harness._burn", "the Burn extension harness._burn is not built (./dev setup)")


def backend(name: str) -> str:
    """A Burn backend, required to be in this build (ndarray only with the cargo feature `ndarray`)."""
    require(name in burn().backends(), f"backend '{name}' is not in this build (./dev setup --all)")
    return name


def needs(check: object, *args: str) -> pytest.MarkDecorator:
    """A marker: `needs(binary, "digits-port")` runs `binary("digits-port")` before the test (see conftest)."""
    return pytest.mark.needs.with_args(check, *args)

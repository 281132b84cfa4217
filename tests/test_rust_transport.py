"""The Rust side of both transports: `burn-port serve` (the subprocess transport) gives the same stage
statuses as the in-process extension for every fault; the user-port example passes `diff all` as a
subprocess; a panic in the port's code is an ERROR with one line and exit code 2 on both transports."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import BUNDLED_DATA, RunConfig
from harness.pipeline import run_with
from harness.port import available_faults
from harness.stages.base import Context
from tests.needs import binary, needs

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "rust_bridge" / "target" / "debug"
BURN_PORT = TARGET / "burn-port"
USER_PORT = TARGET / "user-port"

needs_binaries = needs(lambda: (binary("burn-port"), binary("user-port")))
# Two epochs keep the runs per transport cheap; a fault that first acts later runs long enough to act
# (lr-step-decay divides the learning rate by 10 from the sixth epoch on).
EPOCHS = 2
LATE = {"lr-step-decay": 6}


def serve(*args: str) -> str:
    return shlex.join([str(BURN_PORT), "serve", *args])


def statuses(ctx: Context) -> dict[str, str]:
    report = run_with(ctx)
    ctx.close()
    return {r.stage: r.status for r in report.results}


FAULT_CASES = ["", *(f["name"] for f in available_faults()), "user-port"]
assert set(LATE) <= set(FAULT_CASES), "LATE names a fault the port no longer has"


@pytest.fixture(scope="module")
def two_epoch_reference() -> Context:
    """The faithful in-process run whose reference side every case shares (once per worker)."""
    base = Context(RunConfig(data=BUNDLED_DATA, epochs=EPOCHS))
    faithful = statuses(base)
    assert set(faithful.values()) == {"PASS"}, faithful
    return base


# One case per fault, so that pytest-xdist spreads them over the workers (serially they took 318 s).
@needs_binaries
@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULT_CASES, ids=lambda f: f or "faithful")
def test_every_fault_gives_the_same_statuses_over_both_transports(two_epoch_reference: Context, fault: str) -> None:
    base = two_epoch_reference
    epochs = LATE.get(fault, EPOCHS)
    shared = base
    if epochs != EPOCHS:
        shared = Context(base.cfg.with_(epochs=epochs))
        assert set(statuses(shared).values()) == {"PASS"}  # computes the reference side to share
    inproc = Context(base.cfg.with_(fault=fault, epochs=epochs))
    inproc.adopt_reference(shared)
    sub = Context(base.cfg.with_(epochs=epochs, port_cmd=serve("--fault", fault or "none", "--epochs", str(epochs))))
    sub.adopt_reference(shared)
    a, b = statuses(inproc), statuses(sub)
    assert a == b, f"fault {fault or 'none'}: in-process {a}, subprocess {b}"
    if fault:
        assert set(a.values()) != {"PASS"}, f"fault {fault} went unnoticed"


@needs_binaries
@pytest.mark.slow
def test_the_user_port_example_passes_diff_all() -> None:
    cfg = RunConfig(data=BUNDLED_DATA, port_cmd=shlex.quote(str(USER_PORT)))
    ctx = Context(cfg)
    report = run_with(ctx)
    ctx.close()
    bad = {
        r.stage: (r.status, r.error or (r.first_failure.summary() if r.first_failure else ""))
        for r in report.results
        if r.status != "PASS"
    }
    assert report.exit_code == 0, bad


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "400", "CI": "true"}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600
    )


@pytest.mark.parametrize("transport", ["in-process", "subprocess"])
def test_a_panic_in_the_port_is_an_error_with_one_line(transport: str) -> None:
    if transport == "subprocess":
        binary("burn-port")
    args = (
        ["--fault", "transform-panics"]
        if transport == "in-process"
        else ["--port-cmd", serve("--fault", "transform-panics")]
    )
    r = _cli("diff", "scaler", *args)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "Traceback" not in out and "PanicException" not in out, out
    assert "panicked" in out and "index out of bounds" in out, out
    assert len(r.stderr.strip().splitlines()) <= 1, r.stderr

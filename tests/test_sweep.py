"""The faithful port passes `diff all` on both datasets (the bundled file and, where ../shared/data has
it, the report's real file), on both backends, for seeds 0-4. .ci/run runs this file (marker `sweep`)
with the numeric tests (marker `numeric`) under each kernel level of torch and numpy, so a tolerance that
holds only on the machine that tuned it fails in CI, not on a user's machine. The negative control of
the same path is every fault test (tests/test_stages.py, `faults check`): the same `run_with` fails them."""

from __future__ import annotations

import pytest

from harness.config import BUNDLED_DATA, REAL_DATA, RunConfig
from harness.pipeline import run_with
from harness.stages.base import Context
from tests.needs import backend

pytestmark = [pytest.mark.slow, pytest.mark.sweep]

BACKENDS = ("flex", "ndarray")


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("which", ["bundled", "real"])
def test_the_faithful_port_passes_diff_all(which: str, seed: int) -> None:
    data = BUNDLED_DATA if which == "bundled" else REAL_DATA
    if which == "real" and not REAL_DATA.is_file():
        # The real file is the user's, never committed: absent, only its checks are skipped (CI has it).
        pytest.skip(f"the report's real dataset is not at {REAL_DATA}")
    for name in BACKENDS:
        backend(name)
    first: Context | None = None
    failures = []
    for name in BACKENDS:
        ctx = Context(RunConfig(data=data, seed=seed, backend=name))
        if first is not None:
            # The reference side does not depend on the port's backend: computed once per seed.
            ctx.adopt_reference(first)
        try:
            report = run_with(ctx)
        finally:
            ctx.close()
        first = first or ctx
        bad = [f"{r.stage} {r.status}: {r.error or r.hint}" for r in report.results if r.status != "PASS"]
        if bad:
            failures.append(f"{name}: " + "; ".join(bad))
    assert not failures, "\n".join(failures)

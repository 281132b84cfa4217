"""loss: value and d loss / d prediction on an edge suite (exact 0 and 1, 1e-7 from the edges, 0.5, random)."""

from __future__ import annotations

import numpy as np

from harness.compare import compare
from harness.diagnosis.loss import ADVICE, Case, diagnose
from harness.reference import train as ref_train
from harness.stages.base import Context, Stage, StageResult, result


def edge_suite() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    y4 = np.array([1, 0, 1, 0], dtype=np.float32)
    e = np.float32(1e-7)
    return {
        "perfect": (np.array([1, 0, 1, 0], dtype=np.float32), y4),
        "wrong": (np.array([0, 1, 0, 1], dtype=np.float32), y4),
        "half": (np.full(4, 0.5, dtype=np.float32), y4),
        "near_edges": (np.array([1 - e, e, e, 1 - e], dtype=np.float32), y4),
        "random": (rng.uniform(0.01, 0.99, 64).astype(np.float32), (rng.random(64) < 0.5).astype(np.float32)),
    }


def run(ctx: Context) -> StageResult:
    tol = ctx.tol("loss")
    checks = []
    evidence = []
    cases: list[Case] = []
    for case, (p, y) in edge_suite().items():
        rv, rg = ref_train.loss_and_grad(p, y)
        gv, gg = ctx.port.loss(p, y)
        cases.append(Case(case, p, y, float(gv), np.asarray(gg, dtype=np.float32)))
        checks.append(compare(f"{case}.value", np.float32(rv), np.float32(gv), tol))
        checks.append(compare(f"{case}.grad", rg, gg, tol))
        edge = (p == 0) | (p == 1)
        if not np.isfinite(gv):
            evidence.append(f"value {gv} on '{case}' (reference {rv:g})")
        bad = ~np.isfinite(gg)
        if bad.any():
            at_edge = int((bad & edge).sum())
            evidence.append(
                f"gradient non-finite at {int(bad.sum())} elements of '{case}', {at_edge} of them at p exactly 0 or 1"
            )
    if all(c.passed for c in checks):
        return result("loss", checks)
    causes = diagnose(cases, tol)
    if causes:
        hint = causes[0].sentence()
        if causes[0].cause in ADVICE:
            hint += f"; {ADVICE[causes[0].cause]}"
        if evidence:
            hint += "; " + "; ".join(evidence)
    else:
        worst = next(c for c in checks if not c.passed)
        hint = "no candidate cause reproduces the port's loss; " + ("; ".join(evidence) or worst.summary())
    return result("loss", checks, hint, diagnosis=[c.to_dict() for c in causes])


STAGE = Stage("loss", "loss value and gradient on an edge suite", run)

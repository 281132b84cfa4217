"""loss: value and d loss / d prediction on an edge suite (exact 0 and 1, 1e-7 from the edges, 0.5, random)."""

from __future__ import annotations

import numpy as np

from harness.compare import compare
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
    for case, (p, y) in edge_suite().items():
        rv, rg = ref_train.loss_and_grad(p, y)
        gv, gg = ctx.port.loss(p, y)
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
    hint = ""
    if not all(c.passed for c in checks):
        finite_values = not any("value" in e for e in evidence)
        if evidence and not finite_values:
            hint = (
                "; ".join(evidence) + ": log(p) or log(1-p) is not clamped; the reference clamps both at -100 "
                "(BCELoss gives 0 and 100 for perfect and wrong predictions)"
            )
        elif evidence:
            hint = (
                "; ".join(evidence) + ": values are finite but the backward pass is not; the reference divides by "
                "max(p(1-p), 1e-12); Burn's BinaryCrossEntropyLoss backward divides by p through log (its clamp "
                "has zero gradient)"
            )
        else:
            worst = next(c for c in checks if not c.passed)
            hint = f"loss differs without non-finite values (worst: {worst.summary()})"
    return result("loss", checks, hint)


STAGE = Stage("loss", "loss value and gradient on an edge suite", run)

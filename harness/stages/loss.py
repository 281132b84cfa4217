"""loss: value and d loss / d output on the configured loss's edge suite (harness/reference/reference.py's
loss_suite: for BCELoss exact 0 and 1, 1e-7 from the edges, 0.5, random; for CrossEntropyLoss uniform,
confident right and wrong, a large common offset, random logits). A port whose binary loss takes logits
(`[port] loss_input = "logits"`) is fed logits, saturating ones included, and compared with the
reference's BCELoss on their float32 sigmoid, its gradient in the logits."""

from __future__ import annotations

import numpy as np

from harness.compare import compare
from harness.diagnosis import criteria
from harness.diagnosis.loss import ADVICE, Case, diagnose
from harness.results import StageResult, result
from harness.specs import PROBABILITY
from harness.stages.base import Context, Stage


def run(ctx: Context) -> StageResult:
    tol = ctx.tol("loss")
    checks = []
    evidence = []
    cases: list[Case] = []
    logits = ctx.reference.takes_logits()
    bce = ctx.reference.loss_spec.output == PROBABILITY and not logits
    for case, (p, y) in ctx.reference.loss_suite().items():
        rv, rg = ctx.reference.loss_and_grad(p, y, logits)
        gv, gg = ctx.port.loss(p, y)
        cases.append(Case(case, p, y, float(gv), np.asarray(gg, dtype=np.float32), logits))
        checks.append(compare(f"{case}.value", np.float32(rv), np.float32(gv), tol))
        checks.append(compare(f"{case}.grad", rg, gg, tol))
        edge = ((p == 0) | (p == 1)) if bce else np.zeros(p.shape, bool)
        if not np.isfinite(gv):
            evidence.append(f"value {gv} on '{case}' (reference {rv:g})")
        bad = ~np.isfinite(gg)
        if bad.any():
            at_edge = int((bad & edge).sum())
            evidence.append(
                f"gradient non-finite at {int(bad.sum())} elements of '{case}'"
                + (f", {at_edge} of them at p exactly 0 or 1" if bce else "")
            )
    if all(c.passed for c in checks):
        return result("loss", checks)
    if ctx.reference.loss_spec.output == PROBABILITY:  # BCE on probabilities: its own catalogue
        causes = diagnose(cases, tol)
    else:
        causes = criteria.diagnose(ctx.reference, cases, tol)
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

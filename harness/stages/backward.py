"""backward: per-parameter gradients on the same batch and weights.

Three cases: the first training batch at the initial weights, and the same batch with the output layer
scaled (once as is, once with its sign flipped) so that the float32 sigmoid saturates, as it does from
epoch 2 of the reference's training. Saturation is where BCE implementations differ.
"""

from __future__ import annotations

import numpy as np

from harness.compare import compare
from harness.diagnosis.backward import Case, diagnose
from harness.reference import train as ref_train
from harness.stages.base import Context, Stage, StageResult, result

# The output layer is scaled so that the largest |logit| on the batch is this large: well past the
# 16.6 where float32's sigmoid returns exactly 1.0 and the -27.6 below which p(1-p) < 1e-12 (where
# torch's gradient clamp engages), so many outputs are saturated and, at initial weights, about half
# of those confidently wrong. It stays above -87, where float32 sigmoid outputs turn subnormal: there
# torch keeps the subnormal while Burn's sigmoid flushes to 0, which moves log(p) from ~-88 to the
# -100 clamp (a 12-unit loss change per row, measured) without changing any gradient.
MAX_LOGIT = 60.0


def saturated_params(params: dict[str, np.ndarray], x: np.ndarray, sign: float = 1.0) -> dict[str, np.ndarray]:
    """`sign=-1` flips every logit, so each saturated row is confidently wrong in one of the two cases."""
    z = np.abs(ref_train.forward(params, x)["fc3"][:, 0])
    scale = np.float32(sign * MAX_LOGIT / max(float(np.max(z)), 1e-6))
    out = dict(params)
    out["fc3.weight"] = (params["fc3.weight"] * scale).astype(np.float32)
    out["fc3.bias"] = (params["fc3.bias"] * scale).astype(np.float32)
    return out


def run(ctx: Context) -> StageResult:
    p = ctx.prepared
    rows = ctx.orders[0][: ctx.cfg.batch_size]
    x, y = p.x_train[rows], p.y_train[rows]
    tol = ctx.tol("backward")
    checks = []
    evidence: list[str] = []
    evidence_cases: list[Case] = []
    cases = (
        ("initial", ctx.init),
        ("saturated", saturated_params(ctx.init, x)),
        ("saturated_flipped", saturated_params(ctx.init, x, -1.0)),
    )
    for case, params in cases:
        rl, rg = ref_train.backward(params, x, y)
        gl, gg = ctx.port.backward(params, x, y)
        case_checks = [compare(f"{case}.loss", np.float32(rl), np.float32(gl), tol)]
        case_checks += [compare(f"{case}.{k}", v, gg[k], tol) for k, v in rg.items()]
        checks += case_checks
        evidence_cases.append(Case(case, params, x, y, float(gl), gg))
        if all(c.passed for c in case_checks):
            continue
        probs = ref_train.forward(params, x)["sigmoid"][:, 0]
        p64 = probs.astype(np.float64)
        # Where torch's max(p(1-p), 1e-12) engages: the reference's gradient is no longer (p - y)/N.
        sat = (probs == 0) | (probs == 1) | (p64 * (1 - p64) < 1e-12)
        nonfinite = sum(int((~np.isfinite(g)).sum()) for g in gg.values())
        evidence.append(
            f"{case}: {int(sat.sum())} of {len(y)} outputs saturated"
            + (f", gradient NaN/inf at {nonfinite} elements" if nonfinite else "")
        )
    if all(c.passed for c in checks):
        return result("backward", checks, batch_rows=len(rows))
    causes = diagnose(evidence_cases, tol)
    if causes:
        hint = causes[0].sentence() + "; " + "; ".join(evidence)
    else:
        worst = next(c for c in checks if not c.passed)
        hint = "no candidate cause reproduces the gradients; " + "; ".join(evidence) + f"; worst: {worst.summary()}"
    return result("backward", checks, hint, diagnosis=[c.to_dict() for c in causes], batch_rows=len(rows))


STAGE = Stage("backward", "per-parameter gradients, normal and saturated outputs", run)

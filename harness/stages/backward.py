"""backward: per-parameter gradients on the same batch and weights.

Three cases: the first training batch at the initial weights, and the same batch with the output layer
scaled (once as is, once with its sign flipped) so that the float32 sigmoid saturates, as it does from
epoch 2 of the reference's training. Saturation is where BCE implementations differ.
"""

from __future__ import annotations

import numpy as np

from harness.compare import compare
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
    hints = []
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
        if all(c.passed for c in case_checks):
            continue
        probs = ref_train.forward(params, x)["sigmoid"][:, 0]
        exact = (probs == 0) | (probs == 1)
        # Where torch's max(p(1-p), 1e-12) engages: the reference's gradient is no longer (p - y)/N.
        p64 = probs.astype(np.float64)
        sat = exact | (p64 * (1 - p64) < 1e-12)
        wrong_sat = sat & ((probs > 0.5) != (y > 0.5))
        nonfinite = sum(int((~np.isfinite(g)).sum()) for g in gg.values())
        if nonfinite:
            hints.append(
                f"{case}: gradient NaN/inf at {nonfinite} elements; {int(sat.sum())} of {len(y)} outputs are exactly 0 "
                "or 1; the reference divides by max(p(1-p), 1e-12); Burn's BinaryCrossEntropyLoss backward divides by p"
            )
            continue
        logits = ref_train.forward(params, x)["fc3"][:, 0].astype(np.float64)
        logit_grad_b3 = float(((1 / (1 + np.exp(-logits))) - y).mean())
        if np.isclose(gg["fc3.bias"][0], logit_grad_b3, rtol=1e-4, atol=1e-7) and not np.isclose(
            rg["fc3.bias"][0], logit_grad_b3, rtol=1e-4, atol=1e-7
        ):
            hints.append(
                f"{case}: gradients differ where the sigmoid saturates ({int(sat.sum())} of {len(y)} outputs with "
                f"p(1-p) < 1e-12, {int(exact.sum())} exactly 0 or 1, {int(wrong_sat.sum())} misclassified); the port's "
                "output-bias gradient "
                f"{gg['fc3.bias'][0]:.6g} equals mean(sigmoid(z) - y), the gradient of BCE with logits; the reference's "
                f"BCELoss divides by max(p(1-p), 1e-12), which shrinks those rows' gradient to 0 ({rg['fc3.bias'][0]:.6g})"
            )
        else:
            worst = next(c for c in case_checks if not c.passed)
            hints.append(f"{case}: {worst.summary()}")
    return result("backward", checks, "; ".join(hints), batch_rows=len(rows))


STAGE = Stage("backward", "per-parameter gradients, normal and saturated outputs", run)

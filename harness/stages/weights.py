"""weights: reference -> port -> reference round trip is exact; Burn's layouts are [in, out]."""

from __future__ import annotations

import numpy as np

from harness.compare import compare, compare_value
from harness.diagnosis.weights import diagnose
from harness.stages.base import Context, Stage, StageResult, result


def run(ctx: Context) -> StageResult:
    params = ctx.init
    back, layouts = ctx.port.roundtrip(params)
    tol = ctx.tol("weights")
    checks = [compare(name, v, back[name], tol) for name, v in params.items()]
    for name, v in params.items():
        if name.endswith(".weight"):
            checks.append(compare_value(f"{name} Burn layout", [v.shape[1], v.shape[0]], list(layouts[name])))
    if all(c.passed for c in checks):
        return result("weights", checks)
    causes = diagnose(params, back, tol)
    if causes:
        hint = causes[0].sentence()
        if causes[0].cause == "weights.reshaped":
            hint += "; transpose PyTorch weights into Burn's Linear (or load via burn-store's PyTorchToBurnAdapter)"
    else:
        changed = [name for name, v in params.items() if not np.array_equal(back.get(name), v)]
        hint = f"no candidate cause reproduces the round trip; changed: {', '.join(changed)}"
    return result("weights", checks, hint, diagnosis=[c.to_dict() for c in causes])


STAGE = Stage("weights", "parameter round trip and layouts", run)

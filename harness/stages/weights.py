"""weights: reference -> port -> reference round trip is exact; Burn's layouts are [in, out]."""

from __future__ import annotations

import numpy as np

from harness.compare import compare, compare_value
from harness.stages.base import Context, Stage, StageResult, result


def run(ctx: Context) -> StageResult:
    params = ctx.init
    back, layouts = ctx.port.roundtrip(params)
    tol = ctx.tol("weights")
    checks = [compare(name, v, back[name], tol) for name, v in params.items()]
    for name, v in params.items():
        if name.endswith(".weight"):
            checks.append(compare_value(f"{name} Burn layout", [v.shape[1], v.shape[0]], list(layouts[name])))
    hints = []
    for name, v in params.items():
        if v.ndim == 2 and not np.array_equal(back[name], v):
            out_f, in_f = v.shape
            if np.array_equal(back[name], v.reshape(in_f, out_f).T):
                hints.append(
                    f"{name}: the port holds the [{out_f}, {in_f}] buffer reshaped to [{in_f}, {out_f}] instead of "
                    "transposed; transpose PyTorch weights into Burn's Linear (or load via burn-store's "
                    "PyTorchToBurnAdapter)"
                )
    hint = "; ".join(hints[:1] + ([f"(same for {len(hints) - 1} more weight tensors)"] if len(hints) > 1 else []))
    return result("weights", checks, hint or "parameters change on their way through the port")


STAGE = Stage("weights", "parameter round trip and layouts", run)

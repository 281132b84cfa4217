"""forward: per-sample outputs and every layer's activations on the whole test set, same weights."""

from __future__ import annotations

import numpy as np

from harness.compare import compare
from harness.diagnosis.forward import diagnose
from harness.reference import train as ref_train
from harness.reference.model import LAYERS
from harness.stages.base import Context, Stage, StageResult, result


def run(ctx: Context) -> StageResult:
    x = ctx.prepared.x_test
    ref = ref_train.forward(ctx.init, x)
    got = ctx.port.forward(ctx.init, x)
    tol = ctx.tol("forward")
    checks = [compare(layer, ref[layer], got[layer], tol) for layer in LAYERS]
    first = next((c for c in checks if not c.passed), None)
    if first is None:
        return result("forward", checks, samples=len(x), first_divergent_layer=None)
    layer = first.name
    causes = diagnose(ctx.init, x, got, layer, tol)
    if causes:
        hint = f"first divergent layer: {layer}; {causes[0].sentence()}"
    else:
        g = got[layer]
        seen = (
            f"{int((g < 0).sum())} negative values" if (g < 0).any() else f"values from {g.min():.3g} to {g.max():.3g}"
        )
        hint = f"first divergent layer: {layer}, every earlier layer within tolerance; no candidate cause reproduces it ({seen})"
    return result(
        "forward", checks, hint, diagnosis=[c.to_dict() for c in causes], samples=len(x), first_divergent_layer=layer
    )


STAGE = Stage("forward", "per-sample outputs and per-layer activations", run)


def probe_saturated(params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Which rows the reference's float32 sigmoid maps to exactly 0 or 1."""
    p = ref_train.forward(params, x)["sigmoid"][:, 0]
    return (p == 0.0) | (p == 1.0)

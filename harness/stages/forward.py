"""forward: per-sample outputs and every layer's activations on the whole test set, same weights."""

from __future__ import annotations

import numpy as np

from harness.compare import compare
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
    hint = ""
    if first is not None:
        layer = first.name
        g = got[layer]
        if layer.startswith("relu") and (g < 0).any():
            hint = (
                f"first divergent layer: {layer}; the port's {layer} output has {int((g < 0).sum())} negative values, "
                "which a ReLU cannot produce: the activation is missing from the port's forward()"
            )
        elif layer.startswith("fc"):
            hint = f"first divergent layer: {layer} (a Linear): its weights or layout differ, or its input does"
        else:
            hint = f"first divergent layer: {layer}, with every earlier layer within tolerance"
    return result("forward", checks, hint, samples=len(x), first_divergent_layer=first.name if first else None)


STAGE = Stage("forward", "per-sample outputs and per-layer activations", run)


def probe_saturated(params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Which rows the reference's float32 sigmoid maps to exactly 0 or 1."""
    p = ref_train.forward(params, x)["sigmoid"][:, 0]
    return (p == 0.0) | (p == 1.0)

"""weights: reference -> port -> reference round trip is exact, by the reference's parameter and buffer
names; Burn stores a Linear weight as [in, out], every other tensor in PyTorch's shape."""

from __future__ import annotations

import numpy as np

from harness.compare import compare, compare_names, compare_value
from harness.diagnosis import structure
from harness.diagnosis.weights import diagnose
from harness.errors import PortStructureError
from harness.results import StageResult, result
from harness.stages.base import Context, Stage

# Module kinds whose `weight` Burn stores transposed (burn::nn::Linear is [d_input, d_output]).
TRANSPOSED = {"Linear"}


def burn_shape(kind: str, name: str, shape: list[int]) -> list[int]:
    """The shape Burn's module holds for a PyTorch parameter of this module kind."""
    if kind in TRANSPOSED and name.endswith(".weight") and len(shape) == 2:
        return [shape[1], shape[0]]
    return list(shape)


def _structure(params: dict[str, np.ndarray], e: PortStructureError) -> StageResult:
    """The port's model does not take the reference's parameters: a divergence of the port, with the two
    parameter lists as evidence (and the causes they show: a bias too few or too many, other names)."""
    ref = {k: tuple(v.shape) for k, v in params.items()}
    names = compare_names("parameter names", "parameter", list(ref), list(e.parameters))
    if not e.parameters:  # the port said so without its list: its message is the evidence
        names.passed, names.reason, names.ratio = False, str(e), float("inf")
    checks = [names]
    checks += [
        compare_value(f"{name} shape", list(shape), list(e.parameters[name]))
        for name, shape in ref.items()
        if name in e.parameters and tuple(e.parameters[name]) != shape
    ]
    causes = structure.diagnose(ref, e.parameters) if e.parameters else []
    hint = (
        f"{causes[0].description}; {e}" if causes else f"the port's model does not take the reference's parameters: {e}"
    )
    return result(
        "weights",
        checks,
        hint,
        diagnosis=[c.to_dict() for c in causes],
        tried=bool(e.parameters),
        parameters=len(params),
        structure=str(e),
    )


def run(ctx: Context) -> StageResult:
    params = ctx.init
    try:
        back, layouts = ctx.port.roundtrip(params)
    except PortStructureError as e:
        return _structure(params, e)
    tol = ctx.tol("weights")
    kinds = ctx.reference.param_kinds
    checks = [compare_names("parameter names", "parameter", list(params), list(back))]
    checks += [compare(name, v, back[name], tol) for name, v in params.items() if name in back]
    for name, v in params.items():
        if name in layouts:
            expected = burn_shape(kinds.get(name, ""), name, list(v.shape))
            checks.append(compare_value(f"{name} Burn layout", expected, list(layouts[name])))
    if all(c.passed for c in checks):
        return result("weights", checks, parameters=len(params))
    if not checks[0].passed:
        return result("weights", checks, checks[0].reason, parameters=len(params))
    causes = diagnose(params, back, tol)
    if causes:
        hint = causes[0].sentence()
        if causes[0].cause == "weights.reshaped":
            hint += "; transpose PyTorch weights into Burn's Linear (or load via burn-store's PyTorchToBurnAdapter)"
    else:
        changed = [name for name, v in params.items() if not np.array_equal(back.get(name), v)]
        hint = f"no candidate cause reproduces the round trip; changed: {', '.join(changed)}"
    return result("weights", checks, hint, diagnosis=[c.to_dict() for c in causes], parameters=len(params))


STAGE = Stage("weights", "parameter round trip and layouts", run)

"""backward: per-parameter gradients on the same batch and weights (training mode, dropout off), and the
buffers that training-mode forward updates (BatchNorm's running statistics).

Three cases: the first training batch at the initial weights, and the same batch with the output layer
(the last layer with a weight) scaled, once as is, once with its sign flipped, so that the outputs
saturate (a float32 sigmoid reaches exactly 0 or 1; a softmax puts all its mass on one class), as they do
late in training. Saturation is where loss implementations differ.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from harness.compare import Tolerance, compare, compare_names
from harness.diagnosis import Cause, ratio
from harness.diagnosis import buffers as buffers_dx
from harness.diagnosis.backward import Case, diagnose, output_sigmoid
from harness.errors import PortFailure
from harness.reference.kinks import slack
from harness.results import StageResult, result
from harness.specs import PROBABILITY
from harness.stages.base import Context, Stage
from harness.tolerances import GRADIENT_ROUNDING_FACTOR, per_tensor

# The output layer is scaled so that the largest |logit| on the batch is this large: well past the
# 16.6 where float32's sigmoid returns exactly 1.0 and the -27.6 below which p(1-p) < 1e-12 (where
# torch's gradient clamp engages), so many outputs are saturated and, at initial weights, about half
# of those confidently wrong. It stays above -87, where float32 sigmoid outputs turn subnormal: there
# torch keeps the subnormal while Burn's sigmoid flushes to 0, which moves log(p) from ~-88 to the
# -100 clamp (a 12-unit loss change per row, measured) without changing any gradient.
MAX_LOGIT = 60.0


def output_layer(ctx: Context, params: dict[str, np.ndarray]) -> str:
    """The last layer, in call order, that has a weight: the one whose scale sets the logits'."""
    return next(n for n in reversed(ctx.reference.layer_names) if f"{n}.weight" in params)


def saturated_params(
    ctx: Context, params: dict[str, np.ndarray], x: np.ndarray, sign: float = 1.0
) -> dict[str, np.ndarray]:
    """`sign=-1` flips every logit, so each saturated row is confidently wrong in one of the two cases."""
    layer = output_layer(ctx, params)
    z = np.abs(ctx.reference.forward(params, x)[layer])
    scale = np.float32(sign * MAX_LOGIT / max(float(np.max(z)), 1e-6))
    out = dict(params)
    for k in (f"{layer}.weight", f"{layer}.bias"):
        if k in params:
            out[k] = (params[k] * scale).astype(np.float32)
    return out


def _allowance(ref: np.ndarray, kinks: np.ndarray | None, rounding: float | None) -> np.ndarray | None:
    """Each element's allowance beyond the tolerance: its ReLU-kink slack plus the tensor's rounding one."""
    if not rounding:
        return kinks
    base = np.zeros(np.shape(ref), dtype=np.float64) if kinks is None else np.asarray(kinks, dtype=np.float64)
    return base + rounding


def run(ctx: Context) -> StageResult:
    p = ctx.prepared
    rows = ctx.orders[0][: ctx.cfg.batch_size]
    x, y = p.x_train[rows], p.y_train[rows]
    tol = ctx.tol("backward")
    checks = []
    evidence: list[str] = []
    evidence_cases: list[Case] = []
    ref_losses: list[float] = []
    cases = (
        ("initial", ctx.init),
        ("saturated", saturated_params(ctx, ctx.init, x)),
        ("saturated_flipped", saturated_params(ctx, ctx.init, x, -1.0)),
    )
    bce = ctx.reference.loss_spec.output == PROBABILITY
    for case, params in cases:
        rl, rg = ctx.reference.backward(params, x, y)
        gl, gg = ctx.port.backward(params, x, y)
        ref_losses.append(float(rl))
        # What ReLU inputs within rounding of zero may change in each gradient (harness/reference/kinks.py).
        kinks = slack(lambda p=params: ctx.reference.backward(p, x, y)[1], ctx.reference.param_names)
        # A tensor whose gradient is zero in exact arithmetic (the same backward in float64 is below the float32
        # one's rounding error there) is all rounding noise: it is allowed GRADIENT_ROUNDING_FACTOR x that
        # error (harness/tolerances.py). Tensors with a real gradient keep the tolerance alone.
        _, r64 = ctx.reference.backward(params, x, y, float64=True)
        rounding = {}
        for k, v in rg.items():
            if k not in r64 or k not in ctx.reference.param_names:
                continue
            exact = np.asarray(r64[k], dtype=np.float64)
            noise = np.abs(v.astype(np.float64) - exact)
            if np.isfinite(noise).all() and np.isfinite(exact).all() and np.max(np.abs(exact)) < np.max(noise):
                rounding[k] = GRADIENT_ROUNDING_FACTOR * float(np.max(noise))
        case_checks = [
            compare(f"{case}.loss", np.float32(rl), np.float32(gl), tol),
            compare_names(f"{case}.names", "gradient or buffer", list(rg), list(gg)),
        ]
        case_checks += [
            compare(f"{case}.{k}", v, gg[k], per_tensor(tol, v), slack=_allowance(v, kinks.get(k), rounding.get(k)))
            for k, v in rg.items()
            if k in gg
        ]
        checks += case_checks
        evidence_cases.append(Case(case, params, x, y, float(gl), gg))
        if all(c.passed for c in case_checks) or not bce:
            continue
        probs = ctx.reference.outputs(params, x)[:, 0]
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
    worst = next(c for c in checks if not c.passed)
    causes: list[Cause] = []
    if output_sigmoid(ctx.reference) is not None:
        # The port's own outputs, asked once: the hand-written sigmoid's replay and the training path read them.
        evidence_cases = [replace(c, port_p=_port_output(ctx, c)) for c in evidence_cases]
        causes = diagnose(ctx.reference, evidence_cases, tol)
    if not causes:
        causes = _buffer_causes(ctx, evidence_cases, checks, tol)
    if not causes and not checks[0].passed:
        causes = _training_path(ctx, evidence_cases[0], ref_losses[0], tol)
    if not causes:
        causes = _swapped(ctx, evidence_cases, checks, tol)
    if causes:
        hint = "; ".join([causes[0].sentence(), *evidence])
    else:
        what = "running statistics" if worst.name.endswith(("running_mean", "running_var")) else "gradients"
        hint = "; ".join([f"no candidate cause reproduces the {what}", *evidence, f"worst: {worst.summary()}"])
    return result("backward", checks, hint, diagnosis=[c.to_dict() for c in causes], batch_rows=len(rows))


def _port_output(ctx: Context, case: Case) -> np.ndarray | None:
    """The port's own output on a case (its forward's last layer), or None where it gives none, or where it
    is no probability (a port whose model returns logits: its sigmoid is inside its loss)."""
    if ctx.reference.takes_logits():
        return None
    try:
        out = ctx.port.forward(case.params, case.x)
    except (PortFailure, AttributeError):  # evidence for a cause only
        return None
    return np.asarray(list(out.values())[-1], np.float32).ravel() if out else None


def _training_path(ctx: Context, case: Case, ref_loss: float, tol) -> list[Cause]:
    """The port's backward does not compute the loss of its own forward: its forward (evaluation mode) and
    its loss method, applied to the same batch and weights, give the reference's loss, and its backward's
    loss differs. Its training path (a forward written twice, a `train` flag that changes a layer, a loss
    in the training step other than its loss method) is then where it diverges; the evidence cannot tell
    which of those, so the cause names the path, not the change. Only for a model whose training and
    evaluation forwards agree in the reference (no BatchNorm; dropout is off in backward), and a loss fed
    the model's last output."""
    if ctx.reference.buffer_names or ctx.reference.takes_logits():
        return []
    out = case.port_p if case.port_p is not None else _port_output(ctx, case)
    if out is None:
        return []
    try:
        own, _ = ctx.port.loss(out, case.y)
    except (PortFailure, AttributeError):  # evidence for a cause only: a port without it has none
        return []
    reproduces = ratio(np.float32(ref_loss), np.float32(own), tol)
    if reproduces > 1 or ratio(np.float32(own), np.float32(case.loss), tol) <= 1:
        return []
    return [
        Cause(
            "backward.training_path",
            f"a training path that computes another loss than the port's own forward and loss (a training-mode "
            f"forward unlike the evaluation-mode one, or another loss in its backward): its forward and loss give "
            f"{own:.8g} on the first batch, the reference {ref_loss:.8g}; its backward {case.loss:.8g}",
            {},
            reproduces,
            "the first batch's loss by the port's backward, and by its own forward and loss",
        )
    ]


def _buffer_causes(ctx: Context, cases: list[Case], checks: list, tol) -> list[Cause]:
    """When only buffers differ (BatchNorm's running statistics), the update replayed per layer."""
    failing = [c.name.split(".", 1)[1] for c in checks if not c.passed]
    buffers = set(ctx.reference.buffer_names)
    if not failing or not all(name in buffers for name in failing):
        return []
    layers = sorted({name.rpartition(".")[0] for name in failing})
    evidence = [buffers_dx.Case(c.params, c.x, c.grads) for c in cases]
    return [cause for layer in layers for cause in buffers_dx.diagnose(ctx.reference, evidence, layer, tol)][:3]


# At most this many same-shaped pairs of modules with differing gradients are replayed as swapped.
MAX_SWAPS = 24


def _swapped(ctx: Context, cases: list[Case], checks: list, tol: Tolerance) -> list[Cause]:
    """Two modules of one shape in each other's place (every parameter of one exchanged with the other's):
    the port loads each into the other's module. Replayed on every case: the reference with the two
    modules' values exchanged, its gradients reported under each other's names, must give the port's loss
    and every gradient. At initialization two LayerNorms are both (1, 0), so the forward cannot see it; the
    gradients can (Burn's pre-norm encoder layer applies norm_2 first where torch applies norm1, so a load
    by name swaps them)."""
    ref = ctx.reference
    params = set(ref.param_names)
    failing = list(dict.fromkeys(c.name.split(".", 1)[1] for c in checks if not c.passed))
    if any(n not in params and n != "loss" for n in failing):
        return []  # a buffer or a name differs: no exchange of parameters makes that
    modules = list(dict.fromkeys(n.rpartition(".")[0] for n in failing if n in params))

    def leaves(m: str) -> dict[str, tuple[int, ...]]:
        return {n.rpartition(".")[2]: tuple(ref.shapes[n]) for n in ref.param_names if n.rpartition(".")[0] == m}

    pairs = [(a, b) for i, a in enumerate(modules) for b in modules[i + 1 :] if leaves(a) == leaves(b)][:MAX_SWAPS]
    for a, b in pairs:
        names = {f"{a}.{leaf}": f"{b}.{leaf}" for leaf in leaves(a)}
        names.update({v: k for k, v in names.items()})
        worst = 0.0
        for case in cases:
            loss, g = ref.backward({**case.params, **{k: case.params[v] for k, v in names.items()}}, case.x, case.y)
            g = {**g, **{k: g[v] for k, v in names.items()}}
            worst = max(worst, ratio(np.float32(loss), np.float32(case.loss), tol))
            for n in ref.param_names:
                got = case.grads.get(n)
                worst = max(worst, ratio(g[n], got, per_tensor(tol, g[n])) if got is not None else np.inf)
            if worst > 1:
                break
        if worst <= 1:
            pre_norm = a.replace("norm1", "norm2") == b
            norms = " (Burn's pre-norm TransformerEncoderLayer applies norm_2 first where torch applies norm1)"
            return [
                Cause(
                    "backward.modules_swapped",
                    f"{a} and {b} in each other's place: the port loads each one's parameters into the other"
                    + (norms if pre_norm else ""),
                    {},
                    worst,
                    f"the loss and every gradient of {len(cases)} cases",
                )
            ]
    return []


STAGE = Stage("backward", "per-parameter gradients, normal and saturated outputs", run)

"""Candidate causes for an Adam or AdamW step that differs, for any model: the configured optimizer
replayed with one change.

The replay is torch's single-tensor Adam written out in float32 (exp_avg.lerp_, exp_avg_sq.mul_.addcmul_,
bias corrections in float64 Python scalars, denom = sqrt(v) / sqrt(bc2) + eps, p.addcdiv_(m, denom,
-lr / bc1)), with the configured weight decay (AdamW's decoupled, Adam's L2), so the unchanged candidate
is the reference itself. A candidate is also replayed in Burn's float32 arithmetic
(harness/reference/adam_f32.py) and judged by the closer of the two: a port's legitimate arithmetic must
not hide the change it made. Evidence: every case the stage ran (the first step from an empty state and
later steps from the reference's state), each with the new parameters, the update and both moments, and
the step count. SGD's candidates, and the weight-decay ones of a reference that has weight decay, are in
harness/diagnosis/steps.py.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from harness.compare import Tolerance
from harness.config import RunConfig
from harness.diagnosis import Candidate, Cause, Param, explain, ratios
from harness.reference.structure import powi
from harness.specs import OPTIMIZERS

Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class Case:
    """One optimizer step both sides took from the same parameters, gradients and state."""

    params: Params
    grads: Params
    state: dict | None
    got: Params
    got_state: dict


@dataclass(frozen=True)
class Variant:
    lr: float
    beta1: float
    beta2: float
    eps: float
    eps_inside_sqrt: bool = False
    bias_correction1: bool = True
    bias_correction2: bool = True
    float32_bias_correction: bool = False
    l2: float = 0.0
    decoupled: float = 0.0
    reset_state: bool = False
    clip: str = ""  # "tensor", "global" (by norm) or "value"
    clip_at: float = 0.0
    # Moments started from the first gradient (m = g, v = g^2) instead of zeros.
    moments_from_gradient: bool = False
    # AMSGrad: the denominator from the larger of the carried and the new second moment. The state the
    # harness carries has no running maximum, so the port's starts from the carried second moment (a
    # maximum started from the new one, as Burn's is, gives Adam's step: the train stage names that).
    amsgrad: bool = False
    # Burn's float32 arithmetic (adam_f32.py): float32 betas and bias corrections, Adam's bias corrections
    # folded into one factor and its epsilon scaled by sqrt(1 - beta2^t).
    burn: bool = False

    @staticmethod
    def of(cfg: RunConfig) -> Variant:
        """The configured optimizer: Adam (weight decay as L2 on the gradient) or AdamW (decoupled)."""
        wd = cfg.weight_decay
        decoupled = OPTIMIZERS[cfg.optimizer].decoupled
        return Variant(
            cfg.lr, cfg.beta1, cfg.beta2, cfg.eps, l2=0.0 if decoupled else wd, decoupled=wd if decoupled else 0.0
        )


def _clip(grads: Params, how: str, at: float) -> Params:
    f32 = np.float32
    if how == "value":
        return {k: np.clip(g, -at, at).astype(f32) for k, g in grads.items()}
    if how == "tensor":
        out = {}
        for k, g in grads.items():
            norm = float(np.linalg.norm(g.astype(np.float64)))
            out[k] = (g * f32(min(1.0, at / (norm + 1e-6)))).astype(f32)
        return out
    if how == "global":
        norm = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values()))
        return {k: (g * f32(min(1.0, at / (norm + 1e-6)))).astype(f32) for k, g in grads.items()}
    return grads


def replay(case: Case, v: Variant) -> tuple[Params, dict]:
    """One Adam step with the variant's changes, in torch's float32 arithmetic (or Burn's, `v.burn`), on
    every parameter that has a gradient."""
    f32 = np.float32
    fresh = v.reset_state or not case.state or case.state.get("step", 0) == 0
    t = 1 if fresh else int(case.state["step"]) + 1
    grads = _clip(case.grads, v.clip, v.clip_at)
    b1, b2 = f32(v.beta1), f32(v.beta2)
    if v.float32_bias_correction or v.burn:
        bc1 = float(f32(1) - powi(b1, t))
        bc2 = float(f32(1) - powi(b2, t))
    else:
        bc1, bc2 = 1 - v.beta1**t, 1 - v.beta2**t
    bc1 = bc1 if v.bias_correction1 else 1.0
    bc2 = bc2 if v.bias_correction2 else 1.0
    new, state = {}, {"step": t, "exp_avg": {}, "exp_avg_sq": {}}
    for k in grads:
        p = case.params[k]
        g = grads[k].astype(f32)
        if v.l2:
            g = (g + p * f32(v.l2)).astype(f32)
        if fresh and v.moments_from_gradient:
            m0, v0 = g, (g * g).astype(f32)
        elif fresh:
            m0, v0 = np.zeros_like(p), np.zeros_like(p)
        else:
            m0, v0 = case.state["exp_avg"][k], case.state["exp_avg_sq"][k]
        if v.burn:  # Burn holds the betas in float32: 1 - 0.999f32 = 0.00099998713
            m = (m0 * b1 + g * (f32(1) - b1)).astype(f32)
            s = (v0 * b2 + g * g * (f32(1) - b2)).astype(f32)
        else:
            m = (m0 + (g - m0) * f32(1 - v.beta1)).astype(f32)
            s = (v0 * f32(v.beta2) + g * g * f32(1 - v.beta2)).astype(f32)
        vd = np.maximum(v0, s) if v.amsgrad else s
        if v.burn and v.decoupled:  # Burn's AdamW: each moment bias-corrected, then p (1 - lr wd) - lr delta
            keep = f32(1.0 - v.lr * float(f32(v.decoupled)))
            v_hat = vd / f32(bc2)
            denom = np.sqrt(v_hat + f32(v.eps)) if v.eps_inside_sqrt else np.sqrt(v_hat) + f32(v.eps)
            new[k] = (p * keep - f32(v.lr) * ((m / f32(bc1)) / denom)).astype(f32)
        elif v.burn and not v.eps_inside_sqrt:  # Burn's Adam: one factor, epsilon scaled by sqrt(bc2)
            root = np.sqrt(f32(bc2), dtype=f32)
            update = m * f32(root / f32(bc1)) / (np.sqrt(vd) + f32(f32(v.eps) * root))
            new[k] = (p - update * f32(v.lr)).astype(f32)
        else:
            q = p * f32(1 - v.lr * v.decoupled) if v.decoupled else p
            if v.eps_inside_sqrt:
                denom = np.sqrt(vd / f32(bc2) + f32(v.eps))
            else:
                denom = np.sqrt(vd) / f32(math.sqrt(bc2)) + f32(v.eps)
            new[k] = (q - f32(v.lr / bc1) * (m / denom)).astype(f32)
        state["exp_avg"][k], state["exp_avg_sq"][k] = m, s
    return new, state


def _residuals(cases: Sequence[Case], v: Variant, tol: Tolerance, tol_update: Tolerance) -> np.ndarray:
    out = []
    for c in cases:
        new, state = replay(c, v)
        if int(c.got_state.get("step", -1)) != state["step"]:
            return np.array([math.inf])
        for k, p in new.items():
            old = c.params[k]
            got = c.got.get(k)
            if got is None:
                return np.array([math.inf])
            out += [
                ratios(got, p, tol),
                ratios(got.astype(np.float64) - old, p.astype(np.float64) - old, tol_update),
                *(
                    ratios((c.got_state.get(slot) or {}).get(k, np.full_like(p, np.nan)), state[slot][k], tol)
                    for slot in ("exp_avg", "exp_avg_sq")
                ),
            ]
    return np.concatenate(out) if out else np.zeros(0)


def residuals(cases: Sequence[Case], v: Variant, tol: Tolerance, tol_update: Tolerance) -> np.ndarray:
    """Every number's tolerance ratio, replay against port, over every case (inf on a step count that
    differs), in torch's arithmetic or Burn's, whichever is closer."""
    torch_form = _residuals(cases, v, tol, tol_update)
    if v.burn or not torch_form.size or torch_form.max() <= 1:
        return torch_form
    burn_form = _residuals(cases, replace(v, burn=True), tol, tol_update)
    return burn_form if burn_form.max() < torch_form.max() else torch_form


def error(cases: Sequence[Case], v: Variant, tol: Tolerance, tol_update: Tolerance) -> float:
    """Worst tolerance ratio of the replay against the port over every case and number."""
    q = residuals(cases, v, tol, tol_update)
    return float(q.max()) if q.size else 0.0


def _log(name: str, low: float, high: float, ref: float | None = None) -> Param:
    """Searched as log10(value); `ref` is the reference's own value, where it has one."""
    return Param(name, low, high, reference=math.log10(ref) if ref else None)


def _one_minus(name: str, low: float, high: float, ref: float) -> Param:
    """A beta, searched as log10(1 - beta)."""
    return Param(name, low, high, to_value=lambda s: 1.0 - 10.0**s, reference=math.log10(1 - ref))


def candidates(cases: Sequence[Case], cfg: RunConfig, tol: Tolerance, tol_update: Tolerance) -> list[Candidate]:
    """The catalogue for the configured Adam or AdamW: its structure changed, its hyperparameters fitted
    (one or two at once), gradient clipping, and a weight decay where the reference has none."""
    base = Variant.of(cfg)
    # Adam's continuous hyperparameters: what a port may have set differently, and where to search.
    hyper = {
        "lr": ("learning rate", _log("lr", -7, 0, cfg.lr)),
        "beta1": ("beta1", _one_minus("beta1", -4, -0.05, cfg.beta1)),
        "beta2": ("beta2", _one_minus("beta2", -6, -0.05, cfg.beta2)),
        "eps": ("epsilon", _log("eps", -14, -1, cfg.eps)),
    }

    def cand(cause: str, description: str, make, params: tuple[Param, ...] = (), size: int = 1) -> Candidate:
        return Candidate(
            cause,
            description,
            lambda th: error(cases, make(*th), tol, tol_update),
            params,
            lambda th: residuals(cases, make(*th), tol, tol_update),
            size,
        )

    def with_(**kw: float | bool | str) -> Variant:
        return replace(base, **kw)

    return [
        cand(
            "adam.state_reset",
            "Adam state reset every step (moments and step count start over)",
            lambda: with_(reset_state=True),
        ),
        cand(
            "adam.no_bias_correction",
            "Adam without bias correction",
            lambda: with_(bias_correction1=False, bias_correction2=False),
        ),
        cand(
            "adam.no_bias_correction1",
            "Adam without the first moment's bias correction 1 - beta1^t",
            lambda: with_(bias_correction1=False),
        ),
        cand(
            "adam.no_bias_correction2",
            "Adam without the second moment's bias correction 1 - beta2^t",
            lambda: with_(bias_correction2=False),
        ),
        cand(
            "adam.moments_from_gradient",
            "Adam's moments started from the first gradient (m = g, v = g^2) instead of zeros",
            lambda: with_(moments_from_gradient=True),
        ),
        cand(
            "adam.amsgrad",
            "AMSGrad: the larger of the carried and the new second moment in the denominator",
            lambda: with_(amsgrad=True),
        ),
        cand(
            "adam.float32_bias_correction",
            "Adam with bias corrections computed in float32 (powi)",
            lambda: with_(float32_bias_correction=True),
        ),
        *(
            cand(f"adam.{name}", f"Adam {hyper[name][0]}", lambda v, name=name: with_(**{name: v}), (hyper[name][1],))
            for name in hyper
        ),
        cand(
            "adam.eps_inside_sqrt",
            "Adam epsilon inside the square root, sqrt(v_hat + eps)",
            lambda e: with_(eps=e, eps_inside_sqrt=True),
            (_log("eps", -20, -2),),
        ),
        *(
            ()
            if cfg.weight_decay > 0  # a reference with weight decay: harness/diagnosis/steps.py has its changes
            else (
                cand(
                    "adam.l2_weight_decay",
                    "L2 weight decay added to the gradient (torch Adam's weight_decay)",
                    lambda wd: with_(l2=wd),
                    (_log("weight_decay", -6, 0),),
                ),
                cand(
                    "adam.decoupled_weight_decay",
                    "decoupled weight decay p *= 1 - lr wd (AdamW)",
                    lambda wd: with_(decoupled=wd),
                    (_log("weight_decay", -6, 1),),
                ),
            )
        ),
        cand(
            "clip.norm_per_tensor",
            "gradients clipped by norm per parameter tensor",
            lambda c: with_(clip="tensor", clip_at=c),
            (_log("max_norm", -5, 2),),
        ),
        cand(
            "clip.norm_global",
            "gradients clipped by their global norm",
            lambda c: with_(clip="global", clip_at=c),
            (_log("max_norm", -5, 2),),
        ),
        cand(
            "clip.value",
            "gradients clipped by value",
            lambda c: with_(clip="value", clip_at=c),
            (_log("clip_value", -7, 0),),
        ),
        # Two hyperparameters off at once (the user's report had both the learning rate and epsilon).
        *(
            cand(
                f"adam.{a}+{b}",
                f"Adam {hyper[a][0]} and {hyper[b][0]}",
                lambda u, v, a=a, b=b: with_(**{a: u, b: v}),
                (hyper[a][1], hyper[b][1]),
                size=2,
            )
            for a, b in itertools.combinations(hyper, 2)
        ),
    ]


ADVICE = {
    "adam.state_reset": "the optimizer is created (or its record reset) inside the training loop; create it once",
    "adam.decoupled_weight_decay": (
        "use AdamConfig where the reference uses Adam, or AdamWConfig::with_weight_decay set to the reference's"
    ),
    "adam.lr": "pass the reference's learning rate to optimizer.step",
    "clip.norm_per_tensor": "remove with_grad_clipping(...): the reference does not clip",
    "clip.norm_global": "remove the gradient clipping: the reference does not clip",
    "clip.value": "remove the gradient clipping: the reference does not clip",
}


HYPER = ("lr", "beta1", "beta2", "eps")
CLIPS = {
    "tensor": ("clip.norm_per_tensor", "gradients clipped by norm per parameter tensor", _log("max_norm", -5, 2)),
    "global": ("clip.norm_global", "gradients clipped by their global norm", _log("max_norm", -5, 2)),
    "value": ("clip.value", "gradients clipped by value", _log("clip_value", -7, 0)),
}


def _largest_gradient(case: Case) -> float:
    return max(float(np.linalg.norm(g.astype(np.float64))) for g in case.grads.values())


def _with_clipping(
    cases: Sequence[Case], cfg: RunConfig, tol: Tolerance, tol_update: Tolerance, evidence: str
) -> list[Cause]:
    """A hyperparameter change together with clipping (the user's port had epsilon, the learning rate and
    clipping at once). Clipping acts only on large gradients, so the hyperparameters are fitted on the
    other steps and the clipping threshold then on every step with them fixed; a combination is named only
    when it reproduces every step, the largest-gradient one included."""
    if len(cases) < 2:
        return []
    ordered = sorted(cases, key=_largest_gradient)
    small = ordered[:-1]
    base = Variant.of(cfg)
    found: list[Cause] = []
    for hyper_cause in explain(candidates(small, cfg, tol, tol_update), evidence):
        names = hyper_cause.cause.removeprefix("adam.").split("+")
        if not hyper_cause.cause.startswith("adam.") or not set(names) <= set(HYPER):
            continue
        fixed = replace(base, **hyper_cause.parameters)
        combos = [
            Candidate(
                f"{hyper_cause.cause}+{cause}",
                f"{hyper_cause.description}, and {what}",
                lambda th, how=how, v=fixed: error(cases, replace(v, clip=how, clip_at=th[0]), tol, tol_update),
                (param,),
                size=hyper_cause.size + 1,
            )
            for how, (cause, what, param) in CLIPS.items()
        ]
        for c in explain(combos, evidence):
            found.append(replace(c, parameters={**hyper_cause.parameters, **c.parameters}))
    return sorted(found, key=lambda c: (c.size, c.max_error))


def evidence(cases: Sequence[Case], cfg: RunConfig) -> str:
    return f"{len(cases)} {cfg.optimizer} steps (parameters, updates, both moments, step count)"


def with_clipping(cases: Sequence[Case], cfg: RunConfig, tol: Tolerance, tol_update: Tolerance) -> list[Cause]:
    """The hyperparameter changes together with gradient clipping (below), for when no one change alone
    reproduces the steps."""
    return _with_clipping(cases, cfg, tol, tol_update, evidence(cases, cfg))


def advice(cause: Cause, cfg: RunConfig) -> str:
    """What to change in the Burn port, for the causes that have one fix."""
    tips = []
    eps = cause.parameters.get("eps")
    if cause.cause.startswith("adam.") and eps is not None and abs(eps - 1e-5) < 1e-7:
        tips.append(f"Burn's AdamConfig defaults to epsilon 1e-5: set with_epsilon({cfg.eps:g})")
    if "lr" in cause.parameters or cause.cause in ADVICE:
        tips.append(ADVICE.get(cause.cause, ADVICE["adam.lr"]))
    clip = next((c for c in cause.cause.split("+") if c.startswith("clip.")), None)
    if clip and "+" in cause.cause:
        tips.append(ADVICE[clip])
    return "; ".join(tips)

"""optimizer: one optimizer step from the same parameters, gradients and state: new parameters, the
update itself, and every state slot (Adam's and AdamW's moments, SGD's momentum buffer).

Three cases: the first step (empty state), step 6 from the reference's state after five real steps, and
the step of the reference's whole run whose gradients have the largest per-tensor norm, from its
parameters and state there: gradient clipping (by norm or by value) acts only on large gradients, which
the first steps rarely have (measured: on the report's real file a per-tensor norm first exceeds 1.0 in
epoch 6's first step; on the bundled data epoch 1's largest is 0.57).

A fourth run isolates what a step does besides following the gradient: ZERO_GRAD_STEPS steps with zero
gradients, each from the port's own parameters and state. Adam, SGD and their moments leave the
parameters where they are; a decoupled weight decay (AdamW, whose Burn default is 1e-4) shrinks them by
lr x wd per step, about 1e-7 relative: invisible in one step at float32's tolerance, 1e-5 after 100
(from parameters scaled up, so that it is well past the absolute tolerance too).

An Adam or AdamW case that differs from torch's step is compared again with Burn's float32 arithmetic of
the same algorithm (harness/reference/adam_f32.py, as the train stage's envelope counts it); a case that
matches that whole passes, and the stage's `arithmetic` metric says which one each case matched.
"""

from __future__ import annotations

import numpy as np

from harness.compare import ArrayDiff, Tolerance, compare, compare_names, compare_value
from harness.diagnosis import Cause, ratio, steps
from harness.diagnosis.optimizer import Case, advice
from harness.results import StageResult, result
from harness.specs import OPTIMIZERS
from harness.stages.base import Context, Stage
from harness.tolerances import for_update

WARM_STEPS = 5
# Enough to move a decayed parameter well past the tolerance: 100 steps of 1e-7 each shrink the initial
# weights, scaled to |p| up to ~22, by up to 2e-4, against the 3e-5 float32 allows there.
ZERO_GRAD_STEPS = 100
ZERO_GRAD_SCALE = 100.0


def _evidence(ctx: Context, cases: list[Case]) -> str:
    """What the numbers show when no candidate reproduces them."""
    parts = []
    for c in cases:
        t = (c.state or {}).get("step", 0) + 1
        if c.got_state.get("step") != t:
            parts.append(f"step {t}: the port's step count is {c.got_state.get('step')}")
        ref_new, _ = ctx.reference.optimizer_step(c.params, c.grads, c.state)
        names = ctx.reference.param_names
        ur = np.concatenate([(ref_new[k] - c.params[k]).ravel() for k in names]).astype(np.float64)
        ug = np.concatenate([(c.got[k] - c.params[k]).ravel() for k in names]).astype(np.float64)
        mask = np.abs(ur) > 1e-12
        if mask.any():
            q = ug[mask] / ur[mask]
            parts.append(f"step {t}: port update / reference update from {q.min():.4g} to {q.max():.4g}")
    return "; ".join(parts)


def _largest_gradient_step(ctx: Context) -> int | None:
    """The step (from 0, over the whole run) whose gradients have the largest per-tensor norm in the
    reference's own training: where clipping by norm or by value acts, if anywhere."""
    norms = ctx.ref_trace.step_grad_norm
    return int(np.argmax(norms)) if len(norms) else None


def _state_at(ctx: Context, k: int) -> tuple[dict, dict, dict | None]:
    """Parameters, trainable gradients and optimizer state of the reference before step k: recorded for
    epoch 1, else replayed from the start of k's epoch (the reference's parameters and state there)."""
    ref, trace, p = ctx.reference, ctx.ref_trace, ctx.prepared
    s = ctx.steps_per_epoch
    epoch, j = divmod(k, s)
    if epoch > 0:
        trace = ref.train(
            p.x_train,
            p.y_train,
            trace.epoch_params[epoch - 1],
            ctx.orders[epoch : epoch + 1],
            j + 1,
            init_state=trace.epoch_states[epoch - 1],
        )
        start = ctx.ref_trace.epoch_params[epoch - 1]
    else:
        start = ctx.init
    params = start if j == 0 else trace.step_params[j - 1]
    grads = {n: trace.step_grads[j][n] for n in ref.param_names}
    return params, grads, trace.step_states[j]


def _zero_gradients(ctx: Context, tol: Tolerance) -> tuple[list[ArrayDiff], Cause | None]:
    """ZERO_GRAD_STEPS steps with zero gradients from the initial parameters scaled by ZERO_GRAD_SCALE, on
    both sides, each side from its own last parameters and state; the checks on the final parameters,
    and, where the reference leaves them unchanged and the port shrinks them, the decoupled weight decay
    that reproduces the shrinking. Its rate is fitted from the ratio and written with the fewest
    significant digits whose float32 factor f32(1 - lr wd) (what Burn multiplies by) replays every
    parameter within the stage's tolerance; named only then."""
    ref, names, lr = ctx.reference, ctx.reference.param_names, ctx.cfg.lr
    start = {k: (v * ZERO_GRAD_SCALE).astype(np.float32) for k, v in ctx.init.items()}
    zeros = {k: np.zeros_like(start[k]) for k in names}

    def reference_run() -> dict:
        ref_p, ref_s = dict(start), None
        for _ in range(ZERO_GRAD_STEPS):
            ref_p, ref_s = ref.optimizer_step(ref_p, zeros, ref_s)
        return ref_p

    ref_p = ctx.reference_side("optimizer_zero_grad", reference_run)
    got_p, got_s = dict(start), None
    for _ in range(ZERO_GRAD_STEPS):
        got_p, got_s = ctx.port.optimizer_step(got_p, zeros, got_s)
    case = f"zero_grad{ZERO_GRAD_STEPS}"
    checks: list[ArrayDiff] = [compare(f"{case}.{k}", ref_p[k], got_p[k], tol) for k in names if k in got_p]
    if all(c.passed for c in checks) or any(not np.array_equal(ref_p[k], start[k]) for k in names):
        return checks, None
    if any(k not in got_p for k in names):
        return checks, None
    p = np.concatenate([start[k].ravel() for k in names])
    g = np.concatenate([got_p[k].ravel() for k in names])
    big = np.abs(p) > 1e-3
    shrink = float(np.median(g[big].astype(np.float64) / p[big])) if big.any() else 1.0
    if not 0 < shrink < 1:
        return checks, None
    estimate = (1 - shrink ** (1 / ZERO_GRAD_STEPS)) / lr
    for digits in range(3):
        wd = float(f"{estimate:.{digits}e}")
        factor, replay = np.float32(1.0 - lr * wd), p.copy()
        for _ in range(ZERO_GRAD_STEPS):
            replay = replay * factor
        err = ratio(replay, g, tol)
        if err <= 1:
            cause = Cause(
                "adam.decoupled_weight_decay",
                "decoupled weight decay p *= 1 - lr wd every step (AdamW: Burn's AdamWConfig defaults to 1e-4)",
                {"weight_decay": wd},
                err,
                f"{ZERO_GRAD_STEPS} steps with zero gradients (every parameter)",
            )
            return checks, cause
    return checks, None


def run(ctx: Context) -> StageResult:
    p = ctx.prepared
    cfg = ctx.cfg
    order = ctx.orders[0]
    bs = cfg.batch_size
    tol = ctx.tol("optimizer")
    tol_update = ctx.tol("optimizer.update")
    ref = ctx.reference
    trainable = set(ref.param_names)
    checks = []
    cases: list[Case] = []
    failed = False

    def steps_to_check() -> list[tuple[int, dict, dict, dict | None, dict, dict]]:
        """(step from 0, parameters, gradients, state, the reference's new parameters and state) of each
        case: the reference's alone, so every port run on this reference reads them (and the cache)."""
        out = []
        params, state = ctx.init, None
        for step in range(WARM_STEPS + 1):
            rows = order[step * bs : (step + 1) * bs]
            _, grads = ref.backward(params, p.x_train[rows], p.y_train[rows])
            grads = {k: v for k, v in grads.items() if k in trainable}
            if step in (0, WARM_STEPS):
                out.append((step, params, grads, state))
            params, state = ref.optimizer_step(params, grads, state)
        k = _largest_gradient_step(ctx)
        if k is not None and k > WARM_STEPS:
            out.append((k, *_state_at(ctx, k)))
        return [(*case, *ref.optimizer_step(*case[1:])) for case in out]

    def case_checks(case: str, params: dict, ref_new: dict, ref_state: dict, got: dict, got_state: dict) -> list:
        out = [compare_value(f"{case}.state_step", ref_state["step"], got_state.get("step"))]
        out.append(compare_names(f"{case}.names", "parameter", list(ref_new), list(got)))
        for k in ref_new:
            if k not in got:
                continue
            out.append(compare(f"{case}.{k}", ref_new[k], got[k], tol))
            if k in trainable:
                tu = for_update(tol_update, params[k])
                out.append(compare(f"{case}.{k}.update", ref_new[k] - params[k], got[k] - params[k], tu))
                for slot in ref.slots:
                    theirs = (got_state.get(slot) or {}).get(k)
                    if theirs is None:
                        out.append(compare_names(f"{case}.{k}.{slot}", f"{slot} for", [k], []))
                    else:
                        out.append(compare(f"{case}.{k}.{slot}", ref_state[slot][k], theirs, tol))
        return out

    arithmetic: dict[str, str] = {}
    for step, params, grads, state, ref_new, ref_state in ctx.reference_side("optimizer_cases", steps_to_check):
        got, got_state = ctx.port.optimizer_step(params, grads, state)
        case = f"step{step + 1}"
        these = case_checks(case, params, ref_new, ref_state, got, got_state)
        arithmetic[case] = "torch"
        if not all(c.passed for c in these) and OPTIMIZERS[cfg.optimizer].adaptive:
            # Burn's Adam and AdamW hold their betas in float32 (1 - 0.999f32 = 0.00099998713) and fold the
            # bias corrections in float32 (harness/reference/adam_f32.py): a legitimate arithmetic whose
            # second moment differs from torch's by 1.3e-5 relative, past float32's tolerance wherever
            # the gradients are large enough for the moment to exceed its atol (a regression on a raw
            # target: 6.8e-6 at step 6 of examples/diabetes). A case that matches it whole passes.
            burn = case_checks(case, params, *ref.optimizer_step(params, grads, state, True), got, got_state)
            if all(c.passed for c in burn):
                these, arithmetic[case] = burn, "float32_adam"
        checks += these
        cases.append(Case(params, grads, state, got, got_state))
        failed = failed or not all(c.passed for c in these)
    zero_checks, zero_cause = _zero_gradients(ctx, tol)
    checks += zero_checks
    if not failed and all(c.passed for c in zero_checks):
        return result("optimizer", checks, arithmetic=arithmetic)
    if not failed:  # only the zero-gradient run differs: its own cause, or none
        causes = [zero_cause] if zero_cause else []
    else:
        causes = steps.diagnose(ref, cases, tol, tol_update)
    if causes:
        tip = advice(causes[0], cfg)
        hint = causes[0].sentence() + (f"; {tip}" if tip else "")
    else:
        hint = f"no candidate cause reproduces the port's {cfg.optimizer} steps; {_evidence(ctx, cases)}"
    return result("optimizer", checks, hint, diagnosis=[c.to_dict() for c in causes], arithmetic=arithmetic)


STAGE = Stage("optimizer", "one optimizer step: new parameters, update and state", run)

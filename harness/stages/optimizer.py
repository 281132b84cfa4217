"""optimizer: one optimizer step from the same parameters, gradients and state: new parameters, the
update itself, and every state slot (Adam's and AdamW's moments, SGD's momentum buffer).

Two cases: the first step (empty state) and step 6, from the reference's state after five real steps.
"""

from __future__ import annotations

import numpy as np

from harness.compare import compare, compare_names, compare_value
from harness.diagnosis import steps
from harness.diagnosis.optimizer import Case, advice, diagnose
from harness.stages.base import Context, Stage, StageResult, result
from harness.tolerances import for_update

WARM_STEPS = 5


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


def run(ctx: Context) -> StageResult:
    p = ctx.prepared
    cfg = ctx.cfg
    order = ctx.orders[0]
    bs = cfg.batch_size
    tol = ctx.tol("optimizer")
    tol_update = ctx.tol("optimizer.update")
    ref = ctx.reference
    trainable = set(ref.param_names)
    params, state = ctx.init, None
    checks = []
    cases: list[Case] = []
    failed = False
    for step in range(WARM_STEPS + 1):
        rows = order[step * bs : (step + 1) * bs]
        _, grads = ref.backward(params, p.x_train[rows], p.y_train[rows])
        grads = {k: v for k, v in grads.items() if k in trainable}
        ref_new, ref_state = ref.optimizer_step(params, grads, state)
        if step in (0, WARM_STEPS):
            got, got_state = ctx.port.optimizer_step(params, grads, state)
            case = f"step{step + 1}"
            before = len(checks)
            checks.append(compare_value(f"{case}.state_step", ref_state["step"], got_state.get("step")))
            checks.append(compare_names(f"{case}.names", "parameter", list(ref_new), list(got)))
            for k in ref_new:
                if k not in got:
                    continue
                checks.append(compare(f"{case}.{k}", ref_new[k], got[k], tol))
                if k in trainable:
                    tu = for_update(tol_update, params[k])
                    checks.append(compare(f"{case}.{k}.update", ref_new[k] - params[k], got[k] - params[k], tu))
                    for slot in ref.slots:
                        theirs = (got_state.get(slot) or {}).get(k)
                        if theirs is None:
                            checks.append(compare_names(f"{case}.{k}.{slot}", f"{slot} for", [k], []))
                        else:
                            checks.append(compare(f"{case}.{k}.{slot}", ref_state[slot][k], theirs, tol))
            cases.append(Case(params, grads, state, got, got_state))
            failed = failed or not all(c.passed for c in checks[before:])
        params, state = ref_new, ref_state
    if not failed:
        return result("optimizer", checks)
    if ref.linear_chain:
        causes = diagnose(cases, cfg, tol, tol_update)
    else:
        causes = steps.diagnose(ref, cases, tol, tol_update)
    if causes:
        tip = advice(causes[0], cfg)
        hint = causes[0].sentence() + (f"; {tip}" if tip else "")
    else:
        hint = f"no candidate cause reproduces the port's {cfg.optimizer} steps; {_evidence(ctx, cases)}"
    return result("optimizer", checks, hint, diagnosis=[c.to_dict() for c in causes])


STAGE = Stage("optimizer", "one optimizer step: new parameters, update and state", run)

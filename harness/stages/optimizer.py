"""optimizer: one Adam step from the same parameters, gradients and state: new parameters and moments.

Two cases: the first step (empty state) and step 6, from the reference's state after five real steps.
"""

from __future__ import annotations

import numpy as np

from harness.compare import compare, compare_value
from harness.config import RunConfig
from harness.diagnosis.optimizer import Case, advice, diagnose
from harness.reference import train as ref_train
from harness.stages.base import Context, Stage, StageResult, result

WARM_STEPS = 5


def _evidence(cases: list[Case], cfg: RunConfig) -> str:
    """What the numbers show when no candidate reproduces them."""
    parts = []
    for c in cases:
        t = (c.state or {}).get("step", 0) + 1
        if c.got_state.get("step") != t:
            parts.append(f"step {t}: the port's step count is {c.got_state.get('step')}")
        ref_new, _ = ref_train.optimizer_step(c.params, c.grads, c.state, cfg)
        ur = np.concatenate([(ref_new[k] - c.params[k]).ravel() for k in c.params]).astype(np.float64)
        ug = np.concatenate([(c.got[k] - c.params[k]).ravel() for k in c.params]).astype(np.float64)
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
    params, state = ctx.init, None
    checks = []
    cases: list[Case] = []
    failed = False
    for step in range(WARM_STEPS + 1):
        rows = order[step * bs : (step + 1) * bs]
        _, grads = ref_train.backward(params, p.x_train[rows], p.y_train[rows])
        ref_new, ref_state = ref_train.optimizer_step(params, grads, state, cfg)
        if step in (0, WARM_STEPS):
            got, got_state = ctx.port.optimizer_step(params, grads, state)
            case = f"step{step + 1}"
            before = len(checks)
            checks.append(compare_value(f"{case}.state_step", ref_state["step"], got_state.get("step")))
            for k in params:
                checks.append(compare(f"{case}.{k}", ref_new[k], got[k], tol))
                checks.append(compare(f"{case}.{k}.update", ref_new[k] - params[k], got[k] - params[k], tol_update))
                checks.append(compare(f"{case}.{k}.exp_avg", ref_state["exp_avg"][k], got_state["exp_avg"][k], tol))
                checks.append(
                    compare(f"{case}.{k}.exp_avg_sq", ref_state["exp_avg_sq"][k], got_state["exp_avg_sq"][k], tol)
                )
            cases.append(Case(params, grads, state, got, got_state))
            failed = failed or not all(c.passed for c in checks[before:])
        params, state = ref_new, ref_state
    if not failed:
        return result("optimizer", checks)
    causes = diagnose(cases, cfg, tol, tol_update)
    if causes:
        tip = advice(causes[0], cfg)
        hint = causes[0].sentence() + (f"; {tip}" if tip else "")
    else:
        hint = f"no candidate cause reproduces the port's Adam steps; {_evidence(cases, cfg)}"
    return result("optimizer", checks, hint, diagnosis=[c.to_dict() for c in causes])


STAGE = Stage("optimizer", "one Adam step: new parameters and moments", run)

"""optimizer: one Adam step from the same parameters, gradients and state: new parameters and moments.

Two cases: the first step (empty state) and step 6, from the reference's state after five real steps.
"""

from __future__ import annotations

import numpy as np

from harness.compare import compare, compare_value
from harness.reference import train as ref_train
from harness.stages.base import Context, Stage, StageResult, result

WARM_STEPS = 5


def _diagnose(
    ctx: Context, params: dict, grads: dict, state: dict | None, got: dict, got_state: dict, ref_state: dict
) -> str:
    cfg = ctx.cfg
    if state and got_state.get("step") != ref_state.get("step"):
        return (
            f"after a step from state step={state['step']} the port's Adam is at step {got_state.get('step')} "
            f"(reference {ref_state['step']}): its moments and step count restart, as when the optimizer is "
            "created inside the training loop; create it once before the loop"
        )
    u_ref, u_got = [], []
    ref_new, _ = ref_train.optimizer_step(params, grads, state, cfg)
    for k in params:
        u_ref.append((ref_new[k] - params[k]).ravel())
        u_got.append((got[k] - params[k]).ravel())
    ur, ug = np.concatenate(u_ref).astype(np.float64), np.concatenate(u_got).astype(np.float64)
    mask = np.abs(ur) > 1e-12
    ratio = ug[mask] / ur[mask]
    if ratio.size and np.std(ratio) < 1e-3 * abs(np.mean(ratio)) and abs(np.mean(ratio) - 1) > 1e-3:
        return f"every update is {np.mean(ratio):.4g} x the reference's: the learning rate is {np.mean(ratio) * cfg.lr:.3g}, not {cfg.lr:g}"
    # Implied epsilon: solve u = -(lr/bc1) m / (sqrt(v)/sqrt(bc2) + eps) for eps on the port's update,
    # with the learning rate the port declares (evidence from its config, not from a fault name).
    lr = float(ctx.port.effective_config().get("lr", cfg.lr))
    t = (state or {}).get("step", 0) + 1
    bc1, bc2 = 1 - cfg.beta1**t, 1 - cfg.beta2**t
    m = np.concatenate([got_state["exp_avg"][k].ravel() for k in params]).astype(np.float64)
    v = np.concatenate([got_state["exp_avg_sq"][k].ravel() for k in params]).astype(np.float64)
    ok = np.abs(ug) > 1e-12
    eps = -(lr / bc1) * m[ok] / ug[ok] - np.sqrt(v[ok]) / np.sqrt(bc2)
    implied = float(np.median(eps))
    if implied > 10 * cfg.eps:
        return (
            f"the port's updates imply Adam epsilon ~{implied:.1g} (reference {cfg.eps:g}); the difference is largest "
            "where |gradient| is small; Burn's AdamConfig defaults to 1e-5: set with_epsilon(1e-8)"
        )
    mr = np.concatenate([ref_state["exp_avg"][k].ravel() for k in params]).astype(np.float64)
    if not np.allclose(m, mr, rtol=1e-5, atol=1e-12):
        return "the first moment differs: the gradients the optimizer sees are not the ones it was given (clipping or scaling)"
    return "parameter updates differ from torch.optim.Adam's"


def run(ctx: Context) -> StageResult:
    p = ctx.prepared
    cfg = ctx.cfg
    order = ctx.orders[0]
    bs = cfg.batch_size
    tol = ctx.tol("optimizer")
    tol_update = ctx.tol("optimizer.update")
    params, state = ctx.init, None
    checks = []
    hint = ""
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
            if not hint and not all(c.passed for c in checks[before:]):
                hint = f"{case}: " + _diagnose(ctx, params, grads, state, got, got_state, ref_state)
        params, state = ref_new, ref_state
    return result("optimizer", checks, hint)


STAGE = Stage("optimizer", "one Adam step: new parameters and moments", run)

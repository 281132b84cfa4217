"""train: lockstep training with the same initial weights and batch order.

Three views: (1) the first epoch step by step (per-step loss to 1e-5 relative, parameters);
(2) re-synchronized single steps, where the port restarts each step from the reference's parameters
and optimizer state, so one step's error is measured without compounding; (3) the whole free-running
run judged against the reference's own envelope, epoch by epoch: float32 training is chaotic, so
the port is divergent only when it strays further than ENVELOPE_FACTOR x the distance between two
reference runs whose initial weights differ by one ULP.
"""

from __future__ import annotations

import numpy as np

from harness.compare import ArrayDiff, compare
from harness.stages.base import Context, Stage, StageResult, result
from harness.tolerances import ENVELOPE_FACTOR, ENVELOPE_FLOOR

RESYNC_STEPS = 64


def _max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a)


def envelope_check(name: str, ref: np.ndarray, env: np.ndarray, port: np.ndarray) -> ArrayDiff:
    """Per epoch: |port - ref| <= FACTOR * |envelope - ref| + FLOOR."""
    d_env = np.abs(env - ref)
    allowed = ENVELOPE_FACTOR * d_env + ENVELOPE_FLOOR
    d = compare(name, np.zeros_like(ref), np.where(np.isfinite(port), np.abs(port - ref), np.inf), None)
    bad = ~(np.isfinite(port) & (np.abs(port - ref) <= allowed))
    d.passed = not bad.any()
    d.mismatches = int(bad.sum())
    d.share = d.mismatches / max(len(ref), 1)
    d.tolerance = {
        "rtol": 0.0,
        "atol": None,
        "equal_nan": False,
        "why": f"within {ENVELOPE_FACTOR:g} x the reference's one-ULP envelope + {ENVELOPE_FLOOR:g}",
    }
    if bad.any():
        e = int(np.flatnonzero(bad)[0])
        d.worst_index = [e]
        d.worst_ref, d.worst_got = float(ref[e]), float(port[e])
        d.reason = (
            f"epoch {e + 1}: port is {abs(port[e] - ref[e]):.3g} from the reference, the envelope allows "
            f"{allowed[e]:.3g} ({ENVELOPE_FACTOR:g} x {d_env[e]:.3g} + {ENVELOPE_FLOOR:g})"
        )
    return d


def run(ctx: Context) -> StageResult:
    cfg = ctx.cfg
    p = ctx.prepared
    ref, env, port = ctx.ref_trace, ctx.envelope_trace, ctx.port_trace
    s = ctx.steps_per_epoch
    checks = []
    step_loss = np.asarray(port["step_loss"])
    checks.append(compare("epoch1.step_loss", ref.step_loss[:s], step_loss[:s], ctx.tol("train.step_loss")))
    checks.append(
        compare(
            "epoch1.epoch_loss",
            np.float64(ref.epoch_loss[0]),
            np.float64(port["epoch_loss"][0]),
            ctx.tol("train.step_loss"),
        )
    )
    for k in ref.init:
        checks.append(
            compare(f"epoch1.{k}", ref.epoch_params[0][k], port["epoch_params"][0][k], ctx.tol("train.resync"))
        )
    # Re-synchronized single steps.
    resync = []
    ref_resync = []
    order = ctx.orders[0]
    bs = cfg.batch_size
    for k in range(min(RESYNC_STEPS, s)):
        params = ref.init if k == 0 else ref.step_params[k - 1]
        rows = order[k * bs : (k + 1) * bs]
        _, grads = ctx.port.backward(params, p.x_train[rows], p.y_train[rows])
        new, _ = ctx.port.optimizer_step(params, grads, ref.step_states[k])
        resync.append(np.concatenate([new[n].ravel() for n in ref.init]))
        ref_resync.append(np.concatenate([ref.step_params[k][n].ravel() for n in ref.init]))
    checks.append(compare("resync.params", np.stack(ref_resync), np.stack(resync), ctx.tol("train.resync")))
    # Free-running, against the envelope.
    epochs = len(ref.epoch_params)
    d_ref_env = np.array([_max_diff(ref.epoch_params[e], env.epoch_params[e]) for e in range(epochs)])
    d_ref_port = np.array([_max_diff(ref.epoch_params[e], port["epoch_params"][e]) for e in range(epochs)])
    checks.append(envelope_check("envelope.params", np.zeros(epochs), d_ref_env, d_ref_port))
    checks.append(envelope_check("envelope.epoch_loss", ref.epoch_loss, env.epoch_loss, np.asarray(port["epoch_loss"])))
    hint = _diagnose(ctx, checks, step_loss)
    return result(
        "train",
        checks,
        hint,
        epoch_loss_ref=[float(v) for v in ref.epoch_loss],
        epoch_loss_port=[float(v) for v in port["epoch_loss"]],
        max_param_diff_port=[float(v) for v in d_ref_port],
        max_param_diff_envelope=[float(v) for v in d_ref_env],
    )


def _diagnose(ctx: Context, checks: list[ArrayDiff], step_loss: np.ndarray) -> str:
    if all(c.passed for c in checks):
        return ""
    ref = ctx.ref_trace
    s = ctx.steps_per_epoch
    bad = np.flatnonzero(~np.isfinite(step_loss))
    if bad.size:
        return f"the port's loss is {step_loss[bad[0]]} from step {bad[0]} on (epoch {bad[0] // s + 1})"
    by_name = {c.name: c for c in checks}
    if by_name["epoch1.step_loss"].passed and not by_name["epoch1.epoch_loss"].passed:
        n = len(ctx.prepared.y_train)
        sizes = np.array([min(ctx.cfg.batch_size, n - i) for i in range(0, n, ctx.cfg.batch_size)], dtype=np.float64)
        weighted = float((ref.step_loss[:s].astype(np.float64) * sizes).sum() / n)
        got = float(ctx.port_trace["epoch_loss"][0])
        if abs(got - weighted) <= 1e-6 * abs(weighted):
            return (
                f"every step loss of epoch 1 matches, but the epoch loss is {got:.8g} vs {ref.epoch_loss[0]:.8g}: "
                f"the port weights batch losses by batch size ({weighted:.8g}); the reference averages the "
                f"{len(sizes)} batch losses (its last batch has {int(sizes[-1])} rows)"
            )
        return "every step loss of epoch 1 matches, but the epoch loss is aggregated differently"
    first = next(c for c in checks if not c.passed)
    if first.name == "epoch1.step_loss" and first.first_mismatch:
        k = first.first_mismatch[0]
        return (
            f"per-step losses diverge first at step {k} (reference {ref.step_loss[k]:.8g}, port "
            f"{step_loss[k]:.8g}); worst: {first.summary()}"
        )
    return first.summary()


STAGE = Stage("train", "lockstep training: per-step, re-synchronized and envelope", run)

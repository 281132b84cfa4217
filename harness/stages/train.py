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


def envelope_allowed(d_env: np.ndarray, floor: np.ndarray | float, running: bool = True) -> np.ndarray:
    """How far the port may be from the reference, element by element: the envelope rule's bound."""
    d_env = np.asarray(d_env, dtype=np.float64)
    if running:
        d_env = np.maximum.accumulate(d_env)
    return np.maximum(floor, ENVELOPE_FACTOR * d_env)


def envelope_check(
    name: str,
    ref: np.ndarray,
    d_env: np.ndarray,
    port: np.ndarray,
    floor: np.ndarray | float,
    unit: str = "epoch",
    running: bool = True,
) -> ArrayDiff:
    """Element by element (steps or epochs): |port - ref| <= max(floor, FACTOR * running max of d_env),
    where d_env is the envelope's own distance from the reference.

    The running maximum keeps one lucky stretch of the envelope run (where it happens to stay close to
    the reference) from tightening the bound: chaotic drift does not shrink back in expectation.
    """
    ref, port = np.asarray(ref, dtype=np.float64), np.asarray(port, dtype=np.float64)
    allowed = envelope_allowed(d_env, floor, running)
    d_env = np.asarray(d_env, dtype=np.float64)
    if running:
        d_env = np.maximum.accumulate(d_env)
    d_port = np.where(np.isfinite(port), np.abs(port - ref), np.inf)
    bad = ~(d_port <= allowed)
    d = compare(name, ref, np.where(np.isfinite(port), port, np.inf), None)
    d.passed = not bad.any()
    d.mismatches = int(bad.sum())
    d.share = d.mismatches / max(len(ref), 1)
    d.min_atol = float(np.max(d_port)) if len(ref) else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(allowed > 0, d_port / allowed, np.where(d_port > 0, np.inf, 0.0))
    d.ratio = float(np.max(ratios)) if len(ref) else 0.0
    # The inner compare judged a different rule; keep only what this rule says.
    d.first_mismatch = None
    d.min_rtol = None
    d.tolerance = {
        "rtol": 0.0,
        "atol": None,
        "equal_nan": False,
        "why": f"max(tight tolerance, {ENVELOPE_FACTOR:g} x the reference's own float32 envelope, running max)",
    }
    if bad.any():
        e = int(np.flatnonzero(bad)[0])
        d.first_mismatch = d.worst_index = [e]
        d.worst_ref, d.worst_got = float(ref[e]), float(port[e])
        d.abs_err = float(d_port[e])
        d.rel_err = float(d_port[e] / abs(ref[e])) if ref[e] else float("inf")
        d.reason = (
            f"{unit} {e + (1 if unit == 'epoch' else 0)}: port is {d_port[e]:.3g} from the reference; allowed "
            f"{allowed[e]:.3g} (max of {np.broadcast_to(floor, ref.shape)[e]:.3g} and {ENVELOPE_FACTOR:g} x the "
            f"envelope {d_env[e]:.3g})"
        )
    return d


def run(ctx: Context) -> StageResult:
    cfg = ctx.cfg
    p = ctx.prepared
    ref, envs, port = ctx.ref_trace, ctx.envelope_traces, ctx.port_trace
    s = ctx.steps_per_epoch
    checks = []
    step_loss = np.asarray(port["step_loss"])
    tl = ctx.tol("train.step_loss")
    ref_sl = ref.step_loss[:s].astype(np.float64)
    d_sl = np.max([np.abs(e.step_loss[:s] - ref_sl) for e in envs], axis=0)
    checks.append(
        envelope_check("epoch1.step_loss", ref_sl, d_sl, step_loss[:s], tl.atol + tl.rtol * np.abs(ref_sl), unit="step")
    )
    d_el = np.max([np.abs(e.epoch_loss[:1] - ref.epoch_loss[:1]) for e in envs], axis=0)
    checks.append(
        envelope_check(
            "epoch1.epoch_loss",
            ref.epoch_loss[:1],
            d_el,
            np.asarray(port["epoch_loss"][:1]),
            tl.atol + tl.rtol * abs(ref.epoch_loss[0]),
        )
    )
    tr = ctx.tol("train.resync")
    for k in ref.init:
        a = ref.epoch_params[0][k].ravel()
        # Per element, no running maximum across elements: each element against the ensemble's drift.
        d_p = np.max([np.abs(e.epoch_params[0][k].ravel() - a) for e in envs], axis=0)
        checks.append(
            envelope_check(
                f"epoch1.{k}",
                a,
                d_p,
                port["epoch_params"][0][k].ravel(),
                tr.atol + tr.rtol * np.abs(a),
                unit="element",
                running=False,
            )
        )
    # Re-synchronized single steps: one step's error, no compounding, so the tight tolerance applies.
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
    checks.append(compare("resync.params", np.stack(ref_resync), np.stack(resync), tr))
    # Free-running, against the envelope, epoch by epoch.
    epochs = len(ref.epoch_params)
    d_ref_env = np.array(
        [max(_max_diff(ref.epoch_params[e], env.epoch_params[e]) for env in envs) for e in range(epochs)]
    )
    d_ref_port = np.array([_max_diff(ref.epoch_params[e], port["epoch_params"][e]) for e in range(epochs)])
    checks.append(envelope_check("envelope.params", np.zeros(epochs), d_ref_env, d_ref_port, ENVELOPE_FLOOR))
    d_loss = np.max([np.abs(env.epoch_loss - ref.epoch_loss) for env in envs], axis=0)
    checks.append(
        envelope_check("envelope.epoch_loss", ref.epoch_loss, d_loss, np.asarray(port["epoch_loss"]), ENVELOPE_FLOOR)
    )
    hint = _diagnose(ctx, checks, step_loss)
    return result(
        "train",
        checks,
        hint,
        epoch_loss_ref=[float(v) for v in ref.epoch_loss],
        epoch_loss_port=[float(v) for v in port["epoch_loss"]],
        max_param_diff_port=[float(v) for v in d_ref_port],
        max_param_diff_envelope=[float(v) for v in d_ref_env],
        # The bounds the envelope checks applied and the envelope runs' own losses, for the report's plots.
        max_param_diff_allowed=[float(v) for v in envelope_allowed(d_ref_env, ENVELOPE_FLOOR)],
        epoch_loss_allowed=[float(v) for v in envelope_allowed(d_loss, ENVELOPE_FLOOR)],
        epoch_loss_envelope=[[float(v) for v in env.epoch_loss] for env in envs],
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

"""Training divergences: the loop's candidate causes, and the component that differs at a step.

Epoch-loss aggregation is replayed on the reference's own step losses; a loop that does not shuffle is
replayed on the first epoch. A divergence at step k of the first epoch is localized by teacher forcing:
from the reference's parameters and Adam state at step k, the port's backward (loss and gradients) and
its optimizer step are compared with the reference's for that step, so the component is named.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.compare import Tolerance
from harness.config import RunConfig
from harness.diagnosis import Candidate, Cause, explain, ratios
from harness.reference import train as ref_train

AGGREGATIONS = {
    "epoch_loss_weighted": (
        "the epoch loss weighted by batch size (the reference averages the batch losses)",
        "weighted",
    ),
    "epoch_loss_summed": ("the epoch loss summed over batches", "sum"),
    "epoch_loss_last_batch": ("the epoch loss taken from the last batch only", "last"),
    "epoch_loss_without_last_batch": ("the epoch loss averaged without the last (partial) batch", "drop_last"),
}


def aggregate(step_loss: np.ndarray, sizes: np.ndarray, how: str) -> float:
    s = step_loss.astype(np.float64)
    if how == "weighted":
        return float((s * sizes).sum() / sizes.sum())
    if how == "sum":
        return float(s.sum())
    if how == "last":
        return float(s[-1])
    if how == "drop_last":
        return float(s[:-1].mean())
    return float(s.mean())


def diagnose_loop(
    x: np.ndarray,
    y: np.ndarray,
    ref: ref_train.Trace,
    port: dict[str, Any],
    cfg: RunConfig,
    steps: int,
    tol: Tolerance,
) -> list[Cause]:
    """Causes in the loop: how the epoch loss is aggregated, and whether the batches are shuffled."""
    n = len(y)
    sizes = np.array([min(cfg.batch_size, n - i) for i in range(0, n, cfg.batch_size)], dtype=np.float64)
    got_epoch = np.float64(port["epoch_loss"][0])
    got_steps = np.asarray(port["step_loss"], dtype=np.float64)[:steps]

    def epoch_err(how: str) -> float:
        replayed = aggregate(ref.step_loss[:steps], sizes, how)
        return max(
            float(ratios(got_epoch, replayed, tol).max()), float(ratios(got_steps, ref.step_loss[:steps], tol).max())
        )

    first_k = min(steps, 32)

    def unshuffled_err() -> float:
        order = np.tile(np.arange(n), (1, 1))
        rep = ref_train.train(x, y, ref.init, order, cfg.with_(epochs=1), record_steps=0)
        return float(ratios(got_steps[:first_k], rep.step_loss[:first_k], tol).max())

    found = [Candidate(f"train.{k}", what, lambda _, h=how: epoch_err(h)) for k, (what, how) in AGGREGATIONS.items()]
    found.append(
        Candidate("train.no_shuffle", "batches taken in file order (no shuffling)", lambda _: unshuffled_err())
    )
    return explain(found, f"the first epoch's {steps} step losses and its epoch loss")


def localize(ctx: Any, k: int) -> tuple[str, bool]:
    """Teacher forcing at step k of the first epoch: which component of the port differs from there
    (a sentence, and whether every component agreed)."""
    ref = ctx.ref_trace
    p = ctx.prepared
    bs = ctx.cfg.batch_size
    rows = ctx.orders[0][k * bs : (k + 1) * bs]
    params = ref.init if k == 0 else ref.step_params[k - 1]
    tol_b, tol_o = ctx.tol("backward"), ctx.tol("optimizer")
    loss, grads = ctx.port.backward(params, p.x_train[rows], p.y_train[rows])
    ref_loss = float(ref.step_loss[k])
    parts = []
    bad_loss = float(ratios(np.float32(ref_loss), np.float32(loss), tol_b).max())
    bad_grad = {n: float(ratios(g, grads[n], tol_b).max()) for n, g in ref.step_grads[k].items()}
    worst = max(bad_grad, key=lambda n: bad_grad[n])
    if bad_loss > 1:
        parts.append(f"its loss on that batch is {loss:.8g} (reference {ref_loss:.8g})")
    if bad_grad[worst] > 1:
        parts.append(f"its gradients differ ({worst}: {bad_grad[worst]:.3g} x the backward tolerance)")
    new, _ = ctx.port.optimizer_step(params, ref.step_grads[k], ref.step_states[k])
    bad_opt = {n: float(ratios(v, new[n], tol_o).max()) for n, v in ref.step_params[k].items()}
    worst_o = max(bad_opt, key=lambda n: bad_opt[n])
    if bad_opt[worst_o] > 1:
        parts.append(f"its Adam step differs ({worst_o}: {bad_opt[worst_o]:.3g} x the optimizer tolerance)")
    where = f"from the reference's parameters and Adam state at step {k}"
    if not parts:
        return (
            f"{where}, the port's loss, gradients and Adam step all match the reference's: the components agree, "
            "so the difference is in the training loop (batch order, initialization, aggregation or schedule)"
        ), True
    return f"{where}, " + "; ".join(parts), False

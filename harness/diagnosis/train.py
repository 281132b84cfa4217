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
from harness.diagnosis import Candidate, Cause, Param, explain, ratios
from harness.reference import model as ref_model
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


# Accumulation lengths tried (each a replay of the first epoch's first batches).
ACCUMULATION_STEPS = range(2, 9)


def _accumulated(
    x: np.ndarray, y: np.ndarray, init: dict[str, np.ndarray], order: np.ndarray, cfg: RunConfig, k: int, steps: int
) -> np.ndarray:
    """The reference's first `steps` batch losses when Adam steps once every k batches, on their mean gradient."""
    import torch

    model = ref_model.build(init)
    opt = ref_train.make_adam(model, cfg)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    losses = []
    for j in range(steps):
        idx = torch.from_numpy(order[j * cfg.batch_size : (j + 1) * cfg.batch_size])
        loss = torch.nn.functional.binary_cross_entropy(model(xt[idx]).squeeze(1), yt[idx])
        (loss / k).backward()
        losses.append(loss.item())
        if (j + 1) % k == 0:
            opt.step()
            opt.zero_grad()
    return np.asarray(losses, dtype=np.float32)


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

    full = n // cfg.batch_size
    all_steps = np.asarray(port["step_loss"], dtype=np.float64)

    def dropped_err() -> float:
        """The reference's epochs without their last, partial batch: the port's step count, and its
        first epoch's steps one for one."""
        if n % cfg.batch_size == 0 or len(all_steps) != full * len(ref.orders):
            return float("inf")
        return float(ratios(all_steps[:full], ref.step_loss[:full], tol).max())

    def own_init_err() -> float:
        """The port trained from the initialization it reports (its own, the given one ignored): the
        reference replayed from there reproduces its first steps."""
        own = port.get("init") or {}
        if set(own) != set(ref.init) or all(np.array_equal(own[k], ref.init[k]) for k in own):
            return float("inf")
        own = {k: np.asarray(v, dtype=np.float32) for k, v in own.items()}
        rep = ref_train.train(x, y, own, ref.orders[:1], cfg.with_(epochs=1), record_steps=0)
        return float(ratios(got_steps[:first_k], rep.step_loss[:first_k], tol).max())

    def accumulated_err(k: int) -> float:
        rep = _accumulated(x, y, ref.init, ref.orders[0], cfg, k, first_k)
        return float(ratios(got_steps[:first_k], rep, tol).max())

    found = [Candidate(f"train.{k}", what, lambda _, h=how: epoch_err(h)) for k, (what, how) in AGGREGATIONS.items()]
    found += [
        Candidate(
            "train.gradient_accumulation",
            f"gradients accumulated over {k} batches before each optimizer step",
            lambda _, k=k: accumulated_err(k),
        )
        for k in ACCUMULATION_STEPS
    ]
    found.append(
        Candidate("train.no_shuffle", "batches taken in file order (no shuffling)", lambda _: unshuffled_err())
    )
    found.append(
        Candidate(
            "train.init_ignored",
            "the given initial weights ignored (the port trained from its own initialization)",
            lambda _: own_init_err(),
        )
    )
    found.append(
        Candidate(
            "train.last_batch_dropped",
            f"the last, partial batch of every epoch dropped ({n % cfg.batch_size} rows; DataLoader drop_last)",
            lambda _: dropped_err(),
        )
    )
    return explain(found, f"the first epoch's {steps} step losses and its epoch loss")


def localize(ctx: Any, k: int) -> tuple[str, bool]:
    """Teacher forcing at step k of the first epoch: which component of the port differs from there
    (a sentence, and whether every component agreed)."""
    ref = ctx.ref_trace
    params = ref.init if k == 0 else ref.step_params[k - 1]
    rows = ctx.orders[0][k * ctx.cfg.batch_size : (k + 1) * ctx.cfg.batch_size]
    return localize_at(ctx, params, ref.step_states[k], rows, f"step {k}")


def localize_at(ctx: Any, params: dict[str, np.ndarray], state: dict, rows: np.ndarray, at: str) -> tuple[str, bool]:
    """From the reference's parameters and Adam state at `at`, on that batch: the port's loss and gradients
    (backward) and its Adam step (fed the reference's gradients) against the reference's."""
    p = ctx.prepared
    x, y = p.x_train[rows], p.y_train[rows]
    tol_b, tol_o = ctx.tol("backward"), ctx.tol("optimizer")
    ref_loss, ref_grads = ref_train.backward(params, x, y)
    ref_new, _ = ref_train.optimizer_step(params, ref_grads, state, ctx.cfg)
    loss, grads = ctx.port.backward(params, x, y)
    new, _ = ctx.port.optimizer_step(params, ref_grads, state)
    parts = []
    if float(ratios(np.float32(ref_loss), np.float32(loss), tol_b).max()) > 1:
        parts.append(f"its loss on that batch is {loss:.8g} (reference {ref_loss:.8g})")
    bad_grad = {n: float(ratios(g, grads[n], tol_b).max()) for n, g in ref_grads.items()}
    worst = max(bad_grad, key=lambda n: bad_grad[n])
    if bad_grad[worst] > 1:
        parts.append(f"its gradients differ ({worst}: {bad_grad[worst]:.3g} x the backward tolerance)")
    bad_opt = {n: float(ratios(v, new[n], tol_o).max()) for n, v in ref_new.items()}
    worst_o = max(bad_opt, key=lambda n: bad_opt[n])
    if bad_opt[worst_o] > 1:
        parts.append(f"its Adam step differs ({worst_o}: {bad_opt[worst_o]:.3g} x the optimizer tolerance)")
    where = f"from the reference's parameters and Adam state at {at}"
    if not parts:
        return (
            f"{where}, the port's loss, gradients and Adam step all match the reference's: the components agree, "
            "so the difference is in the training loop (batch order, initialization, aggregation or schedule)"
        ), True
    return f"{where}, " + "; ".join(parts), False


# Steps of the second epoch replayed from the reference's state at the end of the first: enough to
# tell batch orders, Adam states and learning rates apart, few enough to fit a schedule in seconds.
BOUNDARY_STEPS = 32


def replay_epoch_start(
    x: np.ndarray,
    y: np.ndarray,
    params: dict[str, np.ndarray],
    state: dict,
    order: np.ndarray,
    cfg: RunConfig,
    steps: int,
    reset_state: bool = False,
    lr_factor: float = 1.0,
) -> np.ndarray:
    """The reference's loop for the first `steps` batches of an epoch, from the given parameters and Adam
    state, with the loop's change: another order, a fresh Adam, or a scaled learning rate."""
    import torch

    model = ref_model.build(params)
    opt = ref_train.make_adam(model, cfg.with_(lr=cfg.lr * lr_factor))
    if not reset_state:
        ref_train.load_adam_state(model, opt, state)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    criterion = torch.nn.BCELoss()
    losses = []
    for k in range(steps):
        idx = torch.from_numpy(order[k * cfg.batch_size : (k + 1) * cfg.batch_size])
        opt.zero_grad()
        loss = criterion(model(xt[idx]).squeeze(1), yt[idx])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.asarray(losses, dtype=np.float32)


def diagnose_boundary(
    x: np.ndarray,
    y: np.ndarray,
    ref: ref_train.Trace,
    envelope: list[Any],
    port_step_loss: np.ndarray,
    cfg: RunConfig,
    steps_per_epoch: int,
    tol: Tolerance,
    factor: float,
) -> list[Cause]:
    """Causes at the first epoch boundary: from the reference's parameters and Adam state after epoch 1,
    the second epoch's first batches replayed with the loop changed, against the port's free-running
    step losses there. The port has drifted from the reference by then, so each step is allowed the
    envelope's own drift at that step (times the train stage's factor), as the train stage allows."""
    if len(ref.epoch_states) < 1 or len(ref.orders) < 2:
        return []
    k = min(BOUNDARY_STEPS, steps_per_epoch)
    at = slice(steps_per_epoch, steps_per_epoch + k)
    got = np.asarray(port_step_loss, dtype=np.float64)[at]
    ref_sl = ref.step_loss[at].astype(np.float64)
    if len(got) < k:
        return []
    drift = np.max([np.abs(e.step_loss[at].astype(np.float64) - ref_sl) for e in envelope], axis=0)
    allowed = np.maximum(tol.atol + tol.rtol * np.abs(ref_sl), factor * np.maximum.accumulate(drift))
    p1, s1 = ref.epoch_params[0], ref.epoch_states[0]
    order2, order1 = ref.orders[1], ref.orders[0]

    def err(order: np.ndarray, reset: bool = False, lr_factor: float = 1.0) -> float:
        rep = replay_epoch_start(x, y, p1, s1, order, cfg, k, reset, lr_factor).astype(np.float64)
        return float(np.max(np.abs(rep - got) / allowed))

    found = [
        Candidate("train.order_reused", "every epoch's batches in the first epoch's order", lambda _: err(order1)),
        Candidate(
            "train.adam_state_reset_per_epoch",
            "Adam's moments and step count reset at every epoch (the optimizer created inside the epoch loop)",
            lambda _: err(order2, reset=True),
        ),
        Candidate(
            "train.lr_decay_per_epoch",
            "the learning rate multiplied by a factor at every epoch",
            lambda th: err(order2, lr_factor=th[0]),
            (Param("gamma", -3, 0.5, reference=0),),
        ),
    ]
    return explain(found, f"the second epoch's first {k} step losses, from the reference's state after epoch 1")

"""Many reference trainings at once: the envelope's members and the reference's other seeds.

The harness trains the reference many more times than once: float32 runs perturbed by one ULP (the
envelope the train stage judges the port against), a float64 run, a run with Burn's Adam arithmetic, and
runs from other seeds (the seed-to-seed spread the metrics stage judges independent runs against). One
at a time through nn.Module and autograd each costs about as much as the reference itself (~0.7 ms a step,
almost all of it per-operation overhead on tensors of a few thousand elements). Here M runs share every
operation: their parameters and Adam moments are rows of one [M, P] buffer, the layers are batched
matrix products over views of it, and the backward pass is written out, in numpy: at these sizes its
per-operation cost is half of torch's, and the worker process that trains them starts without importing
torch (bench/train_bench.py --diff records what it buys).

These runs are yardsticks, not the reference: their arithmetic is the reference's formulas (BCELoss with
torch's clamp and gradient, Adam as torch.optim.Adam or as Burn's float32 form) in another summation
order, which is exactly the kind of rounding difference the envelope is there to measure. The reference
itself, whose numbers every stage compares against, stays the user's nn.Module loop in train.py;
tests/test_batched.py holds the two against each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.config import RunConfig
from harness.reference.structure import Params, linear_chain, powi

# torch's BCELoss: log(p) and log1p(-p) clamped at -100, gradient (p - y) / max(p (1 - p), 1e-12).
BCE_LOG_MIN = -100.0
BCE_GRAD_EPS = 1e-12
# Dithered members cycle through this many precomputed one-ULP sign patterns: drawing fresh coin flips
# every step costs more than the rest of the step. A prime, so a pattern meets a different batch each time.
DITHER_PATTERNS = 257


@dataclass(frozen=True)
class Member:
    """One training run: its initial weights, its batch order per epoch and how it differs."""

    init: Params
    orders: np.ndarray
    # Move every gradient element one ULP up or down (seeded coin flips) before each step.
    dither: bool = False
    # Adam in Burn's float32 form (harness/reference/adam_f32.py) instead of torch.optim.Adam's.
    float32_adam: bool = False


@dataclass
class BatchedTrace:
    """Per member: step losses [M, steps], epoch losses [M, epochs], parameters after each epoch."""

    step_loss: np.ndarray
    epoch_loss: np.ndarray
    epoch_params: list[list[Params]]

    def final(self, m: int) -> Params:
        return self.epoch_params[m][-1]


class _Layout:
    """Where each parameter lives in a member's flat row, in the model's own order."""

    def __init__(self, params: Params) -> None:
        self.layers = linear_chain(params)
        self.slices: dict[str, tuple[int, int, tuple[int, ...]]] = {}
        at = 0
        for name in (f"{layer}.{kind}" for layer in self.layers for kind in ("weight", "bias")):
            shape = params[name].shape
            size = int(np.prod(shape))
            self.slices[name] = (at, at + size, shape)
            at += size
        self.size = at

    def view(self, flat: np.ndarray, name: str) -> np.ndarray:
        """[M, *shape] view of one parameter in every member's row (writes go to the buffer)."""
        a, b, shape = self.slices[name]
        return flat[:, a:b].reshape(flat.shape[0], *shape)

    def pack(self, params: list[Params], dtype: type) -> np.ndarray:
        return np.stack(
            [np.concatenate([p[n].astype(np.float64).ravel() for n in self.slices]) for p in params]
        ).astype(dtype)

    def unpack(self, flat: np.ndarray) -> list[Params]:
        return [
            {n: flat[m, a:b].reshape(shape).copy() for n, (a, b, shape) in self.slices.items()}
            for m in range(flat.shape[0])
        ]


def train(
    x: np.ndarray,
    y: np.ndarray,
    members: list[Member],
    cfg: RunConfig,
    float64: bool = False,
    dither_seed: int = 0,
    on_epoch: Callable[[int, float], None] | None = None,
) -> BatchedTrace:
    """Train every member for len(orders) epochs in lockstep, each on its own batches."""
    # Rows grouped so that each kind of arithmetic is a contiguous slice of the buffers (no masks):
    # torch's Adam first (undithered, then dithered), then Burn's (dithered, then undithered).
    perm = sorted(
        range(len(members)), key=lambda i: (members[i].float32_adam, members[i].dither != members[i].float32_adam)
    )
    with np.errstate(divide="ignore", over="ignore"):  # log1p(-1) = -inf before the clamp; exp overflow
        out = _train_grouped(x, y, [members[i] for i in perm], cfg, float64, dither_seed, on_epoch)
    back = np.argsort(perm)
    return BatchedTrace(out.step_loss[back], out.epoch_loss[back], [out.epoch_params[i] for i in back])


def _train_grouped(
    x: np.ndarray,
    y: np.ndarray,
    members: list[Member],
    cfg: RunConfig,
    float64: bool,
    dither_seed: int,
    on_epoch: Callable[[int, float], None] | None,
) -> BatchedTrace:
    dt = np.float64 if float64 else np.float32
    lay = _Layout(members[0].init)
    n_members = len(members)
    flat = lay.pack([m.init for m in members], dt)
    grad = np.zeros_like(flat)
    exp_avg, exp_avg_sq = np.zeros_like(flat), np.zeros_like(flat)
    xt, yt = np.asarray(x, dtype=dt), np.asarray(y, dtype=dt)
    orders = np.stack([m.orders for m in members]).astype(np.int64)  # [M, epochs, n]
    n, epochs, bsz = len(yt), orders.shape[1], cfg.batch_size
    steps = -(-n // bsz)
    factors = _adam_factors([m.float32_adam for m in members], epochs * steps, cfg).astype(dt)
    dithered = [i for i, m in enumerate(members) if m.dither]
    rows_d = slice(dithered[0], dithered[-1] + 1) if dithered else slice(0, 0)
    dither = _dither_patterns(len(dithered), lay.size, dither_seed, float64) if dithered else None
    b1, b2, wd = cfg.beta1, cfg.beta2, cfg.weight_decay
    n_torch = sum(not m.float32_adam for m in members)
    rows_t, rows_b = slice(0, n_torch), slice(n_torch, n_members)
    # torch: m.lerp_(g, 1 - b1) and v * b2 + (1 - b2) g^2, with the scalars rounded once to the dtype.
    t_w1, t_b2, t_w2 = dt(1 - b1), dt(b2), dt(1 - b2)
    # Burn's betas are f32 fields: 1 - 0.999f32 = 0.00099998713, where torch applies 0.001.
    f_b1, f_b2 = dt(np.float32(b1)), dt(np.float32(b2))
    f_w1, f_w2 = dt(np.float32(1) - np.float32(b1)), dt(np.float32(1) - np.float32(b2))
    weights = [lay.view(flat, f"{layer}.weight") for layer in lay.layers]
    weights_t = [w.transpose(0, 2, 1) for w in weights]
    biases = [lay.view(flat, f"{layer}.bias")[:, None, :] for layer in lay.layers]
    gweights = [lay.view(grad, f"{layer}.weight") for layer in lay.layers]
    gbiases = [lay.view(grad, f"{layer}.bias") for layer in lay.layers]
    one, grad_eps = dt(1), dt(BCE_GRAD_EPS)
    step_loss, epoch_loss = [], []
    epoch_params: list[list[Params]] = [[] for _ in members]
    t = 0
    for e in range(epochs):
        probs, targets = [], []
        for start in range(0, n, bsz):
            idx = orders[:, e, start : start + bsz]  # [M, B]
            xb, yb = xt[idx], yt[idx]
            # Forward, keeping the pre-activations and activations the backward pass needs.
            acts, pre = [xb], []
            for w_t, b in zip(weights_t, biases, strict=True):
                z = np.matmul(acts[-1], w_t)
                z += b
                pre.append(z)
                acts.append(np.maximum(z, 0))
            prob = one / (one + np.exp(-pre[-1][:, :, 0]))  # [M, B]
            probs.append(prob)
            targets.append(yb)
            # BCELoss's gradient as torch computes it, through the sigmoid, then the layers.
            q = prob * (one - prob)
            dz = ((prob - yb) / (np.maximum(q, grad_eps) * dt(prob.shape[1])) * q)[:, :, None]
            for i in range(len(weights) - 1, -1, -1):
                gweights[i][...] = np.matmul(dz.transpose(0, 2, 1), acts[i])
                gbiases[i][...] = dz.sum(axis=1)
                if i:
                    dz = np.matmul(dz, weights[i])
                    dz *= pre[i - 1] > 0
            g = grad + dt(wd) * flat if wd else grad
            if dither is not None:
                nudge_ulp_(g[rows_d], dither[t % DITHER_PATTERNS])
            scale, sqrt_scale, eps = factors[t]
            t += 1
            if n_torch:
                gt, m, v = g[rows_t], exp_avg[rows_t], exp_avg_sq[rows_t]
                m += t_w1 * (gt - m)
                v *= t_b2
                v += t_w2 * (gt * gt)
            if n_torch < n_members:
                gb, m, v = g[rows_b], exp_avg[rows_b], exp_avg_sq[rows_b]
                m *= f_b1
                m += gb * f_w1
                v *= f_b2
                v += (gb * gb) * f_w2
            flat -= (exp_avg * scale) / (np.sqrt(exp_avg_sq) * sqrt_scale + eps)
        step_loss.append(_batch_losses(np.concatenate(probs, 1), np.concatenate(targets, 1), bsz))
        epoch_loss.append(step_loss[-1].astype(np.float64).mean(1))
        for m_i, p in enumerate(lay.unpack(flat)):
            epoch_params[m_i].append(p)
        if on_epoch is not None:
            on_epoch(e + 1, float(epoch_loss[-1][0]))
    return BatchedTrace(np.concatenate(step_loss, 1), np.stack(epoch_loss, 1), epoch_params)


def nudge_ulp_(g: np.ndarray, signs: np.ndarray) -> None:
    """Move each nonzero element of g one ULP up or down in magnitude (signs +-1, or 0 to leave it), in place:
    +-1 on the bit pattern, which for IEEE floats is the neighbouring value. Zeros stay (-1 would be a NaN)."""
    g.view(signs.dtype)[...] += signs * (g != 0)


def _batch_losses(prob: np.ndarray, y: np.ndarray, bsz: int) -> np.ndarray:
    """[M, steps] BCELoss of each batch of one epoch (prob and y laid out in batch order, [M, n])."""
    terms = (y - 1) * np.maximum(np.log1p(-prob), BCE_LOG_MIN) - y * np.maximum(np.log(prob), BCE_LOG_MIN)
    n = terms.shape[1]
    full = (n // bsz) * bsz
    out = [terms[:, :full].reshape(terms.shape[0], -1, bsz).mean(2)]
    if full < n:
        out.append(terms[:, full:].mean(1, keepdims=True))
    return np.concatenate(out, 1)


def _dither_patterns(rows: int, size: int, seed: int, float64: bool) -> np.ndarray:
    """[DITHER_PATTERNS, rows, size] of +-1, in the float's integer width."""
    rng = np.random.default_rng(seed)
    signs = rng.integers(0, 2, (DITHER_PATTERNS, rows, size), dtype=np.int8) * 2 - 1
    return signs.astype(np.int64 if float64 else np.int32)


def _adam_factors(burn_form: list[bool], steps: int, cfg: RunConfig) -> np.ndarray:
    """[steps, 3, M, 1]: per step and member (scale, sqrt_scale, eps) of
    update = m * scale / (sqrt(v) * sqrt_scale + eps).

    torch.optim.Adam: lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps), bias corrections in float64.
    Burn: lr * (sqrt(bc2) / bc1) * m / (sqrt(v) + eps sqrt(bc2)), bias corrections in float32 from powi.
    """
    b1, b2, lr, eps = cfg.beta1, cfg.beta2, cfg.lr, cfg.eps
    f1, f2, one = np.float32(b1), np.float32(b2), np.float32(1)
    out = np.empty((steps, 3, len(burn_form), 1))
    for i in range(steps):
        t = i + 1
        bc2_sqrt = np.sqrt(one - powi(f2, t), dtype=np.float32)
        factor = np.float32(bc2_sqrt / (one - powi(f1, t)))
        burn = (float(np.float32(lr)) * float(factor), 1.0, float(np.float32(np.float32(eps) * bc2_sqrt)))
        torch_form = (lr / (1 - b1**t), 1 / (1 - b2**t) ** 0.5, eps)
        for m, is_burn in enumerate(burn_form):
            out[i, :, m, 0] = burn if is_burn else torch_form
    return out

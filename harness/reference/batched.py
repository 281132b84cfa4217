"""Many reference trainings at once: the envelope's members and the reference's other seeds.

The harness trains the reference many more times than once: float32 runs perturbed by one ULP (the
envelope the train stage judges the port against), a float64 run, a run with Burn's Adam arithmetic, and
runs from other seeds (the seed-to-seed spread the metrics stage judges independent runs against). One
at a time through nn.Module and autograd each costs about as much as the reference itself (~0.7 ms a step,
almost all of it per-operation overhead on tensors of a few thousand elements). Here M runs share every
operation: their parameters and Adam moments are rows of one [M, P] buffer, the layers are batched
matrix products over views of it, and the backward pass is written out. A step for 8 members costs about
as much as a third of one nn.Module step (bench/train_bench.py --diff records it).

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
import torch

from harness.config import RunConfig
from harness.reference.adam_f32 import powi
from harness.reference.model import Params, linear_chain

# torch's BCELoss: log(p) and log1p(-p) clamped at -100, gradient (p - y) / max(p (1 - p), 1e-12).
BCE_LOG_MIN = -100.0
BCE_GRAD_EPS = 1e-12


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

    def view(self, flat: torch.Tensor, name: str) -> torch.Tensor:
        a, b, shape = self.slices[name]
        return flat[:, a:b].view(flat.shape[0], *shape)

    def pack(self, params: list[Params], dtype: torch.dtype) -> torch.Tensor:
        rows = [np.concatenate([p[n].astype(np.float64).ravel() for n in self.slices]) for p in params]
        return torch.tensor(np.stack(rows), dtype=dtype)

    def unpack(self, flat: torch.Tensor) -> list[Params]:
        arr = flat.numpy()
        return [
            {n: arr[m, a:b].reshape(shape).copy() for n, (a, b, shape) in self.slices.items()}
            for m in range(arr.shape[0])
        ]


# Dithered members cycle through this many precomputed one-ULP sign patterns: drawing fresh coin flips
# every step costs more than the rest of the step. A prime, so a pattern meets a different batch each time.
DITHER_PATTERNS = 257


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
    torch.set_num_threads(1)
    dtype = torch.float64 if float64 else torch.float32
    lay = _Layout(members[0].init)
    flat = lay.pack([m.init for m in members], dtype)
    grad = torch.zeros_like(flat)
    exp_avg, exp_avg_sq = torch.zeros_like(flat), torch.zeros_like(flat)
    xt = torch.from_numpy(np.asarray(x, dtype=np.float64)).to(dtype)
    yt = torch.from_numpy(np.asarray(y, dtype=np.float64)).to(dtype)
    orders = torch.from_numpy(np.stack([m.orders for m in members]).astype(np.int64))  # [M, epochs, n]
    n, epochs, bsz = len(yt), orders.shape[1], cfg.batch_size
    steps = -(-n // bsz)
    factors = _adam_factors([m.float32_adam for m in members], epochs * steps, cfg, dtype)
    dither = _dither_patterns([m.dither for m in members], lay.size, dither_seed, float64)
    b1, b2, wd = cfg.beta1, cfg.beta2, cfg.weight_decay
    burn = [m.float32_adam for m in members]
    burn_rows = torch.tensor(burn).view(-1, 1) if any(burn) else None
    f32_b1, f32_b2 = (torch.tensor(float(np.float32(b)), dtype=dtype) for b in (b1, b2))
    weights = [lay.view(flat, f"{layer}.weight") for layer in lay.layers]
    biases = [lay.view(flat, f"{layer}.bias").unsqueeze(1) for layer in lay.layers]
    gweights = [lay.view(grad, f"{layer}.weight") for layer in lay.layers]
    gbiases = [lay.view(grad, f"{layer}.bias") for layer in lay.layers]
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
            for w, b in zip(weights, biases, strict=True):
                pre.append(torch.baddbmm(b, acts[-1], w.transpose(1, 2)))
                acts.append(torch.relu(pre[-1]))
            prob = torch.sigmoid(pre[-1]).squeeze(2)  # [M, B]
            probs.append(prob)
            targets.append(yb)
            # BCELoss's gradient as torch computes it, through the sigmoid, then the layers.
            q = prob * (1 - prob)
            dz = ((prob - yb) / (torch.clamp_min(q, BCE_GRAD_EPS) * prob.shape[1]) * q).unsqueeze(2)
            for i in range(len(weights) - 1, -1, -1):
                torch.bmm(dz.transpose(1, 2), acts[i], out=gweights[i])
                torch.sum(dz, dim=1, out=gbiases[i])
                if i:
                    dz = torch.bmm(dz, weights[i]).mul_(pre[i - 1] > 0)
            g = grad if not wd else grad + wd * flat
            if dither is not None:
                nudge_ulp_(g, dither[t % DITHER_PATTERNS])
            scale, sqrt_scale, eps = factors[t]
            t += 1
            if burn_rows is None:
                exp_avg.lerp_(g, 1 - b1)
                exp_avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2)
            else:
                # torch: m.lerp_(g, 1 - b1), v * b2 + (1 - b2) g^2. Burn: m b1 + g (1 - b1) and v b2 + g^2 (1 - b2)
                # with b1, b2 as f32, so 1 - b2 = 0.00099998713 instead of 0.001: a systematic difference.
                m_burn = exp_avg * f32_b1 + g * (1 - f32_b1)
                v_burn = exp_avg_sq * f32_b2 + g * g * (1 - f32_b2)
                exp_avg.lerp_(g, 1 - b1)
                exp_avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2)
                exp_avg.copy_(torch.where(burn_rows, m_burn, exp_avg))
                exp_avg_sq.copy_(torch.where(burn_rows, v_burn, exp_avg_sq))
            flat.addcdiv_(exp_avg * scale, exp_avg_sq.sqrt().mul_(sqrt_scale).add_(eps), value=-1)
        step_loss.append(_batch_losses(torch.cat(probs, 1), torch.cat(targets, 1), bsz))
        epoch_loss.append(step_loss[-1].to(torch.float64).mean(1))
        for m, p in enumerate(lay.unpack(flat)):
            epoch_params[m].append(p)
        if on_epoch is not None:
            on_epoch(e + 1, float(epoch_loss[-1][0]))
    return BatchedTrace(
        torch.cat(step_loss, 1).numpy().astype(np.float64 if float64 else np.float32),
        torch.stack(epoch_loss, 1).numpy(),
        epoch_params,
    )


def nudge_ulp_(g: torch.Tensor, signs: torch.Tensor) -> None:
    """Move each nonzero element of g one ULP up or down in magnitude (signs +-1, or 0 to leave it), in place:
    +-1 on the bit pattern, which for IEEE floats is the neighbouring value. Zeros stay (-1 would be a NaN)."""
    g.view(signs.dtype).add_(signs * (g != 0))


def _batch_losses(prob: torch.Tensor, y: torch.Tensor, bsz: int) -> torch.Tensor:
    """[M, steps] BCELoss of each batch of one epoch (prob and y laid out in batch order, [M, n])."""
    terms = (y - 1) * torch.log1p(-prob).clamp_min(BCE_LOG_MIN) - y * torch.log(prob).clamp_min(BCE_LOG_MIN)
    n = terms.shape[1]
    full = (n // bsz) * bsz
    out = [terms[:, :full].reshape(terms.shape[0], -1, bsz).mean(2)]
    if full < n:
        out.append(terms[:, full:].mean(1, keepdim=True))
    return torch.cat(out, 1)


def _dither_patterns(dithered: list[bool], size: int, seed: int, float64: bool) -> torch.Tensor | None:
    """[DITHER_PATTERNS, M, size] of +-1 (0 for members that are not dithered), in the float's integer width."""
    if not any(dithered):
        return None
    rng = np.random.default_rng(seed)
    signs = rng.integers(0, 2, (DITHER_PATTERNS, len(dithered), size), dtype=np.int8) * 2 - 1
    signs *= np.asarray(dithered, dtype=np.int8)[None, :, None]
    return torch.from_numpy(signs.astype(np.int64 if float64 else np.int32))


def _adam_factors(burn_form: list[bool], steps: int, cfg: RunConfig, dtype: torch.dtype) -> torch.Tensor:
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
    return torch.from_numpy(out).to(dtype)

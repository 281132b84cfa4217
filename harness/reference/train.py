"""The reference pipeline pieces and the training loop, as plain PyTorch.

BCELoss on the squeezed sigmoid output, Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8), batch 32 shuffled
each epoch, epoch loss = unweighted mean of batch losses, accuracy at threshold 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from harness.config import RunConfig
from harness.reference.adam_f32 import Float32Adam
from harness.reference.model import Params, build, get_params


def forward(params: Params, x: np.ndarray) -> dict[str, np.ndarray]:
    model = build(params)
    with torch.no_grad():
        out = model.layers(torch.from_numpy(x))
    return {k: v.numpy() for k, v in out.items()}


def loss_and_grad(p: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    pt = torch.tensor(p, dtype=torch.float32, requires_grad=True)
    loss = nn.BCELoss()(pt, torch.tensor(y, dtype=torch.float32))
    loss.backward()
    assert pt.grad is not None
    return float(loss.item()), pt.grad.numpy().copy()


def backward(params: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
    model = build(params)
    loss = nn.BCELoss()(model(torch.from_numpy(x)).squeeze(1), torch.from_numpy(y))
    loss.backward()
    grads = {name: p.grad.numpy().copy() for name, p in model.named_parameters() if p.grad is not None}
    return float(loss.item()), grads


def make_adam(model: nn.Module, cfg: RunConfig, float32_form: bool = False) -> torch.optim.Optimizer:
    kind = Float32Adam if float32_form else torch.optim.Adam
    return kind(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, weight_decay=cfg.weight_decay)


def adam_state(model: nn.Module, opt: torch.optim.Adam) -> dict:
    names = dict(model.named_parameters())
    state: dict = {"step": 0, "exp_avg": {}, "exp_avg_sq": {}}
    for name, p in names.items():
        s = opt.state.get(p, {})
        if not s:
            return {"step": 0, "exp_avg": {}, "exp_avg_sq": {}}
        state["step"] = int(s["step"])
        state["exp_avg"][name] = s["exp_avg"].numpy().copy()
        state["exp_avg_sq"][name] = s["exp_avg_sq"].numpy().copy()
    return state


def load_adam_state(model: nn.Module, opt: torch.optim.Optimizer, state: dict | None) -> None:
    """Puts an Adam state as adam_state() returns it into a fresh optimizer (nothing for step 0)."""
    if not state or state.get("step", 0) == 0:
        return
    for name, p in model.named_parameters():
        opt.state[p] = {
            "step": torch.tensor(float(state["step"])),
            "exp_avg": torch.from_numpy(state["exp_avg"][name].copy()),
            "exp_avg_sq": torch.from_numpy(state["exp_avg_sq"][name].copy()),
        }


def optimizer_step(params: Params, grads: Params, state: dict | None, cfg: RunConfig) -> tuple[Params, dict]:
    """One torch.optim.Adam step from explicit parameters, gradients and state."""
    model = build(params)
    opt = make_adam(model, cfg)
    for name, p in model.named_parameters():
        p.grad = torch.from_numpy(grads[name].copy())
    load_adam_state(model, opt, state)
    opt.step()
    return get_params(model), adam_state(model, opt)


def batch_orders(n: int, epochs: int, seed: int) -> np.ndarray:
    """One permutation per epoch, as DataLoader(shuffle=True)'s RandomSampler draws them."""
    g = torch.Generator().manual_seed(seed)
    return np.stack([torch.randperm(n, generator=g).numpy() for _ in range(epochs)]).astype(np.int64)


@dataclass
class Trace:
    step_loss: np.ndarray
    epoch_loss: np.ndarray
    init: Params
    final: Params
    epoch_params: list[Params]
    step_params: list[Params] = field(default_factory=list)
    step_grads: list[Params] = field(default_factory=list)
    # State before each recorded step (for re-synchronized single steps).
    step_states: list[dict] = field(default_factory=list)
    # Adam's state after each epoch (with epoch_params: where a replay of the next epoch starts).
    epoch_states: list[dict] = field(default_factory=list)
    orders: np.ndarray | None = None


def train(
    x: np.ndarray,
    y: np.ndarray,
    init: Params,
    orders: np.ndarray,
    cfg: RunConfig,
    record_steps: int = 0,
    on_epoch: object = None,
    dither_seed: int | None = None,
    float64: bool = False,
    float32_adam: bool = False,
) -> Trace:
    """The user's loop with an explicit initialization and batch order.

    `dither_seed` moves every gradient element by one ULP up or down (seeded coin flips) before each
    optimizer step: the rounding noise a port's different summation order puts into its gradients,
    which Adam amplifies where a gradient is near zero. The harness uses that run as the reference's
    own chaos envelope. `float64` trains in double precision: the float32 run's distance from it is
    float32 rounding noise itself, the other yardstick of the envelope. `float32_adam` trains with
    Adam's other legitimate arithmetic (harness/reference/adam_f32.py).
    """
    torch.set_num_threads(1)
    model = build(init)
    if float64:
        model = model.double()
        x, y = x.astype(np.float64), y.astype(np.float64)
    dither = torch.Generator().manual_seed(dither_seed) if dither_seed is not None else None
    opt = make_adam(model, cfg, float32_form=float32_adam)
    criterion = nn.BCELoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    step_loss: list[float] = []
    epoch_loss: list[float] = []
    trace = Trace(np.empty(0), np.empty(0), init, init, [], orders=orders)
    for order in orders:
        total, batches = 0.0, 0
        for start in range(0, len(order), cfg.batch_size):
            idx = torch.from_numpy(order[start : start + cfg.batch_size])
            record = len(step_loss) < record_steps
            if record:
                trace.step_states.append(adam_state(model, opt))
            opt.zero_grad()
            loss = criterion(model(xt[idx]).squeeze(1), yt[idx])
            loss.backward()
            if record:
                trace.step_grads.append({n: p.grad.numpy().copy() for n, p in model.named_parameters()})
            if dither is not None:
                with torch.no_grad():
                    for p in model.parameters():
                        up = torch.randint(0, 2, p.shape, generator=dither, dtype=torch.bool)
                        p.grad.copy_(torch.nextafter(p.grad, torch.where(up, torch.inf, -torch.inf)))
            opt.step()
            if record:
                trace.step_params.append(get_params(model))
            step_loss.append(loss.item())
            total += loss.item()
            batches += 1
        epoch_loss.append(total / batches)
        trace.epoch_params.append(get_params(model))
        trace.epoch_states.append(adam_state(model, opt))
        if callable(on_epoch):
            on_epoch(len(epoch_loss), epoch_loss[-1])
    trace.step_loss = np.asarray(step_loss, dtype=np.float64 if float64 else np.float32)
    trace.epoch_loss = np.asarray(epoch_loss)
    trace.final = get_params(model)
    return trace


def evaluate(params: Params, x: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> tuple[np.ndarray, float]:
    probs = forward(params, x)["sigmoid"][:, 0]
    return probs, float(((probs > threshold).astype(np.float32) == y).mean())

"""What the batched trainer needs of the reference without importing torch (its worker process starts
in a fraction of the time): the parameter type, the network's layer chain, the one-ULP nudge, and
float32 powers as Rust computes them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Params = dict[str, np.ndarray]


@dataclass
class Trace:
    """A reference training run, step by step (harness/reference/reference.py records it)."""

    step_loss: np.ndarray
    epoch_loss: np.ndarray
    init: Params
    final: Params
    epoch_params: list[Params]
    step_params: list[Params] = field(default_factory=list)
    step_grads: list[Params] = field(default_factory=list)
    # State before each recorded step (for re-synchronized single steps).
    step_states: list[dict] = field(default_factory=list)
    # The optimizer's state after each epoch (with epoch_params: where a replay of the next epoch starts).
    epoch_states: list[dict] = field(default_factory=list)
    orders: np.ndarray | None = None
    # Every step's largest per-tensor gradient L2 norm, the whole run: where gradient clipping would act.
    step_grad_norm: np.ndarray = field(default_factory=lambda: np.empty(0))


def nudge(params: Params, ulps: int = 1) -> Params:
    """Every parameter moved by `ulps` units in the last place: the reference's own chaos envelope."""
    out = {}
    for k, v in params.items():
        w = v.copy()
        for _ in range(ulps):
            w = np.nextafter(w, np.float32(np.inf)).astype(np.float32)
        out[k] = w
    return out


def linear_chain(params: Params) -> list[str]:
    """The Linear layers of Classifier in order (fc1, fc2, ...): ReLU after each but the last, a sigmoid
    after the last. The batched trainer (harness/reference/batched.py) builds the same network from this."""
    layers = []
    while f"fc{len(layers) + 1}.weight" in params:
        layers.append(f"fc{len(layers) + 1}")
    return layers


def powi(a: np.float32, n: int) -> np.float32:
    """a**n in float32 by repeated squaring, as Rust's `f32::powi` (compiler-rt's __powisf2) computes it:
    each multiplication rounds, so for t in the hundreds the result is several ULP from the true power,
    and 1 - beta**t magnifies that by beta**t / (1 - beta**t)."""
    r = np.float32(1)
    while True:
        if n & 1:
            r = np.float32(r * a)
        n //= 2
        if n == 0:
            return r
        a = np.float32(a * a)

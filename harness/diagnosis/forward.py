"""Candidate causes for a forward pass that differs: the reference's forward replayed with one layer
changed (the first divergent one; every earlier layer matched).

Evidence: the port's output of that layer and of every layer after it, on the whole test set, with the
reference's weights. An activation is replaced by another (fitted where it has a parameter); a Linear
loses its bias or reads its weight buffer in another layout; or, when no change to that one layer
reproduces it, that layer and the next are applied in the other order.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from harness.compare import Tolerance
from harness.diagnosis import Candidate, Cause, Param, explain, ratios
from harness.reference.model import Params, linear_chain

Op = Callable[[torch.Tensor], torch.Tensor]

# What an activation layer may compute instead of the reference's (parameter-free ones).
ACTIVATIONS: dict[str, tuple[str, Op]] = {
    "identity": ("no activation (the layer is missing)", lambda z: z),
    "relu": ("ReLU", torch.relu),
    "relu6": ("ReLU6", F.relu6),
    "gelu": ("GELU (exact, erf)", F.gelu),
    "gelu_tanh": ("GELU, tanh approximation", lambda z: F.gelu(z, approximate="tanh")),
    "silu": ("SiLU", F.silu),
    "elu": ("ELU", F.elu),
    "tanh": ("tanh", torch.tanh),
    "sigmoid": ("sigmoid", torch.sigmoid),
    "sigmoid_via_tanh": ("sigmoid as (1 + tanh(z / 2)) / 2", lambda z: (1 + torch.tanh(z / 2)) / 2),
    "hard_sigmoid": ("hard sigmoid", F.hardsigmoid),
}


def _reshaped(a: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A Linear whose [out, in] buffer is taken as Burn's [in, out] weight as it lies (no transpose)."""
    return a @ w.reshape(w.shape[1], w.shape[0]) + b


def layer_names(params: Params) -> list[tuple[str, str]]:
    """(linear, activation) names in order, as the reference's forward reports them."""
    chain = linear_chain(params)
    return [(fc, f"relu{i + 1}" if i + 1 < len(chain) else "sigmoid") for i, fc in enumerate(chain)]


def replay(
    params: Params,
    x: np.ndarray,
    activation: dict[str, Op] | None = None,
    linear: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] | None = None,
) -> dict[str, np.ndarray]:
    """The reference's forward with some layers' functions replaced, every layer's output."""
    out = {}
    a = torch.from_numpy(np.asarray(x, dtype=np.float32))
    with torch.no_grad():
        for fc, act in layer_names(params):
            w, b = torch.from_numpy(params[f"{fc}.weight"]), torch.from_numpy(params[f"{fc}.bias"])
            z = (linear or {}).get(fc, F.linear)(a, w, b)
            default = torch.relu if act.startswith("relu") else torch.sigmoid
            a = (activation or {}).get(act, default)(z)
            out[fc], out[act] = z.numpy(), a.numpy()
    return out


def swapped(params: Params, x: np.ndarray, first: str, by_call: bool) -> dict[str, np.ndarray]:
    """The reference's forward with `first` and the layer after it called in the other order, every
    output reported under its layer's name or, `by_call`, under the names in the reference's order."""
    ops: list[tuple[str, Op]] = []
    for fc, act in layer_names(params):
        w, b = torch.from_numpy(params[f"{fc}.weight"]), torch.from_numpy(params[f"{fc}.bias"])
        ops += [
            (fc, lambda a, w=w, b=b: F.linear(a, w, b)),
            (act, torch.relu if act.startswith("relu") else torch.sigmoid),
        ]
    names = [n for n, _ in ops]
    i = names.index(first)
    ops[i], ops[i + 1] = ops[i + 1], ops[i]
    out, a = {}, torch.from_numpy(np.asarray(x, dtype=np.float32))
    with torch.no_grad():
        for k, (name, op) in enumerate(ops):
            try:
                a = op(a)
            except RuntimeError:  # a Linear that cannot take the other width: no such port
                return {}
            out[names[k] if by_call else name] = a.numpy()
    return out


def candidates(
    params: Params, x: np.ndarray, got: dict[str, np.ndarray], layer: str, tol: Tolerance
) -> list[Candidate]:
    names = [n for pair in layer_names(params) for n in pair]
    # The layers the port reports (a logits model has no sigmoid; `[port] layers = "output"` only the last).
    judged = [n for n in names[names.index(layer) :] if n in got]

    def err(**change: dict) -> float:
        rep = replay(params, x, **change)
        return float(max(ratios(got[n], rep[n], tol).max() for n in judged))

    def swap_err() -> float:
        worst = math.inf
        for by_call in (False, True):
            rep = swapped(params, x, layer, by_call)
            if rep:
                worst = min(worst, float(max(ratios(got[n], rep[n], tol).max() for n in judged)))
        return worst

    out = []
    # Two layers' outputs reported under each other's names: the reference's own outputs, relabeled.
    plain = replay(params, x)
    for other in judged[1:]:
        if plain[other].shape == plain[layer].shape:
            relabeled = {**plain, layer: plain[other], other: plain[layer]}
            out.append(
                Candidate(
                    "forward.names_swapped",
                    f"{layer} and {other} reported under each other's names",
                    lambda _, r=relabeled: float(max(ratios(got[n], r[n], tol).max() for n in judged)),
                )
            )
    if layer != names[-1]:
        # Two changes' worth of evidence: tried only when no change to one layer reproduces it.
        following = names[names.index(layer) + 1]
        out.append(
            Candidate(
                "forward.layers_swapped",
                f"{layer} and {following} applied in the other order",
                lambda _: swap_err(),
                size=2,
            )
        )
    if layer in {fc for fc, _ in layer_names(params)}:
        w = params[f"{layer}.weight"]
        o, i = w.shape
        out.append(
            Candidate(
                f"forward.{layer}.bias_dropped",
                f"{layer} without its bias",
                lambda _: err(linear={layer: lambda a, w, b: F.linear(a, w)}),
            )
        )
        out.append(
            Candidate(
                f"forward.{layer}.weight_reshaped",
                f"{layer}'s [{o}, {i}] weight buffer read as [{i}, {o}] without a transpose",
                lambda _: err(linear={layer: _reshaped}),
            )
        )
        # A layout or loading slip usually hits every Linear, not one.
        linears = [fc for fc, _ in layer_names(params)]
        out.append(
            Candidate(
                "forward.weights_reshaped",
                "every Linear's [out, in] weight buffer read as [in, out] without a transpose",
                lambda _: err(linear={fc: _reshaped for fc in linears}),
            )
        )
        out.append(
            Candidate(
                "forward.biases_dropped",
                "every Linear without its bias",
                lambda _: err(linear={fc: lambda a, w, b: F.linear(a, w) for fc in linears}),
            )
        )
        if o == i:
            out.append(
                Candidate(
                    f"forward.{layer}.weight_transposed",
                    f"{layer}'s weight transposed",
                    lambda _: err(linear={layer: lambda a, w, b: F.linear(a, w.T, b)}),
                )
            )
        return out
    for key, (what, op) in ACTIVATIONS.items():
        out.append(
            Candidate(
                f"forward.{layer}.{key}", f"{layer} computed as {what}", lambda _, op=op: err(activation={layer: op})
            )
        )
    # An extra activation before or after the layer's own (a sigmoid on a model that already ends in one,
    # a ReLU left after the last Linear).
    default = torch.relu if layer.startswith("relu") else torch.sigmoid
    for key, (what, op) in ACTIVATIONS.items():
        if key == "identity":
            continue
        out.append(
            Candidate(
                f"forward.{layer}.extra_{key}_before",
                f"{layer} applied after an extra {what}",
                lambda _, op=op: err(activation={layer: lambda z, op=op: default(op(z))}),
            )
        )
        out.append(
            Candidate(
                f"forward.{layer}.extra_{key}_after",
                f"{layer} followed by an extra {what}",
                lambda _, op=op: err(activation={layer: lambda z, op=op: op(default(z))}),
            )
        )
    out.append(
        Candidate(
            f"forward.{layer}.leaky_relu",
            f"{layer} computed as Leaky ReLU",
            lambda th: err(activation={layer: lambda z: F.leaky_relu(z, th[0])}),
            (Param("negative_slope", -6, 0),),
        )
    )
    return out


def diagnose(params: Params, x: np.ndarray, got: dict[str, np.ndarray], layer: str, tol: Tolerance) -> list[Cause]:
    names = [n for pair in layer_names(params) for n in pair]
    # The layers the port reports (a logits model has no sigmoid; `[port] layers = "output"` only the last).
    judged = [n for n in names[names.index(layer) :] if n in got]
    return explain(candidates(params, x, got, layer, tol), f"{len(x)} samples, layers {', '.join(judged)}")

"""Candidate causes for a layer of any model whose output differs while every earlier layer agrees: the
layer replayed alone, on the reference's own input to it, with one change.

Evidence: the port's output of the first divergent layer on the whole test set. The replay feeds the
layer the reference's input (every earlier layer agrees within tolerance, so that is the port's input to
it too, up to rounding), so a cause is named only when the changed layer alone turns the reference's
numbers into the port's.

Changes by layer kind: an activation replaced by another (GELU's tanh approximation, Leaky ReLU with a
fitted slope, ...); LayerNorm with a fitted epsilon, the unbiased variance, or without its affine;
BatchNorm at evaluation with batch statistics instead of running ones, or a fitted epsilon; Dropout
active at evaluation; Linear without its bias.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.compare import Tolerance
from harness.diagnosis import Candidate, Cause, Param, explain, ratio
from harness.reference.reference import Reference
from harness.reference.structure import Params

Replay = Callable[[torch.Tensor], torch.Tensor]

# Activations a port may have put in another's place (torch's functional forms).
ACTIVATIONS: dict[str, tuple[str, Replay]] = {
    "ReLU": ("ReLU", torch.relu),
    "GELU": ("exact GELU (erf)", lambda a: F.gelu(a)),
    "GELU_tanh": ("GELU's tanh approximation", lambda a: F.gelu(a, approximate="tanh")),
    "Sigmoid": ("sigmoid", torch.sigmoid),
    "Tanh": ("tanh", torch.tanh),
    "SiLU": ("SiLU", F.silu),
    "ELU": ("ELU", F.elu),
    "ReLU6": ("ReLU6", F.relu6),
    "Identity": ("no activation (identity)", lambda a: a),
}
ACTIVATION_KINDS = {"ReLU", "GELU", "Sigmoid", "Tanh", "SiLU", "ELU", "ReLU6", "LeakyReLU", "Identity"}


def _own(module: nn.Module) -> str:
    """The reference activation's key in ACTIVATIONS."""
    kind = type(module).__name__
    if kind == "GELU" and getattr(module, "approximate", "none") == "tanh":
        return "GELU_tanh"
    return kind


def _candidates(module: nn.Module, a: torch.Tensor, got: np.ndarray, tol: Tolerance, layer: str) -> list[Candidate]:
    def err(replay: Replay) -> float:
        with torch.no_grad():
            out = replay(a).numpy()
        # The port's output of another size (another width) is no change to this layer's arithmetic.
        return ratio(out.reshape(got.shape), got, tol) if out.size == got.size else math.inf

    kind = type(module).__name__
    found: list[Candidate] = []
    if kind in ACTIVATION_KINDS:
        own = _own(module)
        for key, (what, replay) in ACTIVATIONS.items():
            if key != own:
                found.append(
                    Candidate(f"forward.activation.{key.lower()}", f"{layer}: {what}", lambda _, r=replay: err(r))
                )
        slope = float(getattr(module, "negative_slope", 0.0))
        found.append(
            Candidate(
                "forward.activation.leaky_relu",
                f"{layer}: Leaky ReLU",
                lambda t: err(lambda v: F.leaky_relu(v, t[0])),
                (Param("negative_slope", -6, 0, reference=math.log10(slope) if slope > 0 else None),),
            )
        )
    if isinstance(module, nn.LayerNorm):
        shape, w, b = module.normalized_shape, module.weight, module.bias

        def unbiased(v: torch.Tensor) -> torch.Tensor:
            mean = v.mean(-1, keepdim=True)
            var = v.var(-1, keepdim=True, unbiased=True)
            out = (v - mean) / torch.sqrt(var + module.eps)
            return out * w + b if w is not None else out

        found += [
            Candidate(
                "forward.layernorm.eps",
                f"{layer}: LayerNorm epsilon",
                lambda t: err(lambda v: F.layer_norm(v, shape, w, b, t[0])),
                (Param("eps", -12, 0, reference=math.log10(module.eps)),),
            ),
            Candidate(
                "forward.layernorm.unbiased", f"{layer}: LayerNorm with the unbiased variance", lambda _: err(unbiased)
            ),
            Candidate(
                "forward.layernorm.no_affine",
                f"{layer}: LayerNorm without its weight and bias",
                lambda _: err(lambda v: F.layer_norm(v, shape, None, None, module.eps)),
            ),
        ]
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        rm, rv, w, b, eps = module.running_mean, module.running_var, module.weight, module.bias, module.eps
        found += [
            Candidate(
                "forward.batchnorm.batch_statistics",
                f"{layer}: BatchNorm at evaluation with the batch's statistics instead of the running ones",
                lambda _: err(lambda v: F.batch_norm(v, None, None, w, b, True, 0.0, eps)),
            ),
            Candidate(
                "forward.batchnorm.eps",
                f"{layer}: BatchNorm epsilon",
                lambda t: err(lambda v: F.batch_norm(v, rm, rv, w, b, False, 0.0, t[0])),
                (Param("eps", -12, 0, reference=math.log10(eps)),),
            ),
        ]
    if isinstance(module, nn.Linear) and module.bias is not None:
        found.append(
            Candidate(
                "forward.linear.bias_dropped",
                f"{layer}: Linear without its bias",
                lambda _: err(lambda v: v @ module.weight.T),
            )
        )
    return found


def _dropout(module: nn.Module, a: np.ndarray, got: np.ndarray, tol: Tolerance, layer: str) -> list[Cause]:
    """Dropout active at evaluation: the port's zeros are its mask (random, so read from its output), and
    the replay must then equal the reference's input scaled by 1/(1-p) everywhere else, with as many zeros
    as p predicts (within 5 standard deviations of a binomial count)."""
    p = float(module.p)
    zeros = (got == 0) & (a != 0)
    n = a.size
    if not 0 < p < 1 or not zeros.any():
        return []
    share = float(zeros.sum()) / n
    if abs(zeros.sum() - p * n) > 5 * math.sqrt(n * p * (1 - p)):
        return []
    replay = np.where(zeros, 0.0, a / np.float32(1 - p)).astype(np.float32)
    err = ratio(replay, got, tol)
    if err > 1:
        return []
    return [
        Cause(
            "forward.dropout_at_eval",
            f"{layer}: dropout active at evaluation (p = {p:g}: {share:.1%} of outputs zeroed, the rest scaled by 1/(1-p))",
            {},
            err,
            f"{got.size} outputs of {layer}",
        )
    ]


def _swapped(
    reference: Reference,
    params: Params,
    a: torch.Tensor,
    got: dict[str, np.ndarray],
    layer: str,
    tol: Tolerance,
) -> list[Candidate]:
    """`layer` and the layer after it applied in the other order (a normalization after the activation
    instead of before it, say), where the next layer takes this layer's input. The port reports its outputs by
    the layers' names (`layer` = it after the next one, the next one = its own output on the input) or
    in its call order (the names taken in the reference's order); either reproduces."""
    order = [lay.name for lay in reference.layers]
    i = order.index(layer)
    if i + 1 >= len(order) or order[i + 1] not in got:
        return []
    nxt = order[i + 1]
    # Evaluation mode, as the forward stage runs (BatchNorm on its running statistics, Dropout off).
    first, second = reference.module(params, layer).eval(), reference.module(params, nxt).eval()

    def err() -> float:
        try:
            with torch.no_grad():
                inner = second(a)
                outer = first(inner)
        except (RuntimeError, ValueError):  # the next layer does not take this layer's input
            return math.inf
        g_l, g_n = np.asarray(got[layer], np.float32), np.asarray(got[nxt], np.float32)
        inner_np, outer_np = inner.numpy(), outer.numpy()

        def judge(for_layer: np.ndarray, for_next: np.ndarray) -> float:
            # A Linear among the two changes the width: a layout whose sizes do not fit is not this one.
            if for_layer.size != g_l.size or for_next.size != g_n.size:
                return math.inf
            return max(ratio(for_layer.reshape(g_l.shape), g_l, tol), ratio(for_next.reshape(g_n.shape), g_n, tol))

        return min(judge(outer_np, inner_np), judge(inner_np, outer_np))  # by name, or in call order

    kinds = {lay.name: lay.kind for lay in reference.layers}
    return [
        Candidate(
            "forward.layers_swapped",
            f"{layer} ({kinds.get(layer, '?')}) and {nxt} ({kinds.get(nxt, '?')}) applied in the other order",
            lambda _: err(),
        )
    ]


def diagnose(
    reference: Reference, params: Params, x: np.ndarray, got: dict[str, np.ndarray], layer: str, tol: Tolerance
) -> list[Cause]:
    """Causes that reproduce the port's output of `layer`, the first divergent one (`got`: every layer's)."""
    inputs = reference.layer_inputs(params, x)
    if layer not in inputs:
        return []
    module = reference.module(params, layer)
    a = inputs[layer]
    out = np.asarray(got[layer], dtype=np.float32)
    if isinstance(module, (nn.Dropout, nn.Dropout1d, nn.AlphaDropout)):
        return _dropout(module, a.numpy().reshape(out.shape), out, tol, layer) if a.numel() == out.size else []
    found = explain(_candidates(module, a, out, tol, layer), f"{out.size} outputs of {layer}")
    if found:
        return found
    # Two changes' worth of evidence (this layer's and the next one's outputs): tried only when no change
    # to this layer alone reproduces it.
    return explain(_swapped(reference, params, a, got, layer, tol), f"the outputs of {layer} and the layer after it")

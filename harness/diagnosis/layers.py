"""Candidate causes for a layer of any model whose output differs while every earlier layer agrees: the
layer replayed alone, on the reference's own input to it, with one change.

Evidence: the port's output of the first divergent layer on the whole test set. The replay feeds the
layer the reference's input (every earlier layer agrees within tolerance, so that is the port's input to
it too, up to rounding), so a cause is named only when the changed layer alone turns the reference's
numbers into the port's.

A cause is named only when the changed layer, run through the rest of the reference, also reproduces
every layer the port reports after it (`Candidate.confirm`).

Changes by layer kind: an activation replaced by another (GELU's tanh approximation, Leaky ReLU with a
fitted slope, ...); LayerNorm with a fitted epsilon, the unbiased variance, or without its affine;
BatchNorm at evaluation with batch statistics instead of running ones, or a fitted epsilon; Dropout
active at evaluation; Linear without its bias; a convolution without its padding (Burn's Valid
default), with its kernel flipped or transposed, or without its bias; pooling with count_include_pad
flipped, without its padding, with ceil_mode flipped, or of the other kind; Flatten in channels-last
order; an LSTM's or GRU's gate blocks in another order, batch_first flipped, a GRU's reset gate before its
hidden weights; attention's in_proj blocks in another order, or its scores unscaled; an encoder layer
(one layer, replayed whole) with another feed-forward activation, those attention slips, norm_first
flipped, or its two norms swapped.
"""

from __future__ import annotations

import copy
import inspect
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.compare import Tolerance
from harness.diagnosis import Candidate, Cause, Param, explain, ratio
from harness.reference.reference import LayerCall, Reference
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
    "Hardsigmoid": ("PyTorch's hard sigmoid (x / 6 + 1/2, clamped to [0, 1])", F.hardsigmoid),
    # Burn 0.22's HardSigmoidConfig defaults to alpha 0.2, beta 0.5 (burn-nn activation/hard_sigmoid.rs),
    # Keras's slope; torch's Hardsigmoid is alpha 1/6. Burn computes alpha * x + beta in float32.
    "Hardsigmoid_burn": (
        "Burn's HardSigmoid default (0.2 x + 1/2, clamped to [0, 1]; PyTorch's slope is 1/6)",
        lambda a: torch.clamp(a * 0.2 + 0.5, 0.0, 1.0),
    ),
    "Identity": ("no activation (identity)", lambda a: a),
}
ACTIVATION_KINDS = {"ReLU", "GELU", "Sigmoid", "Tanh", "SiLU", "ELU", "ReLU6", "Hardsigmoid", "LeakyReLU", "Identity"}


def _own(module: nn.Module) -> str:
    """The reference activation's key in ACTIVATIONS."""
    kind = type(module).__name__
    if kind == "GELU" and getattr(module, "approximate", "none") == "tanh":
        return "GELU_tanh"
    return kind


# The worst tolerance ratio over the layers the port reports after the first divergent one, with some
# layers' outputs replaced by replays of their inputs.
Downstream = Callable[[Mapping[str, Replay]], float]
# One change to a layer: cause id, what it is, the replay (from fitted parameters) and those parameters.
Change = tuple[str, str, Callable[[Sequence[float]], Replay], tuple]


def _candidates(
    module: nn.Module,
    a: torch.Tensor,
    got: np.ndarray,
    tol: Tolerance,
    layer: str,
    downstream: Downstream,
    kin: Sequence[tuple[str, nn.Module, LayerCall]] = (),
    call: LayerCall | None = None,
) -> list[Candidate]:
    """Each change to `module` as a candidate: judged on the layer's own output, then confirmed on every
    layer the port reports after it, with the changed output run through the rest of the reference.

    `kin`: the later layers of the same kind and settings (name, module, input). A default left in place
    or a loader's slip usually hits every layer a port builds from one config (Burn's
    TransformerEncoderConfig builds all its layers), so each change is also tried on all of them at once.
    `call`: how the model calls the layer (its other arguments, a padding mask say); replays call it so."""

    def err(replay: Replay) -> float:
        try:
            with torch.no_grad():
                out = replay(a).numpy()
        except (RuntimeError, ValueError):  # a change this input cannot take (a kernel larger than the map)
            return math.inf
        # The port's output of another size (another width) is no change to this layer's arithmetic.
        return ratio(out.reshape(got.shape), got, tol) if out.size == got.size else math.inf

    changes = _changes(module, a, call)
    kin_changes = [(name, _changes(m, kc.input, kc)) for name, m, kc in kin]
    found: list[Candidate] = []
    for i, (cause, what, replay, params) in enumerate(changes):
        found.append(
            Candidate(
                cause,
                f"{layer}: {what}",
                lambda t, r=replay: err(r(t)),
                params,
                confirm=lambda t, r=replay: downstream({layer: r(t)}),
            )
        )
        same = [(name, c[2]) for name, ch in kin_changes if (c := _same_change(ch, i, cause)) is not None]
        if not kin or len(same) != len(kin):
            continue
        names = ", ".join([layer, *(n for n, _ in same)])
        found.append(
            Candidate(
                cause,
                f"every layer of its kind ({names}): {what}",
                lambda t, r=replay: err(r(t)),
                params,
                confirm=lambda t, r=replay, same=same: downstream({layer: r(t), **{n: f(t) for n, f in same}}),
            )
        )
    return found


def _same_change(changes: list[Change], i: int, cause: str) -> Change | None:
    """A later layer's change that is the same change: at the same place in its list, or else the one
    change with that id (the Linears of one model differ in whether they are square or have a bias)."""
    if i < len(changes) and changes[i][0] == cause:
        return changes[i]
    same = [c for c in changes if c[0] == cause]
    return same[0] if len(same) == 1 else None


def _changes(module: nn.Module, a: torch.Tensor, call: LayerCall | None = None) -> list[Change]:
    """The changes tried on a layer of `module`'s kind, `a` its input, `call` how the model calls it."""

    def candidate(cause: str, what: str, replay: Callable[[Sequence[float]], Replay], params: tuple = ()) -> Change:
        return (cause, what, replay, params)

    kind = type(module).__name__
    found: list[Change] = []
    if kind in ACTIVATION_KINDS:
        own = _own(module)
        for key, (what, replay) in ACTIVATIONS.items():
            if key != own:
                found.append(candidate(f"forward.activation.{key.lower()}", what, lambda _, r=replay: r))
        # An extra activation before or after the layer's own: a sigmoid on a model that already ends in
        # one, a ReLU left after the last Linear, an activation applied twice in a written-out forward.
        own_what = ACTIVATIONS[own][0] if own in ACTIVATIONS else kind
        for key, (what, replay) in ACTIVATIONS.items():
            if key in (own, "Identity"):
                continue
            found += [
                candidate(
                    f"forward.activation.extra_{key.lower()}_before",
                    f"{own_what} applied after an extra {what}",
                    lambda _, r=replay: lambda v, r=r: module(r(v)),
                ),
                candidate(
                    f"forward.activation.extra_{key.lower()}_after",
                    f"{own_what} followed by an extra {what}",
                    lambda _, r=replay: lambda v, r=r: r(module(v)),
                ),
            ]
        slope = float(getattr(module, "negative_slope", 0.0))
        found.append(
            candidate(
                "forward.activation.leaky_relu",
                "Leaky ReLU",
                lambda t: lambda v: F.leaky_relu(v, t[0]),
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
            candidate(
                "forward.layernorm.eps",
                "LayerNorm epsilon",
                lambda t: lambda v: F.layer_norm(v, shape, w, b, t[0]),
                (Param("eps", -12, 0, reference=math.log10(module.eps)),),
            ),
            candidate("forward.layernorm.unbiased", "LayerNorm with the unbiased variance", lambda _: unbiased),
            candidate(
                "forward.layernorm.no_affine",
                "LayerNorm without its weight and bias",
                lambda _: lambda v: F.layer_norm(v, shape, None, None, module.eps),
            ),
        ]
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        rm, rv, w, b, eps = module.running_mean, module.running_var, module.weight, module.bias, module.eps
        found += [
            candidate(
                "forward.batchnorm.batch_statistics",
                "BatchNorm at evaluation with the batch's statistics instead of the running ones",
                lambda _: lambda v: F.batch_norm(v, None, None, w, b, True, 0.0, eps),
            ),
            candidate(
                "forward.batchnorm.eps",
                "BatchNorm epsilon",
                lambda t: lambda v: F.batch_norm(v, rm, rv, w, b, False, 0.0, t[0]),
                (Param("eps", -12, 0, reference=math.log10(eps)),),
            ),
        ]
    if isinstance(module, nn.Linear):
        w, b = module.weight, module.bias
        o, i = w.shape
        # Burn's Linear stores its weight [in, out], PyTorch's [out, in]: a buffer loaded as it lies, without
        # a transpose, still runs wherever the sizes fit. A square weight is then used transposed.
        found.append(
            candidate(
                "forward.linear.weight_reshaped",
                f"Linear's [{o}, {i}] weight buffer read as [{i}, {o}] without a transpose"
                + (" (the weight used transposed)" if o == i else ""),
                lambda _: lambda v: F.linear(v, w.reshape(i, o).T, b),
            )
        )
        if b is not None:
            found.append(
                candidate("forward.linear.bias_dropped", "Linear without its bias", lambda _: lambda v: v @ w.T)
            )
    if isinstance(module, nn.modules.conv._ConvNd) and not module.transposed:
        found += [candidate(c, what, lambda _, r=r: r) for c, what, r in _conv_changes(module)]
    if isinstance(module, POOLS):
        found += [candidate(c, what, lambda _, r=r: r) for c, what, r in _pool_changes(module)]
    if isinstance(module, (nn.LSTM, nn.GRU)) and _plain_rnn(module):
        found += [candidate(c, what, lambda _, r=r: r) for c, what, r in _recurrent_changes(module)]
    if isinstance(module, nn.MultiheadAttention) and module._qkv_same_embed_dim and module.batch_first:
        found += [candidate(c, what, lambda _, r=r: r) for c, what, r in _attention_changes(module, call)]
    if isinstance(module, nn.TransformerEncoderLayer) and module.self_attn._qkv_same_embed_dim:
        found += [candidate(c, what, lambda _, r=r: r) for c, what, r in _encoder_changes(module, call)]
    if isinstance(module, nn.Flatten) and a.dim() > 2 and module.start_dim == 1 and module.end_dim == -1:
        # Channels last (NHWC for images, NLC for sequences), then flattened: TensorFlow's layout.
        order = (0, *range(2, a.dim()), 1)
        found.append(
            candidate(
                "forward.flatten.channels_last",
                f"flattened channels last ({_layout(a.dim())} order) instead of PyTorch's channels first",
                lambda _: lambda v: v.permute(*order).reshape(len(v), -1),
            )
        )
    return found


POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)


def _layout(rank: int) -> str:
    return {3: "NLC", 4: "NHWC", 5: "NDHWC"}.get(rank, "channels-last")


def _conv_changes(m: nn.modules.conv._ConvNd) -> list[tuple[str, str, Replay]]:
    """A convolution with one thing changed: its padding (Burn's `PaddingConfig*d::Valid` default where
    torch pads; `Same` where it does not), its kernel flipped (true convolution, as scipy's convolve2d)
    or with its spatial axes swapped (a layout slip loading the weights), or its bias dropped."""
    if m.padding_mode != "zeros":
        return []
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[len(m.kernel_size)]
    spatial = tuple(range(2, m.weight.dim()))
    w, b = m.weight, m.bias

    def with_(weight: torch.Tensor = w, bias: torch.Tensor | None = b, padding: Any = m.padding) -> Replay:
        return lambda v: conv(v, weight, bias, m.stride, padding, m.dilation, m.groups)

    out: list[tuple[str, str, Replay]] = []
    pads = m.padding if isinstance(m.padding, tuple) else ()
    if m.padding == "same" or any(pads):
        out.append(
            (
                "forward.conv.padding",
                f"no padding (Burn's Valid default) where torch pads {m.padding}",
                with_(padding=0),
            )
        )
    elif all(s == 1 for s in m.stride):
        out.append(("forward.conv.padding", "'same' padding where torch pads none", with_(padding="same")))
    out.append(
        (
            "forward.conv.kernel_flipped",
            "its kernel flipped (true convolution, not cross-correlation)",
            with_(weight=w.flip(spatial)),
        )
    )
    if len(spatial) == 2 and m.kernel_size[0] == m.kernel_size[1]:
        out.append(
            ("forward.conv.kernel_transposed", "its kernel's height and width swapped", with_(weight=w.transpose(2, 3)))
        )
    if b is not None:
        out.append(("forward.conv.bias_dropped", "without its bias", with_(bias=None)))
    return out


# PyTorch's gate blocks, in the order its packed tensors stack them.
GATES = {nn.LSTM: ("input", "forget", "cell", "output"), nn.GRU: ("reset", "update", "new")}


def _plain_rnn(m: nn.RNNBase) -> bool:
    """One layer, one direction, batch first, no projection: the form the replays below model."""
    return m.num_layers == 1 and not m.bidirectional and m.batch_first and not getattr(m, "proj_size", 0)


def _recurrent_changes(m: nn.RNNBase) -> list[tuple[str, str, Replay]]:
    """An LSTM or GRU whose packed gate blocks a port split in another order (each order that is not
    PyTorch's), one run time-major on a batch-first input, and a GRU with the reset gate applied before
    the hidden weights (Burn's `GruConfig::with_reset_after(false)`; PyTorch has only the reset-after
    form)."""
    gates = GATES[type(m)]
    packed = [
        n for n in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0") if getattr(m, n, None) is not None
    ]
    out: list[tuple[str, str, Replay]] = []
    kind = type(m).__name__.lower()
    for order in itertools.permutations(range(len(gates))):
        if order == tuple(range(len(gates))):
            continue
        changed = copy.deepcopy(m)
        with torch.no_grad():
            for name in packed:
                blocks = getattr(m, name).chunk(len(gates), 0)
                getattr(changed, name).copy_(torch.cat([blocks[i] for i in order], 0))
        names = ", ".join(gates[i] for i in order)
        out.append(
            (
                f"forward.{kind}.gate_order",
                f"its packed gate blocks read as ({names}) where PyTorch stacks ({', '.join(gates)})",
                lambda v, c=changed: c(v)[0],
            )
        )
    # Run time-major on a batch-first input (PyTorch's own default, batch_first=False, carried into
    # Burn's `with_batch_first(false)`): the recurrence runs over the batch, each step a sample.
    out.append(
        (
            f"forward.{kind}.batch_first",
            "run time-major (batch_first false) on a batch-first input: the recurrence runs across the batch",
            lambda v: m(v.transpose(0, 1))[0].transpose(0, 1),
        )
    )
    if isinstance(m, nn.GRU):
        out.append(
            (
                "forward.gru.reset_after",
                "the reset gate applied before the hidden weights (reset_after false)",
                lambda v: _gru_reset_before(m, v),
            )
        )
    return out


def _gru_reset_before(m: nn.GRU, v: torch.Tensor) -> torch.Tensor:
    """A GRU whose new gate is tanh(W_in x + b_in + W_hn (r * h) + b_hn): Burn's reset_after = false."""
    w_ih, w_hh = m.weight_ih_l0.chunk(3, 0), m.weight_hh_l0.chunk(3, 0)
    zeros = torch.zeros(3 * m.hidden_size)
    b_ih = (m.bias_ih_l0 if m.bias else zeros).chunk(3, 0)
    b_hh = (m.bias_hh_l0 if m.bias else zeros).chunk(3, 0)
    h = torch.zeros(v.shape[0], m.hidden_size)
    steps = []
    for t in range(v.shape[1]):
        x = v[:, t]
        r = torch.sigmoid(x @ w_ih[0].T + b_ih[0] + h @ w_hh[0].T + b_hh[0])
        z = torch.sigmoid(x @ w_ih[1].T + b_ih[1] + h @ w_hh[1].T + b_hh[1])
        n = torch.tanh(x @ w_ih[2].T + b_ih[2] + (r * h) @ w_hh[2].T + b_hh[2])
        h = (1 - z) * n + z * h
        steps.append(h)
    return torch.stack(steps, 1)


def _bound(m: nn.Module, call: LayerCall | None) -> dict[str, Any] | None:
    """The call's arguments by parameter name, the input left out; {} without a call, None when they do
    not bind to the module's forward."""
    if call is None:
        return {}
    try:
        bound = inspect.signature(m.forward).bind(call.input, *call.args, **call.kwargs)
    except TypeError:
        return None
    return dict(list(bound.arguments.items())[1:])


def _padding(mask: Any) -> torch.Tensor | None:
    """A key padding mask as bool `[n, T]`, True at a pad: given as bool, or as nn.TransformerEncoder
    hands it to its layers (float, -inf at a pad, 0 elsewhere). None for none or for any other mask (an
    additive float bias), which no replay here models."""
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2:
        return None
    if mask.dtype == torch.bool:
        return mask
    if mask.is_floating_point() and bool(((mask == 0) | (mask == -math.inf)).all()):
        return mask == -math.inf
    return None


def _attention_changes(m: nn.MultiheadAttention, call: LayerCall | None = None) -> list[tuple[str, str, Replay]]:
    """Self-attention (query, key and value the layer's one input, keys perhaps masked by a padding mask)
    with `in_proj_weight`'s blocks split in another order than (query, key, value), or without the
    1/sqrt(head size) scale on the scores. None for another call (cross-attention, an attention mask)."""
    args = _bound(m, call)
    if args is None or args.get("attn_mask") is not None or not m.batch_first:
        return []
    if call is not None and not all(
        isinstance(args.get(k), torch.Tensor) and torch.equal(args[k], call.input) for k in ("key", "value")
    ):
        return []
    given = args.get("key_padding_mask")
    pad = _padding(given)
    if given is not None and pad is None:
        return []
    names = ("query", "key", "value")
    w, b = m.in_proj_weight, m.in_proj_bias
    out: list[tuple[str, str, Replay]] = []
    for order in itertools.permutations(range(3)):
        if order == (0, 1, 2):
            continue
        wo = torch.cat([w.chunk(3, 0)[i] for i in order], 0)
        bo = torch.cat([b.chunk(3, 0)[i] for i in order], 0) if b is not None else None
        got = ", ".join(names[i] for i in order)
        out.append(
            (
                "forward.attention.qkv_order",
                f"in_proj's blocks read as ({got}) where PyTorch stacks (query, key, value)",
                lambda v, wo=wo, bo=bo: _self_attention(m, v, wo, bo, scaled=True, pad=pad),
            )
        )
    out += [
        (
            "forward.attention.no_scale",
            "attention scores not divided by sqrt(head size)",
            lambda v: _self_attention(m, v, w, b, scaled=False, pad=pad),
        ),
        (
            "forward.attention.quiet_softmax",
            QUIET_SOFTMAX,
            lambda v: _self_attention(m, v, w, b, scaled=True, pad=pad, fill=BURN_MASK_FILL, quiet=True),
        ),
    ]
    return out


# nn.TransformerEncoderLayer's code for its activation: its fused kernel takes ReLU (1) or exact GELU (2).
_FUSED_ACTIVATION = {"ReLU": 1, "GELU": 2}


def _encoder_activation(m: nn.TransformerEncoderLayer) -> str | None:
    """The encoder layer's feed-forward activation, as a key of ACTIVATIONS (None for another)."""
    act = m.activation
    if isinstance(act, nn.Module):
        return _own(act)
    return {F.relu: "ReLU", torch.relu: "ReLU", F.gelu: "GELU"}.get(act)  # type: ignore[call-overload]


def _encoder_changes(m: nn.TransformerEncoderLayer, call: LayerCall | None = None) -> list[tuple[str, str, Replay]]:
    """An encoder layer, replayed whole, with one thing changed: its feed-forward activation (Burn's
    TransformerEncoderConfig defaults to GELU, torch to ReLU), its attention's in_proj blocks in another
    order or its scores unscaled, pre-norm and post-norm exchanged (`norm_first`), or its two norms in
    each other's place (Burn's pre-norm layer applies norm_2 first, torch's norm1). Called as the model
    calls it (`call`: its padding mask, say); with a padding mask, also that mask left out or inverted."""
    args = _bound(m, call)
    if args is None:
        return []

    def changed(edit: Callable[[nn.TransformerEncoderLayer], None]) -> Replay:
        mod = copy.deepcopy(m).eval()
        with torch.no_grad():
            edit(mod)
        return lambda v: mod(v, **args)

    out: list[tuple[str, str, Replay]] = []
    own = _encoder_activation(m)
    if own is not None:
        for key in ("ReLU", "GELU", "GELU_tanh"):
            if key == own:
                continue
            what, fn = ACTIVATIONS[key]

            def act(mod: nn.TransformerEncoderLayer, fn: Replay = fn, key: str = key) -> None:
                mod.activation = fn
                mod.activation_relu_or_gelu = _FUSED_ACTIVATION.get(key, 0)

            default = " (Burn's TransformerEncoderConfig default)" if key == "GELU" else ""
            out.append(
                (
                    "forward.encoder.activation",
                    f"the feed-forward activation {what}{default} where the reference applies {ACTIVATIONS[own][0]}",
                    changed(act),
                )
            )
    names = ("query", "key", "value")
    for order in itertools.permutations(range(3)):
        if order == (0, 1, 2):
            continue

        def qkv(mod: nn.TransformerEncoderLayer, order: tuple[int, ...] = order) -> None:
            attn = mod.self_attn
            attn.in_proj_weight.copy_(torch.cat([attn.in_proj_weight.chunk(3, 0)[i] for i in order], 0))
            if attn.in_proj_bias is not None:
                attn.in_proj_bias.copy_(torch.cat([attn.in_proj_bias.chunk(3, 0)[i] for i in order], 0))

        got = ", ".join(names[i] for i in order)
        out.append(
            (
                "forward.attention.qkv_order",
                f"self_attn's in_proj blocks read as ({got}) where PyTorch stacks (query, key, value)",
                changed(qkv),
            )
        )

    def unscaled(mod: nn.TransformerEncoderLayer) -> None:
        # Queries grown by sqrt(head size) cancel the layer's own division: the scores come out unscaled.
        attn = mod.self_attn
        e = attn.embed_dim
        grow = math.sqrt(e // attn.num_heads)
        attn.in_proj_weight[:e].mul_(grow)
        if attn.in_proj_bias is not None:
            attn.in_proj_bias[:e].mul_(grow)

    def flip_norm_first(mod: nn.TransformerEncoderLayer) -> None:
        mod.norm_first = not mod.norm_first

    def swap_norms(mod: nn.TransformerEncoderLayer) -> None:
        one, two = copy.deepcopy(mod.norm1.state_dict()), copy.deepcopy(mod.norm2.state_dict())
        mod.norm1.load_state_dict(two)
        mod.norm2.load_state_dict(one)

    order = "pre-norm (norm_first)" if not m.norm_first else "post-norm"
    out += [
        ("forward.attention.no_scale", "self_attn's scores not divided by sqrt(head size)", changed(unscaled)),
        ("forward.encoder.norm_first", f"{order} where the reference's layer is the other", changed(flip_norm_first)),
    ]
    n1, n2 = m.norm1.state_dict(), m.norm2.state_dict()
    if any(not torch.equal(n1[k], n2[k]) for k in n1):  # equal norms (at initialization): no change to name
        out.append(("forward.encoder.norms_swapped", "norm1 and norm2 in each other's place", changed(swap_norms)))
    return out + _quiet_changes(m, args) + _mask_changes(m, args)


# What a port with Burn's quiet softmax computes, for the candidates of attention and of encoder layers.
QUIET_SOFTMAX = (
    "Burn's quiet softmax in the attention, exp(s) / (1 + sum exp(s)) (quiet_softmax = true in its "
    "MultiHeadAttentionConfig or TransformerEncoderConfig), where torch's attention takes the softmax"
)


def _quiet_changes(m: nn.TransformerEncoderLayer, args: dict[str, Any]) -> list[tuple[str, str, Replay]]:
    """An encoder layer (batch first, called with no mask or a padding mask) replayed with Burn's quiet
    softmax in its attention."""
    given = args.get("src_key_padding_mask")
    pad = _padding(given)
    if (given is not None and pad is None) or args.get("src_mask") is not None or not m.self_attn.batch_first:
        return []
    mod = copy.deepcopy(m).eval()
    return [
        (
            "forward.attention.quiet_softmax",
            QUIET_SOFTMAX,
            lambda v: _encoder_by_hand(mod, v, pad, BURN_MASK_FILL, quiet=True),
        )
    ]


def _mask_changes(m: nn.TransformerEncoderLayer, args: dict[str, Any]) -> list[tuple[str, str, Replay]]:
    """An encoder layer called with a padding mask, replayed with the mask left out (a Burn port that builds
    `TransformerEncoderInput::new(x)` without `.mask_pad(...)`) or inverted (a Hugging Face
    `attention_mask`, 1 at a real token, passed as Burn's `mask_pad`, true at a pad). The inverted mask
    fills the scores as Burn does (-1e4, not -inf): a sequence without pads then masks every key, and Burn
    attends to all of them alike where PyTorch's -inf gives NaN."""
    pad = _padding(args.get("src_key_padding_mask"))
    if pad is None or not bool(pad.any()) or args.get("src_mask") is not None or not m.self_attn.batch_first:
        return []
    mod = copy.deepcopy(m).eval()
    without = {**args, "src_key_padding_mask": None}
    return [
        (
            "forward.attention.mask_ignored",
            "the padding mask not applied: every key attended, pads included",
            lambda v: mod(v, **without),
        ),
        (
            "forward.attention.mask_inverted",
            "the padding mask inverted: the real tokens masked (their scores filled with Burn's -1e4), the pads "
            "attended",
            lambda v: _encoder_by_hand(mod, v, ~pad, BURN_MASK_FILL),
        ),
    ]


# Burn's attention fills a masked score with this (`MhaInput::mask_pad`, `min_float`), PyTorch with -inf:
# the same weights wherever a row keeps one key, a uniform row where it keeps none (burn-nn
# src/modules/attention/mha.rs, docs/burn-0.22.md).
BURN_MASK_FILL = -1.0e4


def _self_attention(
    m: nn.MultiheadAttention,
    v: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None,
    scaled: bool,
    pad: torch.Tensor | None = None,
    fill: float = -math.inf,
    quiet: bool = False,
) -> torch.Tensor:
    """nn.MultiheadAttention's self-attention, batch first, from its parts; `pad` (bool `[n, T]`, True at a
    key to skip) fills those keys' scores with `fill`; `quiet` takes Burn's quiet softmax of the scores."""
    n, t, e = v.shape
    heads = m.num_heads
    q, k, val = F.linear(v, w, b).chunk(3, -1)

    def split(u: torch.Tensor) -> torch.Tensor:
        return u.reshape(n, t, heads, e // heads).transpose(1, 2)

    scores = split(q) @ split(k).transpose(-2, -1)
    if scaled:
        scores = scores / math.sqrt(e // heads)
    if pad is not None:
        scores = scores.masked_fill(pad[:, None, None, :], fill)
    weights = _quiet_softmax(scores) if quiet else scores.softmax(-1)
    ctx = (weights @ split(val)).transpose(1, 2).reshape(n, t, e)
    return m.out_proj(ctx)


def _quiet_softmax(scores: torch.Tensor) -> torch.Tensor:
    """Burn's `quiet_softmax` over the last axis, exp(s) / (1 + sum exp(s)), as burn-tensor 0.22.1 computes
    it (src/tensor/activation/base.rs): shifted by the row's maximum, the 1 entering as exp(-max); a row
    masked whole (maximum -inf) shifts by 0 instead and comes out zeros."""
    top = scores.amax(-1, keepdim=True)
    top = top.masked_fill(top == -math.inf, 0.0)
    e = (scores - top).exp()
    return e / (e.sum(-1, keepdim=True) + (-top).exp())


def _encoder_by_hand(
    m: nn.TransformerEncoderLayer, v: torch.Tensor, pad: torch.Tensor | None, fill: float, quiet: bool = False
) -> torch.Tensor:
    """An encoder layer (batch first, evaluation mode) written out, its attention skipping the keys `pad`
    marks by filling their scores with `fill`, as a port that builds the mask itself computes it; with
    `quiet`, Burn's quiet softmax in its attention."""
    attn = m.self_attn

    def sa(h: torch.Tensor) -> torch.Tensor:
        return _self_attention(
            attn, h, attn.in_proj_weight, attn.in_proj_bias, scaled=True, pad=pad, fill=fill, quiet=quiet
        )

    def ff(h: torch.Tensor) -> torch.Tensor:
        return m.linear2(m.activation(m.linear1(h)))

    if m.norm_first:
        v = v + sa(m.norm1(v))
        return v + ff(m.norm2(v))
    v = m.norm1(v + sa(v))
    return m.norm2(v + ff(v))


def _pool_changes(m: nn.Module) -> list[tuple[str, str, Replay]]:
    """A pooling layer with one thing changed: the padding counted in an average's divisor or not, the
    padding dropped (Burn's Valid default), the output size rounded the other way (ceil_mode), or the
    other kind of pooling."""
    dims = 1 if isinstance(m, (nn.MaxPool1d, nn.AvgPool1d)) else 2
    avg = {1: F.avg_pool1d, 2: F.avg_pool2d}[dims]
    mx = {1: F.max_pool1d, 2: F.max_pool2d}[dims]
    k, s, p, ceil = m.kernel_size, m.stride, m.padding, bool(m.ceil_mode)
    padded = any(p) if isinstance(p, tuple) else bool(p)
    out: list[tuple[str, str, Replay]] = []
    if isinstance(m, (nn.AvgPool1d, nn.AvgPool2d)):
        include = bool(m.count_include_pad)
        if padded:
            out.append(
                (
                    "forward.pool.count_include_pad",
                    f"average pooling with count_include_pad {not include} (torch's is {include})",
                    lambda v: avg(v, k, s, p, ceil, not include),
                )
            )
            out.append(
                ("forward.pool.padding", "no padding (Burn's Valid default)", lambda v: avg(v, k, s, 0, ceil, include))
            )
        out.append(("forward.pool.ceil_mode", f"ceil_mode {not ceil}", lambda v: avg(v, k, s, p, not ceil, include)))
        out.append(("forward.pool.kind", "max pooling instead of average pooling", lambda v: mx(v, k, s, p, 1, ceil)))
    else:
        d = m.dilation
        if padded:
            out.append(("forward.pool.padding", "no padding (Burn's Valid default)", lambda v: mx(v, k, s, 0, d, ceil)))
        out.append(("forward.pool.ceil_mode", f"ceil_mode {not ceil}", lambda v: mx(v, k, s, p, d, not ceil)))
        out.append(("forward.pool.kind", "average pooling instead of max pooling", lambda v: avg(v, k, s, p, ceil)))
    return out


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
        # The next layer does not take this layer's input, or not alone (attention wants its key and value).
        except (RuntimeError, ValueError, TypeError):
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


def _relabeled(
    reference: Reference,
    params: Params,
    x: np.ndarray,
    got: dict[str, np.ndarray],
    layer: str,
    later: list[str],
    tol: Tolerance,
) -> list[Candidate]:
    """`layer` and a later layer of the same shape reported under each other's names: the reference's
    own outputs, relabeled, reproduce every layer the port reports from `layer` on."""
    plain = reference.forward(params, x)
    if layer not in plain:
        return []
    return [
        Candidate(
            "forward.names_swapped",
            f"{layer} and {other} reported under each other's names",
            lambda _, r={**plain, layer: plain[other], other: plain[layer]}: _worst(r, got, [layer, *later], tol),
        )
        for other in later
        if other in plain and plain[other].shape == plain[layer].shape
    ]


def _functional_activation(
    reference: Reference,
    params: Params,
    x: np.ndarray,
    layer: str,
    module: nn.Module,
    a: torch.Tensor,
    got: np.ndarray,
    tol: Tolerance,
    downstream: Downstream,
) -> list[Candidate]:
    """Another activation where the reference applies one as a function between two layers (`F.relu`
    inside `nn.TransformerEncoderLayer`, say): no module records it, so the first layer after it is the
    first to differ. Tried when `layer`'s input is a known activation of the previous layer's output; each
    other activation replaces it, and `layer` runs on the result."""
    order = reference.layer_names
    i = order.index(layer)
    if i == 0:
        return []
    prev = order[i - 1]
    before = reference.forward(params, x).get(prev)
    if before is None or before.size != a.numel() or not a.is_floating_point():
        return []
    p = torch.from_numpy(before).reshape(a.shape)
    if torch.equal(p, a):
        return []  # nothing between the two layers
    own = next((k for k, (_, f) in ACTIVATIONS.items() if torch.allclose(f(p), a, rtol=1e-6, atol=1e-7)), None)
    if own is None:
        return []
    mod = module.eval()

    def err(replay: torch.Tensor) -> float:
        out = replay.numpy()
        return ratio(out.reshape(got.shape), got, tol) if out.size == got.size else math.inf

    found = []
    for key, (what, f) in ACTIVATIONS.items():
        if key == own:
            continue
        with torch.no_grad():
            replay = mod(f(p))
        found.append(
            Candidate(
                f"forward.activation.{key.lower()}",
                f"the activation between {prev} and {layer} (a function, not a module): {what} where the "
                f"reference applies {ACTIVATIONS[own][0]}",
                lambda _, r=replay: err(r),
                confirm=lambda _, r=replay: downstream({layer: lambda _a, r=r: r}),
            )
        )
    return found


def _downstream(
    reference: Reference, params: Params, x: np.ndarray, got: dict[str, np.ndarray], layer: str, tol: Tolerance
) -> tuple[Downstream, list[str]]:
    """The worst tolerance ratio, over every layer the port reports after `layer`, of the reference run
    with some layers' outputs replaced (`layer`'s, and perhaps later ones'); and those layers' names."""
    order = reference.layer_names
    later = [n for n in order[order.index(layer) + 1 :] if n in got]

    def judge(replays: Mapping[str, Replay]) -> float:
        if not later:
            return 0.0
        try:
            outs = reference.forward(params, x, replays=replays)
        except (RuntimeError, ValueError):  # a change a later layer's input cannot take
            return math.inf
        return _worst(outs, got, later, tol)

    return judge, later


def _worst(outs: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray], names: list[str], tol: Tolerance) -> float:
    """The worst tolerance ratio of the port's outputs of `names` against `outs` (inf where one is missing
    or has another size)."""
    worst = 0.0
    for name in names:
        r, g = outs.get(name), np.asarray(got[name], dtype=np.float32)
        if r is None or r.size != g.size:
            return math.inf
        worst = max(worst, ratio(r.reshape(g.shape), g, tol))
    return worst


def _kin(
    reference: Reference, params: Params, calls: Mapping[str, LayerCall], layer: str
) -> list[tuple[str, nn.Module, LayerCall]]:
    """The layers after `layer` of its kind with its declared settings: (name, module, reference call)."""
    by_name = {lay.name: lay for lay in reference.layers}
    own = by_name[layer]
    later = reference.layer_names[reference.layer_names.index(layer) + 1 :]
    return [
        (n, reference.module(params, n), calls[n])
        for n in later
        if n in calls and by_name[n].kind == own.kind and by_name[n].hyper == own.hyper
    ]


def diagnose(
    reference: Reference, params: Params, x: np.ndarray, got: dict[str, np.ndarray], layer: str, tol: Tolerance
) -> list[Cause]:
    """Causes that reproduce the port's output of `layer`, the first divergent one (`got`: every layer's),
    and of every layer it reports after it."""
    calls = reference.layer_calls(params, x)
    if layer not in calls:
        return []
    module = reference.module(params, layer)
    a = calls[layer].input
    out = np.asarray(got[layer], dtype=np.float32)
    if isinstance(module, (nn.Dropout, nn.Dropout1d, nn.AlphaDropout)) and a.numel() == out.size:
        found = _dropout(module, a.numpy().reshape(out.shape), out, tol, layer)
        if found:
            return found
    downstream, later = _downstream(reference, params, x, got, layer, tol)
    after = {0: "", 1: " and the layer after it"}.get(len(later), f" and the {len(later)} layers after it")
    evidence = f"{out.size} outputs of {layer}{after}"
    found = explain(
        [
            *_candidates(module, a, out, tol, layer, downstream, _kin(reference, params, calls, layer), calls[layer]),
            *_relabeled(reference, params, x, got, layer, later, tol),
        ],
        evidence,
    )
    if found:
        return found
    found = explain(_functional_activation(reference, params, x, layer, module, a, out, tol, downstream), evidence)
    if found:
        return found
    # Two changes' worth of evidence (this layer's and the next one's outputs): tried only when no change
    # to this layer alone reproduces it.
    return explain(_swapped(reference, params, a, got, layer, tol), f"the outputs of {layer} and the layer after it")

"""Counterfactual diagnosis for sequence models (harness/diagnosis/layers.py): the packed blocks of an LSTM's
and a GRU's gates and of attention's in_proj read in another order, a GRU with the reset gate before the
hidden weights (Burn's reset_after false), attention without its scale. On tests/fixtures/sequence_model.py,
token ids as `[T]` samples. Each port's numbers are built here from torch modules with the change, every
later layer computed from the changed one; each test asserts the cause named, and the controls that the
faithful numbers and an unrelated change name none."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.config import RunConfig, load_model_settings
from harness.diagnosis import layers
from harness.reference.reference import Reference
from harness.tolerances import tolerance
from tests.test_diagnosis_models import port_outputs

FIXTURES = Path(__file__).resolve().parent / "fixtures"
T = 7


def _reference(builder: str) -> Reference:
    """A reference from tests/fixtures over sequences of T token ids, three classes."""
    cfg = RunConfig(
        reference=builder, reference_dir=FIXTURES, task="multiclass", loss="CrossEntropyLoss", sample_shape=(T,)
    )
    return Reference(cfg, T, 3)


@pytest.fixture(scope="module")
def ref() -> Reference:
    return _reference("sequence_model:build")


@pytest.fixture(scope="module")
def params(ref: Reference) -> dict[str, np.ndarray]:
    return ref.init_params(0)


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 10, size=(64, T)).astype(np.float32)


def _causes(ref: Reference, params: dict, x: np.ndarray, layer: str, got: torch.Tensor) -> list[tuple[str, str]]:
    outputs = port_outputs(ref, params, x, layer, got.detach().numpy())
    found = layers.diagnose(ref, params, x, outputs, layer, tolerance("forward", {}))
    return [(c.cause, c.description) for c in found]


def _module(ref: Reference, params: dict, name: str) -> torch.nn.Module:
    return copy.deepcopy(ref.module(params, name)).eval()


def test_the_reference_reads_a_recurrent_layers_sequence_output(ref: Reference, params: dict, x: np.ndarray) -> None:
    assert ref.layer_names == ["emb", "attn", "lstm", "gru", "head"]
    assert ref.layer_shapes["lstm"] == (T, 6) and ref.layer_shapes["attn"] == (T, 8)
    out = ref.forward(params, x)
    assert out["gru"].shape == (64, T * 5)


def test_lstm_gates_in_another_order(ref: Reference, params: dict, x: np.ndarray) -> None:
    """A port that took the blocks as (input, forget, output, cell): ONNX's order is (i, o, f, c)."""
    m = _module(ref, params, "lstm")
    a = ref.layer_inputs(params, x)["lstm"]
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            i, f, g, o = getattr(m, name).chunk(4, 0)
            getattr(m, name).copy_(torch.cat([i, f, o, g], 0))
        got = m(a)[0]
    causes = _causes(ref, params, x, "lstm", got)
    assert [c for c, _ in causes] == ["forward.lstm.gate_order"]
    assert "read as (input, forget, output, cell)" in causes[0][1]


def test_gru_with_the_reset_gate_before_the_hidden_weights(ref: Reference, params: dict, x: np.ndarray) -> None:
    m = _module(ref, params, "gru")
    a = ref.layer_inputs(params, x)["gru"]
    w_ih, w_hh = m.weight_ih_l0.chunk(3, 0), m.weight_hh_l0.chunk(3, 0)
    b_ih, b_hh = m.bias_ih_l0.chunk(3, 0), m.bias_hh_l0.chunk(3, 0)
    h = torch.zeros(len(a), 5)
    steps = []
    with torch.no_grad():
        for t in range(T):
            xt = a[:, t]
            r = torch.sigmoid(F.linear(xt, w_ih[0], b_ih[0]) + F.linear(h, w_hh[0], b_hh[0]))
            z = torch.sigmoid(F.linear(xt, w_ih[1], b_ih[1]) + F.linear(h, w_hh[1], b_hh[1]))
            n = torch.tanh(F.linear(xt, w_ih[2], b_ih[2]) + F.linear(r * h, w_hh[2], b_hh[2]))
            h = (1 - z) * n + z * h
            steps.append(h)
    got = torch.stack(steps, 1)
    assert [c for c, _ in _causes(ref, params, x, "gru", got)] == ["forward.gru.reset_after"]


def test_gru_gates_in_another_order(ref: Reference, params: dict, x: np.ndarray) -> None:
    m = _module(ref, params, "gru")
    a = ref.layer_inputs(params, x)["gru"]
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            r, z, n = getattr(m, name).chunk(3, 0)
            getattr(m, name).copy_(torch.cat([z, r, n], 0))  # (update, reset, new): Burn's field order
        got = m(a)[0]
    causes = _causes(ref, params, x, "gru", got)
    assert [c for c, _ in causes] == ["forward.gru.gate_order"]
    assert "read as (update, reset, new)" in causes[0][1]


def test_attention_with_query_key_value_split_in_another_order(ref: Reference, params: dict, x: np.ndarray) -> None:
    m = _module(ref, params, "attn")
    a = ref.layer_inputs(params, x)["attn"]
    with torch.no_grad():
        q, k, v = m.in_proj_weight.chunk(3, 0)
        m.in_proj_weight.copy_(torch.cat([k, q, v], 0))
        bq, bk, bv = m.in_proj_bias.chunk(3, 0)
        m.in_proj_bias.copy_(torch.cat([bk, bq, bv], 0))
        got = m(a, a, a, need_weights=False)[0]
    causes = _causes(ref, params, x, "attn", got)
    assert [c for c, _ in causes] == ["forward.attention.qkv_order"]
    assert "read as (key, query, value)" in causes[0][1]


def test_attention_without_its_scale(ref: Reference, params: dict, x: np.ndarray) -> None:
    """Scores scaled by sqrt(head size) twice over: the port's queries multiplied back by it."""
    m = _module(ref, params, "attn")
    a = ref.layer_inputs(params, x)["attn"]
    with torch.no_grad():
        m.in_proj_weight[:8] *= math.sqrt(4)
        m.in_proj_bias[:8] *= math.sqrt(4)
        got = m(a, a, a, need_weights=False)[0]
    assert [c for c, _ in _causes(ref, params, x, "attn", got)] == ["forward.attention.no_scale"]


def _with_zero_key(m: torch.nn.Module) -> torch.nn.Module:
    """The attention (or the encoder layer around it) with torch's `add_zero_attn`: one more key and value,
    both zero, after the projections. Its score is 0 and its value nothing, so the weights of the real keys
    are exp(s) / (1 + sum exp(s)): Burn's quiet softmax, computed by torch's own attention."""
    (m.self_attn if isinstance(m, torch.nn.TransformerEncoderLayer) else m).add_zero_attn = True
    return m


def _slow_path(m: torch.nn.Module) -> Callable[..., torch.Tensor]:
    """`m` called with autograd on, so that torch takes its composite path (its fused inference kernels
    ignore `add_zero_attn`)."""

    def run(*args: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            out = m(*(a.clone().requires_grad_() for a in args))
        return (out[0] if isinstance(out, tuple) else out).detach()

    return run


def test_attention_with_burns_quiet_softmax(ref: Reference, params: dict, x: np.ndarray) -> None:
    a = ref.layer_inputs(params, x)["attn"]
    got = _slow_path(_with_zero_key(_module(ref, params, "attn")))(a, a, a)
    causes = _causes(ref, params, x, "attn", got)
    assert [c for c, _ in causes] == ["forward.attention.quiet_softmax"]
    assert "exp(s) / (1 + sum exp(s))" in causes[0][1]
    # Control: an attention damped otherwise (its output projection times 0.9) names no cause, and the
    # candidates that call the layer alone (two layers in the other order) do not stumble on attention.
    m = _module(ref, params, "attn")
    with torch.no_grad():
        m.out_proj.weight.mul_(0.9)
        damped = m(a, a, a, need_weights=False)[0]
    assert _causes(ref, params, x, "attn", damped) == []


def test_faithful_and_unrelated_recurrent_numbers_name_no_cause(ref: Reference, params: dict, x: np.ndarray) -> None:
    m = _module(ref, params, "lstm")
    a = ref.layer_inputs(params, x)["lstm"]
    with torch.no_grad():
        m.weight_hh_l0.mul_(1.05)  # another model, no slip of order
        got = m(a)[0]
    assert _causes(ref, params, x, "lstm", got) == []


@pytest.fixture(scope="module")
def ffn() -> Reference:
    return _reference("ffn_model:build")


def test_a_functional_activation_between_two_layers_replaced(ffn: Reference, x: np.ndarray) -> None:
    """`fc2(F.relu(fc1(h)))`: the activation is a function no hook sees, so the first layer to differ is fc2,
    and the cause named is the activation between the two layers."""
    params = ffn.init_params(0)
    before = torch.from_numpy(ffn.forward(params, x)["fc1"]).reshape(len(x), T, 32)
    fc2 = _module(ffn, params, "fc2")
    with torch.no_grad():
        got, control = fc2(F.gelu(before)), fc2(torch.relu(before) * 1.01)
    causes = _causes(ffn, params, x, "fc2", got)
    assert [c for c, _ in causes] == ["forward.activation.gelu"]
    assert "the activation between fc1 and fc2 (a function, not a module)" in causes[0][1]
    assert "exact GELU (erf) where the reference applies ReLU" in causes[0][1]
    # Control: ReLU's own output, scaled, is no activation's.
    assert _causes(ffn, params, x, "fc2", control) == []


@pytest.fixture(scope="module")
def encoder() -> Reference:
    return _reference("encoder_model:build")


def _encoder_by_hand(m: torch.nn.TransformerEncoderLayer, v: torch.Tensor, scale: bool = True) -> torch.Tensor:
    """PyTorch's post-norm encoder layer in evaluation, written out: what a port that writes its own
    attention computes (with or without the 1/sqrt(head size) scale)."""
    attn, (n, t, e) = m.self_attn, v.shape
    heads = attn.num_heads
    q, k, val = F.linear(v, attn.in_proj_weight, attn.in_proj_bias).chunk(3, -1)

    def split(u: torch.Tensor) -> torch.Tensor:
        return u.reshape(n, t, heads, e // heads).transpose(1, 2)

    scores = split(q) @ split(k).transpose(-2, -1) / (math.sqrt(e // heads) if scale else 1.0)
    sa = attn.out_proj((scores.softmax(-1) @ split(val)).transpose(1, 2).reshape(n, t, e))
    h = m.norm1(v + sa)
    return m.norm2(h + m.linear2(torch.relu(m.linear1(h))))


def _encoder_port(encoder: Reference, params: dict, x: np.ndarray, edit: Callable[[torch.nn.Module], Any]) -> Any:
    """The port's output of `enc`: the reference's layer changed in place by `edit`, or the replay `edit`
    returns, on the reference's own input to it."""
    m = _module(encoder, params, "enc")
    a = encoder.layer_inputs(params, x)["enc"]
    with torch.no_grad():
        return (edit(m) or m)(a)


def test_the_encoder_layer_is_one_layer_with_its_declared_settings(encoder: Reference, x: np.ndarray) -> None:
    assert encoder.layer_names == ["emb", "enc", "head"]
    hyper = encoder.hyperparameters()
    assert {k: hyper[k] for k in hyper if k.startswith("enc.")} == {
        "enc.num_heads": 2,
        "enc.dim_feedforward": 32,
        "enc.dropout": 0.1,
        "enc.norm_first": False,
        "enc.layer_norm_eps": 1e-5,
    }
    params = encoder.init_params(0)
    m = _module(encoder, params, "enc")
    a = encoder.layer_inputs(params, x)["enc"]
    # The hand-written layer the tests below build on is torch's own, within float32 rounding.
    with torch.no_grad():
        np.testing.assert_allclose(_encoder_by_hand(m, a).numpy(), m(a).numpy(), rtol=1e-5, atol=1e-5)


def _gelu(m: torch.nn.TransformerEncoderLayer) -> None:
    m.activation, m.activation_relu_or_gelu = F.gelu, 2


def _key_query_value(m: torch.nn.TransformerEncoderLayer) -> None:
    for p in (m.self_attn.in_proj_weight, m.self_attn.in_proj_bias):
        q, k, v = p.chunk(3, 0)
        p.copy_(torch.cat([k, q, v], 0))


def _pre_norm(m: torch.nn.TransformerEncoderLayer) -> None:
    m.norm_first = True


@pytest.mark.parametrize(
    ("edit", "cause", "says"),
    [
        (
            _gelu,
            "forward.encoder.activation",
            "exact GELU (erf) (Burn's TransformerEncoderConfig default) where the reference applies ReLU",
        ),
        (_key_query_value, "forward.attention.qkv_order", "in_proj blocks read as (key, query, value)"),
        (
            lambda m: lambda v: _encoder_by_hand(m, v, scale=False),
            "forward.attention.no_scale",
            "scores not divided by sqrt(head size)",
        ),
        (_pre_norm, "forward.encoder.norm_first", "pre-norm (norm_first) where the reference's layer is the other"),
        (
            lambda m: _slow_path(_with_zero_key(m)),
            "forward.attention.quiet_softmax",
            "Burn's quiet softmax in the attention, exp(s) / (1 + sum exp(s))",
        ),
    ],
    ids=["gelu", "qkv-order", "no-scale", "norm-first", "quiet-softmax"],
)
def test_an_encoder_layers_slip_is_named(
    encoder: Reference, x: np.ndarray, edit: Callable[[torch.nn.Module], Any], cause: str, says: str
) -> None:
    params = encoder.init_params(0)
    causes = _causes(encoder, params, x, "enc", _encoder_port(encoder, params, x, edit))
    assert [c for c, _ in causes] == [cause]
    assert says in causes[0][1]


def test_faithful_and_unrelated_encoder_numbers_name_no_cause(encoder: Reference, x: np.ndarray) -> None:
    params = encoder.init_params(0)
    assert _causes(encoder, params, x, "enc", _encoder_port(encoder, params, x, lambda m: None)) == []

    def other(m: torch.nn.TransformerEncoderLayer) -> None:
        m.linear2.weight.mul_(1.05)  # another model, none of the slips

    assert _causes(encoder, params, x, "enc", _encoder_port(encoder, params, x, other)) == []


def test_an_encoder_layers_norms_in_each_others_place_are_named_once_they_differ(
    encoder: Reference, x: np.ndarray
) -> None:
    """A pre-norm Burn layer applies norm_2 first where torch applies norm1; a port that paired them by name
    has them swapped. At initialization both are (1, 0) and nothing shows; trained, they differ."""
    params = dict(encoder.init_params(0))
    rng = np.random.default_rng(1)
    for k in ("enc.norm1.weight", "enc.norm1.bias", "enc.norm2.weight", "enc.norm2.bias"):
        params[k] = (params[k] + rng.uniform(-0.3, 0.3, params[k].shape)).astype(np.float32)

    def swapped(m: torch.nn.TransformerEncoderLayer) -> None:
        one = {k: v.clone() for k, v in m.norm1.state_dict().items()}
        m.norm1.load_state_dict(m.norm2.state_dict())
        m.norm2.load_state_dict(one)

    causes = _causes(encoder, params, x, "enc", _encoder_port(encoder, params, x, swapped))
    assert [c for c, _ in causes] == ["forward.encoder.norms_swapped"]


@pytest.mark.parametrize("both", [True, False], ids=["every-layer", "first-layer-only"])
def test_a_slip_in_every_layer_of_a_stack_is_named_for_all_of_them(both: bool) -> None:
    """Burn's TransformerEncoderConfig builds every layer from one config, so its GELU default hits both
    layers of examples/transformer's encoder; a slip in the first layer alone is named for that one."""
    ref, params, x = _padded_transformer()
    model = ref.build(params).eval()
    for i, layer in enumerate(model.enc.layers):
        if i == 0 or both:
            _gelu(layer)
    found = layers.diagnose(ref, params, x, _layer_outputs(ref, model, x), "enc.layers.0", tolerance("forward", {}))
    assert [c.cause for c in found] == ["forward.encoder.activation"]
    every = "every layer of its kind (enc.layers.0, enc.layers.1): the feed-forward activation exact GELU"
    assert found[0].description.startswith(every) == both, found[0].description


@pytest.fixture(scope="module")
def conv1d() -> Reference:
    return _reference("conv1d_model:build")


@pytest.mark.parametrize(
    ("change", "cause", "says"),
    [
        ({"padding": 0}, "forward.conv.padding", "no padding (Burn's Valid default) where torch pads (1,)"),
        ({"flip": True}, "forward.conv.kernel_flipped", "its kernel flipped (true convolution"),
    ],
    ids=["valid-padding", "flipped-kernel"],
)
def test_a_conv1d_over_a_sequence_slip_is_named(
    conv1d: Reference, x: np.ndarray, change: dict, cause: str, says: str
) -> None:
    """A Conv1d over token embeddings: Burn's Conv1dConfig pads nothing by default (the port's output is
    then two steps shorter), and a kernel loaded reversed computes a true convolution."""
    params = conv1d.init_params(0)
    m = _module(conv1d, params, "conv")
    a = conv1d.layer_inputs(params, x)["conv"]
    w = m.weight.flip(2) if change.get("flip") else m.weight
    with torch.no_grad():
        got = F.conv1d(a, w, m.bias, padding=change.get("padding", 1))
    causes = _causes(conv1d, params, x, "conv", got)
    assert [c for c, _ in causes] == [cause]
    assert says in causes[0][1]


def test_an_unrelated_conv1d_change_names_no_cause(conv1d: Reference, x: np.ndarray) -> None:
    params = conv1d.init_params(0)
    m = _module(conv1d, params, "conv")
    a = conv1d.layer_inputs(params, x)["conv"]
    with torch.no_grad():
        got = F.conv1d(a, m.weight * 1.02, m.bias, padding=1)
    assert _causes(conv1d, params, x, "conv", got) == []


def _padded_transformer() -> tuple[Reference, dict, np.ndarray]:
    """examples/transformer's model (0 pads a sequence at its end, the encoder skips pads) on sequences of
    3 to 8 tokens, a third of them without a pad."""
    cfg = RunConfig(**load_model_settings(FIXTURES.parent.parent / "examples/transformer/harness.toml"))
    ref = Reference(cfg, 8, 2)
    rng = np.random.default_rng(3)
    x = rng.integers(1, 10, size=(90, 8))
    lengths = np.concatenate([np.full(30, 8), rng.integers(3, 8, size=60)])
    x[np.arange(8) >= lengths[:, None]] = 0
    return ref, ref.init_params(0), x.astype(np.float32)


def _masked_layer_by_hand(
    m: torch.nn.TransformerEncoderLayer, v: torch.Tensor, skip: torch.Tensor, fill: float
) -> torch.Tensor:
    """A post-norm encoder layer written out, the keys `skip` marks given the score `fill`: Burn's
    `mask_fill` with its -1e4, or PyTorch's -inf."""
    attn, (n, t, e) = m.self_attn, v.shape
    heads = attn.num_heads
    q, k, val = F.linear(v, attn.in_proj_weight, attn.in_proj_bias).chunk(3, -1)

    def split(u: torch.Tensor) -> torch.Tensor:
        return u.reshape(n, t, heads, e // heads).transpose(1, 2)

    scores = (split(q) @ split(k).transpose(-2, -1) / math.sqrt(e // heads)).masked_fill(skip[:, None, None, :], fill)
    sa = attn.out_proj((scores.softmax(-1) @ split(val)).transpose(1, 2).reshape(n, t, e))
    h = m.norm1(v + sa)
    return m.norm2(h + m.linear2(torch.relu(m.linear1(h))))


def _masked_port(ref: Reference, params: dict, x: np.ndarray, layer_out: Callable[..., torch.Tensor]) -> dict:
    """Every layer's output of a port whose encoder layers compute `layer_out(layer, input, pad)` (pad: True
    at a pad token), the rest (embedding, the pooled head over real tokens) the reference's own."""
    model = ref.build(params).eval()
    pad = torch.from_numpy(x == 0)
    for layer in model.enc.layers:
        layer.register_forward_hook(lambda m, i, _o: layer_out(m, i[0], pad))
    return _layer_outputs(ref, model, x)


def _layer_outputs(ref: Reference, model: torch.nn.Module, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every reference layer's output of `model` (the reference's, changed) on x, as a port reports them."""
    outs: dict[str, np.ndarray] = {}

    def record(name: str, o: torch.Tensor) -> None:
        outs.setdefault(name, o.detach().numpy().reshape(len(x), -1).copy())

    hooks = [
        m.register_forward_hook(lambda _m, _i, o, n=n: record(n, o))
        for n, m in model.named_modules()
        if n in ref.layer_names
    ]
    with torch.no_grad():
        model(ref.batch(x))
    for h in hooks:
        h.remove()
    return outs


@pytest.mark.parametrize(
    ("layer_out", "cause", "says"),
    [
        # The layer's own forward without a mask (its __call__ would run this hook again).
        (
            lambda m, v, pad: type(m).forward(m, v),
            "forward.attention.mask_ignored",
            "the padding mask not applied",
        ),
        (
            lambda m, v, pad: _masked_layer_by_hand(m, v, ~pad, -1.0e4),
            "forward.attention.mask_inverted",
            "the padding mask inverted: the real tokens masked (their scores filled with Burn's -1e4)",
        ),
    ],
    ids=["ignored", "inverted"],
)
def test_a_padding_mask_left_out_or_inverted_is_named_for_every_layer(
    layer_out: Callable[..., torch.Tensor], cause: str, says: str
) -> None:
    """A Burn port that builds `TransformerEncoderInput` without `.mask_pad(...)`, or passes a Hugging Face
    attention mask (1 = keep) as `mask_pad` (true = pad), does so for every layer of its encoder."""
    ref, params, x = _padded_transformer()
    outs = _masked_port(ref, params, x, layer_out)
    found = layers.diagnose(ref, params, x, outs, "enc.layers.0", tolerance("forward", {}))
    assert [c.cause for c in found] == [cause]
    assert found[0].description.startswith(f"every layer of its kind (enc.layers.0, enc.layers.1): {says}")


def test_padding_mask_controls_name_no_cause() -> None:
    """The faithful masking, written with Burn's -1e4, is the reference's (the fill matters only where every
    key is masked); an inverted mask filled with PyTorch's -inf instead is not Burn's (its sequences without
    a pad have every key masked: NaN where Burn attends to all alike), and a mask one token short is neither
    change: no cause for any of them."""
    ref, params, x = _padded_transformer()
    tol = tolerance("forward", {})
    faithful = _masked_port(ref, params, x, lambda m, v, pad: _masked_layer_by_hand(m, v, pad, -1.0e4))
    reference = ref.forward(params, x)
    np.testing.assert_allclose(faithful["enc.layers.1"], reference["enc.layers.1"], rtol=1e-4, atol=1e-5)
    assert layers.diagnose(ref, params, x, faithful, "enc.layers.0", tol) == []
    torch_fill = _masked_port(ref, params, x, lambda m, v, pad: _masked_layer_by_hand(m, v, ~pad, -math.inf))
    assert np.isnan(torch_fill["enc.layers.0"]).any()
    assert layers.diagnose(ref, params, x, torch_fill, "enc.layers.0", tol) == []

    def short(m: torch.nn.TransformerEncoderLayer, v: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        one_less = pad.clone()
        one_less[:, :-1] |= pad[:, 1:]  # the last real token before the pads masked too
        return _masked_layer_by_hand(m, v, one_less, -1.0e4)

    assert [
        c.cause for c in layers.diagnose(ref, params, x, _masked_port(ref, params, x, short), "enc.layers.0", tol)
    ] == []

"""Counterfactual diagnosis for models other than the classifier (harness/diagnosis/layers.py, criteria.py,
buffers.py, steps.py), on the digits reference. Each port's numbers are built here with torch and numpy
from a concrete change, not with the replays; each test asserts the cause the diagnosis names (and the
fitted value), and one control per catalogue asserts that an unrelated change is not explained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.config import RunConfig, load_model_settings
from harness.diagnosis import buffers, criteria, layers, steps
from harness.diagnosis.loss import Case as LossCase
from harness.diagnosis.optimizer import Case as StepCase
from harness.reference.reference import Reference
from harness.tolerances import tolerance

DIGITS = Path(__file__).resolve().parent.parent / "examples" / "digits" / "harness.toml"


@pytest.fixture(scope="module")
def ref() -> Reference:
    return Reference(RunConfig(**load_model_settings(DIGITS)), 64, 10)


@pytest.fixture(scope="module")
def params(ref: Reference) -> dict[str, np.ndarray]:
    return ref.init_params(0)


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(360, 64)).astype(np.float32)


def _inputs(ref: Reference, params: dict, x: np.ndarray) -> dict[str, torch.Tensor]:
    return ref.layer_inputs(params, x)


def port_outputs(ref: Reference, params: dict, x: np.ndarray, layer: str, got: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's output of a port whose `layer` gives `got`: the reference's model with that output put
    in its place by a forward hook, so each layer after it computes from it, as in the port."""
    model = ref.build(params).eval()
    mods = dict(model.named_modules())
    out: dict[str, np.ndarray] = {}
    changed = torch.from_numpy(np.ascontiguousarray(got, dtype=np.float32))

    def replace(o: torch.Tensor | tuple) -> torch.Tensor | tuple:
        # A recurrent layer or an attention returns a tuple: its first result is the one changed.
        main = o[0] if isinstance(o, tuple) else o
        # An output of another size (no padding) comes in its own shape.
        new = changed.reshape(main.shape) if changed.numel() == main.numel() else changed
        return (new, *o[1:]) if isinstance(o, tuple) else new

    hooks = [mods[layer].register_forward_hook(lambda _m, _i, o: replace(o))]

    def record(name: str, o: torch.Tensor | tuple) -> None:  # returns None: the output stays
        main = o[0] if isinstance(o, tuple) else o
        out.setdefault(name, main.detach().numpy().reshape(len(x), -1).copy())

    for name in ref.layer_names:
        hooks.append(mods[name].register_forward_hook(lambda _m, _i, o, name=name: record(name, o)))
    try:
        with torch.no_grad():
            model(torch.from_numpy(x).reshape(len(x), *ref.sample_shape))
    finally:
        for h in hooks:
            h.remove()
    return out


def _forward(ref: Reference, params: dict, x: np.ndarray, layer: str, got: np.ndarray | dict) -> list:
    """The diagnosis of `layer` with the port's output of it (every later layer computed from it), or
    every layer's outputs (a dict)."""
    outputs = got if isinstance(got, dict) else port_outputs(ref, params, x, layer, got)
    return layers.diagnose(ref, params, x, outputs, layer, tolerance("forward", {}))


def test_gelu_tanh_approximation(ref: Reference, params: dict, x: np.ndarray) -> None:
    a = _inputs(ref, params, x)["act1"].numpy().astype(np.float64)
    got = 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a**3)))
    causes = _forward(ref, params, x, "act1", got.astype(np.float32))
    assert causes[0].cause == "forward.activation.gelu_tanh"


def test_relu_in_place_of_gelu(ref: Reference, params: dict, x: np.ndarray) -> None:
    a = _inputs(ref, params, x)["act1"].numpy()
    assert _forward(ref, params, x, "act1", np.maximum(a, 0))[0].cause == "forward.activation.relu"


def test_leaky_relu_slope_is_fitted(ref: Reference, params: dict, x: np.ndarray) -> None:
    a = _inputs(ref, params, x)["act2"].numpy()
    causes = _forward(ref, params, x, "act2", np.where(a > 0, a, np.float32(0.02) * a))
    assert causes[0].cause == "forward.activation.leaky_relu"
    assert causes[0].parameters["negative_slope"] == pytest.approx(0.02, rel=1e-3)


def test_layernorm_epsilon_is_fitted(ref: Reference, params: dict, x: np.ndarray) -> None:
    h = _inputs(ref, params, x)["norm1"].numpy().astype(np.float64)
    got = (h - h.mean(1, keepdims=True)) / np.sqrt(h.var(1, keepdims=True) + 1e-3)
    got = got * params["norm1.weight"] + params["norm1.bias"]
    causes = _forward(ref, params, x, "norm1", got.astype(np.float32))
    assert causes[0].cause == "forward.layernorm.eps"
    assert causes[0].parameters["eps"] == pytest.approx(1e-3, rel=0.05)


def test_batchnorm_with_batch_statistics_at_evaluation(ref: Reference, params: dict, x: np.ndarray) -> None:
    z = _inputs(ref, params, x)["bn"].numpy().astype(np.float64)
    got = (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5) * params["bn.weight"] + params["bn.bias"]
    causes = _forward(ref, params, x, "bn", got.astype(np.float32))
    assert causes[0].cause == "forward.batchnorm.batch_statistics"


def test_dropout_active_at_evaluation(ref: Reference, params: dict, x: np.ndarray) -> None:
    a = _inputs(ref, params, x)["drop"].numpy()
    keep = np.random.default_rng(5).random(a.shape) >= 0.1
    got = np.where(keep, a / np.float32(0.9), 0).astype(np.float32)
    causes = _forward(ref, params, x, "drop", got)
    assert [c.cause for c in causes] == ["forward.dropout_at_eval"]
    # Control: half the outputs zeroed is not dropout with p = 0.1.
    half = np.where(np.random.default_rng(6).random(a.shape) >= 0.5, a / np.float32(0.9), 0).astype(np.float32)
    assert _forward(ref, params, x, "drop", half) == []


def test_unexplained_layer_names_no_cause(ref: Reference, params: dict, x: np.ndarray) -> None:
    a = _inputs(ref, params, x)["act1"].numpy()
    got = np.asarray(F.gelu(torch.from_numpy(a))) * np.float32(1.01)
    assert _forward(ref, params, x, "act1", got) == []


def _swapped_port(ref: Reference, params: dict, x: np.ndarray, first: str | None, by_call: bool) -> dict:
    """The digits forward written out with torch's functional ops, `first` and the layer after it called in
    the other order; outputs reported under the layers' names, or in call order under the reference's."""
    p = {k: torch.from_numpy(v) for k, v in params.items()}
    ops = {
        "fc1": lambda h: F.linear(h, p["fc1.weight"], p["fc1.bias"]),
        "norm1": lambda h: F.layer_norm(h, (128,), p["norm1.weight"], p["norm1.bias"], 1e-5),
        "act1": F.gelu,
        "drop": lambda h: h,
        "fc2": lambda h: F.linear(h, p["fc2.weight"], p["fc2.bias"]),
        "bn": lambda h: F.batch_norm(
            h, p["bn.running_mean"], p["bn.running_var"], p["bn.weight"], p["bn.bias"], False, 0.0, 1e-5
        ),
        "act2": torch.relu,
        "fc3": lambda h: F.linear(h, p["fc3.weight"], p["fc3.bias"]),
    }
    order = list(ops)
    calls = list(order)
    if first is not None:
        i = order.index(first)
        calls[i], calls[i + 1] = calls[i + 1], calls[i]
    h, out = torch.from_numpy(x), {}
    with torch.no_grad():
        for slot, name in zip(order, calls, strict=True):
            h = ops[name](h)
            out[slot if by_call else name] = h.numpy().copy()
    return out


@pytest.mark.parametrize("by_call", [False, True], ids=["by name", "in call order"])
@pytest.mark.parametrize(
    ("first", "second"), [("norm1", "act1"), ("bn", "act2")], ids=["GELU before LayerNorm", "ReLU before BatchNorm"]
)
def test_layers_swapped(ref: Reference, params: dict, x: np.ndarray, first: str, second: str, by_call: bool) -> None:
    got = _swapped_port(ref, params, x, first, by_call)
    # Control: without the swap the written-out forward is the reference's.
    ref_out, plain = ref.forward(params, x), _swapped_port(ref, params, x, None, by_call)
    for k, v in ref_out.items():
        np.testing.assert_allclose(plain[k], v, rtol=1e-5, atol=1e-6)
    causes = _forward(ref, params, x, first, got)
    assert [c.cause for c in causes] == ["forward.layers_swapped"], [c.sentence() for c in causes]
    assert causes[0].description.startswith(f"{first} (") and f"and {second} (" in causes[0].description


def test_layers_swapped_control(ref: Reference, params: dict, x: np.ndarray) -> None:
    got = _swapped_port(ref, params, x, "norm1", False)
    # The same swap, with the LayerNorm's output also scaled by 1.01: not the swap, nor any single change.
    got = {**got, "norm1": got["norm1"] * np.float32(1.01)}
    assert _forward(ref, params, x, "norm1", got) == []


# -- loss ------------------------------------------------------------------------------------------------


def _loss_cases(ref: Reference, fn) -> list[LossCase]:
    out = []
    for name, (p, y) in ref.loss_suite().items():
        pt = torch.tensor(p.reshape(len(y), -1), requires_grad=True)
        value = fn(pt, torch.from_numpy(y).long())
        value.backward()
        out.append(LossCase(name, p, y, float(value.item()), pt.grad.numpy().ravel()))
    return out


def _loss(ref: Reference, fn) -> list:
    return criteria.diagnose(ref, _loss_cases(ref, fn), tolerance("loss", {}))


def test_label_smoothing_missing(ref: Reference) -> None:
    causes = _loss(ref, lambda p, y: F.cross_entropy(p, y))
    assert causes[0].cause == "loss.no_label_smoothing"


def test_label_smoothing_value_is_fitted(ref: Reference) -> None:
    causes = _loss(ref, lambda p, y: F.cross_entropy(p, y, label_smoothing=0.25))
    assert causes[0].cause == "loss.label_smoothing"
    assert causes[0].parameters["label_smoothing"] == pytest.approx(0.25, abs=1e-4)


def test_log_softmax_over_the_batch(ref: Reference) -> None:
    def dim0(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(p, dim=0)
        nll = -logp.gather(1, y[:, None]).squeeze(1)
        return (0.9 * nll - 0.1 * logp.mean(dim=1)).mean()

    assert _loss(ref, dim0)[0].cause == "loss.softmax_dim"


def test_loss_summed(ref: Reference) -> None:
    causes = _loss(ref, lambda p, y: F.cross_entropy(p, y, label_smoothing=0.1, reduction="sum"))
    assert causes[0].cause == "loss.sum"


def test_unexplained_loss_names_no_cause(ref: Reference) -> None:
    assert _loss(ref, lambda p, y: F.cross_entropy(p, y, label_smoothing=0.1) + 0.01 * p.square().mean()) == []


# -- BatchNorm running statistics ----------------------------------------------------------------------


def _bn_cases(ref: Reference, params: dict, momentum: float, ddof: int) -> list[buffers.Case]:
    rng = np.random.default_rng(3)
    cases = []
    for _ in range(3):
        xb = rng.normal(size=(32, 64)).astype(np.float32)
        z = ref.layer_inputs(params, xb, training=True)["bn"].numpy().astype(np.float64)
        got = {
            "bn.running_mean": ((1 - momentum) * params["bn.running_mean"] + momentum * z.mean(0)).astype(np.float32),
            "bn.running_var": ((1 - momentum) * params["bn.running_var"] + momentum * z.var(0, ddof=ddof)).astype(
                np.float32
            ),
        }
        cases.append(buffers.Case(params, xb, got))
    return cases


def _bn(ref: Reference, params: dict, momentum: float, ddof: int) -> list:
    return buffers.diagnose(ref, _bn_cases(ref, params, momentum, ddof), "bn", tolerance("backward", {}))


def test_batchnorm_momentum_convention_flipped(ref: Reference, params: dict) -> None:
    assert _bn(ref, params, 0.9, 1)[0].cause == "backward.batchnorm.momentum_flipped"


def test_batchnorm_biased_running_variance(ref: Reference, params: dict) -> None:
    assert [c.cause for c in _bn(ref, params, 0.1, 0)] == ["backward.batchnorm.biased_running_var"]


def test_batchnorm_momentum_is_fitted(ref: Reference, params: dict) -> None:
    causes = _bn(ref, params, 0.3, 1)
    assert causes[0].cause == "backward.batchnorm.momentum"
    assert causes[0].parameters["momentum"] == pytest.approx(0.3, rel=1e-3)


def test_running_statistics_unexplained(ref: Reference, params: dict) -> None:
    cases = _bn_cases(ref, params, 0.1, 1)
    for c in cases:
        c.got["bn.running_mean"] = c.got["bn.running_mean"] + np.float32(0.01)
    assert buffers.diagnose(ref, cases, "bn", tolerance("backward", {})) == []


# -- optimizer -----------------------------------------------------------------------------------------


def _step_cases(ref: Reference, params: dict, make) -> list[StepCase]:
    rng = np.random.default_rng(4)
    grads = {k: rng.normal(0, 0.1, params[k].shape).astype(np.float32) for k in ref.param_names}
    model = ref.build(params)
    opt = make(model.parameters())
    named = dict(model.named_parameters())
    for k, p in named.items():
        p.grad = torch.from_numpy(grads[k].copy())
    opt.step()
    got = {k: v.detach().numpy().copy() for k, v in model.state_dict().items() if v.is_floating_point()}
    state = {
        "step": 1,
        "exp_avg": {k: opt.state[p]["exp_avg"].numpy().copy() for k, p in named.items()},
        "exp_avg_sq": {k: opt.state[p]["exp_avg_sq"].numpy().copy() for k, p in named.items()},
    }
    return [StepCase(params, grads, None, got, state)]


def _steps(ref: Reference, params: dict, make) -> list:
    return steps.diagnose(
        ref, _step_cases(ref, params, make), tolerance("optimizer", {}), tolerance("optimizer.update", {})
    )


def test_adamw_as_adam_with_l2(ref: Reference, params: dict) -> None:
    causes = _steps(ref, params, lambda ps: torch.optim.Adam(ps, lr=1e-3, weight_decay=0.01))
    assert causes[0].cause == "optimizer.weight_decay_coupled"


def test_weight_decay_without_the_learning_rate(ref: Reference, params: dict) -> None:
    # p *= 1 - wd instead of 1 - lr wd: AdamW with weight decay wd / lr.
    causes = _steps(ref, params, lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=10.0))
    assert causes[0].cause == "optimizer.weight_decay"
    assert causes[0].parameters["weight_decay"] == pytest.approx(10.0, rel=1e-3)


def test_adamw_learning_rate_is_fitted(ref: Reference, params: dict) -> None:
    causes = _steps(ref, params, lambda ps: torch.optim.AdamW(ps, lr=3e-4, weight_decay=0.01))
    assert causes[0].cause == "adam.lr"
    assert causes[0].parameters["lr"] == pytest.approx(3e-4, rel=1e-3)


def test_unexplained_step_names_no_cause(ref: Reference, params: dict) -> None:
    cases = _step_cases(ref, params, lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01))
    c = cases[0]
    c.got["fc1.weight"] = c.got["fc1.weight"] + np.float32(1e-4)
    assert steps.diagnose(ref, cases, tolerance("optimizer", {}), tolerance("optimizer.update", {})) == []


# -- train ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_run():
    """The digits reference over six epochs, with its envelope (harness/reference/ensemble.py)."""
    from harness.stages.base import Context

    ctx = Context(RunConfig(**load_model_settings(DIGITS)).with_(epochs=6))
    return ctx, ctx.prepared, ctx.ref_trace, ctx.envelope_traces


def _digits_loop(ctx, orders: np.ndarray, scheduler=None) -> np.ndarray:
    """The digits training loop written out in torch (AdamW, label-smoothed cross-entropy, dropout off as
    in the lockstep runs), with a torch scheduler stepped per epoch."""
    from torch import nn

    cfg, p = ctx.cfg, ctx.prepared
    model = ctx.reference.build(ctx.init).train()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, weight_decay=cfg.weight_decay
    )
    sched = scheduler(opt) if scheduler else None
    crit = nn.CrossEntropyLoss(**cfg.loss_kwargs())
    x, y = torch.from_numpy(p.x_train), torch.from_numpy(p.y_train).long()
    losses = []
    for order in orders:
        for s in range(0, len(order), cfg.batch_size):
            idx = torch.from_numpy(order[s : s + cfg.batch_size])
            opt.zero_grad()
            loss = crit(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            losses.append(loss.item())
        if sched:
            sched.step()
    return np.asarray(losses, dtype=np.float32)


def test_train_loop_candidates_on_the_digits_model(digits_run) -> None:
    from harness.diagnosis import train as dtrain

    ctx, p, ref, envs = digits_run
    s, tol = ctx.steps_per_epoch, ctx.tol("train.step_loss")
    # Control: the written-out loop is the reference's (epoch 1, per step).
    np.testing.assert_allclose(_digits_loop(ctx, ref.orders[:1]), ref.step_loss[:s], rtol=1e-5)
    plain = _digits_loop(ctx, np.arange(len(p.y_train))[None, :])
    port = {"step_loss": plain, "epoch_loss": [float(plain.mean())]}
    found = dtrain.diagnose_loop(ctx.reference, p.x_train, p.y_train, ref, port, s, tol, envs)
    assert [c.cause for c in found] == ["train.no_shuffle"], [c.sentence() for c in found]


def test_train_schedule_on_the_digits_model(digits_run) -> None:
    from harness.diagnosis import train as dtrain

    ctx, p, ref, envs = digits_run
    s, tol = ctx.steps_per_epoch, ctx.tol("train.step_loss")
    faithful = _digits_loop(ctx, ref.orders)
    assert dtrain.first_diverging_epoch(ref, envs, faithful, s, tol) is None
    port = _digits_loop(ctx, ref.orders, lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5))
    e = dtrain.first_diverging_epoch(ref, envs, port, s, tol)
    assert e == 2
    found = dtrain.diagnose_boundary(ctx.reference, p.x_train, p.y_train, ref, envs, port, s, tol, e)
    assert [c.cause for c in found][:1] == ["train.lr_schedule_step"], [c.sentence() for c in found]
    assert found[0].parameters == pytest.approx({"step_size": 2, "gamma": 0.5}, rel=1e-6)


def _with_linears_read_untransposed(params: dict, names: list[str]) -> dict:
    """The parameters a port computes with when it loads each named Linear's [out, in] buffer as Burn's
    [in, out] weight as it lies: its forward is x @ w.reshape(in, out), which is F.linear with that
    reshaped buffer transposed."""
    out = dict(params)
    for n in names:
        w = params[f"{n}.weight"]
        out[f"{n}.weight"] = np.ascontiguousarray(w.reshape(w.shape[1], w.shape[0]).T)
    return out


def test_every_linear_weight_read_without_a_transpose(ref: Reference, params: dict, x: np.ndarray) -> None:
    got = ref.forward(_with_linears_read_untransposed(params, ["fc1", "fc2", "fc3"]), x)
    causes = _forward(ref, params, x, "fc1", got)
    assert [c.cause for c in causes] == ["forward.linear.weight_reshaped"], [c.sentence() for c in causes]
    assert causes[0].description.startswith("every layer of its kind (fc1, fc2, fc3)"), causes[0].description
    assert "[128, 64] weight buffer read as [64, 128]" in causes[0].description


def test_one_linear_weight_read_without_a_transpose(ref: Reference, params: dict, x: np.ndarray) -> None:
    got = ref.forward(_with_linears_read_untransposed(params, ["fc2"]), x)
    causes = _forward(ref, params, x, "fc2", got)
    assert [c.cause for c in causes] == ["forward.linear.weight_reshaped"], [c.sentence() for c in causes]
    assert causes[0].description.startswith("fc2: Linear's [64, 128] weight buffer"), causes[0].description
    # Control: fc2's weight transposed the right way round but scaled is no layout slip.
    scaled = ref.forward({**params, "fc2.weight": params["fc2.weight"] * np.float32(1.01)}, x)
    assert _forward(ref, params, x, "fc2", scaled) == []


def test_extra_activation_after_a_layer(ref: Reference, params: dict, x: np.ndarray) -> None:
    a = _inputs(ref, params, x)["act2"].numpy().astype(np.float64)
    got = (1 / (1 + np.exp(-np.maximum(a, 0)))).astype(np.float32)
    causes = _forward(ref, params, x, "act2", got)
    assert [c.cause for c in causes] == ["forward.activation.extra_sigmoid_after"], [c.sentence() for c in causes]
    assert causes[0].description == "act2: ReLU followed by an extra sigmoid"
    # Control: the same, scaled, is neither the extra sigmoid nor any other single change.
    assert _forward(ref, params, x, "act2", got * np.float32(1.01)) == []


def test_same_function_either_way_names_both(ref: Reference, params: dict, x: np.ndarray) -> None:
    # tanh is monotone with tanh(0) = 0, so ReLU(tanh(z)) = tanh(ReLU(z)): the evidence cannot tell an extra
    # tanh before the ReLU from one after it, and the diagnosis names both.
    a = _inputs(ref, params, x)["act2"].numpy()
    causes = _forward(ref, params, x, "act2", np.tanh(np.maximum(a, 0)))
    assert sorted(c.cause for c in causes) == [
        "forward.activation.extra_tanh_after",
        "forward.activation.extra_tanh_before",
    ]


def test_layer_outputs_reported_under_each_others_names(ref: Reference, params: dict, x: np.ndarray) -> None:
    plain = ref.forward(params, x)
    # act2 and fc2 are both [n, 64]: a port that records them into each other's slots.
    got = {**plain, "fc2": plain["act2"], "act2": plain["fc2"]}
    causes = _forward(ref, params, x, "fc2", got)
    assert [c.cause for c in causes] == ["forward.names_swapped"], [c.sentence() for c in causes]
    assert causes[0].description == "fc2 and act2 reported under each other's names"
    # Control: fc2 reported as act2 but act2 as its own output is not a swap of names.
    assert "forward.names_swapped" not in [
        c.cause for c in _forward(ref, params, x, "fc2", {**plain, "fc2": plain["act2"]})
    ]


def test_burns_hard_sigmoid_default_in_place_of_torchs(tmp_path: Path) -> None:
    # A reference with nn.Hardsigmoid (x / 6 + 1/2, clamped), and a port that builds Burn's HardSigmoid
    # with its default config: alpha 0.2, beta 0.5, written out here in numpy.
    (tmp_path / "hs.py").write_text(
        "from torch import nn\n\n"
        "def build(n, k):\n"
        "    return nn.Sequential(nn.Linear(n, 16), nn.Hardsigmoid(), nn.Linear(16, k))\n"
    )
    cfg = RunConfig(reference="hs:build", reference_dir=tmp_path, task="multiclass", loss="CrossEntropyLoss")
    ref = Reference(cfg, 8, 3)
    params = ref.init_params(0)
    x = np.random.default_rng(1).normal(scale=4.0, size=(200, 8)).astype(np.float32)
    z = _inputs(ref, params, x)["1"].numpy()
    burn = np.clip(z * np.float32(0.2) + np.float32(0.5), 0, 1)
    causes = _forward(ref, params, x, "1", burn)
    assert [c.cause for c in causes] == ["forward.activation.hardsigmoid_burn"], [c.sentence() for c in causes]
    assert "Burn's HardSigmoid default (0.2 x + 1/2" in causes[0].description
    # Control: torch's own hard sigmoid, shifted, is not Burn's default.
    shifted = np.clip(z / np.float32(6) + np.float32(0.55), 0, 1)
    assert _forward(ref, params, x, "1", shifted) == []


@pytest.mark.parametrize("how", ["global", "per_tensor"])
def test_adamw_with_gradient_clipping_is_named(ref: Reference, params: dict, how: str) -> None:
    """Burn's `with_grad_clipping` on a model that is not the built-in classifier: torch's AdamW after
    torch's own clipping (its gradients' norm is about 6 here), global or per tensor; each is named as
    itself, with its threshold, and not as the other."""

    def make(ps: Any) -> torch.optim.Optimizer:
        ps = list(ps)
        opt = torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01)
        step = opt.step

        def clipped() -> None:
            if how == "global":
                torch.nn.utils.clip_grad_norm_(ps, 1.0)
            else:
                for p in ps:
                    torch.nn.utils.clip_grad_norm_([p], 0.5)
            step()

        opt.step = clipped  # type: ignore[method-assign]
        return opt

    causes = _steps(ref, params, make)
    expected = {"global": ("clip.norm_global", 1.0), "per_tensor": ("clip.norm_per_tensor", 0.5)}[how]
    assert causes[0].cause == expected[0], causes
    assert causes[0].parameters["max_norm"] == pytest.approx(expected[1], rel=1e-2)

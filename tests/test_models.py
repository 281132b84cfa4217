"""Bring your own model: the generic reference (harness/reference/reference.py), the config file, and the
stages following the model's own names. The digits example's reference is the model under test; its
Burn port's end-to-end run is in tests/test_digits.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from harness.config import RunConfig, load_model_settings
from harness.errors import HarnessError
from harness.reference.reference import Reference
from harness.stages import backward, forward, loss, optimizer, weights
from harness.stages.base import Context
from tests.torch_port import TorchPort

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits"
DIGITS_LAYERS = ["fc1", "norm1", "act1", "drop", "fc2", "bn", "act2", "fc3"]


@pytest.fixture(scope="module")
def digits_cfg() -> RunConfig:
    return RunConfig(**load_model_settings(DIGITS / "harness.toml"))


@pytest.fixture(scope="module")
def digits_ref(digits_cfg: RunConfig) -> Reference:
    return Reference(digits_cfg, 64, 10)


def test_config_file_names_the_model(digits_cfg: RunConfig) -> None:
    assert digits_cfg.reference == "model:build"
    assert (digits_cfg.task, digits_cfg.loss, digits_cfg.optimizer) == ("multiclass", "CrossEntropyLoss", "AdamW")
    assert (digits_cfg.loss_options, digits_cfg.weight_decay, digits_cfg.epochs) == ({"label_smoothing": 0.1}, 0.01, 15)
    assert digits_cfg.data == DIGITS / "digits.csv"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[model]\ntask = "ranking"\n', "task must be one of binary, multiclass, regression"),
        ('[model]\ntask = "multiclass"\n[model.loss]\nname = "BCELoss"\n', "BCELoss is a binary loss"),
        (
            '[model]\ntask = "multiclass"\n[model.loss]\nname = "CrossEntropyLoss"\nlabel_smoothing = 1.5\n',
            "[model.loss] label_smoothing must be in [0, 1], got 1.5",
        ),
        (
            '[model]\ntask = "multiclass"\n[model.loss]\nname = "CrossEntropyLoss"\nlabel_smoothing = "a"\n',
            "[model.loss] label_smoothing must be a number, got 'a'",
        ),
        ('[model.loss]\nname = "BCELoss"\nlabel_smoothing = 0.1\n', "unknown key 'label_smoothing' in [loss]"),
        ('[model.optimizer]\nname = "Adam"\nmomentum = 0.9\n', "unknown key 'momentum' in [optimizer]"),
        ('[model.optimizer]\nname = "RMSprop"\n', "name must be one of Adam, AdamW, SGD"),
        ('[model]\nreference = "nocolon"\n', "reference must be 'module:function'"),
        ("[train]\nepochs = 0\n", "[train] epochs must be a positive integer"),
        ('[data]\nscaler = "minmax"\n', "scaler must be 'all', 'train' or 'none'"),
        ("[train]\nbatchsize = 3\n", "unknown key 'batchsize' in [train]"),
        ("[data]\nsample_shape = [1, 0, 8]\n", "sample_shape must be a list of positive integers, got [1, 0, 8]"),
        ('[data]\nsample_shape = "1x8x8"\n', "sample_shape must be a list of positive integers"),
        ('[data]\nsample_dtype = "int32"\n', "[data] sample_dtype must be 'float32' or 'int64', got 'int32'"),
        (
            '[data]\nsample_dtype = "int64"\nscaler = "train"\n',
            '[data] sample_dtype = "int64" takes the ids as they are: set scaler = "none"',
        ),
        ('[data]\nsample_dtype = "int64"\n', 'sample_dtype = "int64" takes the ids as they are: set scaler = "none"'),
    ],
)
def test_bad_config_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "harness.toml"
    f.write_text(text)
    with pytest.raises(HarnessError) as e:
        load_model_settings(f)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_sample_shape_that_does_not_fit_the_rows_is_one_line(digits_cfg: RunConfig) -> None:
    from harness.data import prepare

    with pytest.raises(HarnessError) as e:
        prepare(digits_cfg.with_(sample_shape=(1, 8, 9)))
    assert str(e.value) == "[data] sample_shape [1, 8, 9] holds 72 values per sample; digits.csv has 64 feature columns"


def test_layers_parameters_and_hyperparameters_come_from_the_model(digits_ref: Reference) -> None:
    assert digits_ref.layer_names == DIGITS_LAYERS
    assert [layer.kind for layer in digits_ref.layers] == [
        "Linear",
        "LayerNorm",
        "GELU",
        "Dropout",
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Linear",
    ]
    assert digits_ref.buffer_names == ["bn.running_mean", "bn.running_var"]  # num_batches_tracked is an int
    h = digits_ref.hyperparameters()
    assert (h["drop.p"], h["norm1.eps"], h["bn.eps"], h["bn.momentum"]) == (0.1, 1e-5, 1e-5, 0.1)
    assert (h["optimizer"], h["loss"], h["label_smoothing"]) == ("AdamW", "CrossEntropyLoss", 0.1)
    assert "threshold" not in h  # multiclass: argmax, no threshold
    assert (
        digits_ref.param_kinds["fc1.weight"] == "Linear" and digits_ref.param_kinds["bn.running_var"] == "BatchNorm1d"
    )


def test_backward_is_training_mode_without_dropout_and_returns_running_stats(digits_ref: Reference) -> None:
    params = digits_ref.init_params(0)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 64)).astype(np.float32)
    y = rng.integers(0, 10, 32).astype(np.float32)
    l1, g1 = digits_ref.backward(params, x, y)
    l2, g2 = digits_ref.backward(params, x, y)
    assert l1 == l2 and all(np.array_equal(g1[k], g2[k]) for k in g1)  # no dropout mask drawn
    # BatchNorm's statistics after one training-mode forward, by torch's documented formula: momentum 0.1,
    # the unbiased batch variance for the running estimate.
    w, b = params["fc1.weight"], params["fc1.bias"]
    h = x @ w.T + b
    h = (h - h.mean(1, keepdims=True)) / np.sqrt(h.var(1, keepdims=True) + 1e-5) * params["norm1.weight"] + params[
        "norm1.bias"
    ]
    h = np.asarray(nn.functional.gelu(torch.from_numpy(h.astype(np.float32))))
    z = h @ params["fc2.weight"].T + params["fc2.bias"]
    np.testing.assert_allclose(g1["bn.running_mean"], 0.1 * z.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(g1["bn.running_var"], 0.9 + 0.1 * z.var(0, ddof=1), rtol=1e-4, atol=1e-6)
    # Negative control: the biased variance is measurably different.
    assert np.abs(g1["bn.running_var"] - (0.9 + 0.1 * z.var(0))).max() > 1e-4


def test_cross_entropy_with_label_smoothing(digits_ref: Reference) -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 2, (16, 10)).astype(np.float64)
    y = rng.integers(0, 10, 16)
    value, grad = digits_ref.loss_and_grad(logits.astype(np.float32).ravel(), y.astype(np.float32))
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    target = 0.9 * np.eye(10)[y] + 0.1 / 10
    assert value == pytest.approx(-(target * logp).sum(1).mean(), rel=1e-6)
    np.testing.assert_allclose(grad.reshape(16, 10), (np.exp(logp) - target) / 16, atol=1e-7)


def test_adamw_step_is_decoupled(digits_ref: Reference) -> None:
    params = digits_ref.init_params(0)
    grads = {k: np.full_like(params[k], 0.5) for k in digits_ref.param_names}
    new, state = digits_ref.optimizer_step(params, grads, None)
    w = params["fc1.weight"].astype(np.float64)
    # Step 1 of AdamW: w * (1 - lr wd) - lr * sign(g) (bias-corrected m / sqrt(v) is 1 for a constant g).
    np.testing.assert_allclose(new["fc1.weight"], w * (1 - 1e-3 * 0.01) - 1e-3, atol=2e-7)
    assert state["step"] == 1 and set(state) == {"step", "exp_avg", "exp_avg_sq"}
    np.testing.assert_array_equal(new["bn.running_var"], params["bn.running_var"])  # buffers pass through


def test_unknown_reference_module_is_one_line(tmp_path: Path) -> None:
    cfg = RunConfig(reference="nosuchmodule:build", reference_dir=tmp_path, task="multiclass", loss="CrossEntropyLoss")
    with pytest.raises(HarnessError, match="cannot import the reference module 'nosuchmodule'"):
        Reference(cfg, 4, 3)
    (tmp_path / "m.py").write_text("def other(n, k):\n    pass\n")
    with pytest.raises(HarnessError, match="has no function 'build'"):
        Reference(cfg.with_(reference="m:build"), 4, 3)


# -- the stages follow the model: a port of the same structure passes, another structure is named --------


class _Net(nn.Module):
    """The digits model with one structural change, as a port might have it."""

    def __init__(self, change: str) -> None:
        super().__init__()
        width = 100 if change == "width" else 128
        self.fc1 = nn.Linear(64, width)
        self.norm1 = nn.LayerNorm(width)
        self.act1 = nn.GELU()
        self.drop = nn.Dropout(0.1)
        self.fc2 = nn.Linear(width, 64)
        if change == "renamed":
            self.batchnorm = nn.BatchNorm1d(64)
        elif change != "missing":
            self.bn = nn.BatchNorm1d(64)
        self.act2 = nn.ReLU()
        self.fc3 = nn.Linear(64, 10)
        self.change = change

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc2(self.drop(self.act1(self.norm1(self.fc1(x)))))
        if self.change == "renamed":
            h = self.batchnorm(h)
        elif self.change != "missing":
            h = self.bn(h)
        return self.fc3(self.act2(h))


def _ctx(cfg: RunConfig, change: str) -> Context:
    port = TorchPort(cfg, 64, 10, lambda n, k: _Net(change))
    # A structurally different port cannot load the reference's parameters; it reports its own.
    if change != "same":
        own = port.ref.init_params(0)
        port.roundtrip = lambda params: (own, {k: list(v.shape) for k, v in own.items()})  # type: ignore[method-assign]
        port.forward = lambda params, x: port.ref.forward(own, x)  # type: ignore[method-assign]
    return Context(cfg, port)


@pytest.mark.parametrize("stage", [weights, forward, loss, backward, optimizer])
def test_a_port_of_the_same_model_passes(digits_cfg: RunConfig, stage) -> None:
    r = stage.STAGE.run(_ctx(digits_cfg, "same"))
    assert r.status == "PASS", r.hint


def test_a_missing_layer_is_named(digits_cfg: RunConfig) -> None:
    ctx = _ctx(digits_cfg, "missing")
    w = weights.STAGE.run(ctx)
    assert w.status == "FAIL"
    assert "the port has no parameter 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var'" in w.hint
    f = forward.STAGE.run(ctx)
    assert f.status == "FAIL" and "the port has no layer 'bn'" in f.hint


def test_a_renamed_parameter_is_named(digits_cfg: RunConfig) -> None:
    ctx = _ctx(digits_cfg, "renamed")
    w = weights.STAGE.run(ctx)
    assert w.status == "FAIL"
    assert "the port has no parameter 'bn.weight'" in w.hint
    assert "the port has parameter 'batchnorm.weight'" in w.hint


def test_a_different_width_is_named(digits_cfg: RunConfig) -> None:
    w = weights.STAGE.run(_ctx(digits_cfg, "width"))
    assert w.status == "FAIL"
    bad = [c for c in w.checks if not c.passed]
    assert bad[0].name == "fc1.weight" and "shape differs: reference (128, 64), port (100, 64)" in bad[0].reason


def test_regression_and_logit_losses_follow_torch() -> None:
    rng = np.random.default_rng(3)
    p = rng.normal(size=20).astype(np.float32)
    y = rng.normal(size=20).astype(np.float32)
    reg = Reference(RunConfig(task="regression", loss="MSELoss"), 4, 1)
    value, grad = reg.loss_and_grad(p, y)
    assert value == pytest.approx(float(np.mean((p.astype(np.float64) - y) ** 2)), rel=1e-6)
    np.testing.assert_allclose(grad, 2 * (p - y) / 20, rtol=1e-5)
    assert reg.metric(p, y) == pytest.approx(float(np.mean((p.astype(np.float64) - y) ** 2)))
    logits = Reference(RunConfig(loss="BCEWithLogitsLoss"), 4, 1)
    labels = (rng.random(20) < 0.5).astype(np.float32)
    value, grad = logits.loss_and_grad(p, labels)
    prob = 1 / (1 + np.exp(-p.astype(np.float64)))
    assert value == pytest.approx(float(-np.mean(labels * np.log(prob) + (1 - labels) * np.log(1 - prob))), rel=1e-6)
    np.testing.assert_allclose(grad, (prob - labels) / 20, rtol=1e-5, atol=1e-8)
    # Accuracy thresholds the probability, not the logit.
    assert logits.metric(p, labels) == pytest.approx(float(((prob > 0.5) == labels).mean()))


def test_sgd_momentum_state_is_the_momentum_buffer() -> None:
    cfg = RunConfig(optimizer="SGD", lr=0.1, momentum=0.9)
    ref = Reference(cfg, 3, 1)
    params = ref.init_params(0)
    grads = {k: np.ones_like(v) for k, v in params.items()}
    new, state = ref.optimizer_step(params, grads, None)
    assert ref.slots == ("momentum_buffer",) and state["step"] == 1
    np.testing.assert_allclose(new["fc1.weight"], params["fc1.weight"] - 0.1, atol=1e-7)
    new2, state2 = ref.optimizer_step(new, grads, state)
    np.testing.assert_allclose(state2["momentum_buffer"]["fc1.weight"], 1.9, rtol=1e-6)
    np.testing.assert_allclose(new2["fc1.weight"], new["fc1.weight"] - 0.19, atol=1e-6)
    assert state2["step"] == 2


class _Embedded(nn.Module):
    """A tabular model with a categorical column (feature 0 holds category indices 0..4)."""

    def __init__(self, n_features: int, n_outputs: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(5, 3)
        self.fc = nn.Linear(n_features - 1 + 3, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cat([self.emb(x[:, 0].long()), x[:, 1:]], dim=1))


def test_embedding_weights_keep_pytorchs_layout_and_the_stages_follow_it(tmp_path: Path) -> None:
    (tmp_path / "emb.py").write_text(
        "from tests.test_models import _Embedded\n\ndef build(n, k):\n    return _Embedded(n, k)\n"
    )
    cfg = RunConfig(reference="emb:build", reference_dir=tmp_path, task="multiclass", loss="CrossEntropyLoss")
    ref = Reference(cfg, 4, 2)
    assert ref.layer_names == ["emb", "fc"] and ref.param_kinds["emb.weight"] == "Embedding"
    assert weights.burn_shape("Embedding", "emb.weight", [5, 3]) == [5, 3]  # Burn's Embedding is [n, d] too
    assert weights.burn_shape("Linear", "fc.weight", [2, 6]) == [6, 2]
    port = TorchPort(cfg, 4, 2, lambda n, k: _Embedded(n, k))
    ctx = Context(cfg, port)
    x = np.column_stack([np.arange(20) % 5, np.random.default_rng(0).normal(size=(20, 3))]).astype(np.float32)
    ctx.__dict__["n_features"] = 4
    ctx.__dict__["reference"] = ref
    ctx.__dict__["init"] = ref.init_params(0)
    ctx.__dict__["forward_params"] = ctx.init
    ctx.__dict__["prepared"] = type("P", (), {"x_test": x})()
    assert weights.STAGE.run(ctx).status == "PASS"
    assert forward.STAGE.run(ctx).status == "PASS"


class _Regressor(nn.Module):
    def __init__(self, n_features: int, n_outputs: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_features, 16)
        self.act = nn.SiLU()
        self.out = nn.Linear(16, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.fc1(x)))


def _regression_csv(tmp_path: Path) -> Path:
    """200 rows of a noisy linear target in 5 features."""
    data = tmp_path / "r.csv"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = x @ np.array([0.5, -1.0, 2.0, 0.0, 0.3]) + rng.normal(0, 0.1, 200)
    data.write_text(
        "a,b,c,d,e,target\n"
        + "\n".join(",".join(f"{v:.6f}" for v in (*r, t)) for r, t in zip(x, y, strict=True))
        + "\n"
    )
    return data


def _regressor_module(tmp_path: Path, name: str) -> None:
    """A module `name` in tmp_path whose build() gives _Regressor (a config's `reference = "name:build"`)."""
    (tmp_path / f"{name}.py").write_text(
        "from tests.test_models import _Regressor\n\ndef build(n, k):\n    return _Regressor(n, k)\n"
    )


def _regression_cfg(tmp_path: Path, builder: str, **kw: Any) -> RunConfig:
    """A regression run (MSELoss, batches of 16, 2 epochs unless `kw` says otherwise) on _regression_csv's
    data, its reference `builder` from a module in tmp_path."""
    return RunConfig(
        **{
            "data": _regression_csv(tmp_path),
            "label": "target",
            "reference": builder,
            "reference_dir": tmp_path,
            "task": "regression",
            "loss": "MSELoss",
            "lr": 0.01,
            "batch_size": 16,
            "epochs": 2,
            **kw,
        }
    )


@pytest.mark.parametrize("stage", [weights, forward, loss, backward, optimizer])
def test_a_regression_model_with_sgd_passes_against_itself(tmp_path: Path, stage) -> None:
    """A regression model (MSELoss, SGD with Nesterov momentum) on generated data: every teacher-forced
    stage runs by the model's own names and passes against a port of the same model."""
    _regressor_module(tmp_path, "reg")
    cfg = _regression_cfg(tmp_path, "reg:build", optimizer="SGD", momentum=0.9, nesterov=True)
    ctx = Context(cfg, TorchPort(cfg, 5, 1, lambda n, k: _Regressor(n, k)))
    r = stage.STAGE.run(ctx)
    assert r.status == "PASS", r.hint
    if stage is optimizer:
        assert any(c.name.endswith("momentum_buffer") for c in r.checks)


@pytest.mark.parametrize("by_call", [False, True], ids=["by name", "in call order"])
def test_a_linear_swapped_with_its_activation_is_named(tmp_path: Path, by_call: bool) -> None:
    """The port computes fc1(SiLU(x)) where the reference computes SiLU(fc1(x)): the two layers' outputs
    have different widths (16 and 5), in either reporting order. Control: SiLU(fc1(x)) scaled by 1.01."""
    import torch.nn.functional as F

    from harness.diagnosis import layers
    from harness.tolerances import tolerance

    _regressor_module(tmp_path, "reg3")
    cfg = RunConfig(reference="reg3:build", reference_dir=tmp_path, task="regression", loss="MSELoss")
    ref = Reference(cfg, 5, 1)
    params = ref.init_params(0)
    x = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    w, b = torch.from_numpy(params["fc1.weight"]), torch.from_numpy(params["fc1.bias"])
    with torch.no_grad():
        first = F.silu(torch.from_numpy(x))
        second = F.linear(first, w, b)
    outputs = ref.forward(params, x)
    got = (
        {**outputs, "fc1": first.numpy(), "act": second.numpy()}
        if by_call
        else {
            **outputs,
            "fc1": second.numpy(),
            "act": first.numpy(),
        }
    )
    causes = layers.diagnose(ref, params, x, got, "fc1", tolerance("forward", {}))
    assert [c.cause for c in causes] == ["forward.layers_swapped"], [c.sentence() for c in causes]
    assert causes[0].description == "fc1 (Linear) and act (SiLU) applied in the other order"
    off = {**outputs, "fc1": outputs["fc1"] * np.float32(1.01)}
    assert layers.diagnose(ref, params, x, off, "fc1", tolerance("forward", {})) == []


def test_a_regression_metric_rule_is_named_through_the_stage(tmp_path: Path) -> None:
    """The metrics stage of a regression model whose port reports the RMSE where the reference reports
    the MSE: the rule is named; the control port reports the MSE and passes that check."""
    from harness.stages import metrics

    _regressor_module(tmp_path, "reg2")
    cfg = _regression_cfg(tmp_path, "reg2:build", optimizer="SGD", seeds=1)
    port = TorchPort(cfg, 5, 1, lambda n, k: _Regressor(n, k))
    port.metric = lambda pred, y: float(np.sqrt(np.mean((np.asarray(pred, np.float64) - y) ** 2)))
    r = metrics.STAGE.run(Context(cfg, port))
    same = next(c for c in r.checks if c.name == "same_predictions.mse")
    assert not same.passed and [d["cause"] for d in r.diagnosis] == ["metrics.rmse"], r.hint
    assert "the root of the mean squared error (RMSE)" in r.hint
    port.metric = None
    r = metrics.STAGE.run(Context(cfg, port))
    assert next(c for c in r.checks if c.name == "same_predictions.mse").passed and r.diagnosis == []


@pytest.mark.parametrize(
    ("task", "cell", "message"),
    [
        ("multiclass", "1.5", "'1.5' is not a class index; a multiclass label is an integer from 0"),
        ("multiclass", "-1", "'-1' is not a class index; a multiclass label is an integer from 0"),
        ("multiclass", "true", "'true' is not a class index; a multiclass label is an integer from 0"),
        ("regression", "abc", "'abc' is not a number or true/false"),
    ],
)
def test_labels_follow_the_task(tmp_path: Path, task: str, cell: str, message: str) -> None:
    from harness import csvcheck

    good = tmp_path / "good.csv"
    good.write_text("a,y\n1,0\n2,7\n3,2\n")
    assert list(csvcheck.read(good, "y", "multiclass").labels) == [0.0, 7.0, 2.0]
    assert list(csvcheck.read(good, "y", "regression").labels) == [0.0, 7.0, 2.0]
    with pytest.raises(HarnessError, match="the label must be binary"):
        csvcheck.read(good, "y")
    bad = tmp_path / "bad.csv"
    bad.write_text(f"a,y\n1,0\n2,{cell}\n")
    with pytest.raises(HarnessError) as e:
        csvcheck.read(bad, "y", task)
    assert str(e.value) == f"line 3, column 'y': {message}"


def test_gradients_that_differ_in_training_name_no_loop_cause(tmp_path: Path) -> None:
    """A port whose gradient at the reference's own parameters is off in one element, at every step of
    training, while its losses and its loop are the reference's: the train stage fails on the
    re-synchronized gradients, and names no training-loop or optimizer cause (none changes a gradient)."""
    from harness.stages import train

    _regressor_module(tmp_path, "reg4")
    cfg = _regression_cfg(tmp_path, "reg4:build", optimizer="Adam")

    class OffByOne(TorchPort):
        def backward(self, params: dict, x: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
            loss, grads = super().backward(params, x, y)
            g = grads["fc1.weight"].copy()
            g[0, 0] += 1e-3 * float(np.abs(g).max())
            return loss, {**grads, "fc1.weight": g}

        def train(self, x: np.ndarray, y: np.ndarray, **kw: Any) -> dict:
            """Lockstep: the reference's own loop from the given parameters and orders."""
            if kw.get("params") is None:
                return super().train(x, y, kw["epochs"], kw["seed"], kw.get("on_epoch"))
            t = self.ref.train(x, y, kw["params"], kw["orders"], kw["record_steps"])
            return {
                "step_loss": t.step_loss,
                "epoch_loss": t.epoch_loss,
                "init": t.init,
                "final": t.final,
                "epoch_params": t.epoch_params,
                "orders": kw["orders"],
            }

    r = train.STAGE.run(Context(cfg, OffByOne(cfg, 5, 1, lambda n, k: _Regressor(n, k))))
    assert r.status == "FAIL"
    failing = [c.name for c in r.checks if not c.passed]
    assert "resync.grads.fc1.weight" in failing, failing
    assert r.diagnosis == []
    assert r.hint.startswith("the port's gradients at the reference's parameters differ (")
    assert "no change to the training loop or the optimizer reproduces a gradient" in r.hint


class _TwoNorms(nn.Module):
    """Linear, LayerNorm, ReLU, Linear, LayerNorm, head: two norms of one width, both (1, 0) at
    initialization. `swapped`: each norm does the other's job (a port that loaded them by the wrong name)."""

    def __init__(self, n_in: int, swapped: bool = False) -> None:
        super().__init__()
        self.fc1, self.norm1 = nn.Linear(n_in, 8), nn.LayerNorm(8)
        self.fc2, self.norm2 = nn.Linear(8, 8), nn.LayerNorm(8)
        self.head = nn.Linear(8, 1)
        self.swapped = swapped

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second = (self.norm2, self.norm1) if self.swapped else (self.norm1, self.norm2)
        h = torch.relu(first(self.fc1(x)))
        return self.head(second(self.fc2(h)))


@pytest.mark.parametrize("swapped", [True, False], ids=["swapped", "control"])
def test_two_parameters_in_each_others_place_are_named_from_the_gradients(tmp_path: Path, swapped: bool) -> None:
    """The forward cannot see two equal norms exchanged; the backward stage replays the exchange and names
    it only when it gives the port's loss and every gradient. Control: a port whose norm2 scales its
    output by 1.01 fails the same gradients and is named nothing."""
    from harness.stages import backward

    (tmp_path / "twonorms.py").write_text(
        "from tests.test_models import _TwoNorms\n\ndef build(n, k):\n    return _TwoNorms(n)\n"
    )
    cfg = _regression_cfg(tmp_path, "twonorms:build", optimizer="Adam", epochs=1)

    def port_model(n: int, _k: int) -> nn.Module:
        if swapped:
            return _TwoNorms(n, swapped=True)
        m = _TwoNorms(n)
        m.norm2.register_forward_hook(lambda _m, _i, o: o * 1.01)
        return m

    r = backward.STAGE.run(Context(cfg, TorchPort(cfg, 5, 1, port_model)))
    assert r.status == "FAIL"
    causes = [c["cause"] for c in r.diagnosis]
    if swapped:
        assert causes == ["backward.modules_swapped"], r.hint
        assert r.hint.startswith("reproduced by norm1 and norm2 in each other's place: the port loads each one's")
        assert "Burn's pre-norm TransformerEncoderLayer applies norm_2 first" in r.hint
    else:
        assert causes == [], r.hint


class _Stacked(nn.Module):
    """The most common way to write a model: its layers in a container attribute named `layers`."""

    def __init__(self, container: str, act: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        mods = [nn.Linear(4, 8), act(), nn.Linear(8, 2)]
        self.layers = nn.Sequential(*mods) if container == "sequential" else nn.ModuleList(mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for m in self.layers:
            x = m(x)
        return x


@pytest.mark.parametrize("container", ["sequential", "modulelist"])
@pytest.mark.parametrize("act", [nn.ReLU, nn.Tanh])
def test_a_model_that_keeps_its_layers_in_an_attribute_named_layers(
    tmp_path: Path, container: str, act: type[nn.Module]
) -> None:
    """Its layers are its container's children by their qualified names (`layers.0`), and a port whose
    activation differs fails at that layer (the control: Tanh in the port for the reference's ReLU)."""
    (tmp_path / "stacked.py").write_text(
        f"from tests.test_models import _Stacked\n\ndef build(n, k):\n    return _Stacked({container!r})\n"
    )
    cfg = RunConfig(reference="stacked:build", reference_dir=tmp_path, task="multiclass", loss="CrossEntropyLoss")
    ref = Reference(cfg, 4, 2)
    assert ref.layer_names == ["layers.0", "layers.1", "layers.2"]
    assert [layer.kind for layer in ref.layers] == ["Linear", "ReLU", "Linear"]
    ctx = Context(cfg, TorchPort(cfg, 4, 2, lambda n, k: _Stacked(container, act)))
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    ctx.__dict__.update(n_features=4, reference=ref, init=ref.init_params(0), prepared=type("P", (), {"x_test": x})())
    ctx.__dict__["forward_params"] = ctx.init
    r = forward.STAGE.run(ctx)
    if act is nn.ReLU:
        assert r.status == "PASS", r.hint
    else:
        assert r.status == "FAIL"
        assert next(c for c in r.checks if not c.passed).name == "layers.1"


class _SigmoidNet(nn.Module):
    """A binary model as people write it: one nn.Sequential ending in nn.Sigmoid, trained with BCELoss."""

    def __init__(self, n_features: int, n_outputs: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, 8), nn.ReLU(), nn.Linear(8, n_outputs), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _binary_csv(tmp_path: Path) -> Path:
    """200 rows of 5 features and a 0/1 label."""
    data = tmp_path / "b.csv"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = (x[:, 0] - x[:, 2] > 0).astype(int)
    rows = "\n".join(",".join(f"{v:.6f}" for v in r) + f",{t}" for r, t in zip(x, y, strict=True))
    data.write_text("a,b,c,d,e,label\n" + rows + "\n")
    return data


@pytest.mark.parametrize(
    ("change", "cause"),
    [
        ("summed", "backward.loss_sum"),
        ("logits", "backward.logits_loss"),
        ("mse", "backward.mse"),
        # A penalty in the backward alone: the port's forward and loss method give BCE, its backward more.
        ("penalty", "backward.training_path"),
        # Control: the penalty's gradient with BCE's value; no candidate gives that gradient.
        ("gradient_only", None),
        ("same", None),
    ],
)
def test_a_sigmoid_model_of_any_shape_gets_the_bce_backward_candidates(
    tmp_path: Path, change: str, cause: str | None
) -> None:
    """Not the built-in classifier: the candidates start from the output Sigmoid module's input, found by
    its place in the model. The port's backward is built from the change itself (torch on its own copy of
    the model), not from the replay."""
    import torch.nn.functional as F

    (tmp_path / "sig.py").write_text(
        "from tests.test_models import _SigmoidNet\n\ndef build(n, k):\n    return _SigmoidNet(n, k)\n"
    )
    cfg = RunConfig(
        data=_binary_csv(tmp_path), label="label", reference="sig:build", reference_dir=tmp_path, task="binary",
        loss="BCELoss", batch_size=16, epochs=1,
    )  # fmt: skip
    port = TorchPort(cfg, 5, 1, _SigmoidNet)
    losses = {
        "summed": lambda z, p, y: F.binary_cross_entropy(p, y, reduction="sum"),
        "logits": lambda z, p, y: F.binary_cross_entropy_with_logits(z, y),
        "mse": lambda z, p, y: F.mse_loss(p, y),
        "penalty": lambda z, p, y: F.binary_cross_entropy(p, y) + 1e-3 * (z**2).mean(),
        "gradient_only": lambda z, p, y: F.binary_cross_entropy(p, y) + 1e-3 * ((z**2).mean() - (z**2).mean().detach()),
    }
    if change in losses:

        def changed(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
            model = port.ref.build(params).train()
            z = model.net[:-1](torch.from_numpy(x)).squeeze(1)
            v = losses[change](z, torch.sigmoid(z), torch.from_numpy(y))
            v.backward()
            return float(v.item()), {k: p.grad.numpy().copy() for k, p in model.named_parameters()}

        port.backward = changed  # type: ignore[method-assign]
    r = backward.STAGE.run(Context(cfg, port))
    if change == "same":
        assert r.status == "PASS", r.hint
        return
    assert r.status == "FAIL"
    found = [d["cause"] for d in r.diagnosis]
    if cause is None:
        assert found == [] and r.hint.startswith("no candidate cause reproduces the gradients"), r.hint
    else:
        assert found[:1] == [cause], r.hint


class _SqueezedRegressor(_Regressor):
    """A one-output model that returns [n] (`.squeeze(-1)` in its forward), as many scripts write it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).squeeze(-1)


@pytest.mark.parametrize("stage", [backward, optimizer])
def test_a_model_that_returns_one_value_a_row_unsqueezed(tmp_path: Path, stage) -> None:
    """The loss takes its [n] output as the user's script does. Control: a port whose loss is twice the
    reference's fails there."""
    (tmp_path / "sq.py").write_text(
        "from tests.test_models import _SqueezedRegressor\n\ndef build(n, k):\n    return _SqueezedRegressor(n, k)\n"
    )
    cfg = _regression_cfg(tmp_path, "sq:build")
    port = TorchPort(cfg, 5, 1, _SqueezedRegressor)
    assert stage.STAGE.run(Context(cfg, port)).status == "PASS"
    if stage is backward:

        def doubled(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
            value, grads = port.ref.backward(params, x, y)
            return 2 * value, {k: 2 * g for k, g in grads.items()}

        port.backward = doubled  # type: ignore[method-assign]
        r = stage.STAGE.run(Context(cfg, port))
        assert r.status == "FAIL" and any(c.name == "initial.loss" and not c.passed for c in r.checks), r.hint


@pytest.mark.parametrize(
    ("act", "left_out", "outcome"),
    [
        (nn.ReLU, "layers.1", "PASS"),  # Burn's relu(x) as a function: nothing to report it by
        (nn.Tanh, "layers.1", "FAIL at layers.2"),  # a wrong activation the port does not report
        (nn.ReLU, "layers.0", "FAIL names"),  # a layer with parameters left out
        (nn.ReLU, "layers.2", "FAIL names"),  # the model's output left out
    ],
)
def test_a_port_that_does_not_report_a_layer_without_parameters(
    tmp_path: Path, act: type[nn.Module], left_out: str, outcome: str
) -> None:
    """Its forward is compared through the layers it reports; the report lists those it left out."""
    (tmp_path / "stacked.py").write_text(
        "from tests.test_models import _Stacked\n\ndef build(n, k):\n    return _Stacked('sequential')\n"
    )
    cfg = RunConfig(reference="stacked:build", reference_dir=tmp_path, task="multiclass", loss="CrossEntropyLoss")
    ref = Reference(cfg, 4, 2)
    port = TorchPort(cfg, 4, 2, lambda n, k: _Stacked("sequential", act))
    full = port.forward
    port.forward = lambda params, x: {k: v for k, v in full(params, x).items() if k != left_out}  # type: ignore[method-assign]
    ctx = Context(cfg, port)
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    ctx.__dict__.update(n_features=4, reference=ref, init=ref.init_params(0), prepared=type("P", (), {"x_test": x})())
    ctx.__dict__["forward_params"] = ctx.init
    r = forward.STAGE.run(ctx)
    if outcome == "PASS":
        assert r.status == "PASS", r.hint
        assert r.metrics["unreported_layers"] == ["layers.1"]
    elif outcome == "FAIL names":
        assert r.status == "FAIL" and f"the port has no layer '{left_out}'" in r.hint, r.hint
    else:
        assert r.status == "FAIL" and r.metrics["first_divergent_layer"] == "layers.2", r.hint
        assert "(the port does not report layers.1 before it: the divergence may start there)" in r.hint, r.hint


class _TupleRegressor(_Regressor):
    """A forward that returns more than its output: `(out, features)`, or `{"logits": out, ...}`."""

    def __init__(self, n_features: int, n_outputs: int, as_dict: bool = False) -> None:
        super().__init__(n_features, n_outputs)
        self.as_dict = as_dict

    def forward(self, x: torch.Tensor) -> Any:  # type: ignore[override]
        h = self.act(self.fc1(x))
        out = self.out(h)
        return {"features": h, "logits": out} if self.as_dict else (out, h)


@pytest.mark.parametrize("as_dict", [False, True], ids=["tuple", "dict"])
def test_a_model_that_returns_its_output_with_other_values(tmp_path: Path, as_dict: bool) -> None:
    """The loss and the predictions take the output (a tuple's first tensor, a dict's `logits`), not the
    features: the reference's outputs are the `out` layer's, computed here by hand."""
    (tmp_path / "tup.py").write_text(
        f"from tests.test_models import _TupleRegressor\n\ndef build(n, k):\n    return _TupleRegressor(n, k, {as_dict})\n"
    )
    cfg = _regression_cfg(tmp_path, "tup:build")
    port = TorchPort(cfg, 5, 1, lambda n, k: _TupleRegressor(n, k, as_dict))
    for stage in (backward, optimizer):
        assert stage.STAGE.run(Context(cfg, port)).status == "PASS"
    ref = Reference(cfg, 5, 1)
    x = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    params = ref.init_params(0)
    model = _TupleRegressor(5, 1, as_dict)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    with torch.no_grad():
        expected = model.out(model.act(model.fc1(torch.from_numpy(x)))).numpy()
    np.testing.assert_array_equal(ref.outputs(params, x), expected)

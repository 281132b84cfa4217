"""Counterfactual diagnosis of the data, split, weights, forward, backward, train and metrics stages:
ports (or port traces) that are the reference with one change, written here with pandas, sklearn, numpy
and torch (not with the diagnosis's replays), each asserting the exact cause named; plus one change per
stage that no candidate explains, asserting that the diagnosis says so."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

from harness.config import BUNDLED_DATA, RunConfig
from harness.diagnosis import metrics as dmetrics
from harness.diagnosis import train as dtrain
from harness.pipeline import run_with
from harness.reference import model as ref_model
from harness.reference import train as ref_train
from harness.reference.reference import Reference
from harness.stages.base import Context

# The classifier's layers in its forward's order, as its module declares them.
CLASSIFIER_LAYERS = [name for name, _ in ref_model.Classifier(20).named_children()]

CFG = RunConfig(data=BUNDLED_DATA)
DIGITS = Path(__file__).resolve().parent.parent / "examples" / "digits" / "harness.toml"
Params = dict[str, np.ndarray]


class Port:
    """A port that answers only what one stage asks, from the functions given."""

    def __init__(self, **methods: Callable[..., Any]) -> None:
        self.__dict__.update(methods)


def stage(name: str, port: Port):
    return run_with(Context(CFG, port=port), [name]).results[0]


def _ref(cfg: RunConfig) -> Reference:
    """The classifier's reference with `cfg`'s hyperparameters (what the train stage passes)."""
    return ref_train.classifier(20, cfg)


def causes(res) -> list[str]:
    return [d["cause"] for d in res.diagnosis]


# data: the table as pandas reads it, then one change.
def pandas_table(change: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]):
    def load_csv(path: Any, label: str) -> dict[str, Any]:
        df = pd.read_csv(path)
        x, y = df.drop(columns=[label]).to_numpy(np.float64), df[label].to_numpy(np.float64)
        x, y = change(x, y)
        names = [c for c in df.columns if c != label]
        return {"features": x, "labels": y, "feature_names": names, "dtypes": [str(df[c].dtype) for c in names]}

    return Port(load_csv=load_csv)


@pytest.mark.parametrize(
    ("change", "cause"),
    [
        (lambda x, y: (x.astype(np.float32).astype(np.float64), y), "data.float32_parse"),
        (lambda x, y: (x, 1 - y), "data.labels_inverted"),
        (lambda x, y: (x[1:], y[1:]), "data.first_row_as_header"),
        (
            lambda x, y: (np.vstack([np.full((1, x.shape[1]), np.nan), x]), np.concatenate([[np.nan], y])),
            "data.header_as_row",
        ),
    ],
    ids=["float32", "labels inverted", "first row as header", "header as a row"],
)
def test_data(change: Callable, cause: str) -> None:
    res = stage("data", pandas_table(change))
    assert res.status == "FAIL" and causes(res)[:1] == [cause], res.hint


def test_data_columns_in_another_order() -> None:
    # A reader that maps the header into a struct declared in another order: columns 2 and 5 swapped.
    perm = [0, 1, 5, 3, 4, 2, *range(6, 20)]
    res = stage("data", pandas_table(lambda x, y: (x[:, perm], y)))
    assert res.status == "FAIL" and causes(res) == ["data.columns_reordered"], res.hint
    assert (
        res.diagnosis[0]["description"]
        == "the feature columns in another order (2 moved: feature6 at 2, feature3 at 5)"
    )
    # Negative control: a column duplicated over another is no order (no permutation matches).
    dup = [0, 1, 2, 3, 4, 2, *range(6, 20)]
    res = stage("data", pandas_table(lambda x, y: (x[:, dup], y)))
    assert "data.columns_reordered" not in causes(res), res.hint


def _f16(x: np.ndarray) -> np.ndarray:
    """float16 by torch's rounding (beyond 65504: inf)."""
    return torch.from_numpy(x).to(torch.float16).to(torch.float64).numpy()


def _bf16(x: np.ndarray) -> np.ndarray:
    """bfloat16 by torch's own rounding (not the diagnosis's bit arithmetic)."""
    return torch.from_numpy(x).to(torch.bfloat16).to(torch.float64).numpy()


def _some_columns(to: Callable[[np.ndarray], np.ndarray], cols: list[int]) -> Callable:
    def change(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = x.copy()
        x[:, cols] = to(x[:, cols])
        return x, y

    return change


@pytest.mark.parametrize(
    ("change", "cause", "says"),
    [
        (lambda x, y: (_f16(x), y), "data.float16_parse", "numbers parsed at float16"),
        (lambda x, y: (_bf16(x), y), "data.bfloat16_parse", "numbers parsed at bfloat16"),
        (lambda x, y: (np.trunc(x), y), "data.truncated_to_integer", "numbers parsed as integers (the fraction"),
        (
            _some_columns(np.trunc, [8, 17]),
            "data.truncated_to_integer",
            "columns feature9, feature18 parsed as integers (the fraction truncated)",
        ),
        (lambda x, y: (np.round(x, 3), y), "data.rounded_to_decimals", "numbers rounded to a fixed number of decimals"),
    ],
    ids=["float16", "bfloat16", "truncated", "two columns truncated", "3 decimals"],
)
def test_data_precision(change: Callable, cause: str, says: str) -> None:
    res = stage("data", pandas_table(change))
    assert res.status == "FAIL" and causes(res)[:1] == [cause], res.hint
    assert res.diagnosis[0]["description"].startswith(says), res.diagnosis[0]["description"]
    if cause == "data.rounded_to_decimals":
        assert res.diagnosis[0]["parameters"] == {"decimals": 3.0}


def test_data_rounding_and_truncation_told_apart_only_by_the_evidence() -> None:
    # The bundled file's fractional columns all lie in [0, 1), below 0.5 but in feature18 (max 1.0, a
    # whole number): rounding them gives what truncating gives, so both are named, truncation first.
    res = stage("data", pandas_table(_some_columns(lambda c: np.floor(c + 0.5), [8])))
    assert causes(res) == ["data.truncated_to_integer", "data.rounded_to_integer"], res.hint
    assert all(d["description"].startswith("columns feature9 parsed as integers") for d in res.diagnosis)


def test_data_unexplained() -> None:
    # Every value nudged by one part in a million: no parse or type change gives it.
    res = stage("data", pandas_table(lambda x, y: (x * (1 + 1e-6), y)))
    assert res.status == "FAIL" and causes(res) == [] and res.hint.startswith("no candidate cause reproduces")
    assert res.diagnosis_outcome == "unexplained"
    # Control for the per-column rule: two columns truncated and a third nudged is not named a truncation.
    change = _some_columns(np.trunc, [8, 17])
    res = stage("data", pandas_table(lambda x, y: (change(x, y)[0] + np.eye(1, x.shape[1], 7) * 1e-3, y)))
    assert res.status == "FAIL" and causes(res) == [], res.hint


# split: sklearn's train_test_split with one change.
def split_port(fn: Callable[[int, float, int], tuple[np.ndarray, np.ndarray]]) -> Port:
    return Port(split=fn)


def _sk(n: int, ts: float, seed: int, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = train_test_split(np.arange(n), test_size=ts, random_state=seed, **kw)
    return np.asarray(a), np.asarray(b)


def _labels() -> np.ndarray:
    return pd.read_csv(BUNDLED_DATA)["label"].to_numpy()


@pytest.mark.parametrize(
    ("fn", "cause", "params"),
    [
        (lambda n, ts, s: _sk(n, ts, 7), "split.seed", {"seed": 7.0}),
        (lambda n, ts, s: _sk(n, ts, s, shuffle=False), "split.no_shuffle", {}),
        (lambda n, ts, s: _sk(n, ts, s, stratify=_labels()), "split.stratified", {}),
        (
            lambda n, ts, s: (lambda p, k: (p[k:], p[:k]))(np.random.RandomState(s).permutation(n), int(n * ts)),
            "split.rounded_down",
            {},
        ),
    ],
    ids=["another seed", "no shuffle", "stratified", "rounded down"],
)
def test_split(fn: Callable, cause: str, params: dict[str, float]) -> None:
    res = stage("split", split_port(fn))
    assert res.status == "FAIL" and causes(res)[:1] == [cause], res.hint
    assert res.diagnosis[0]["parameters"] == params


def _take(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return p[: len(p) - 3673], p[len(p) - 3673 :]


def test_split_unexplained() -> None:
    """A seeded split by another generator: deterministic and a function of the seed, so neither unseeded
    nor seed-ignoring, and no replay of sklearn's reproduces it."""
    res = stage("split", split_port(lambda n, ts, s: _take(np.random.default_rng(s).permutation(n))))
    assert res.status == "FAIL" and causes(res) == [] and "no candidate cause reproduces the split" in res.hint
    assert next(c for c in res.checks if c.name == "repeat.test_order").passed


def test_split_unseeded_is_named_from_two_calls() -> None:
    rng = np.random.default_rng(3)  # one generator for every call, never seeded from the split's seed
    res = stage("split", split_port(lambda n, ts, s: _take(rng.permutation(n))))
    assert res.status == "FAIL" and causes(res) == ["split.unseeded"], res.hint
    assert res.hint.startswith("reproduced by an unseeded split: the same call gave another split"), res.hint
    assert not next(c for c in res.checks if c.name == "repeat.test_order").passed


def test_split_that_ignores_the_seed_is_named() -> None:
    res = stage("split", split_port(lambda n, ts, s: _take(np.random.default_rng(1234).permutation(n))))
    assert res.status == "FAIL" and causes(res) == ["split.seed_ignored"], res.hint
    assert "another seed gave the same rows" in res.hint


# weights: the round trip through a port that stores the weights another way.
def roundtrip_port(store: Callable[[str, np.ndarray], np.ndarray]) -> Port:
    def roundtrip(params: Params) -> tuple[Params, dict[str, list[int]]]:
        back = {k: store(k, v) for k, v in params.items()}
        return back, {k: [v.shape[1], v.shape[0]] for k, v in params.items() if v.ndim == 2}

    return Port(roundtrip=roundtrip)


@pytest.mark.parametrize(
    ("store", "cause"),
    [
        (lambda k, v: torch.tensor(v).to(torch.float16).float().numpy(), "weights.float16"),
        (lambda k, v: torch.tensor(v).to(torch.bfloat16).float().numpy(), "weights.bfloat16"),
        (lambda k, v: np.ascontiguousarray(v.reshape(v.shape[::-1]).T) if v.ndim == 2 else v, "weights.reshaped"),
        (lambda k, v: v if k.endswith("weight") else np.zeros_like(v), "weights.zeroed_biases"),
    ],
    ids=["float16", "bfloat16", "reshaped", "biases not loaded"],
)
def test_weights(store: Callable, cause: str) -> None:
    res = stage("weights", roundtrip_port(store))
    assert res.status == "FAIL" and causes(res)[:1] == [cause], res.hint


def test_weights_unexplained() -> None:
    res = stage("weights", roundtrip_port(lambda k, v: v * np.float32(1.5)))
    assert res.status == "FAIL" and causes(res) == [] and "no candidate cause reproduces the round trip" in res.hint


# forward: the reference's network written out with one layer changed.
def forward_port(
    act1: Callable = torch.relu, act2: Callable = torch.relu, out: Callable = torch.sigmoid, bias2: bool = True
):
    def forward(params: Params, x: np.ndarray) -> dict[str, np.ndarray]:
        p = {k: torch.tensor(v) for k, v in params.items()}
        with torch.no_grad():
            z1 = F.linear(torch.tensor(x), p["fc1.weight"], p["fc1.bias"])
            a1 = act1(z1)
            z2 = F.linear(a1, p["fc2.weight"], p["fc2.bias"] if bias2 else None)
            a2 = act2(z2)
            z3 = F.linear(a2, p["fc3.weight"], p["fc3.bias"])
            o = out(z3)
        return {k: v.numpy() for k, v in zip(CLASSIFIER_LAYERS, (z1, a1, z2, a2, z3, o), strict=True)}

    return Port(forward=forward)


@pytest.mark.parametrize(
    ("port", "cause", "params"),
    [
        (forward_port(act1=lambda z: F.leaky_relu(z, 0.01)), "forward.activation.leaky_relu", {"negative_slope": 0.01}),
        (forward_port(act2=F.gelu), "forward.activation.gelu", {}),
        (forward_port(act1=lambda z: F.gelu(z, approximate="tanh")), "forward.activation.gelu_tanh", {}),
        (forward_port(act2=lambda z: z), "forward.activation.identity", {}),
        (forward_port(out=F.hardsigmoid), "forward.activation.hardsigmoid", {}),
        (forward_port(bias2=False), "forward.linear.bias_dropped", {}),
        (forward_port(out=lambda z: torch.sigmoid(torch.relu(z))), "forward.activation.extra_relu_before", {}),
    ],
    ids=["leaky relu", "gelu", "gelu tanh", "missing relu", "hard sigmoid", "bias dropped", "relu after the last"],
)
def test_forward(port: Port, cause: str, params: dict[str, float]) -> None:
    res = stage("forward", port)
    assert res.status == "FAIL" and causes(res)[:1] == [cause], res.hint
    for k, v in params.items():
        assert res.diagnosis[0]["parameters"][k] == pytest.approx(v, rel=0.02)


def test_forward_outputs_reported_under_each_others_names() -> None:
    """fc1's and relu1's outputs swapped in the port's report (same shape): named as such, and only so.
    Control: the same port with relu1 reported twice is not a swap."""
    faithful = forward_port().forward

    def swapped(params: Params, x: np.ndarray) -> dict[str, np.ndarray]:
        out = faithful(params, x)
        return {**out, "fc1": out["relu1"], "relu1": out["fc1"]}

    res = stage("forward", Port(forward=swapped))
    assert res.status == "FAIL" and causes(res) == ["forward.names_swapped"], res.hint
    assert res.diagnosis[0]["description"] == "fc1 and relu1 reported under each other's names"

    def twice(params: Params, x: np.ndarray) -> dict[str, np.ndarray]:
        out = faithful(params, x)
        return {**out, "fc1": out["relu1"]}

    assert "forward.names_swapped" not in causes(stage("forward", Port(forward=twice)))


def test_forward_layers_swapped_in_the_classifier() -> None:
    """The port applies its second ReLU after the last Linear instead of before it (relu2 and fc3 in the
    other order), its outputs reported under the layers' names."""

    def forward(params: Params, x: np.ndarray) -> dict[str, np.ndarray]:
        p = {k: torch.tensor(v) for k, v in params.items()}
        with torch.no_grad():
            z1 = F.linear(torch.tensor(x), p["fc1.weight"], p["fc1.bias"])
            a1 = torch.relu(z1)
            z2 = F.linear(a1, p["fc2.weight"], p["fc2.bias"])
            z3 = F.linear(z2, p["fc3.weight"], p["fc3.bias"])
            a2 = torch.relu(z3)
            o = torch.sigmoid(a2)
        named = {"fc1": z1, "relu1": a1, "fc2": z2, "relu2": a2, "fc3": z3, "sigmoid": o}
        return {k: named[k].numpy() for k in CLASSIFIER_LAYERS}

    res = stage("forward", Port(forward=forward))
    assert res.status == "FAIL" and causes(res) == ["forward.layers_swapped"], res.hint
    assert res.diagnosis[0]["description"] == "relu2 (ReLU) and fc3 (Linear) applied in the other order"


def test_forward_unexplained() -> None:
    res = stage("forward", forward_port(act1=lambda z: torch.relu(z) ** 2))
    assert res.status == "FAIL" and causes(res) == [] and "no candidate cause reproduces it" in res.hint


# backward: torch autograd through the reference model with another loss.
def backward_port(loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> Port:
    def backward(params: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        model = ref_model.build(params)
        z = model.logits(torch.tensor(x)).squeeze(1)
        v = loss(z, torch.sigmoid(z), torch.tensor(y))
        v.backward()
        return float(v.item()), {k: p.grad.numpy().copy() for k, p in model.named_parameters()}

    return Port(backward=backward)


@pytest.mark.parametrize(
    ("loss", "cause"),
    [
        (lambda z, p, y: F.binary_cross_entropy(p, y, reduction="sum"), "backward.loss_sum"),
        (lambda z, p, y: F.mse_loss(p, y), "backward.mse"),
        (lambda z, p, y: F.binary_cross_entropy_with_logits(z, y), "backward.logits_loss"),
        # A hand-written sigmoid: the same outputs, another gradient where float32 p rounds to 1.
        (lambda z, p, y: F.binary_cross_entropy(1 / (1 + torch.exp(-z)), y), "backward.sigmoid_explicit"),
    ],
    ids=["summed", "mse", "logits", "sigmoid by hand"],
)
def test_backward(loss: Callable, cause: str) -> None:
    res = stage("backward", backward_port(loss))
    assert res.status == "FAIL" and causes(res)[:1] == [cause], res.hint


def test_backward_names_a_training_path_that_differs_from_the_evaluation_one() -> None:
    """The port's forward (evaluation mode) is the reference's, and so is its loss; its backward runs a
    training-mode forward with a leaky first activation. Control: the same backward with a forward that
    is leaky too (both paths the same, wrong) is no training-path cause."""

    def backward_with(act1: Callable) -> Callable:
        def backward(params: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
            p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
            a1 = act1(F.linear(torch.tensor(x), p["fc1.weight"], p["fc1.bias"]))
            a2 = torch.relu(F.linear(a1, p["fc2.weight"], p["fc2.bias"]))
            v = F.binary_cross_entropy(
                torch.sigmoid(F.linear(a2, p["fc3.weight"], p["fc3.bias"])).squeeze(1), torch.tensor(y)
            )
            v.backward()
            return float(v.item()), {k: t.grad.numpy().copy() for k, t in p.items()}

        return backward

    def loss(p: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        t = torch.tensor(p, requires_grad=True)
        v = F.binary_cross_entropy(t, torch.tensor(y))
        v.backward()
        return float(v.item()), t.grad.numpy()

    leaky = lambda z: F.leaky_relu(z, 0.2)  # noqa: E731
    faithful_forward = forward_port().forward
    res = stage("backward", Port(backward=backward_with(leaky), forward=faithful_forward, loss=loss))
    assert res.status == "FAIL" and causes(res) == ["backward.training_path"], res.hint
    assert res.hint.startswith("reproduced by a training path that computes another loss than the port's own")
    both = Port(backward=backward_with(leaky), forward=forward_port(act1=leaky).forward, loss=loss)
    res = stage("backward", both)
    assert res.status == "FAIL" and "backward.training_path" not in causes(res), res.hint


def test_backward_unexplained() -> None:
    res = stage("backward", backward_port(lambda z, p, y: F.binary_cross_entropy(p, y) + 1e-3 * (z**2).mean()))
    assert res.status == "FAIL" and causes(res) == [] and res.hint.startswith("no candidate cause reproduces")
    assert res.diagnosis_outcome == "unexplained"


# train: the port's first-epoch trace, made from the reference's with one change in the loop.
@pytest.fixture(scope="module")
def one_epoch():
    cfg = CFG.with_(epochs=1)
    ctx = Context(cfg)
    p = ctx.prepared
    ref = ref_train.train(p.x_train, p.y_train, ctx.init, ctx.orders, cfg, record_steps=0)
    return cfg, p, ref


@pytest.mark.parametrize(
    ("epoch_loss", "cause"),
    [
        (lambda s, sizes: float((s * sizes).sum() / sizes.sum()), "train.epoch_loss_weighted"),
        (lambda s, sizes: float(s.sum()), "train.epoch_loss_summed"),
        (lambda s, sizes: float(s[-1]), "train.epoch_loss_last_batch"),
        (lambda s, sizes: float(s[:-1].mean()), "train.epoch_loss_without_last_batch"),
    ],
    ids=["weighted", "summed", "last batch", "without last batch"],
)
def test_train_epoch_loss(one_epoch, epoch_loss: Callable, cause: str) -> None:
    cfg, p, ref = one_epoch
    n = len(p.y_train)
    sizes = np.array([min(32, n - i) for i in range(0, n, 32)], dtype=np.float64)
    steps = len(sizes)
    port = {"step_loss": ref.step_loss, "epoch_loss": [epoch_loss(ref.step_loss.astype(np.float64), sizes)]}
    found = dtrain.diagnose_loop(_ref(cfg), p.x_train, p.y_train, ref, port, steps, Context(cfg).tol("train.step_loss"))
    assert [c.cause for c in found][:1] == [cause]


def test_train_last_batch_dropped(one_epoch) -> None:
    """DataLoader(drop_last=True): the port never sees the last, partial batch."""
    cfg, p, ref = one_epoch
    n = len(p.y_train)
    assert n % 32, "the bundled data must leave a partial batch"
    model = ref_model.build(ref.init)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    x, y = torch.from_numpy(p.x_train), torch.from_numpy(p.y_train)
    losses = []
    for s in range(0, n - 31, 32):
        idx = torch.from_numpy(ref.orders[0][s : s + 32])
        opt.zero_grad()
        loss = F.binary_cross_entropy(model(x[idx]).squeeze(1), y[idx])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    port = {"step_loss": np.asarray(losses, dtype=np.float32), "epoch_loss": [float(np.mean(losses))]}
    found = dtrain.diagnose_loop(
        _ref(cfg), p.x_train, p.y_train, ref, port, -(-n // 32), Context(cfg).tol("train.step_loss")
    )
    assert [c.cause for c in found][:1] == ["train.last_batch_dropped"]


def test_train_gradient_accumulation(one_epoch) -> None:
    """The port steps Adam once every 4 batches on their mean gradient."""
    cfg, p, ref = one_epoch
    model = ref_model.build(ref.init)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    x, y = torch.from_numpy(p.x_train), torch.from_numpy(p.y_train)
    losses = []
    for j, s in enumerate(range(0, len(p.y_train), 32)):
        idx = torch.from_numpy(ref.orders[0][s : s + 32])
        loss = F.binary_cross_entropy(model(x[idx]).squeeze(1), y[idx])
        (loss / 4).backward()
        losses.append(loss.item())
        if (j + 1) % 4 == 0:
            opt.step()
            opt.zero_grad()
    port = {"step_loss": np.asarray(losses, dtype=np.float32), "epoch_loss": [float(np.mean(losses))]}
    steps = len(losses)
    found = dtrain.diagnose_loop(_ref(cfg), p.x_train, p.y_train, ref, port, steps, Context(cfg).tol("train.step_loss"))
    assert [(c.cause, c.description) for c in found][:1] == [
        ("train.gradient_accumulation", "gradients accumulated over 4 batches before each optimizer step")
    ]


def test_train_given_initial_weights_ignored(one_epoch) -> None:
    """The port draws its own initialization (torch's default init from another seed) and reports it."""
    cfg, p, ref = one_epoch
    torch.manual_seed(99)
    model = ref_model.Classifier(p.x_train.shape[1])
    own = ref_model.get_params(model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    x, y = torch.from_numpy(p.x_train), torch.from_numpy(p.y_train)
    losses = []
    for s in range(0, len(p.y_train), 32):
        idx = torch.from_numpy(ref.orders[0][s : s + 32])
        opt.zero_grad()
        loss = F.binary_cross_entropy(model(x[idx]).squeeze(1), y[idx])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    port = {"step_loss": np.asarray(losses, dtype=np.float32), "epoch_loss": [float(np.mean(losses))], "init": own}
    tol = Context(cfg).tol("train.step_loss")
    found = dtrain.diagnose_loop(_ref(cfg), p.x_train, p.y_train, ref, port, len(losses), tol)
    assert [c.cause for c in found][:1] == ["train.init_ignored"]
    # Control: the same run reporting the reference's init (a port that lies about it) is not explained so.
    found = dtrain.diagnose_loop(_ref(cfg), p.x_train, p.y_train, ref, {**port, "init": ref.init}, len(losses), tol)
    assert "train.init_ignored" not in [c.cause for c in found]


def test_train_no_shuffle_and_an_unexplained_loop(one_epoch) -> None:
    cfg, p, ref = one_epoch
    n = len(p.y_train)
    steps = -(-n // 32)
    tol = Context(cfg).tol("train.step_loss")
    plain = ref_train.train(p.x_train, p.y_train, ref.init, np.arange(n)[None, :], cfg, record_steps=0)
    port = {"step_loss": plain.step_loss, "epoch_loss": plain.epoch_loss}
    assert [c.cause for c in dtrain.diagnose_loop(_ref(cfg), p.x_train, p.y_train, ref, port, steps, tol)][:1] == [
        "train.no_shuffle"
    ]
    reversed_order = ref_train.train(p.x_train, p.y_train, ref.init, ref.orders[:, ::-1].copy(), cfg, record_steps=0)
    port = {"step_loss": reversed_order.step_loss, "epoch_loss": reversed_order.epoch_loss}
    assert dtrain.diagnose_loop(_ref(cfg), p.x_train, p.y_train, ref, port, steps, tol) == []


def test_train_scheduler_stepped_per_batch(one_epoch) -> None:
    """ExponentialLR(0.995) stepped after every batch instead of every epoch."""
    cfg, p, ref = one_epoch
    ctx = Context(cfg)
    sched = lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.995)  # noqa: E731
    losses = _plain_loop(p, ref.init, ref.orders, cfg, scheduler=sched, per_batch=True)
    port = {"step_loss": losses, "epoch_loss": [float(np.mean(losses))]}
    tol = ctx.tol("train.step_loss")
    found = dtrain.diagnose_loop(_ref(cfg), p.x_train, p.y_train, ref, port, len(losses), tol, ctx.envelope_traces)
    assert [c.cause for c in found][:1] == ["train.lr_decay_per_step"], [c.sentence() for c in found]
    assert found[0].parameters["gamma"] == pytest.approx(0.995, abs=2e-4)


def test_train_amsgrad(one_epoch) -> None:
    """Adam(amsgrad=True): the same as Adam until a second moment falls (step 152 on the bundled data)."""
    cfg, p, ref = one_epoch
    ctx = Context(cfg)
    tol = ctx.tol("train.step_loss")
    losses = _plain_loop(p, ref.init, ref.orders, cfg, amsgrad=True)
    port = {"step_loss": losses, "epoch_loss": [float(np.mean(losses))]}
    envs = ctx.envelope_traces
    found = dtrain.diagnose_loop(_ref(cfg), p.x_train, p.y_train, ref, port, len(losses), tol, envs)
    assert [c.cause for c in found] == ["train.amsgrad"], [c.sentence() for c in found]
    # Controls: the faithful loop is no change of the catalogue; a loop with a slightly smaller learning
    # rate is not AMSGrad.
    faithful = _plain_loop(p, ref.init, ref.orders, cfg)
    port = {"step_loss": faithful, "epoch_loss": [float(np.mean(faithful))]}
    assert dtrain.diagnose_loop(_ref(cfg), p.x_train, p.y_train, ref, port, len(losses), tol, envs) == []
    slower = _plain_loop(p, ref.init, ref.orders, cfg.with_(lr=0.9e-3))
    port = {"step_loss": slower, "epoch_loss": [float(np.mean(slower))]}
    found = dtrain.diagnose_loop(_ref(cfg), p.x_train, p.y_train, ref, port, len(losses), tol, envs)
    assert "train.amsgrad" not in [c.cause for c in found]


# metrics: the port's accuracy on the reference's own predictions, by another rule.
def _metric_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    probs = rng.uniform(0, 1, 500).astype(np.float32)
    y = (rng.uniform(0, 1, 500) < probs).astype(np.float32)
    return probs, y, (probs > 0.5) == (y > 0.5)


def test_metrics_threshold_rules() -> None:
    probs, y, correct = _metric_case()
    argmax = float(np.mean(np.argmax(probs[:, None], axis=1) == y))
    inverted = float(np.mean((probs <= 0.5) == (y > 0.5)))
    for got, cause in [(argmax, "metrics.argmax"), (inverted, "metrics.inverted")]:
        assert [c.cause for c in dmetrics.diagnose(correct, got, 32, 2000, probs, y, 0.5)][:1] == [cause]
    # An accuracy no rule gives (a threshold of 0.3): nothing named.
    other = float(np.mean((probs > 0.3) == (y > 0.5)))
    assert dmetrics.diagnose(correct, other, 32, 2000, probs, y, 0.5) == []
    # Without probabilities (a multiclass model) the threshold rules are not tried.
    assert dmetrics.diagnose(correct, argmax, 32, 2000) == []


@pytest.mark.parametrize("percent", [False, True], ids=["share", "percent"])
def test_metrics_threshold_measured_on_a_probe(percent: bool) -> None:
    """A port deciding at 0.3: its metric on the probe (probabilities 0..1, all labelled 1) shows where it
    switches, and that threshold is named only because it also reproduces its accuracy on the reference's
    predictions. Controls: a port at 0.5 measures nothing; a measured threshold that does not reproduce
    the accuracy is not named."""
    probs, y, correct = _metric_case()
    scale = 100.0 if percent else 1.0

    def accuracy(t: float):
        return lambda p, labels: scale * float(np.mean((p > t) == (labels > 0.5)))

    measured = dmetrics.probe_threshold(accuracy(0.3), 0.5)
    assert measured is not None and abs(measured - 0.3) <= 1 / 2000, measured
    got = accuracy(0.3)(probs, y)
    if percent:  # percent and a threshold at once is a pair the catalogue does not try
        return
    found = dmetrics.diagnose(correct, got, 32, 2000, probs, y, 0.5, measured)
    assert [c.cause for c in found] == ["metrics.threshold"]
    assert found[0].description.startswith("a decision threshold of 0.3 instead of 0.5")
    assert dmetrics.probe_threshold(accuracy(0.5), 0.5) is None
    elsewhere = float(np.mean((probs > 0.7) == (y > 0.5)))
    assert dmetrics.diagnose(correct, elsewhere, 32, 2000, probs, y, 0.5, measured) == []


@pytest.mark.parametrize(
    ("metric", "cause"),
    [
        # burn-train's AccuracyMetric on a [N, 1] output: argmax, reported in percent.
        (lambda p, y, c: 100.0 * float(np.mean(y == 0)), "metrics.argmax+percent"),
        (lambda p, y, c: float(int((y == 0).sum())), "metrics.argmax+count"),
        (lambda p, y, c: 100.0 * int(c.sum()) / 499, "metrics.percent+denominator_n_minus_1"),
        (
            lambda p, y, c: float(np.mean(((p < 0.5) == (y > 0.5))[:480])),
            "metrics.inverted+last_batch_dropped",
        ),
    ],
    ids=["argmax in percent", "argmax counted", "percent over n-1", "inverted, drop last"],
)
def test_metrics_pairs_when_no_single_rule_reproduces(metric: Callable, cause: str) -> None:
    """Two slips at once, one from each family (or the percent unit over another denominator): named as the
    pair, and only when no single rule reproduces. Negative control: the same pair one row off."""
    probs, y, correct = _metric_case()
    got = metric(probs, y, correct)
    found = [c.cause for c in dmetrics.diagnose(correct, got, 32, 2000, probs, y, 0.5)]
    assert found == [cause], found
    # One row's label flipped (row 0, inside every rule's rows): every rule's number moves by one row.
    flipped = y.copy()
    flipped[0] = 1 - flipped[0]
    off_by_one = metric(probs, flipped, (probs > 0.5) == (flipped > 0.5))
    assert cause not in [c.cause for c in dmetrics.diagnose(correct, off_by_one, 32, 2000, probs, y, 0.5)]


@pytest.mark.parametrize(
    ("metric", "cause"),
    [
        (lambda c: float(np.mean([c[i : i + 32].mean() for i in range(0, 500, 32)])), "metrics.batch_mean"),
        (lambda c: int(c.sum()) / 499, "metrics.denominator_n_minus_1"),
        (lambda c: int(c.sum()) / 501, "metrics.denominator_n_plus_1"),
        (lambda c: int(c.sum()) / 512, "metrics.denominator_padded_batches"),
        (lambda c: int(c.sum()) / 2000, "metrics.denominator_train_rows"),
        (lambda c: int(c.sum()) / 2500, "metrics.denominator_all_rows"),
        (lambda c: float(np.mean(c[:480])), "metrics.last_batch_dropped"),
        (lambda c: int(c.sum()) / 16, "metrics.correct_per_batch"),
        (lambda c: 100.0 * int(c.sum()) / 500, "metrics.percent"),
        (lambda c: float(int(c.sum())), "metrics.count"),
    ],
    ids=["batch mean", "n-1", "n+1", "padded", "train rows", "all rows", "drop last", "per batch", "percent", "count"],
)
def test_metrics_counting_rules(metric: Callable[[np.ndarray], float], cause: str) -> None:
    """500 test rows, batches of 32 (15 full, 20 left), 2000 training rows; the port's number written here."""
    probs, y, correct = _metric_case()
    got = metric(correct)
    assert [c.cause for c in dmetrics.diagnose(correct, got, 32, 2000, probs, y, 0.5)] == [cause]
    # The same rule counted one row off is not named (the rules are exact to half a row).
    off = correct.copy()
    off[np.flatnonzero(correct)[0]] = False
    assert cause not in [c.cause for c in dmetrics.diagnose(correct, metric(off), 32, 2000, probs, y, 0.5)]


@pytest.mark.parametrize(
    ("metric", "cause"),
    [
        (lambda e: math.sqrt(sum(v * v for v in e) / len(e)), "metrics.rmse"),
        (lambda e: sum(abs(v) for v in e) / len(e), "metrics.mae"),
        (lambda e: sum(v * v for v in e), "metrics.sse"),
        (lambda e: sum(v * v for v in e) / len(e) / 2, "metrics.half_mse"),
        (lambda e: sum(v * v for v in e) / (len(e) - 1), "metrics.mse_n_minus_1"),
        (
            lambda e: statistics.fmean(
                sum(v * v for v in e[i : i + 32]) / len(e[i : i + 32]) for i in range(0, len(e), 32)
            ),
            "metrics.mse_batch_mean",
        ),
    ],
    ids=["rmse", "mae", "sse", "half", "n-1", "batch mean"],
)
def test_metrics_regression_rules(metric: Callable[[list[float]], float], cause: str) -> None:
    """A regression port's metric on the reference's 300 predictions, computed here in plain Python."""
    from harness.tolerances import tolerance

    rng = np.random.default_rng(1)
    y = rng.normal(2.0, 1.0, 300)
    pred = (y + rng.normal(0, 0.3, 300)).astype(np.float32)
    errors = [float(p) - float(t) for p, t in zip(pred, y, strict=True)]
    tol = tolerance("metrics.regression", {})
    found = dmetrics.diagnose_regression(pred, y, metric(errors), 32, tol)
    assert [c.cause for c in found] == [cause], [c.sentence() for c in found]
    # Controls: the MSE itself, and the MSE off by one part in a thousand, are neither rule.
    mse = sum(v * v for v in errors) / len(errors)
    assert dmetrics.diagnose_regression(pred, y, mse, 32, tol) == []
    assert dmetrics.diagnose_regression(pred, y, mse * 1.001, 32, tol) == []


def test_metrics_stage_names_a_denominator_on_a_multiclass_model() -> None:
    """Through the stage's check: a port whose accuracy divides by n - 1, on the digits model's test rows."""
    from harness.config import load_model_settings
    from harness.stages.metrics import same_predictions

    def accuracy(pred: np.ndarray, y: np.ndarray) -> float:
        right = np.asarray(pred, dtype=np.float32).reshape(len(y), -1).argmax(axis=1) == y
        return int(right.sum()) / (len(y) - 1)

    ctx = Context(RunConfig(**load_model_settings(DIGITS)), port=Port(accuracy=accuracy))
    p = ctx.prepared
    pred, acc = ctx.reference.evaluate(ctx.init, p.x_test, p.y_test)
    _, checks, hints, found = same_predictions(ctx, pred, acc)
    assert not checks[0].passed
    assert [c.cause for c in found] == ["metrics.denominator_n_minus_1"], hints
    assert "correct rows divided by n - 1" in hints[0]
    # Control: the port's own argmax accuracy passes, and nothing is diagnosed.
    ctx.port = Port(accuracy=lambda pred, y: float((pred.reshape(len(y), -1).argmax(axis=1) == y).mean()))
    _, checks, hints, found = same_predictions(ctx, pred, acc)
    assert checks[0].passed and found == [] and hints == []


# The first epoch boundary: the port's free-running trace over two epochs, the reference's loop with one
# change written here with torch (an lr scheduler, a fresh optimizer, the first epoch's order again).
@pytest.fixture(scope="module")
def two_epochs():
    cfg = CFG.with_(epochs=2)
    ctx = Context(cfg)
    p = ctx.prepared
    return cfg, ctx, p, ctx.ref_trace, ctx.envelope_traces


def _plain_loop(
    p: Any,
    init: Params,
    orders: np.ndarray,
    cfg: RunConfig,
    gamma: float = 1.0,
    fresh: bool = False,
    scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
    per_batch: bool = False,
    amsgrad: bool = False,
):
    """A PyTorch training loop written out, with torch's own schedulers (stepped per epoch, or per batch)."""
    model = ref_model.build(init)
    make = lambda: torch.optim.Adam(  # noqa: E731
        model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, amsgrad=amsgrad
    )
    opt = make()
    sched = (scheduler or (lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=gamma)))(opt)
    x, y = torch.from_numpy(p.x_train), torch.from_numpy(p.y_train)
    losses = []
    for e, order in enumerate(orders):
        if fresh and e:
            opt = make()
        for s in range(0, len(order), cfg.batch_size):
            idx = torch.from_numpy(order[s : s + cfg.batch_size])
            opt.zero_grad()
            loss = F.binary_cross_entropy(model(x[idx]).squeeze(1), y[idx])
            loss.backward()
            opt.step()
            if per_batch:
                sched.step()
            losses.append(loss.item())
        if not fresh and not per_batch:
            sched.step()
    return np.asarray(losses, dtype=np.float32)


@pytest.mark.parametrize(
    ("make", "cause", "params"),
    [
        (lambda p, ref, cfg: _plain_loop(p, ref.init, ref.orders[[0, 0]], cfg), "train.order_reused", {}),
        (
            lambda p, ref, cfg: _plain_loop(p, ref.init, ref.orders, cfg, fresh=True),
            "train.adam_state_reset_per_epoch",
            {},
        ),
        (
            lambda p, ref, cfg: _plain_loop(p, ref.init, ref.orders, cfg, gamma=0.5),
            "train.lr_schedule_step",
            {"step_size": 1, "gamma": 0.5},
        ),
    ],
    ids=["order reused", "Adam reset per epoch", "StepLR 0.5"],
)
def test_train_epoch_boundary(two_epochs, make: Callable, cause: str, params: dict[str, float]) -> None:
    cfg, ctx, p, ref, envs = two_epochs
    steps = ctx.steps_per_epoch
    port_steps = make(p, ref, cfg)
    # The control: the same hand-written loop without the change is the reference (epoch 1 to 1e-5).
    np.testing.assert_allclose(_plain_loop(p, ref.init, ref.orders, cfg)[:steps], ref.step_loss[:steps], rtol=1e-5)
    found = dtrain.diagnose_boundary(
        _ref(cfg), p.x_train, p.y_train, ref, envs, port_steps, steps, ctx.tol("train.step_loss")
    )
    assert [c.cause for c in found][:1] == [cause]
    for k, v in params.items():
        assert found[0].parameters[k] == pytest.approx(v, rel=0.05)


def test_train_epoch_boundary_faithful_and_unexplained(two_epochs) -> None:
    cfg, ctx, p, ref, envs = two_epochs
    steps = ctx.steps_per_epoch
    tol = ctx.tol("train.step_loss")
    faithful = _plain_loop(p, ref.init, ref.orders, cfg)
    # The faithful loop reproduces none of the changes (the unchanged replay is not a candidate).
    assert dtrain.diagnose_boundary(_ref(cfg), p.x_train, p.y_train, ref, envs, faithful, steps, tol) == []
    both = _plain_loop(p, ref.init, ref.orders[[0, 0]], cfg, gamma=0.5)
    assert dtrain.diagnose_boundary(_ref(cfg), p.x_train, p.y_train, ref, envs, both, steps, tol) == []


# Schedules that act later than the first boundary, over eight epochs: the boundary where the port first
# leaves the free run's band is found, the learning rate there fitted, and a schedule named only where a
# whole run of the reference with it reproduces the port's.
@pytest.fixture(scope="module")
def eight_epochs():
    cfg = CFG.with_(epochs=8)
    ctx = Context(cfg)
    return cfg, ctx, ctx.prepared, ctx.ref_trace, ctx.envelope_traces


def _boundary(eight_epochs, port_steps: np.ndarray) -> tuple[int | None, list]:
    cfg, ctx, p, ref, envs = eight_epochs
    s, tol = ctx.steps_per_epoch, ctx.tol("train.step_loss")
    e = dtrain.first_diverging_epoch(ref, envs, port_steps, s, tol)
    if e is None:
        return None, []
    return e, dtrain.diagnose_boundary(_ref(cfg), p.x_train, p.y_train, ref, envs, port_steps, s, tol, e)


@pytest.mark.parametrize(
    ("scheduler", "epoch", "cause", "params"),
    [
        (
            lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
            3,
            "train.lr_schedule_step",
            {"step_size": 3, "gamma": 0.5},
        ),
        (
            lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[3], gamma=0.2),
            3,
            "train.lr_changed_once",
            {"milestone": 3, "gamma": 0.2},
        ),
        (
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=8),
            None,
            "train.lr_schedule_cosine",
            {"T_max": 8},
        ),
    ],
    ids=["StepLR(3, 0.5)", "MultiStepLR([3], 0.2)", "CosineAnnealingLR(8)"],
)
def test_train_schedule_named_at_its_boundary(
    eight_epochs, scheduler: Callable, epoch: int | None, cause: str, params: dict
) -> None:
    cfg, _ctx, p, ref, _envs = eight_epochs
    port_steps = _plain_loop(p, ref.init, ref.orders, cfg, scheduler=scheduler)
    e, found = _boundary(eight_epochs, port_steps)
    if epoch is not None:
        assert e == epoch, "the first boundary where the port leaves the band is the schedule's first change"
    assert [c.cause for c in found][:1] == [cause], [c.sentence() for c in found]
    for k, v in params.items():
        assert found[0].parameters[k] == pytest.approx(v, rel=0.05), found[0].parameters


def test_the_boundary_comes_from_an_envelope_check_when_no_step_leaves_the_band(eight_epochs) -> None:
    """A port whose every step loss is the reference's but whose epoch loss leaves the envelope at epoch 5
    (from 0): the boundary replayed is 5; where a step leaves the band, that step's epoch wins; control:
    nothing fails, the first boundary."""
    from harness.stages.train import boundary_epoch, envelope_check

    _cfg, ctx, _p, ref, envs = eight_epochs
    s, tol = ctx.steps_per_epoch, ctx.tol("train.step_loss")
    d_loss = np.max([np.abs(e.epoch_loss - ref.epoch_loss) for e in envs], axis=0)
    shifted = ref.epoch_loss.copy()
    shifted[5:] += 1.0
    failing = envelope_check("envelope.epoch_loss", ref.epoch_loss, d_loss, shifted, 1e-5)
    assert not failing.passed and failing.first_mismatch[0] == 5
    assert boundary_epoch(ref, envs, ref.step_loss, s, tol, [failing]) == 5
    stepped = ref.step_loss.astype(np.float64).copy()
    stepped[3 * s + 10] += 1.0
    assert boundary_epoch(ref, envs, stepped, s, tol, [failing]) == 3
    passing = envelope_check("envelope.epoch_loss", ref.epoch_loss, d_loss, ref.epoch_loss, 1e-5)
    assert boundary_epoch(ref, envs, ref.step_loss, s, tol, [passing]) == 1


def test_train_schedule_faithful_and_irregular(eight_epochs) -> None:
    cfg, _ctx, p, ref, _envs = eight_epochs
    # Control: the faithful loop never leaves the band.
    assert _boundary(eight_epochs, _plain_loop(p, ref.init, ref.orders, cfg)) == (None, [])
    # A learning rate halved at epoch 4 and then multiplied by 3 at epoch 6: the change at the boundary is
    # named, no schedule reproduces the whole run.
    irregular = lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda ep: 1.0 if ep < 3 else 0.5 if ep < 5 else 1.5)  # noqa: E731
    e, found = _boundary(eight_epochs, _plain_loop(p, ref.init, ref.orders, cfg, scheduler=irregular))
    assert e == 3
    assert [c.cause for c in found] == ["train.lr_changed"], [c.sentence() for c in found]
    assert found[0].parameters["factor"] == pytest.approx(0.5, rel=0.05)


class _WrappedCounterPort:
    """The faithful port, except that its Adam step counter is a u8 (wraps at 256): invisible in the first
    epoch's re-synchronized steps (t <= 64), wrong at the start of every later epoch (t = 460 e)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def optimizer_step(self, params: Params, grads: Params, state: dict | None) -> tuple[Params, dict]:
        if state and state.get("step", 0) >= 256:
            state = {**state, "step": state["step"] % 256}
        return self._inner.optimizer_step(params, grads, state)


def test_train_resync_at_epoch_starts_names_a_late_component(faithful_run) -> None:

    base, report = faithful_run
    faithful_train = next(r for r in report.results if r.stage == "train")
    starts = next(c for c in faithful_train.checks if c.name == "resync.epoch_starts")
    assert starts.passed and starts.shape[0] == base.cfg.epochs - 1
    ctx = Context(base.cfg, port=_WrappedCounterPort(base.port))
    ctx.adopt_reference(base)
    res = run_with(ctx, ["train"]).results[0]
    failed = [c.name for c in res.checks if not c.passed]
    assert failed == ["resync.epoch_starts"], failed
    assert res.hint.startswith(
        "from the reference's parameters and Adam state at the start of epoch 2, its Adam step differs"
    )


def test_data_integers_read_exactly_are_the_same_whatever_their_width(tmp_path: Path) -> None:
    """A Rust reader's u64/usize/i32 for a column pandas reads as int64 is no divergence: the numbers are the
    same. Negative control: a float column read as float32 (its numbers rounded) fails, naming the column."""
    rng = np.random.default_rng(0)
    n = 300
    counts, values = rng.integers(0, 50, n), rng.normal(0, 1, n)
    labels = (values + 0.1 * counts > 2.5).astype(int)
    path = tmp_path / "ints.csv"
    pd.DataFrame({"count": counts, "value": values, "label": labels}).to_csv(path, index=False)

    def port(count_dtype: str, value_as_f32: bool) -> Port:
        def load_csv(p: Any, label: str) -> dict[str, Any]:
            df = pd.read_csv(p)
            x = df[["count", "value"]].to_numpy(np.float64)
            if value_as_f32:
                x[:, 1] = x[:, 1].astype(np.float32)
            dtypes = [count_dtype, "f32" if value_as_f32 else "f64"]
            return {
                "features": x,
                "labels": df[label].to_numpy(np.float64),
                "feature_names": ["count", "value"],
                "dtypes": dtypes,
            }

        return Port(load_csv=load_csv)

    cfg = RunConfig(data=path)
    for width in ("u64", "usize", "i32", "uint64", "int64"):
        res = run_with(Context(cfg, port=port(width, False)), ["data"]).results[0]
        assert res.status == "PASS", (width, res.hint)
    res = run_with(Context(cfg, port=port("usize", True)), ["data"]).results[0]
    failed = {c.name for c in res.checks if not c.passed}
    assert res.status == "FAIL" and {"dtypes", "features"} <= failed, res.hint
    assert "value: float64 vs f32" in res.hint and "count:" not in res.hint, res.hint


def _amsgrad_run(eight_epochs, port) -> list:
    """diagnose_amsgrad_run against a port trace, with the train stage's allowances from the envelope."""
    from harness.tolerances import ENVELOPE_FLOOR, envelope_allowed

    cfg, ctx, p, ref, envs = eight_epochs
    epochs = len(ref.orders)

    def drift(a: dict, b: dict) -> float:
        return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a)

    d_params = np.array([max(drift(ref.epoch_params[e], env.epoch_params[e]) for env in envs) for e in range(epochs)])
    d_loss = np.max([np.abs(env.epoch_loss - ref.epoch_loss) for env in envs], axis=0)
    trace = {"step_loss": port.step_loss, "epoch_params": port.epoch_params, "epoch_loss": port.epoch_loss}
    return dtrain.diagnose_amsgrad_run(
        _ref(cfg),
        p.x_train,
        p.y_train,
        ref,
        envs,
        trace,
        ctx.tol("train.step_loss"),
        envelope_allowed(d_params, ENVELOPE_FLOOR),
        envelope_allowed(d_loss, ENVELOPE_FLOOR),
    )


def test_amsgrad_over_a_whole_run_is_named_only_for_amsgrad(eight_epochs) -> None:
    """A run with AMSGrad is reproduced by the whole-run replay; a run whose learning rate halves from epoch
    4 is not (control)."""
    cfg, _, p, ref, _ = eight_epochs
    r = _ref(cfg)
    amsgrad = r.train(p.x_train, p.y_train, ref.init, ref.orders, amsgrad=True)
    found = _amsgrad_run(eight_epochs, amsgrad)
    assert [c.cause for c in found] == ["train.amsgrad"] and found[0].max_error <= 1
    halved = r.train(p.x_train, p.y_train, ref.init, ref.orders, lr_factor=lambda e, k: 0.5 if e >= 3 else 1.0)
    assert _amsgrad_run(eight_epochs, halved) == []

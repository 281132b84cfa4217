"""The PyO3 extension and its typed face `BurnPort`: typed errors with messages (the harness's own
classes), never a panic; the one `call` entry; numerics of the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness import _burn, errors
from harness.port import BurnPort
from harness.reference.model import init_params


@pytest.fixture(scope="module")
def port() -> BurnPort:
    return BurnPort("flex")


def test_unknown_backend_and_fault_raise_port_error() -> None:
    with pytest.raises(errors.PortInputError, match="unknown backend 'cuda'"):
        _burn.Port("cuda")
    with pytest.raises(errors.PortInputError, match="unknown fault 'nope'"):
        _burn.Port("flex", "nope")
    # The extension declares no exception class of its own: harness/errors.py is the one hierarchy.
    assert not [n for n in dir(_burn) if n.startswith("Port") and n != "Port"]


def test_the_extension_has_one_entry_and_refuses_what_is_not_a_request() -> None:
    """`call` takes the subprocess transport's request (JSON arguments, a safetensors payload); what is
    not one is the port's input error, an unknown method its unsupported error, each with a message."""
    raw = _burn.Port("flex")
    assert [m for m in dir(raw) if not m.startswith("_")] == ["backend", "call", "faults"]
    with pytest.raises(errors.PortInputError, match=r"'split': the arguments must be a JSON object, got \"\[1\]\""):
        raw.call("split", "[1]", b"")
    with pytest.raises(errors.PortInputError, match="'split': a payload that is not safetensors"):
        raw.call("split", "{}", b"not safetensors")
    with pytest.raises(errors.PortUnsupported, match="unknown method 'fly'"):
        raw.call("fly", "{}", b"")
    with pytest.raises(errors.PortInputError, match="argument 'n' must be a whole number"):
        raw.call("split", '{"n": -1, "test_size": 0.2, "seed": 42}', b"")
    # Negative control: a well-formed request is answered.
    result, payload = raw.call("split", '{"n": 10, "test_size": 0.2, "seed": 42}', b"")
    assert result == "{}" and payload


def test_wrong_dtype_and_shape_name_what_was_expected(port: BurnPort) -> None:
    params = init_params(20, 0)
    with pytest.raises(errors.PortShapeError, match=r"tensor 'x' is F64, expected F32"):
        port.forward(params, np.zeros((4, 20)))
    # Parameters load by name through burn-store's PyTorch adapter, which names the mismatch.
    with pytest.raises(errors.PortShapeError, match=r"Shape mismatch for 'fc1\.weight'"):
        port.forward(params, np.zeros((4, 19), dtype=np.float32))
    bad = dict(params, **{"fc2.weight": np.zeros((32, 63), dtype=np.float32)})
    with pytest.raises(errors.PortShapeError, match=r"Shape mismatch for 'fc2\.weight'"):
        port.roundtrip(bad)
    with pytest.raises(errors.PortShapeError, match=r"the reference has no 'fc3\.bias' \(the port's model has\)"):
        port.forward({k: v for k, v in params.items() if k != "fc3.bias"}, np.zeros((1, 20), dtype=np.float32))
    renamed = {("fc1.w" if k == "fc1.weight" else k): v for k, v in params.items()}
    with pytest.raises(errors.PortShapeError, match=r"fc1\.w"):
        port.forward(renamed, np.zeros((1, 20), dtype=np.float32))
    with pytest.raises(errors.PortInputError, match="targets must be 0 or 1"):
        port.backward(params, np.zeros((2, 20), dtype=np.float32), np.array([0.0, 2.0], dtype=np.float32))
    with pytest.raises(errors.PortInputError, match="not a permutation"):
        port.train(
            np.zeros((4, 20), dtype=np.float32),
            np.zeros(4, dtype=np.float32),
            params=params,
            orders=np.zeros((1, 4), dtype=np.int64),
            epochs=1,
        )


def test_a_panic_is_a_port_panic_not_a_base_exception() -> None:
    """PyO3 raises a panic as PanicException, a BaseException that `except Exception` misses; the
    extension catches it and raises the harness's PortPanic (a PortFailure) instead."""
    x = np.ones((3, 2))
    with pytest.raises(errors.PortPanic, match="the port panicked: index out of bounds"):
        BurnPort("flex", "transform-panics").transform(x, np.zeros(2), np.ones(2))
    # Negative control: the faithful port transforms the same input.
    out = BurnPort("flex").transform(x, np.zeros(2), np.ones(2))
    np.testing.assert_array_equal(out, np.ones((3, 2), dtype=np.float32))
    assert issubclass(errors.PortPanic, errors.PortFailure) and issubclass(errors.PortFailure, Exception)


@pytest.mark.parametrize(
    ("preds", "expected"),
    [([1, 0, 1, 0], 0.0), ([0, 1, 0, 1], 100.0), ([0.5] * 4, 0.6931471824645996)],
)
def test_bce_matches_torch_on_the_reports_cases(port: BurnPort, preds: list[float], expected: float) -> None:
    p = np.array(preds, dtype=np.float32)
    y = np.array([1, 0, 1, 0], dtype=np.float32)
    value, grad = port.loss(p, y)
    pt = torch.tensor(p, requires_grad=True)
    ref = torch.nn.BCELoss()(pt, torch.tensor(y))
    ref.backward()
    assert value == pytest.approx(expected, abs=1e-7)
    assert value == pytest.approx(ref.item(), abs=1e-7)
    np.testing.assert_allclose(grad, pt.grad.numpy(), rtol=1.3e-6)


def test_negative_controls_of_the_loss() -> None:
    """The faults reproduce Burn's real behaviours: unclamped values, stock-BCE NaN gradients."""
    p = np.array([1, 0, 1, 0], dtype=np.float32)
    y = np.array([1, 0, 1, 0], dtype=np.float32)
    value, _ = BurnPort("flex", "unclamped-bce").loss(p, y)
    assert np.isnan(value)
    wrong, _ = BurnPort("flex", "unclamped-bce").loss(1 - p, y)
    assert np.isinf(wrong)
    value, grad = BurnPort("flex", "burn-stock-bce").loss(p, y)
    assert value == 0.0 and np.isnan(grad).any()


def test_burn_layout_is_in_out(port: BurnPort) -> None:
    params = init_params(20, 0)
    back, layouts = port.roundtrip(params)
    assert layouts["fc1.weight"] == [20, 64]
    for k, v in params.items():
        np.testing.assert_array_equal(back[k], v)


def test_fortran_ordered_input_is_read_in_logical_order(port: BurnPort) -> None:
    params = init_params(20, 0)
    x = np.random.default_rng(0).normal(size=(7, 20)).astype(np.float32)
    a = port.forward(params, x)["sigmoid"]
    b = port.forward(params, np.asfortranarray(x))["sigmoid"]
    np.testing.assert_array_equal(a, b)

"""Counterfactual diagnosis for image models (harness/diagnosis/layers.py, buffers.py) on the digits CNN
reference (examples/digits-cnn). Each port's numbers are built here with torch's functional ops from a
concrete change, every later layer computed from the changed one (tests/test_diagnosis_models.py's
`port_outputs`); each test asserts the cause the diagnosis names, and the controls that an unrelated
change, or a changed layer whose later layers do not follow from it, is not explained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.config import RunConfig, load_model_settings
from harness.diagnosis import buffers, layers
from harness.reference.reference import Reference
from harness.tolerances import tolerance
from tests.test_diagnosis_models import port_outputs

CNN = Path(__file__).resolve().parent.parent / "examples" / "digits-cnn" / "harness.toml"


@pytest.fixture(scope="module")
def ref() -> Reference:
    return Reference(RunConfig(**load_model_settings(CNN)), 64, 10)


@pytest.fixture(scope="module")
def params(ref: Reference) -> dict[str, np.ndarray]:
    return ref.init_params(0)


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(96, 64)).astype(np.float32)


def _input(ref: Reference, params: dict, x: np.ndarray, layer: str) -> torch.Tensor:
    return ref.layer_inputs(params, x)[layer]


def _causes(ref: Reference, params: dict, x: np.ndarray, layer: str, got: torch.Tensor | dict) -> list[str]:
    outputs = got if isinstance(got, dict) else port_outputs(ref, params, x, layer, got.numpy())
    return [c.cause for c in layers.diagnose(ref, params, x, outputs, layer, tolerance("forward", {}))]


def test_the_reference_takes_images_and_reports_each_layers_shape(ref: Reference) -> None:
    assert ref.sample_shape == (1, 8, 8)
    assert ref.layer_shapes["conv1"] == (16, 8, 8)
    assert ref.layer_shapes["pool1"] == (16, 4, 4)
    assert ref.layer_shapes["flatten"] == (128,)
    hyper = ref.hyperparameters()
    assert hyper["conv2.padding"] == [1, 1] and hyper["pool2.count_include_pad"] is True
    assert hyper["pool1.stride"] == [2, 2]


def test_flatten_channels_last(ref: Reference, params: dict, x: np.ndarray) -> None:
    a = _input(ref, params, x, "flatten")
    got = a.permute(0, 2, 3, 1).reshape(len(a), -1)
    assert _causes(ref, params, x, "flatten", got) == ["forward.flatten.channels_last"]


def test_average_pooling_without_the_padding_in_its_divisor(ref: Reference, params: dict, x: np.ndarray) -> None:
    a = _input(ref, params, x, "pool2")
    got = F.avg_pool2d(a, 3, 1, 1, count_include_pad=False)
    assert _causes(ref, params, x, "pool2", got) == ["forward.pool.count_include_pad"]


def test_a_convolution_left_at_burns_valid_padding(ref: Reference, params: dict, x: np.ndarray) -> None:
    a = _input(ref, params, x, "conv2")
    got = F.conv2d(a, torch.from_numpy(params["conv2.weight"]), torch.from_numpy(params["conv2.bias"]))
    assert got.shape[1:] == (32, 2, 2)  # smaller maps, which the adaptive pool hides
    assert _causes(ref, params, x, "conv2", got) == ["forward.conv.padding"]


def test_a_flipped_kernel(ref: Reference, params: dict, x: np.ndarray) -> None:
    a = _input(ref, params, x, "conv1")
    w = torch.from_numpy(params["conv1.weight"][:, :, ::-1, ::-1].copy())
    got = F.conv2d(a, w, torch.from_numpy(params["conv1.bias"]), padding=1)
    assert _causes(ref, params, x, "conv1", got) == ["forward.conv.kernel_flipped"]


def test_average_pooling_where_the_reference_takes_the_maximum(ref: Reference, params: dict, x: np.ndarray) -> None:
    a = _input(ref, params, x, "pool1")
    assert _causes(ref, params, x, "pool1", F.avg_pool2d(a, 2)) == ["forward.pool.kind"]


def test_an_unrelated_change_names_no_cause(ref: Reference, params: dict, x: np.ndarray) -> None:
    a = _input(ref, params, x, "conv2")
    got = F.conv2d(
        a, torch.from_numpy(params["conv2.weight"]) * 1.01, torch.from_numpy(params["conv2.bias"]), padding=1
    )
    assert _causes(ref, params, x, "conv2", got) == []


def test_a_layer_whose_later_layers_do_not_follow_from_it_names_no_cause(
    ref: Reference, params: dict, x: np.ndarray
) -> None:
    """Control for the rule that a cause reproduces every later layer: the flatten is channels last, but
    the port's fc saw the reference's own flatten (no port computes that), so nothing is named, while the
    same flatten with its fc computed from it is."""
    a = _input(ref, params, x, "flatten")
    nhwc = a.permute(0, 2, 3, 1).reshape(len(a), -1).numpy()
    outputs = {**ref.forward(params, x), "flatten": nhwc}
    assert _causes(ref, params, x, "flatten", outputs) == []
    assert _causes(ref, params, x, "flatten", torch.from_numpy(nhwc)) == ["forward.flatten.channels_last"]


def test_batchnorm2d_running_variance_per_channel(ref: Reference, params: dict) -> None:
    """BatchNorm2d's statistics run per channel over the batch and every position (n x H x W values); a
    port that updates running_var with the biased variance is named, and the unbiased update is not a
    cause."""
    rng = np.random.default_rng(3)

    def cases(ddof: int) -> list[buffers.Case]:
        out = []
        for _ in range(3):
            xb = rng.normal(size=(32, 64)).astype(np.float32)
            z = ref.layer_inputs(params, xb, training=True)["bn1"].numpy().astype(np.float64)
            per_channel = z.transpose(1, 0, 2, 3).reshape(16, -1)
            got = {
                "bn1.running_mean": (0.9 * params["bn1.running_mean"] + 0.1 * per_channel.mean(1)).astype(np.float32),
                "bn1.running_var": (0.9 * params["bn1.running_var"] + 0.1 * per_channel.var(1, ddof=ddof)).astype(
                    np.float32
                ),
            }
            out.append(buffers.Case(params, xb, got))
        return out

    tol = tolerance("backward", {})
    assert [c.cause for c in buffers.diagnose(ref, cases(0), "bn1", tol)] == ["backward.batchnorm.biased_running_var"]
    assert [c.cause for c in buffers.diagnose(ref, cases(1), "bn1", tol)] == []

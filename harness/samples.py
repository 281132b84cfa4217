"""Samples with a shape and a type of their own: the data stages see the table's feature rows `[n, d]`
(float), the model stages a batch `[n, *sample_shape]` (`[n, 1, 8, 8]` for 8x8 grey images), PyTorch's C
order either way, of the model's input type: float32, or int64 token ids (`[data] sample_dtype`). Both
sides take their batches from `model_input`: the reference (`Reference.batch`) and, through `ShapedPort`,
the port, so that both transports send the port what the reference's model takes (protocols 2 and 3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.config import SAMPLE_INT_LIMIT
from harness.errors import HarnessError

if TYPE_CHECKING:  # the reference reads this module too, and needs no port
    from harness.port import Params, Port


def model_input(x: np.ndarray, sample_shape: Sequence[int], dtype: str = "float32") -> np.ndarray:
    """Feature rows as the model's input: a batch of samples of `sample_shape` (the values keep their
    order), float32, or int64 for `dtype` "int64" (float64 for "float64": the reference's
    double-precision runs)."""
    x = np.asarray(x)
    if dtype == "int64":
        check_ids(x)
        return np.ascontiguousarray(x, dtype=np.int64).reshape(len(x), *sample_shape)
    return np.ascontiguousarray(x, dtype=np.dtype(dtype)).reshape(len(x), *sample_shape)


def check_ids(x: np.ndarray, names: Sequence[str] = ()) -> None:
    """Every value of `x` `[n, d]` a whole number of at most SAMPLE_INT_LIMIT in magnitude, or one line
    naming the first that is not (its row from 1, and its column's name when given)."""
    x = np.asarray(x)
    bad = ~np.isfinite(x) | (np.rint(x) != x) | (np.abs(x) > SAMPLE_INT_LIMIT)
    if not bad.any():
        return
    i, j = (int(v) for v in np.argwhere(bad.reshape(len(x), -1))[0])
    column = f"column '{names[j]}'" if j < len(names) else f"value {j}"
    raise HarnessError(
        f'[data] sample_dtype = "int64": row {i + 1}, {column} holds {float(x.reshape(len(x), -1)[i, j])!r}, '
        f"not a whole number of at most 2^24 = {SAMPLE_INT_LIMIT} in magnitude"
    )


class ShapedPort:
    """`port` fed batches of `sample_shape` and `dtype`: every method of the Port protocol; the ones that
    take no model input pass through."""

    def __init__(self, port: Port, sample_shape: Sequence[int], dtype: str = "float32") -> None:
        self._port = port
        self._shape = tuple(sample_shape)
        self._dtype = dtype

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._port, attr)

    def _input(self, x: np.ndarray) -> np.ndarray:
        return model_input(x, self._shape or np.shape(x)[1:], self._dtype)

    def forward(self, params: Params, x: np.ndarray) -> dict[str, np.ndarray]:
        return self._port.forward(params, self._input(x))

    def backward(self, params: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        return self._port.backward(params, self._input(x), y)

    def train(self, x: np.ndarray, y: np.ndarray, **kw: Any) -> dict[str, Any]:
        return self._port.train(self._input(x), y, **kw)

    def evaluate(self, params: Params, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        return self._port.evaluate(params, self._input(x), y)

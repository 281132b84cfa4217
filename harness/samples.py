"""Samples with a shape of their own: the data stages see the table's feature rows `[n, d]`, the model
stages a batch `[n, *sample_shape]` (`[n, 1, 8, 8]` for 8x8 grey images), PyTorch's C order either way.
The reference reshapes its inputs itself (`Reference.batch`); `ShapedPort` does it for the port, so that
both transports send the port the shape the reference's model takes (protocol 2)."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.port import Params, Port


def as_samples(x: np.ndarray, sample_shape: tuple[int, ...]) -> np.ndarray:
    """Feature rows as a batch of samples of `sample_shape` (a view: the values keep their order)."""
    return np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), *sample_shape)


class ShapedPort:
    """`port` fed batches of `sample_shape`: every method of the Port protocol; the ones that take no model
    input pass through."""

    def __init__(self, port: Port, sample_shape: tuple[int, ...]) -> None:
        self._port = port
        self._shape = tuple(sample_shape)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._port, attr)

    def forward(self, params: Params, x: np.ndarray) -> dict[str, np.ndarray]:
        return self._port.forward(params, as_samples(x, self._shape))

    def backward(self, params: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        return self._port.backward(params, as_samples(x, self._shape), y)

    def train(self, x: np.ndarray, y: np.ndarray, **kw: Any) -> dict[str, Any]:
        return self._port.train(as_samples(x, self._shape), y, **kw)

    def evaluate(self, params: Params, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        return self._port.evaluate(params, as_samples(x, self._shape), y)

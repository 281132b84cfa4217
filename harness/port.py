"""The Burn side as seen from Python: one typed interface over the PyO3 extension `harness._burn`.

Parameters cross by name in PyTorch's layout ([out, in]); the port converts to Burn's [in, out].
The extension raises the harness's own exception class for each error kind of the contract
(harness/errors.py: `PortInputError`, `PortShapeError`, `PortStructureError`, `PortPanic`,
`PortUnsupported`), which the subprocess transport raises too, so stages see one hierarchy whichever
transport runs the port.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from harness import errors
from harness.errors import HarnessError

T = TypeVar("T")

Params = dict[str, np.ndarray]

try:
    from harness import _burn

    IMPORT_ERROR: str | None = None
except ImportError as e:  # the extension is not built: every port stage is ERROR, exit 2
    _burn = None
    IMPORT_ERROR = f"the Burn extension harness._burn is not built ({e}); run the README's setup command"


class Port(Protocol):
    backend: str

    def prepare(self, path: Path, label: str, test_size: float, seed: int) -> dict[str, Any]: ...
    def load_csv(self, path: Path, label: str) -> dict[str, Any]: ...
    def split(self, n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]: ...
    def fit_scaler(self, x: np.ndarray, train_rows: np.ndarray) -> dict[str, np.ndarray]: ...
    def transform(self, x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray: ...
    def effective_config(self) -> dict[str, Any]: ...
    def roundtrip(self, params: Params) -> tuple[Params, dict[str, list[int]]]: ...
    def forward(self, params: Params, x: np.ndarray) -> dict[str, np.ndarray]: ...
    def loss(self, p: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]: ...
    def backward(self, params: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]: ...
    def optimizer_step(self, params: Params, grads: Params, state: dict | None) -> tuple[Params, dict]: ...
    def train(self, x: np.ndarray, y: np.ndarray, **kw: Any) -> dict[str, Any]: ...
    def evaluate(self, params: Params, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]: ...
    def accuracy(self, probs: np.ndarray, y: np.ndarray) -> float: ...


def n_features(params: Params) -> int:
    """The model's input width, as both transports tell the port: the first parameter's last dimension
    when it is a matrix (the first layer's weight, PyTorch's [out, in]); 0 when it is not, for the port to
    reject with its own message."""
    first = next(iter(params.values()), None)
    return int(np.shape(first)[-1]) if first is not None and np.ndim(first) == 2 else 0


def available_faults() -> list[dict[str, str]]:
    require_extension()
    return list(_burn.faults())


def require_extension() -> None:
    if _burn is None:
        raise HarnessError(IMPORT_ERROR or "the Burn extension harness._burn is not built; run ./dev setup")


def _call(f: Callable[..., T], *args: Any, **kw: Any) -> T:
    """One call into the extension; its errors are already the harness's classes."""
    return f(*args, **kw)


class BurnPort:
    """The in-process port (PyO3). `fault` is a fault name, a comma list, or '' for the faithful port."""

    def __init__(self, backend: str, fault: str = "", epochs: int | None = None) -> None:
        """`epochs`: the port's own when None."""
        require_extension()
        try:
            self._port = _burn.Port(backend, fault, epochs)
        except errors.PortRejected as e:
            raise HarnessError(str(e)) from e
        self.backend = backend
        self.fault = fault

    def prepare(self, path: Path, label: str, test_size: float, seed: int) -> dict[str, Any]:
        return dict(_call(self._port.prepare, str(path), label, test_size, seed))

    def load_csv(self, path: Path, label: str = "label") -> dict[str, Any]:
        return dict(_call(self._port.load_csv, str(path), label))

    def split(self, n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        return _call(self._port.split, n, test_size, seed)

    def fit_scaler(self, x: np.ndarray, train_rows: np.ndarray) -> dict[str, np.ndarray]:
        return dict(_call(self._port.fit_scaler, x, train_rows.astype(np.int64)))

    def transform(self, x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
        return _call(self._port.transform, x, mean, scale)

    def effective_config(self) -> dict[str, Any]:
        return dict(json.loads(_call(self._port.effective_config_json)))

    def roundtrip(self, params: Params) -> tuple[Params, dict[str, list[int]]]:
        back, layouts = _call(self._port.roundtrip, params, n_features(params))
        return dict(back), dict(layouts)

    def forward(self, params: Params, x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(_call(self._port.forward, params, x))

    def loss(self, p: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        return _call(self._port.loss, p, y)

    def backward(self, params: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        loss, grads = _call(self._port.backward, params, x, y)
        return loss, dict(grads)

    def optimizer_step(self, params: Params, grads: Params, state: dict | None) -> tuple[Params, dict]:
        new, st = _call(self._port.optimizer_step, params, grads, state if state and state.get("step") else None)
        return dict(new), dict(st)

    def train(self, x: np.ndarray, y: np.ndarray, **kw: Any) -> dict[str, Any]:
        return dict(_call(self._port.train, x, y, **kw))

    def evaluate(self, params: Params, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        return _call(self._port.evaluate, params, x, y)

    def accuracy(self, probs: np.ndarray, y: np.ndarray) -> float:
        return float(_call(self._port.accuracy, np.ascontiguousarray(probs, dtype=np.float32), y))

"""Type stub of the in-process transport: the classifier port compiled from rust_bridge/crates/burn-py.

Every method of `Port` answers one question of the port contract (`burn_diff::Port`, docs/protocol.md);
arrays are numpy, parameters are dicts of name to float32 array in PyTorch's layout. Errors are one
exception class per error kind of the contract, all subclasses of `PortError`.
"""

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

DEFAULT_BACKEND: str

class PortError(ValueError):
    """The port could not answer."""

class PortInputError(PortError):
    """The port rejected its input (file, data, unknown name)."""

class PortShapeError(PortError):
    """Arrays or parameters of the wrong shape, or unknown or missing names."""

class PortStructureError(PortShapeError):
    """The port's model lacks parameters it was given, or has others; `args` is
    `(message, [(name, shape), ...])`, the model's own parameters by PyTorch name."""

class PortPanic(PortError):
    """The port's code panicked; the panic's message is the error's."""

class PortUnsupported(PortError):
    """The port does not implement this method."""

Params = dict[str, NDArray[np.float32]]

class Port:
    def __init__(self, backend: str = ..., fault: str = ..., epochs: int = ...) -> None: ...
    @property
    def backend(self) -> str: ...
    @property
    def faults(self) -> list[str]: ...
    def load_csv(self, path: str, label: str) -> dict[str, object]: ...
    def split(self, n: int, test_size: float, seed: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]: ...
    def fit_scaler(self, x: NDArray[np.float64], train_rows: NDArray[np.int64]) -> dict[str, NDArray[np.float64]]: ...
    def transform(
        self, x: NDArray[np.float64], mean: NDArray[np.float64], scale: NDArray[np.float64]
    ) -> NDArray[np.float32]: ...
    def prepare(self, path: str, label: str = ..., test_size: float = ..., seed: int = ...) -> dict[str, object]: ...
    def effective_config_json(self) -> str: ...
    def roundtrip(self, params: Params, n_features: int) -> tuple[Params, dict[str, list[int]]]: ...
    def forward(self, params: Params, x: NDArray[np.float32]) -> dict[str, NDArray[np.float32]]: ...
    def loss(self, p: NDArray[np.float32], y: NDArray[np.float32]) -> tuple[float, NDArray[np.float32]]: ...
    def backward(self, params: Params, x: NDArray[np.float32], y: NDArray[np.float32]) -> tuple[float, Params]: ...
    def optimizer_step(
        self, params: Params, grads: Params, state: dict[str, object] | None = ...
    ) -> tuple[Params, dict[str, object]]: ...
    def train(
        self,
        x: NDArray[np.float32],
        y: NDArray[np.float32],
        params: Params | None = ...,
        orders: NDArray[np.int64] | None = ...,
        epochs: int | None = ...,
        seed: int = ...,
        record_steps: int = ...,
        on_epoch: Callable[[int, float], object] | None = ...,
        dropout: bool = ...,
    ) -> dict[str, object]: ...
    def accuracy(self, probs: NDArray[np.float32], y: NDArray[np.float32]) -> float: ...
    def evaluate(
        self, params: Params, x: NDArray[np.float32], y: NDArray[np.float32]
    ) -> tuple[NDArray[np.float32], float]: ...

def faults() -> list[dict[str, str]]: ...
def backends() -> list[str]: ...
def user_port_faults() -> list[str]: ...

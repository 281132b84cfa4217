"""The Burn side as seen from Python: the `Port` interface every stage calls, and `BurnPort`, the
in-process transport over the PyO3 extension `harness._burn`.

Parameters cross by name in PyTorch's layout ([out, in]); the port converts to Burn's [in, out].
`BurnPort` is a `WirePort` (harness/transport/wire.py), as the subprocess transport is: it hands the
extension the very request frame the subprocess transport would write to a pipe, and the extension
answers it through `burn_diff::call`, the dispatch `burn_diff::serve` runs. The extension raises the
harness's own exception class for each error kind of the contract (harness/errors.py:
`PortInputError`, `PortShapeError`, `PortStructureError`, `PortPanic`, `PortUnsupported`), which the
subprocess transport raises too, so stages see one hierarchy whichever transport runs the port.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from harness import errors
from harness.errors import HarnessError
from harness.transport.frames import Frame, decode_header, decode_payload, encode_header, encode_payload
from harness.transport.wire import OptimState, Params, Prepared, Progress, ScalerStats, Table, TrainTrace, WirePort

try:
    from harness import _burn

    IMPORT_ERROR: str | None = None
except ImportError as e:  # the extension is not built: every port stage is ERROR, exit 2
    _burn = None
    IMPORT_ERROR = f"the Burn extension harness._burn is not built ({e}); run the README's setup command"


class Port(Protocol):
    backend: str

    def prepare(self, path: Path, label: str, test_size: float, seed: int) -> Prepared: ...
    def load_csv(self, path: Path, label: str) -> Table: ...
    def split(self, n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]: ...
    def fit_scaler(self, x: np.ndarray, train_rows: np.ndarray) -> ScalerStats: ...
    def transform(self, x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray: ...
    def effective_config(self) -> dict[str, Any]: ...
    def roundtrip(self, params: Params) -> tuple[Params, dict[str, list[int]]]: ...
    def forward(self, params: Params, x: np.ndarray) -> dict[str, np.ndarray]: ...
    def loss(self, p: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]: ...
    def backward(self, params: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]: ...
    def optimizer_step(self, params: Params, grads: Params, state: OptimState | None) -> tuple[Params, OptimState]: ...
    def train(self, x: np.ndarray, y: np.ndarray, **kw: Any) -> TrainTrace: ...
    def evaluate(self, params: Params, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]: ...
    def accuracy(self, probs: np.ndarray, y: np.ndarray) -> float: ...


def available_faults() -> list[dict[str, str]]:
    require_extension()
    return list(_burn.faults())


def require_extension() -> None:
    if _burn is None:
        raise HarnessError(IMPORT_ERROR or "the Burn extension harness._burn is not built; run ./dev setup")


class BurnPort(WirePort):
    """The in-process port (PyO3). `fault` is a fault name, a comma list, or '' for the faithful port."""

    def __init__(self, backend: str, fault: str = "", epochs: int | None = None) -> None:
        """`epochs`: the port's own when None."""
        require_extension()
        super().__init__()
        try:
            self._port = _burn.Port(backend, fault, epochs)
        except errors.PortRejected as e:
            raise HarnessError(str(e)) from e
        self.backend = backend
        self.fault = fault
        self.methods = tuple(_burn.METHODS)

    def protocol(self) -> int:
        return int(_burn.PROTOCOL)

    def _exchange(
        self, method: str, args: Mapping[str, Any], tensors: Mapping[str, np.ndarray], on_progress: Progress | None
    ) -> Frame:
        progress: Callable[[int, float], None] | None = None
        if on_progress is not None:
            callback = on_progress

            def progress(epoch: int, loss: float) -> None:
                callback({"epoch": epoch, "loss": loss})

        result, payload = self._port.call(
            method, encode_header(args).decode("utf-8"), encode_payload(tensors), progress
        )
        return Frame({"result": decode_header(result.encode("utf-8"))}, decode_payload(payload))

"""Errors the harness reports as 'could not run' (exit code 2)."""

from collections.abc import Mapping
from typing import Any


class HarnessError(Exception):
    """Bad input, usage or environment: reported as one line, exit code 2."""


class PortFailure(Exception):
    """The port under test failed to answer usably: the stage is ERROR (exit code 2), never a traceback.

    The one hierarchy of port errors: the in-process extension (rust_bridge/crates/burn-py) raises these
    classes themselves, by the contract's error kind, and the subprocess transport raises them from the
    protocol's error responses.
    """


class PortProtocolError(PortFailure):
    """The port wrote something that is not a valid frame or answer (garbage, wrong id, bad header)."""


class PortCrashed(PortFailure):
    """The port exited or closed its output before answering."""


class PortTimeout(PortFailure):
    """The port took longer than the per-request timeout; it has been stopped."""


class PortVersionError(PortFailure):
    """The port speaks another protocol version."""


class PortRejected(PortFailure):
    """The port answered with an error response; `kind` is the protocol's error kind."""

    kind = ""


class PortInputError(PortRejected):
    kind = "input"


class PortShapeError(PortRejected):
    kind = "shape"


class PortStructureError(PortShapeError):
    """The port's model does not have the parameters it was given (a missing bias, its own names): a
    divergence of the port, reported as FAIL at the weights stage. `parameters` holds the model's own
    parameters, PyTorch name -> shape, when the port said."""

    kind = "structure"

    def __init__(self, message: str, parameters: Any = None) -> None:
        """`parameters`: name -> shape, as a mapping or as (name, shape) pairs (the extension's form)."""
        super().__init__(message)
        pairs = parameters.items() if isinstance(parameters, Mapping) else (parameters or ())
        self.parameters: dict[str, tuple[int, ...]] = {str(n): tuple(int(d) for d in s) for n, s in pairs}


class PortPanic(PortRejected):
    kind = "panic"


class PortUnsupported(PortRejected):
    kind = "unsupported"

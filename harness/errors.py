"""Errors the harness reports as 'could not run' (exit code 2)."""


class HarnessError(Exception):
    """Bad input, usage or environment: reported as one line, exit code 2."""


class PortFailure(Exception):
    """The port under test failed to answer usably: the stage is ERROR (exit code 2), never a traceback.

    The in-process extension raises its own `harness._burn.PortError` (a ValueError); a port behind the
    subprocess transport raises one of the subclasses below, so callers catch both.
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

    def __init__(self, message: str, parameters: dict[str, tuple[int, ...]] | None = None) -> None:
        super().__init__(message)
        self.parameters: dict[str, tuple[int, ...]] = dict(parameters or {})


class PortPanic(PortRejected):
    kind = "panic"


class PortUnsupported(PortRejected):
    kind = "unsupported"

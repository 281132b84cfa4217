"""Type stub of the in-process transport: the classifier port compiled from rust_bridge/crates/burn-py.

`Port.call` answers one request of the port contract (`burn_diff::Port`, docs/protocol.md) in the
subprocess transport's own encoding; harness/port.py's `BurnPort` encodes and decodes them
(harness/transport/wire.py). Errors are the harness's own classes, one per error kind of the contract
(harness/errors.py: PortInputError, PortShapeError, PortStructureError, PortPanic, PortUnsupported, all
`PortFailure`s).
"""

from collections.abc import Callable

DEFAULT_BACKEND: str
# The methods burn_diff::serve answers (serve.rs METHODS).
METHODS: list[str]
# The protocol version `call` speaks (burn_diff::protocol::PROTOCOL_VERSION).
PROTOCOL: int

class Port:
    def __init__(self, backend: str = ..., fault: str = ..., epochs: int | None = ...) -> None: ...
    @property
    def backend(self) -> str: ...
    @property
    def faults(self) -> list[str]: ...
    def call(
        self,
        method: str,
        args: str,
        payload: bytes,
        on_progress: Callable[[int, float], object] | None = ...,
    ) -> tuple[str, bytes]:
        """One request of the port protocol (docs/protocol.md), answered by `burn_diff::call`: `method`, its
        arguments as a JSON object, its tensors as a safetensors buffer; returns the result object as JSON
        and the result tensors as a safetensors buffer."""

def faults() -> list[dict[str, str]]: ...
def backends() -> list[str]: ...
def user_port_faults() -> list[str]: ...

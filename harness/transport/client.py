"""`SubprocessPort`: a port running as its own process. Its methods and the values they return are
`WirePort`'s (harness/transport/wire.py), as the in-process `BurnPort`'s are, so every stage works
unchanged on either; this module carries the frames over the process's pipes and checks its `hello`."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

import numpy as np

from harness.errors import PortFailure, PortProtocolError, PortVersionError
from harness.transport.frames import Frame
from harness.transport.process import PORT_TIMEOUT_S, PortProcess
from harness.transport.wire import Answer, Progress, WirePort

PROTOCOL = 3
# Protocol 2 added batches with a per-sample shape ([n, C, H, W]), protocol 3 int64 batches (token ids);
# an older port still serves every model whose input it can read, and is refused, by name, the first
# batch it cannot.
COMPATIBLE = (1, 2, 3)


class SubprocessPort(WirePort):
    """The port behind `cmd` (split like a shell command line, run without a shell), spoken to over
    docs/protocol.md. Started on first use (or `start()`); `backend` and `fault` come from `hello`."""

    def __init__(self, cmd: str, timeout: float = PORT_TIMEOUT_S) -> None:
        super().__init__()
        self.cmd = cmd
        self.timeout = timeout
        self._process: PortProcess | None = None
        self._start_error: PortFailure | None = None
        self.hello: dict[str, Any] = {}

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> SubprocessPort:
        if self._start_error is not None:
            # Not restarted: the same failure for every later stage, at once.
            raise type(self._start_error)(str(self._start_error))
        if self._process is not None:
            return self
        try:
            self._process = PortProcess(self.cmd, self.timeout)
            answer = Answer("hello", self._process.request("hello", {"protocol": PROTOCOL}))
            self.hello = self._check_hello(answer)
        except PortFailure as e:
            self._start_error = e
            if self._process is not None:
                self._process.fail(e)
            raise
        return self

    def _check_hello(self, answer: Answer) -> dict[str, Any]:
        version = answer.field("protocol")
        if version not in COMPATIBLE:
            raise PortVersionError(
                f"the port speaks protocol {version}, this harness speaks "
                f"{', '.join(map(str, COMPATIBLE[:-1]))} or {COMPATIBLE[-1]}"
            )
        hello = dict(answer.result)
        for key in ("faults", "methods"):
            value = hello.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise PortProtocolError(f"'hello' result '{key}' must be a list of strings, got {value!r}")
        if not isinstance(hello.get("backend", ""), str):
            raise PortProtocolError(f"'hello' result 'backend' must be a string, got {hello['backend']!r}")
        return hello

    def close(self) -> None:
        if self._process is not None:
            self._process.close()

    def __enter__(self) -> SubprocessPort:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def backend(self) -> str:
        return str(self.start().hello.get("backend", ""))

    @property
    def fault(self) -> str:
        return ",".join(self.start().hello.get("faults", []))

    @property
    def stderr_lines(self) -> list[str]:
        return self._process.stderr_lines if self._process is not None else []

    def identity(self) -> dict[str, Any] | None:
        """What the port said about itself, once started; None before (or if it never answered)."""
        if not self.hello:
            return None
        return {k: self.hello.get(k) for k in ("name", "backend", "faults", "protocol")}

    # -- transport ---------------------------------------------------------------------------------

    @property
    def methods(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.start().hello.get("methods") or ())

    def protocol(self) -> int:
        return int(self.start().hello.get("protocol", PROTOCOL))

    def _exchange(
        self, method: str, args: Mapping[str, Any], tensors: Mapping[str, np.ndarray], on_progress: Progress | None
    ) -> Frame:
        self.start()
        assert self._process is not None
        return self._process.request(method, args, tensors, on_progress)

"""The port's process: start, one request at a time with a deadline, stderr tail, stop.

Nothing here may block without a deadline: reading happens on a thread that feeds a queue, writing
happens on a thread the caller waits for, and a port that overruns is killed with its whole process
group (a `cargo run` wrapper would otherwise leave the real server holding the pipes open).
"""

from __future__ import annotations

import contextlib
import os
import queue
import shlex
import signal
import subprocess
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from typing import IO, Any

import numpy as np

from harness.errors import (
    PortCrashed,
    PortFailure,
    PortInputError,
    PortPanic,
    PortProtocolError,
    PortRejected,
    PortShapeError,
    PortStructureError,
    PortTimeout,
    PortUnsupported,
)
from harness.transport.frames import Frame, encode_frame, preview, read_frame

# Per request: a full training of the user's model takes seconds; ten minutes means the port is stuck.
# RunConfig.port_timeout's default (harness/config.py reads it here, so the transport imports no config).
PORT_TIMEOUT_S = 600.0
STDERR_LINES = 20
STDERR_LINE_CHARS = 300
# How long a port may take to exit after EOF or `shutdown` before it is killed.
EXIT_GRACE_S = 5.0
# How long to wait for more bytes of garbage, only to show them in the message.
GARBAGE_GRACE_S = 0.2
ERROR_KINDS: dict[str, type[PortRejected]] = {
    c.kind: c for c in (PortInputError, PortShapeError, PortStructureError, PortPanic, PortUnsupported)
}
POSIX = os.name == "posix"


def _parameters(raw: Any, method: str) -> dict[str, tuple[int, ...]]:
    """A structure error's `parameters`: the model's own, `[{"name", "shape"}]` (docs/protocol.md)."""
    if raw is None:
        return {}
    ok = isinstance(raw, list) and all(
        isinstance(p, dict)
        and isinstance(p.get("name"), str)
        and isinstance(p.get("shape"), list)
        and all(isinstance(d, int) and d >= 0 for d in p["shape"])
        for p in raw
    )
    if not ok:
        raise PortProtocolError(f"the port's structure error in '{method}' has malformed parameters: {raw!r}")
    return {p["name"]: tuple(p["shape"]) for p in raw}


class _Eof(Exception):
    pass


class _Deadline(Exception):
    pass


class _Reader:
    """Bytes from a pipe with deadlines: a daemon thread reads, the caller waits on a queue."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._chunks: queue.Queue[bytes] = queue.Queue()
        self._buf = bytearray()
        self._eof = False
        self._deadline = 0.0
        # The thread holds the stream itself, not its descriptor number: once the port's Popen is
        # collected its pipe would be closed, the number reused by the next port's pipe, and this
        # thread's next read would take that port's answers (its 'hello' then never arrives).
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[bytes]) -> None:
        while True:
            try:
                chunk = os.read(stream.fileno(), 1 << 20)
            except (OSError, ValueError):
                chunk = b""
            self._chunks.put(chunk)
            if not chunk:
                return

    def _fill(self, timeout: float) -> bool:
        if self._eof:
            return False
        try:
            chunk = self._chunks.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return False
        if not chunk:
            self._eof = True
            return False
        self._buf += chunk
        return True

    def read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            if self._eof:
                raise _Eof
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise _Deadline
            self._fill(left)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def available(self) -> bytes:
        end = time.monotonic() + GARBAGE_GRACE_S
        while len(self._buf) < 64 and self._fill(end - time.monotonic()):
            pass
        out = bytes(self._buf)
        self._buf.clear()
        return out

    def frame(self, deadline: float) -> Frame:
        self._deadline = deadline
        return read_frame(self.read_exact, self.available)


class _StderrTail:
    def __init__(self, stream: IO[bytes]) -> None:
        self.lines: deque[str] = deque(maxlen=STDERR_LINES)
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[bytes]) -> None:
        with contextlib.suppress(OSError, ValueError):
            for raw in stream:
                line = raw.decode("utf-8", errors="replace").rstrip()
                if line.strip():
                    self.lines.append(line[:STDERR_LINE_CHARS])

    def last(self, wait: float = 1.0) -> str:
        # The port's last words may still be in the pipe when its stdout closes.
        self._thread.join(wait)
        return self.lines[-1] if self.lines else ""


def _activity(pid: int) -> str:
    """What a running process is doing, from Linux's /proc: the CPU time it has used, and where in the
    kernel it waits ("pipe_read": on its input; "futex_wait": on a lock); "" elsewhere or once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # After the command's closing parenthesis: state is field 3 of stat(5), utime and stime 14 and 15.
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return ""
    try:
        with open(f"/proc/{pid}/wchan", encoding="ascii") as f:
            wchan = f.read().strip()
    except OSError:
        wchan = ""
    waiting = f", waiting in {wchan}" if wchan and wchan != "0" else ""
    return f" (it had used {cpu:.1f} s of CPU{waiting})"


def _kill(proc: subprocess.Popen[bytes]) -> None:
    # The whole group even when the port itself has exited: a child it left may still hold the pipes.
    with contextlib.suppress(OSError):
        if POSIX:
            os.killpg(proc.pid, signal.SIGKILL)
        elif proc.poll() is None:
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(EXIT_GRACE_S)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Close the port without talking to it: EOF on stdin, a grace period, then kill."""
    if proc.poll() is None:
        with contextlib.suppress(OSError, ValueError):
            proc.stdin.close()  # type: ignore[union-attr]
        try:
            proc.wait(1.0)
        except subprocess.TimeoutExpired:
            _kill(proc)


def exit_description(code: int | None) -> str:
    if code is None:
        return "still running; stopped"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class PortProcess:
    """One running port. After a fatal failure (crash, garbage, wrong id, timeout) it stays failed:
    every later request raises at once, so a stage after a crash is ERROR instead of a hang."""

    def __init__(self, cmd: str, timeout: float) -> None:
        try:
            argv = shlex.split(cmd)
        except ValueError as e:
            raise PortFailure(f"cannot parse the port command {cmd!r}: {e}") from e
        if not argv:
            raise PortFailure("the port command is empty")
        self.cmd = cmd
        self.timeout = timeout
        self._next_id = 0
        self._failed: PortFailure | None = None
        try:
            # A session of its own, so that a timeout can kill the port together with its children.
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=POSIX,
            )
        except OSError as e:
            raise PortCrashed(f"cannot start the port {argv[0]!r}: {e.strerror or e}") from e
        self._stdout = _Reader(self._proc.stdout)  # type: ignore[arg-type]
        self._stderr = _StderrTail(self._proc.stderr)  # type: ignore[arg-type]
        self._finalizer = weakref.finalize(self, _stop, self._proc)

    @property
    def running(self) -> bool:
        return self._failed is None and self._proc.poll() is None

    @property
    def stderr_lines(self) -> list[str]:
        return list(self._stderr.lines)

    def request(
        self,
        method: str,
        args: Mapping[str, Any] | None = None,
        tensors: Mapping[str, np.ndarray] | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        timeout: float | None = None,
    ) -> Frame:
        """Send one request and return the successful answer's frame; everything else raises a PortFailure."""
        if self._failed is not None:
            raise type(self._failed)(f"the port is not running since an earlier failure: {self._failed}")
        rid = self._next_id
        self._next_id += 1
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        frame = encode_frame({"id": rid, "method": method, "args": dict(args or {})}, tensors)
        try:
            self._write(frame, deadline)
            while True:
                answer = self._stdout.frame(deadline)
                if self._is_progress(answer, rid, method):
                    if on_progress is not None:
                        on_progress(answer.header)
                    continue
                return self._result(answer, rid, method)
        except _Deadline:
            # What it was doing tells a port waiting on something from one still computing.
            doing = _activity(self._proc.pid)
            self._kill()
            last = self._stderr.last(wait=0.2)
            raise self._fail(
                PortTimeout(
                    f"the port timed out after {limit:g} s on '{method}' and was stopped{doing}"
                    + (f"; its last stderr line: {last}" if last else "")
                )
            ) from None
        except (_Eof, BrokenPipeError):
            raise self._fail(self._crashed(method)) from None
        except PortProtocolError as e:
            self._kill()
            raise self._fail(e) from None

    def _write(self, data: bytes, deadline: float) -> None:
        # A port that does not read its input would block a plain write forever once the pipe is full.
        errors: list[BaseException] = []

        def write() -> None:
            try:
                self._proc.stdin.write(data)  # type: ignore[union-attr]
                self._proc.stdin.flush()  # type: ignore[union-attr]
            except (OSError, ValueError) as e:
                errors.append(e)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        writer.join(max(deadline - time.monotonic(), 0.0))
        if writer.is_alive():
            raise _Deadline
        if errors:
            raise BrokenPipeError(str(errors[0]))

    def _is_progress(self, frame: Frame, rid: int, method: str) -> bool:
        h = frame.header
        got = h.get("id")
        if got != rid or isinstance(got, bool):
            raise PortProtocolError(f"the port answered request {rid} ('{method}') with id {got!r}")
        return h.get("event") == "progress"

    def _result(self, frame: Frame, rid: int, method: str) -> Frame:
        h = frame.header
        if h.get("ok") is True:
            if not isinstance(h.get("result", {}), dict):
                raise PortProtocolError(f"the port's answer to '{method}' has a result that is not an object")
            return frame
        if h.get("ok") is not False:
            raise PortProtocolError(f"the port's answer to '{method}' has no 'ok' field: {preview(repr(h).encode())}")
        err = h.get("error")
        kind = err.get("kind") if isinstance(err, dict) else None
        message = err.get("message") if isinstance(err, dict) else None
        if kind not in ERROR_KINDS or not isinstance(message, str):
            raise PortProtocolError(f"the port's error answer to '{method}' is malformed: {err!r}")
        first = message.strip().splitlines()[0] if message.strip() else "(no message)"
        if kind == "panic":
            first = f"the port panicked in '{method}': {first}"
        elif kind == "unsupported":
            first = f"the port does not implement '{method}': {first}"
        if kind == "structure":
            raise PortStructureError(first, _parameters(err.get("parameters"), method))
        raise ERROR_KINDS[kind](first)

    def _crashed(self, method: str) -> PortCrashed:
        try:
            code: int | None = self._proc.wait(EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            self._kill()
            last = self._stderr.last()
            return PortCrashed(
                f"the port closed its output during '{method}' without answering (it was stopped)"
                + (f"; its last stderr line: {last}" if last else "")
            )
        last = self._stderr.last()
        what = "crashed" if code != 0 else "exited without answering"
        tail = f"; its last stderr line: {last}" if last else "; nothing on stderr"
        return PortCrashed(f"the port {what} during '{method}' ({exit_description(code)}){tail}")

    def _fail(self, e: PortFailure) -> PortFailure:
        self._failed = e
        return e

    def fail(self, e: PortFailure) -> PortFailure:
        """Mark the port unusable (e.g. a refused handshake) and stop it."""
        self._kill()
        return self._fail(e)

    def _kill(self) -> None:
        _kill(self._proc)

    def close(self) -> None:
        """`shutdown`, then EOF, a grace period, and a kill if the port is still there."""
        if not self._finalizer.alive:
            return
        if self.running:
            with contextlib.suppress(PortFailure):
                self.request("shutdown", timeout=min(self.timeout, EXIT_GRACE_S))
        with contextlib.suppress(OSError, ValueError):
            self._proc.stdin.close()  # type: ignore[union-attr]
        try:
            self._proc.wait(EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            self._kill()
        self._finalizer.detach()
        if self._failed is None:
            self._failed = PortCrashed("the port was closed")

"""`SubprocessPort`: a port running as its own process, with the same methods and return types as the
in-process `BurnPort` (harness/port.py), so every stage works unchanged on either."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from harness.config import PORT_TIMEOUT_S
from harness.errors import PortFailure, PortProtocolError, PortUnsupported, PortVersionError
from harness.port import n_features
from harness.transport import naming
from harness.transport.frames import Frame, json_float
from harness.transport.process import PortProcess

PROTOCOL = 2
# Protocol 2 added batches with a per-sample shape ([n, C, H, W]); a protocol-1 port still serves every
# model whose input is a feature row [n, d], and is refused, by name, the first batch it cannot read.
COMPATIBLE = (1, 2)
Params = dict[str, np.ndarray]


def _array(x: Any) -> np.ndarray:
    return np.asarray(x)


class _Answer:
    """A successful answer, with checked access to its result fields and tensors."""

    def __init__(self, method: str, frame: Frame) -> None:
        self.method = method
        self.result: dict[str, Any] = frame.header.get("result") or {}
        self.tensors = frame.tensors

    def field(self, name: str) -> Any:
        if name not in self.result:
            raise PortProtocolError(f"the port's answer to '{self.method}' lacks the result field '{name}'")
        return self.result[name]

    def as_float(self, name: str) -> float:
        return json_float(self.field(name), f"'{self.method}' result '{name}'")

    def as_f32(self, name: str) -> float:
        # The in-process port returns float32 values widened to float; a JSON decimal that round-trips
        # float32 becomes that same value only after rounding through float32.
        return float(np.float32(self.as_float(name)))

    def as_int(self, name: str) -> int:
        v = self.field(name)
        if isinstance(v, bool) or not isinstance(v, int):
            raise PortProtocolError(f"'{self.method}' result '{name}': expected an integer, got {v!r}")
        return v

    def tensor(self, name: str) -> np.ndarray:
        if name not in self.tensors:
            raise PortProtocolError(f"the port's answer to '{self.method}' lacks the tensor '{name}'")
        return self.tensors[name]

    def group(self, prefix: str, order: Iterable[str] = ()) -> Params:
        g = naming.group(self.tensors, prefix, order)
        if not g:
            raise PortProtocolError(f"the port's answer to '{self.method}' has no '{prefix}/*' tensors")
        return g


class SubprocessPort:
    """The port behind `cmd` (split like a shell command line, run without a shell), spoken to over
    docs/protocol.md. Started on first use (or `start()`); `backend` and `fault` come from `hello`."""

    def __init__(self, cmd: str, timeout: float = PORT_TIMEOUT_S) -> None:
        self.cmd = cmd
        self.timeout = timeout
        self._process: PortProcess | None = None
        self._start_error: PortFailure | None = None
        self.hello: dict[str, Any] = {}
        self._config: dict[str, Any] | None = None
        # Names in the order the harness last sent them, so that answers come back in that order.
        self._names: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> SubprocessPort:
        if self._start_error is not None:
            # Not restarted: the same failure for every later stage, at once.
            raise type(self._start_error)(str(self._start_error))
        if self._process is not None:
            return self
        try:
            self._process = PortProcess(self.cmd, self.timeout)
            answer = _Answer("hello", self._process.request("hello", {"protocol": PROTOCOL}))
            self.hello = self._check_hello(answer)
        except PortFailure as e:
            self._start_error = e
            if self._process is not None:
                self._process.fail(e)
            raise
        return self

    def _check_hello(self, answer: _Answer) -> dict[str, Any]:
        version = answer.field("protocol")
        if version not in COMPATIBLE:
            raise PortVersionError(
                f"the port speaks protocol {version}, this harness speaks {' or '.join(map(str, COMPATIBLE))}"
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

    def _call(
        self,
        method: str,
        args: Mapping[str, Any] | None = None,
        tensors: Mapping[str, np.ndarray] | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> _Answer:
        self.start()
        assert self._process is not None
        methods = self.hello.get("methods")
        if methods and method not in methods:
            raise PortUnsupported(f"the port does not implement '{method}' (hello lists: {', '.join(methods)})")
        return _Answer(method, self._process.request(method, args, tensors, on_progress))

    def _params(self, prefix: str, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._names = list(params)
        return naming.flatten(prefix, {k: _array(v) for k, v in params.items()})

    # -- the Port interface (harness/port.py) ------------------------------------------------------

    def prepare(self, path: Path, label: str, test_size: float, seed: int) -> dict[str, Any]:
        a = self._call("prepare", {"path": str(path), "label": label, "test_size": float(test_size), "seed": int(seed)})
        out: dict[str, Any] = {"feature_names": list(a.field("feature_names"))}
        for name in ("train_idx", "test_idx", "mean", "scale", "x_train", "y_train", "x_test", "y_test"):
            out[name] = a.tensor(name)
        return out

    def load_csv(self, path: Path, label: str = "label") -> dict[str, Any]:
        a = self._call("load_csv", {"path": str(path), "label": label})
        return {
            "feature_names": list(a.field("feature_names")),
            "dtypes": list(a.field("dtypes")),
            "label_name": a.field("label_name"),
            "features": a.tensor("features"),
            "labels": a.tensor("labels"),
        }

    def split(self, n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        a = self._call("split", {"n": int(n), "test_size": float(test_size), "seed": int(seed)})
        return a.tensor("train"), a.tensor("test")

    def fit_scaler(self, x: np.ndarray, train_rows: np.ndarray) -> dict[str, np.ndarray]:
        a = self._call("fit_scaler", tensors={"x": _array(x), "train_rows": _array(train_rows).astype(np.int64)})
        return {k: a.tensor(k) for k in ("mean", "var", "scale")}

    def transform(self, x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
        return self._call("transform", tensors={"x": _array(x), "mean": _array(mean), "scale": _array(scale)}).tensor(
            "x"
        )

    def effective_config(self) -> dict[str, Any]:
        config = self._call("effective_config").field("config")
        if not isinstance(config, dict):
            raise PortProtocolError(f"'effective_config' result 'config' must be an object, got {config!r}")
        # Floats may arrive as the protocol's strings for NaN and infinity.
        out = {
            k: json_float(v, f"config '{k}'") if v in ("NaN", "Infinity", "-Infinity") else v for k, v in config.items()
        }
        self._config = out
        return dict(out)

    def roundtrip(self, params: Params) -> tuple[Params, dict[str, list[int]]]:
        a = self._call("roundtrip", {"n_features": n_features(params)}, self._params("params", params))
        layouts = a.field("layouts")
        if not isinstance(layouts, dict):
            raise PortProtocolError(f"'roundtrip' result 'layouts' must be an object, got {layouts!r}")
        return a.group("params", self._names), {k: [int(d) for d in v] for k, v in layouts.items()}

    def _batch(self, x: np.ndarray) -> np.ndarray:
        """A model input for the wire: a protocol-1 port reads `[n, d]` only."""
        x = np.asarray(x)
        version = self.start().hello.get("protocol")
        if x.ndim > 2 and version == 1:
            raise PortVersionError(
                f"the port speaks protocol 1, which carries feature rows [n, d] only; this model takes "
                f"samples of shape {list(x.shape[1:])} (protocol 2): rebuild the port against this harness's burn-diff"
            )
        return x

    def forward(self, params: Params, x: np.ndarray) -> dict[str, np.ndarray]:
        a = self._call("forward", tensors={**self._params("params", params), "x": self._batch(x)})
        layers = a.field("layers")
        if not isinstance(layers, list):
            raise PortProtocolError(f"'forward' result 'layers' must be a list, got {layers!r}")
        return {str(layer): a.tensor(f"act/{layer}") for layer in layers}

    def loss(self, p: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        a = self._call("loss", tensors={"p": _array(p), "y": _array(y)})
        return a.as_f32("loss"), a.tensor("grad")

    def backward(self, params: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        a = self._call("backward", tensors={**self._params("params", params), "x": self._batch(x), "y": _array(y)})
        return a.as_f32("loss"), a.group("grads", self._names)

    def optimizer_step(self, params: Params, grads: Params, state: dict | None) -> tuple[Params, dict]:
        tensors = {
            **self._params("params", params),
            **naming.flatten("grads", {k: _array(v) for k, v in grads.items()}),
        }
        # As the in-process port: a state at step 0 (or none) is a fresh optimizer.
        step = int(state["step"]) if state and state.get("step") else 0
        if step:
            assert state is not None
            tensors.update(naming.flatten_state(state))
        a = self._call("optimizer_step", {"state_step": step}, tensors)
        return a.group("params", self._names), naming.unflatten_state(a.tensors, a.as_int("state_step"), self._names)

    def train(
        self,
        x: np.ndarray,
        y: np.ndarray,
        params: Params | None = None,
        orders: np.ndarray | None = None,
        epochs: int | None = None,
        seed: int = 0,
        record_steps: int = 0,
        on_epoch: Callable[[int, float], Any] | None = None,
        dropout: bool = False,
    ) -> dict[str, Any]:
        if epochs is None:
            # The protocol needs a number; "the port's own epochs" is what its effective config says.
            cfg = self._config if self._config is not None else self.effective_config()
            epochs = int(cfg.get("epochs", 0)) or None
            if epochs is None:
                raise PortProtocolError("the port's effective_config has no 'epochs'; pass epochs explicitly")
        tensors: dict[str, np.ndarray] = {"x": self._batch(x), "y": _array(y)}
        if params is not None:
            tensors.update(self._params("init", params))
        if orders is not None:
            tensors["orders"] = _array(orders)
        args = {
            "epochs": int(epochs),
            "seed": int(seed),
            "record_steps": int(record_steps),
            "has_init": params is not None,
            "has_orders": orders is not None,
            "dropout": bool(dropout),
        }

        def progress(h: dict[str, Any]) -> None:
            if on_epoch is None:
                return
            # Progress only, as in-process: a failing callback or a malformed event never aborts training.
            with contextlib.suppress(Exception):
                on_epoch(int(h["epoch"]), json_float(h.get("loss"), "progress loss"))

        a = self._call("train", args, tensors, progress)
        names = self._names
        return {
            "step_loss": a.tensor("step_loss"),
            "epoch_loss": a.tensor("epoch_loss"),
            "init": a.group("init", names),
            "final": a.group("final", names),
            "epoch_params": naming.indexed_groups(a.tensors, "epoch_params", names),
            "step_params": naming.indexed_groups(a.tensors, "step_params", names),
            "step_grads": naming.indexed_groups(a.tensors, "step_grads", names),
            "orders": a.tensor("orders"),
            "state": naming.unflatten_state(a.tensors, a.as_int("state_step"), names),
        }

    def evaluate(self, params: Params, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        a = self._call("evaluate", tensors={**self._params("params", params), "x": self._batch(x), "y": _array(y)})
        return a.tensor("probs"), a.as_float("accuracy")

    def accuracy(self, probs: np.ndarray, y: np.ndarray) -> float:
        a = self._call("accuracy", tensors={"probs": np.ascontiguousarray(probs, dtype=np.float32), "y": _array(y)})
        return a.as_float("accuracy")

"""The port contract's one wire, spoken by both transports: a request is a method, its arguments (a JSON
object) and its tensors (a safetensors payload, docs/protocol.md), answered by a result object and
tensors. `WirePort` encodes every method of the contract into such a request and decodes the answer into
the typed values below (mirroring `burn_diff::contract`, crate burn-diff); a transport supplies only
`_exchange`, which carries one request: `SubprocessPort` over a pipe (harness/transport/client.py), and
`BurnPort` into the extension (harness/port.py), whose `call` runs the dispatch `burn_diff::serve` runs.
A new port method is an arm of that dispatch, its entry in `burn_diff::serve::METHODS`, and its method
here."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from harness.errors import PortProtocolError, PortUnsupported, PortVersionError
from harness.transport import naming
from harness.transport.frames import Frame, json_float

Params = dict[str, np.ndarray]
# An optimizer state as the harness holds it: {"step": n, slot: {parameter name: array}} for each of the
# optimizer's slots (torch's names: exp_avg, exp_avg_sq, momentum_buffer); `burn_diff::OptimState`.
OptimState = dict[str, Any]
Progress = Callable[[dict[str, Any]], None]


class Table(TypedDict):
    """A parsed CSV file (`burn_diff::Table`)."""

    feature_names: list[str]
    dtypes: list[str]
    label_name: str
    features: np.ndarray  # float64 [n, d]
    labels: np.ndarray  # float32 [n]


class ScalerStats(TypedDict):
    """A fitted standard scaler (`burn_diff::ScalerStats`), float64 [d] each."""

    mean: np.ndarray
    var: np.ndarray
    scale: np.ndarray


class Prepared(TypedDict):
    """The port's whole data preparation (`burn_diff::Prepared`): its split, its scaler and the arrays."""

    feature_names: list[str]
    train_idx: np.ndarray  # int64
    test_idx: np.ndarray
    mean: np.ndarray  # float64 [d]
    scale: np.ndarray
    x_train: np.ndarray  # float32 [n, ...]
    y_train: np.ndarray  # float32 [n]
    x_test: np.ndarray
    y_test: np.ndarray


class TrainTrace(TypedDict):
    """One training run (`burn_diff::TrainTrace`)."""

    step_loss: np.ndarray  # float32 [steps]
    epoch_loss: np.ndarray  # float64 [epochs]
    init: Params
    final: Params
    epoch_params: list[Params]
    step_params: list[Params]  # before each of the first `record_steps` steps
    step_grads: list[Params]
    orders: np.ndarray  # int64 [epochs, n]
    state: OptimState


def n_features(params: Params) -> int:
    """The model's input width, as both transports tell the port: the first parameter's last dimension
    when it is a matrix (the first layer's weight, PyTorch's [out, in]); 0 when it is not, for the port to
    reject with its own message."""
    first = next(iter(params.values()), None)
    return int(np.shape(first)[-1]) if first is not None and np.ndim(first) == 2 else 0


def _array(x: Any) -> np.ndarray:
    return np.asarray(x)


class Answer:
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


class WirePort:
    """Every method of the port contract, over `_exchange`. Subclasses set `methods` (what the port
    answers; a method outside it is PortUnsupported before anything is sent) and `protocol()`."""

    methods: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._config: dict[str, Any] | None = None
        # Names in the order the harness last sent them, so that answers come back in that order.
        self._names: list[str] = []

    def _exchange(
        self, method: str, args: Mapping[str, Any], tensors: Mapping[str, np.ndarray], on_progress: Progress | None
    ) -> Frame:
        """Carries one request and returns the answer's frame (`result` in its header)."""
        raise NotImplementedError

    def protocol(self) -> int:
        """The protocol version the port speaks."""
        raise NotImplementedError

    def _call(
        self,
        method: str,
        args: Mapping[str, Any] | None = None,
        tensors: Mapping[str, np.ndarray] | None = None,
        on_progress: Progress | None = None,
    ) -> Answer:
        methods = self.methods
        if methods and method not in methods:
            raise PortUnsupported(f"the port does not implement '{method}' (hello lists: {', '.join(methods)})")
        return Answer(method, self._exchange(method, args or {}, tensors or {}, on_progress))

    def _params(self, prefix: str, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._names = list(params)
        return naming.flatten(prefix, {k: _array(v) for k, v in params.items()})

    # -- the Port interface (harness/port.py) ------------------------------------------------------

    def prepare(self, path: Path, label: str, test_size: float, seed: int) -> Prepared:
        a = self._call("prepare", {"path": str(path), "label": label, "test_size": float(test_size), "seed": int(seed)})
        return Prepared(
            feature_names=list(a.field("feature_names")),
            train_idx=a.tensor("train_idx"),
            test_idx=a.tensor("test_idx"),
            mean=a.tensor("mean"),
            scale=a.tensor("scale"),
            x_train=a.tensor("x_train"),
            y_train=a.tensor("y_train"),
            x_test=a.tensor("x_test"),
            y_test=a.tensor("y_test"),
        )

    def load_csv(self, path: Path, label: str = "label") -> Table:
        a = self._call("load_csv", {"path": str(path), "label": label})
        return Table(
            feature_names=list(a.field("feature_names")),
            dtypes=list(a.field("dtypes")),
            label_name=str(a.field("label_name")),
            features=a.tensor("features"),
            labels=a.tensor("labels"),
        )

    def split(self, n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        a = self._call("split", {"n": int(n), "test_size": float(test_size), "seed": int(seed)})
        return a.tensor("train"), a.tensor("test")

    def fit_scaler(self, x: np.ndarray, train_rows: np.ndarray) -> ScalerStats:
        a = self._call("fit_scaler", tensors={"x": _array(x), "train_rows": _array(train_rows).astype(np.int64)})
        return ScalerStats(mean=a.tensor("mean"), var=a.tensor("var"), scale=a.tensor("scale"))

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
        """A model input for the wire: a protocol-1 port reads float32 `[n, d]` only, a protocol-2 port
        float32 batches of any shape; int64 token ids need protocol 3."""
        x = np.asarray(x)
        version = self.protocol()
        if x.ndim > 2 and version == 1:
            raise PortVersionError(
                f"the port speaks protocol 1, which carries feature rows [n, d] only; this model takes "
                f"samples of shape {list(x.shape[1:])} (protocol 2): rebuild the port against this harness's burn-diff"
            )
        if x.dtype.kind in "iu" and version < 3:
            raise PortVersionError(
                f"the port speaks protocol {version}, which carries float32 batches only; this model takes "
                f"int64 ids (protocol 3): rebuild the port against this harness's burn-diff"
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

    def optimizer_step(self, params: Params, grads: Params, state: OptimState | None) -> tuple[Params, OptimState]:
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
    ) -> TrainTrace:
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
        return TrainTrace(
            step_loss=a.tensor("step_loss"),
            epoch_loss=a.tensor("epoch_loss"),
            init=a.group("init", names),
            final=a.group("final", names),
            epoch_params=naming.indexed_groups(a.tensors, "epoch_params", names),
            step_params=naming.indexed_groups(a.tensors, "step_params", names),
            step_grads=naming.indexed_groups(a.tensors, "step_grads", names),
            orders=a.tensor("orders"),
            state=naming.unflatten_state(a.tensors, a.as_int("state_step"), names),
        )

    def evaluate(self, params: Params, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        a = self._call("evaluate", tensors={**self._params("params", params), "x": self._batch(x), "y": _array(y)})
        return a.tensor("probs"), a.as_float("accuracy")

    def accuracy(self, probs: np.ndarray, y: np.ndarray) -> float:
        a = self._call("accuracy", tensors={"probs": np.ascontiguousarray(probs, dtype=np.float32), "y": _array(y)})
        return a.as_float("accuracy")

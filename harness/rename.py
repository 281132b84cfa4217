"""A port that keeps its own parameter and layer names: `[port.rename]` in harness.toml maps them to the
reference's with ordered regex rules, applied in turn to each name (as burn-store's key remapping applies
its patterns), so `'^input_layer\\b' = "fc1"` turns `input_layer.weight` into `fc1.weight` and the layer
`input_layer` into `fc1`.

Names the port sends back (parameters, gradients, optimizer slots, activations) are mapped with the rules.
Names the harness sends (the reference's parameters) need the inverse, which regex rules do not give: it
is read from the port's own parameter list, which a port built on burn-diff reports with the structure
error of the first call that sends the reference's names (burn_diff::layout::load_torch_params).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np

from harness.errors import HarnessError, PortStructureError
from harness.port import Params, Port

T = TypeVar("T")


class Rename:
    """Ordered (pattern, replacement) rules from the port's names to the reference's."""

    def __init__(self, rules: Mapping[str, str] | list[tuple[str, str]], where: str = "[port.rename]") -> None:
        items = list(rules.items()) if isinstance(rules, Mapping) else list(rules)
        self.rules: list[tuple[re.Pattern[str], str]] = []
        for pattern, repl in items:
            if not isinstance(pattern, str) or not isinstance(repl, str):
                raise HarnessError(f"{where}: each rule is 'pattern' = \"replacement\", both strings")
            try:
                compiled = re.compile(pattern)
                compiled.sub(repl, "")  # a bad group reference in the replacement fails here
            except (re.error, IndexError) as e:
                raise HarnessError(f"{where}: rule '{pattern}' = '{repl}': {e}") from e
            self.rules.append((compiled, repl))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def __call__(self, name: str) -> str:
        for pattern, repl in self.rules:
            name = pattern.sub(repl, name)
        return name

    def names(self, group: Mapping[str, T]) -> dict[str, T]:
        return {self(k): v for k, v in group.items()}


class RenamedPort:
    """`port` seen under the reference's names. Every method of the Port protocol; the ones that carry
    no names pass through."""

    def __init__(self, port: Port, rename: Rename) -> None:
        self._port = port
        self._rename = rename
        # Reference name -> the port's, once the port has said what it calls its parameters.
        self._to_port: dict[str, str] | None = None

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._port, attr)

    def _send(self, params: Params) -> Params:
        if self._to_port is None:
            return params
        return {self._to_port.get(k, k): v for k, v in params.items()}

    def _learn(self, e: PortStructureError) -> bool:
        """The inverse map from a structure error's parameter list; False when it has none, or when the
        rules map two of the port's names to one."""
        if not e.parameters or self._to_port is not None:
            return False
        inverse: dict[str, str] = {}
        for name in e.parameters:
            ref = self._rename(name)
            if ref in inverse:
                raise HarnessError(
                    f"[port.rename] maps both '{inverse[ref]}' and '{name}' of the port's model to '{ref}'"
                )
            inverse[ref] = name
        self._to_port = inverse
        return True

    def _sending(self, call: Callable[[Callable[[Params], Params]], T]) -> T:
        """Runs `call(send)`, where `send` puts a parameter group in the port's names; learns those names
        from the port's first structure error and tries once more."""
        try:
            return call(self._send)
        except PortStructureError as e:
            if not self._learn(e):
                raise
            try:
                return call(self._send)
            except PortStructureError as again:
                raise PortStructureError(f"after [port.rename]: {again}", self._received(again.parameters)) from None

    def _received(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        return self._rename.names(shapes)

    def _state(self, state: dict[str, Any]) -> dict[str, Any]:
        return {k: (v if k == "step" else self._rename.names(v)) for k, v in state.items()}

    def _state_out(self, state: dict[str, Any] | None, send: Callable[[Params], Params]) -> dict[str, Any] | None:
        if not state:
            return state
        return {k: (v if k == "step" else send(v)) for k, v in state.items()}

    def roundtrip(self, params: Params) -> tuple[Params, dict[str, list[int]]]:
        back, layouts = self._sending(lambda send: self._port.roundtrip(send(params)))
        return self._rename.names(back), self._rename.names(layouts)

    def forward(self, params: Params, x: np.ndarray) -> dict[str, np.ndarray]:
        return self._rename.names(self._sending(lambda send: self._port.forward(send(params), x)))

    def backward(self, params: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        loss, grads = self._sending(lambda send: self._port.backward(send(params), x, y))
        return loss, self._rename.names(grads)

    def optimizer_step(self, params: Params, grads: Params, state: dict | None) -> tuple[Params, dict]:
        new, st = self._sending(
            lambda send: self._port.optimizer_step(send(params), send(grads), self._state_out(state, send))
        )
        return self._rename.names(new), self._state(st)

    def train(self, x: np.ndarray, y: np.ndarray, **kw: Any) -> dict[str, Any]:
        init = kw.pop("params", None)
        out = self._sending(lambda send: self._port.train(x, y, params=None if init is None else send(init), **kw))
        renamed = dict(out)
        for key in ("init", "final"):
            renamed[key] = self._rename.names(out[key])
        for key in ("epoch_params", "step_params", "step_grads"):
            renamed[key] = [self._rename.names(g) for g in out[key]]
        renamed["state"] = self._state(out["state"])
        return renamed

    def evaluate(self, params: Params, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        return self._sending(lambda send: self._port.evaluate(send(params), x, y))

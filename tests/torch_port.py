"""A port written in PyTorch from a model builder, for tests of the generic stages: with the reference's
own model it must pass every teacher-forced stage; with a model of another structure (a missing layer, a
renamed parameter, a different width) the stages must name what differs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from torch import nn

from harness.config import RunConfig
from harness.reference.reference import Reference


class TorchPort:
    backend = "torch"

    def __init__(self, cfg: RunConfig, n_features: int, n_outputs: int, build: Callable[..., nn.Module]) -> None:
        self.ref = Reference(cfg, n_features, n_outputs)
        self.ref._build = build  # the port's own model
        probe = self.ref._new()
        self.ref.param_names = [n for n, _ in probe.named_parameters()]
        self.ref.layers = self.ref._trace_layers(probe)
        state = {k for k, v in probe.state_dict().items() if v.is_floating_point()}
        self.ref.buffer_names = [n for n in state if n not in set(self.ref.param_names)]
        self.cfg = cfg

    def effective_config(self) -> dict[str, Any]:
        return self.ref.hyperparameters()

    def roundtrip(self, params: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, list[int]]]:
        model = self.ref.build(params)
        back = {k: v.detach().numpy().copy() for k, v in model.state_dict().items() if v.is_floating_point()}
        kinds = {name: type(m).__name__ for name, m in model.named_modules()}
        layouts = {
            k: (
                [v.shape[1], v.shape[0]]
                if kinds.get(k.rpartition(".")[0]) == "Linear" and v.ndim == 2
                else list(v.shape)
            )
            for k, v in back.items()
        }
        return back, layouts

    def forward(self, params: dict[str, np.ndarray], x: np.ndarray) -> dict[str, np.ndarray]:
        return self.ref.forward(params, x)

    def loss(self, p: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        return self.ref.loss_and_grad(p, y)

    def backward(self, params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
        return self.ref.backward(params, x, y)

    def optimizer_step(self, params: dict, grads: dict, state: dict | None) -> tuple[dict, dict]:
        return self.ref.optimizer_step(params, grads, state)

    # -- end to end (the metrics stage) ---------------------------------------------------------------

    def accuracy(self, pred: np.ndarray, y: np.ndarray) -> float:
        """The port's metric on given predictions: the reference's rule, or `metric` where a test sets one."""
        rule = getattr(self, "metric", None)
        return float(rule(pred, y)) if rule else self.ref.metric(pred, y)

    def evaluate(self, params: dict, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        pred = self.ref.predictions(params, x)
        return pred, self.accuracy(pred, y)

    def train(
        self, x: np.ndarray, y: np.ndarray, epochs: int, seed: int, on_epoch: Any = None, dropout: bool = False
    ) -> dict:
        """Its own initialization and shuffling from `seed`, as a port's free run."""
        from harness.reference.train import batch_orders

        init = self.ref.init_params(seed)
        trace = self.ref.train(x, y, init, batch_orders(len(y), epochs, seed), 0, on_epoch, dropout=dropout, seed=seed)
        return {"final": trace.final, "epoch_loss": trace.epoch_loss, "step_loss": trace.step_loss}

"""The reference side for any feed-forward model: the nn.Module, loss and optimizer a config names.

Every stage asks the reference through this one class, by the names the model itself gives: its
parameters and float buffers (`state_dict()` names, PyTorch's layouts), its layers (the leaf modules'
qualified names, a container's children included, recorded with forward hooks in call order), and its
optimizer's state slots (`exp_avg`, `momentum_buffer`, ...). The user's classifier is the default
configuration (`cfg.reference == ""`); the diagnosis catalogues serve it as any model, and it keeps one
fast path, the batched ensemble (harness/reference/batched.py), whose structure `linear_chain` reports.

Modes, as in a PyTorch training script: evaluation (`model.eval()`) for forward and predictions;
training for backward and the training loop, with every Dropout module in evaluation mode unless
`dropout=True` (lockstep runs compare two frameworks step by step, and no two frameworks draw the same
dropout masks; the config stage compares the dropout probability instead, and the free end-to-end runs
keep dropout on, docs/models.md).
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.config import RunConfig
from harness.errors import HarnessError
from harness.reference.structure import Params, Trace
from harness.samples import model_input
from harness.specs import LOGIT, LOSSES, OPTIMIZERS, PROBABILITY, VALUE, LossSpec

DROPOUT = (nn.Dropout, nn.Dropout1d, nn.AlphaDropout)
# Modules that are one layer although they hold others: attention computes with its out_proj's
# parameters without calling it, so the leaf rule would lose the layer; an encoder layer applies its
# activation as a function and may run as one fused kernel, and a Burn port's TransformerEncoderLayer
# is one module whose sub-layers' outputs it never sees.
WHOLE = (nn.MultiheadAttention, nn.TransformerEncoderLayer)


def _inside_whole(mods: dict[str, nn.Module], name: str) -> bool:
    """Whether `name` is a child of a module that is one layer (WHOLE); `mods`: the model's named modules."""
    parts = name.split(".")
    return any(isinstance(mods.get(".".join(parts[:i])), WHOLE) for i in range(1, len(parts)))


def load_builder(spec: str, directory: Path | None) -> Callable[..., nn.Module]:
    """`module:function`, the module a file `module.py` in `directory` or an importable module."""
    mod_name, _, fn_name = spec.partition(":")
    file = (directory / (mod_name.replace(".", "/") + ".py")) if directory else None
    try:
        if file is not None and file.is_file():
            key = f"harness_user_reference_{abs(hash(str(file.resolve())))}"
            module = sys.modules.get(key)
            if module is None:
                loader = importlib.util.spec_from_file_location(key, file)
                assert loader is not None and loader.loader is not None
                module = importlib.util.module_from_spec(loader)
                sys.modules[key] = module
                loader.loader.exec_module(module)
        else:
            module = importlib.import_module(mod_name)
    except Exception as e:  # the user's module: any failure to import is bad input, one line
        raise HarnessError(f"cannot import the reference module '{mod_name}': {type(e).__name__}: {e}") from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise HarnessError(f"the reference module '{mod_name}' has no function '{fn_name}'")
    return fn


def _main_output(out: Any) -> Any:
    """A layer's output as the stages compare it: a recurrent layer's or an attention's first result (the
    sequence of hidden states, the attended values), not the final state or the weights it adds."""
    return out[0] if isinstance(out, tuple) and out and isinstance(out[0], torch.Tensor) else out


def model_output(out: Any) -> torch.Tensor:
    """What the model's forward returns, as its loss takes it: the tensor itself, a tuple's first tensor
    (`return logits, features`), or a dict's `logits` entry, else its first tensor."""
    if isinstance(out, Mapping):
        out = out["logits"] if "logits" in out else next((v for v in out.values() if isinstance(v, torch.Tensor)), out)
    out = _main_output(out)
    if not isinstance(out, torch.Tensor):
        raise HarnessError(f"the reference model returns {type(out).__name__}, not a tensor")
    return out


def _sample_shape(out: Any) -> tuple[int, ...]:
    """One sample's shape of a layer's output (a tensor's, less the batch axis); () for anything else."""
    out = _main_output(out)
    return tuple(out.shape[1:]) if isinstance(out, torch.Tensor) and out.dim() > 0 else ()


def _float_state(model: nn.Module) -> Params:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items() if v.is_floating_point()}


@dataclass(frozen=True)
class Layer:
    """One leaf module: its qualified name, kind (class name), declared hyperparameters and the shape of
    its output for one sample (`(16, 8, 8)` for a Conv2d with 16 channels on 8x8 images)."""

    name: str
    kind: str
    hyper: dict[str, Any]
    shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class LayerCall:
    """One call of a layer in the reference's forward: its input (the first argument, what a replay
    changes) and the other arguments as the model passed them (an encoder layer's
    `src_key_padding_mask`, attention's key and value), so that a replay calls the layer as the model
    does (harness/diagnosis/layers.py binds them to the layer's parameters)."""

    input: torch.Tensor
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def _detached(value: Any) -> Any:
    """A copy of a call's argument that later calls cannot change: tensors detached and cloned."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, tuple):
        return tuple(_detached(v) for v in value)
    if isinstance(value, dict):
        return {k: _detached(v) for k, v in value.items()}
    return value


class Reference:
    """The configured reference: build, run, differentiate and train the model from explicit params."""

    def __init__(self, cfg: RunConfig, n_features: int, n_outputs: int) -> None:
        self.cfg = cfg
        self.n_features = n_features
        self.n_outputs = n_outputs
        # What one sample is to the model: its feature row, or that row in the configured shape.
        self.sample_shape = tuple(cfg.sample_shape) or (n_features,)
        if cfg.reference:
            self._build = load_builder(cfg.reference, cfg.reference_dir)
        else:
            from harness.reference.model import Classifier

            if n_outputs != 1:
                raise HarnessError(f"the built-in classifier has one output; the data has {n_outputs} classes")
            self._build = lambda n_in, _n_out: Classifier(n_in)
        probe = self._new()
        self.param_names = [n for n, _ in probe.named_parameters()]
        state = _float_state(probe)
        self.buffer_names = [n for n in state if n not in set(self.param_names)]
        self.shapes = {k: list(v.shape) for k, v in state.items()}
        self.layers = self._trace_layers(probe)
        kinds = {layer.name: layer.kind for layer in self.layers}
        # Which module each parameter belongs to (for its Burn layout): "fc1.weight" -> Linear.
        self.param_kinds = {k: kinds.get(k.rpartition(".")[0], "") for k in state}

    # -- building ------------------------------------------------------------------------------------

    def _new(self) -> nn.Module:
        try:
            model = self._build(self.n_features, self.n_outputs)
        except Exception as e:  # the user's code
            raise HarnessError(
                f"the reference function '{self.cfg.reference}' failed: {type(e).__name__}: {e}"
            ) from None
        if not isinstance(model, nn.Module):
            raise HarnessError(f"the reference function '{self.cfg.reference}' must return an nn.Module")
        return model.float()

    def init_params(self, seed: int) -> Params:
        """The model's default initialization after torch.manual_seed(seed), as a training script does."""
        torch.manual_seed(seed)
        return _float_state(self._new())

    def build(self, params: Params) -> nn.Module:
        model = self._new()
        state = model.state_dict()
        missing = [k for k in state if state[k].is_floating_point() and k not in params]
        extra = [k for k in params if k not in state]
        if missing or extra:
            raise HarnessError(f"parameters do not fit the reference: missing {missing[:3]}, unexpected {extra[:3]}")
        new = {
            k: (torch.from_numpy(np.array(params[k], dtype=np.float32)) if k in params else v) for k, v in state.items()
        }
        model.load_state_dict(new)
        return model

    @property
    def linear_chain(self) -> bool:
        """The user's classifier: Linear layers with ReLU between and a sigmoid, BCELoss, Adam. The
        batched ensemble (its envelope and seed runs trained together) models exactly this structure."""
        return not self.cfg.reference and self.cfg.loss == "BCELoss" and self.cfg.optimizer == "Adam"

    # -- layers --------------------------------------------------------------------------------------

    def _trace_layers(self, model: nn.Module) -> list[Layer]:
        model.eval()
        x = self.batch(np.zeros((2, int(np.prod(self.sample_shape)))))
        order: list[Layer] = []
        hooks = []
        mods = dict(model.named_modules())
        for name, m in mods.items():
            if name and (not list(m.children()) or isinstance(m, WHOLE)) and not _inside_whole(mods, name):
                hooks.append(
                    m.register_forward_hook(
                        lambda mod, _i, o, name=name: order.append(
                            Layer(name, type(mod).__name__, _hyper(mod), _sample_shape(o))
                        )
                    )
                )
        try:
            with torch.no_grad():
                model(x)
        except Exception as e:  # the user's code
            raise HarnessError(self._input_error(e)) from None
        finally:
            for h in hooks:
                h.remove()
        seen: set[str] = set()
        return [layer for layer in order if not (layer.name in seen or seen.add(layer.name))]

    def _input_error(self, e: Exception) -> str:
        """One line for a model that fails on its first batch of inputs, and what to set when the cause
        is the input's type (an Embedding given float ids, a Linear given int64 ones)."""
        what = str(e).strip().splitlines()[0] if str(e).strip() else ""
        line = (
            f"the reference model '{self.cfg.reference or 'Classifier'}' fails on a batch of "
            f"{self.cfg.sample_dtype} samples of shape {list(self.sample_shape)}: {type(e).__name__}: {what}"
        )
        if self.cfg.sample_dtype == "float32" and re.search(r"\b(Long|Int)\b", what):
            return line + ' (the model takes integer ids: set [data] sample_dtype = "int64" in harness.toml)'
        if self.cfg.sample_dtype == "int64" and re.search(r"\b(Float|Double)\b", what):
            return line + ' (the model takes float inputs: [data] sample_dtype = "int64" is for token ids)'
        return line

    @property
    def layer_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each layer's output shape for one sample, by name."""
        return {layer.name: layer.shape for layer in self.layers}

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def hyperparameters(self) -> dict[str, Any]:
        """The config's hyperparameters and every layer's declared ones (Dropout p, LayerNorm eps, ...)."""
        out = self.cfg.reference_hyperparameters()
        for layer in self.layers:
            out.update({f"{layer.name}.{k}": v for k, v in layer.hyper.items()})
        return out

    def batch(self, x: np.ndarray, float64: bool = False) -> torch.Tensor:
        """Feature rows `[n, d]` as the model's input `[n, *sample_shape]`: float32 (float64 for a
        double-precision run), or int64 token ids (`[data] sample_dtype`), as the port gets them."""
        dtype = "float64" if float64 and self.cfg.sample_dtype == "float32" else self.cfg.sample_dtype
        return torch.from_numpy(model_input(x, self.sample_shape, dtype))

    def forward(
        self,
        params: Params,
        x: np.ndarray,
        replays: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
    ) -> dict[str, np.ndarray]:
        """Every layer's output on x, evaluation mode, in call order, each `[n, values]` (a layer's
        per-sample shape is in `layer_shapes`). `replays`: layer -> a function of the layer's input whose
        result takes the place of its output, so the layers after it run on it (a diagnosis replaying a
        change through the rest of the model)."""
        model = self.build(params).eval()
        xt = self.batch(x)
        replays = replays or {}
        with torch.no_grad():
            out: dict[str, np.ndarray] = {}

            def record(name: str, args: tuple, o: Any) -> Any:
                replay = replays.get(name)
                main = replay(args[0]) if replay is not None else _main_output(o)
                if name not in out:
                    out[name] = main.detach().numpy().reshape(len(x), -1).copy()
                if replay is None:
                    return None
                # A hook that returns a value replaces the module's output (a tuple's first result).
                return (main, *o[1:]) if isinstance(o, tuple) else main

            wanted = set(self.layer_names)
            hooks = [
                m.register_forward_hook(lambda _m, a, o, name=name: record(name, a, o))
                for name, m in model.named_modules()
                if name in wanted
            ]
            try:
                model(xt)
            finally:
                for h in hooks:
                    h.remove()
        return {k: out[k] for k in self.layer_names if k in out}

    def layer_inputs(self, params: Params, x: np.ndarray, training: bool = False) -> dict[str, torch.Tensor]:
        """Each leaf module's input (its first positional argument) on x, in evaluation mode or in
        training mode with dropout off: what a layer-local replay (harness/diagnosis/layers.py) feeds."""
        return {name: call.input for name, call in self.layer_calls(params, x, training).items()}

    def layer_calls(self, params: Params, x: np.ndarray, training: bool = False) -> dict[str, LayerCall]:
        """Each leaf module's first call on x, its input and the other arguments it was given (an
        encoder layer's padding mask, say), in evaluation mode or in training mode with dropout off."""
        model = self.build(params)
        self.train_mode(model, dropout=False) if training else model.eval()
        seen: dict[str, LayerCall] = {}
        wanted = set(self.layer_names)

        def record(name: str, args: tuple, kwargs: dict[str, Any]) -> None:
            if name not in seen and args and isinstance(args[0], torch.Tensor):
                seen[name] = LayerCall(_detached(args[0]), _detached(args[1:]), _detached(kwargs))

        hooks = [
            m.register_forward_pre_hook(lambda _m, a, kw, name=name: record(name, a, kw), with_kwargs=True)
            for name, m in model.named_modules()
            if name in wanted
        ]
        try:
            with torch.no_grad():
                model(self.batch(x))
        finally:
            for h in hooks:
                h.remove()
        return seen

    def module(self, params: Params, name: str) -> nn.Module:
        """The leaf module `name` with `params` loaded."""
        return dict(self.build(params).named_modules())[name]

    def outputs(self, params: Params, x: np.ndarray) -> np.ndarray:
        """The model's output on x, evaluation mode, [n, outputs]."""
        model = self.build(params).eval()
        with torch.no_grad():
            return model_output(model(self.batch(x))).numpy().reshape(len(x), -1)

    # -- loss ----------------------------------------------------------------------------------------

    @property
    def loss_spec(self) -> LossSpec:
        """The configured loss's spec (harness/specs.py)."""
        return LOSSES[self.cfg.loss]

    def criterion(self) -> nn.Module:
        return getattr(nn, self.loss_spec.name)(**self.cfg.loss_kwargs())

    def _loss(self, out: torch.Tensor, y: torch.Tensor, criterion: nn.Module) -> torch.Tensor:
        """The loss on the model's output: a one-output model's as [n] (as the user's script squeezes it,
        whether the model returns [n, 1] or already [n]), class indices as int64 targets for a loss over
        classes."""
        out = model_output(out)
        if self.loss_spec.class_targets:
            return criterion(out, y.long())
        return criterion((out if out.dim() == 1 else out.squeeze(1)), y.to(out.dtype))

    def loss_and_grad(self, p: np.ndarray, y: np.ndarray, logits: bool = False) -> tuple[float, np.ndarray]:
        """Loss value and d loss / d p for outputs p ([n] or flat [n * outputs]) against y; `logits`: p
        holds BCELoss's pre-sigmoid input z, and the gradient is in z (through the float32 sigmoid)."""
        n = len(y)
        pt = torch.tensor(np.asarray(p, dtype=np.float32).reshape(n, -1), requires_grad=True)
        out = torch.sigmoid(pt) if logits else pt
        loss = self._loss(out, torch.from_numpy(np.asarray(y, dtype=np.float32)), self.criterion())
        loss.backward()
        assert pt.grad is not None
        return float(loss.item()), pt.grad.numpy().reshape(np.shape(p)).copy()

    def takes_logits(self) -> bool:
        """Whether the loss stage feeds the port logits where the reference's loss takes probabilities: a
        BCELoss reference and a port whose loss is on the pre-sigmoid output (`[port] loss_input`)."""
        return self.loss_spec.output == PROBABILITY and self.cfg.loss_input == "logits"

    def loss_suite(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The loss stage's edge cases for this loss: flat outputs (logits, see `takes_logits`) and targets."""
        rng = np.random.default_rng(0)
        y4 = np.array([1, 0, 1, 0], dtype=np.float32)
        output = self.loss_spec.output
        if output == PROBABILITY and not self.takes_logits():
            e = np.float32(1e-7)
            return {
                "perfect": (np.array([1, 0, 1, 0], dtype=np.float32), y4),
                "wrong": (np.array([0, 1, 0, 1], dtype=np.float32), y4),
                "half": (np.full(4, 0.5, dtype=np.float32), y4),
                "near_edges": (np.array([1 - e, e, e, 1 - e], dtype=np.float32), y4),
                "random": (rng.uniform(0.01, 0.99, 64).astype(np.float32), (rng.random(64) < 0.5).astype(np.float32)),
            }
        if output == LOGIT or self.takes_logits():
            # A BCELoss reference applies a float32 sigmoid first: sigmoid(-100) = 3.7e-44 is subnormal, where
            # the port's sigmoid and log may flush to zero or not (the loss is then 100 or 99.99, measured
            # with Burn's Flex against torch). At +-80 one side rounds to p = 1 (saturated) and the other
            # stays a normal float (1.8e-35).
            far = 80 if self.takes_logits() else 100
            return {
                "zero": (np.zeros(4, np.float32), y4),
                "large": (np.array([40, -40, -40, 40], np.float32), y4),
                "saturated_wrong": (np.array([-far, far, -far, far], np.float32), y4),
                "random": (rng.normal(0, 3, 64).astype(np.float32), (rng.random(64) < 0.5).astype(np.float32)),
            }
        if output == VALUE:
            suite = {
                "exact": (np.array([1.5, -2, 0, 3], np.float32), np.array([1.5, -2, 0, 3], np.float32)),
                "random": (rng.normal(0, 2, 64).astype(np.float32), rng.normal(0, 2, 64).astype(np.float32)),
                "large": (np.array([1e3, -1e3], np.float32), np.array([-1e3, 1e3], np.float32)),
            }
            # Residuals from a tenth to ten times each size where the loss changes form, both signs.
            for name, scale in self.cfg.loss_kwargs().items():
                if self.loss_spec.option(name).residual_scale and scale > 0:
                    r = scale * np.geomspace(0.1, 10, 16) * np.where(np.arange(16) % 2, 1, -1)
                    y = rng.normal(0, 1, 16)
                    suite[f"around_{name}"] = ((y + r).astype(np.float32), y.astype(np.float32))
            return suite
        c = self.n_outputs
        ys = (np.arange(8) % c).astype(np.float32)
        onehot = np.eye(c, dtype=np.float32)[ys.astype(int)]
        return {
            "uniform": (np.zeros((8, c), np.float32).ravel(), ys),
            "confident_right": ((30 * onehot).ravel(), ys),
            "confident_wrong": ((30 * np.roll(onehot, 1, axis=1)).ravel(), ys),
            "large_offset": ((rng.normal(0, 1, (8, c)) + 80).astype(np.float32).ravel(), ys),
            "random": (
                rng.normal(0, 3, (64, c)).astype(np.float32).ravel(),
                rng.integers(0, c, 64).astype(np.float32),
            ),
        }

    # -- backward and optimizer ------------------------------------------------------------------------

    def train_mode(self, model: nn.Module, dropout: bool) -> nn.Module:
        """`model` in training mode, its Dropout modules too only with `dropout` (a lockstep run has none)."""
        model.train()
        if not dropout:
            for m in model.modules():
                if isinstance(m, DROPOUT):
                    m.eval()
        return model

    def backward(self, params: Params, x: np.ndarray, y: np.ndarray, float64: bool = False) -> tuple[float, Params]:
        """Loss and every trainable parameter's gradient on one batch (training mode, dropout off), and
        the new value of each float buffer the training-mode forward updated (BatchNorm's statistics).
        `float64`: the same in double precision (the float32 result's own rounding noise is its distance
        from this)."""
        model = self.train_mode(self.build(params), dropout=False)
        if float64:
            model = model.double()
            y = y.astype(np.float64)
        loss = self._loss(model(self.batch(x, float64)), torch.from_numpy(y), self.criterion())
        loss.backward()
        grads = {name: p.grad.numpy().copy() for name, p in model.named_parameters() if p.grad is not None}
        state = _float_state(model)
        grads.update({k: state[k] for k in self.buffer_names})
        return float(loss.item()), grads

    def with_cfg(self, cfg: RunConfig) -> Reference:
        """The same model with other hyperparameters (no rebuild: the model is built per call)."""
        other = copy.copy(self)
        other.cfg = cfg
        return other

    def make_optimizer(
        self, model: nn.Module, float32_adam: bool = False, amsgrad: bool = False
    ) -> torch.optim.Optimizer:
        """The configured optimizer; `float32_adam`: Adam or AdamW with Burn's float32 arithmetic (adam_f32.py);
        `amsgrad`: torch's AMSGrad variant of Adam or AdamW (a diagnosis candidate, never the reference)."""
        c = self.cfg
        spec = OPTIMIZERS[c.optimizer]
        if float32_adam and spec.decoupled:
            from harness.reference.adam_f32 import Float32AdamW

            return Float32AdamW(
                model.parameters(), lr=c.lr, betas=(c.beta1, c.beta2), eps=c.eps, weight_decay=c.weight_decay
            )
        if float32_adam:
            from harness.reference.adam_f32 import Float32Adam

            return Float32Adam(
                model.parameters(), lr=c.lr, betas=(c.beta1, c.beta2), eps=c.eps, weight_decay=c.weight_decay
            )
        if not spec.adaptive:
            return torch.optim.SGD(
                model.parameters(), lr=c.lr, momentum=c.momentum, nesterov=c.nesterov, weight_decay=c.weight_decay
            )
        return getattr(torch.optim, spec.name)(
            model.parameters(),
            lr=c.lr,
            betas=(c.beta1, c.beta2),
            eps=c.eps,
            weight_decay=c.weight_decay,
            amsgrad=amsgrad,
        )

    @property
    def slots(self) -> tuple[str, ...]:
        spec = OPTIMIZERS[self.cfg.optimizer]
        if not spec.adaptive and not self.cfg.momentum:
            return ()
        return spec.slots

    def optimizer_state(self, model: nn.Module, opt: torch.optim.Optimizer, steps: int) -> dict:
        """{"step": t, slot: {param name: array}} in torch's slot names; empty slots before the first step."""
        state: dict = {"step": 0, **{s: {} for s in self.slots}}
        for name, p in model.named_parameters():
            s = opt.state.get(p, {})
            if not s:
                return {"step": 0, **{s: {} for s in self.slots}}
            state["step"] = int(s["step"]) if "step" in s else steps
            for slot in self.slots:
                state[slot][name] = s[slot].numpy().copy()
        return state

    def load_optimizer_state(self, model: nn.Module, opt: torch.optim.Optimizer, state: dict | None) -> None:
        if not state or state.get("step", 0) == 0:
            return
        for name, p in model.named_parameters():
            entry: dict[str, Any] = {slot: torch.from_numpy(state[slot][name].copy()) for slot in self.slots}
            if OPTIMIZERS[self.cfg.optimizer].adaptive:
                entry["step"] = torch.tensor(float(state["step"]))
            opt.state[p] = entry

    def optimizer_step(
        self, params: Params, grads: Params, state: dict | None, float32_adam: bool = False, lr_factor: float = 1.0
    ) -> tuple[Params, dict]:
        """One optimizer step from explicit parameters, gradients and state; buffers pass through.
        `float32_adam`: with Burn's Adam or AdamW arithmetic (adam_f32.py); `lr_factor` scales the
        learning rate (a diagnosis replay of a schedule, never the reference)."""
        model = self.build(params)
        opt = self.make_optimizer(model, float32_adam)
        for group in opt.param_groups:
            group["lr"] = group["lr"] * lr_factor
        for name, p in model.named_parameters():
            p.grad = torch.from_numpy(np.array(grads[name], dtype=np.float32))
        self.load_optimizer_state(model, opt, state)
        opt.step()
        return _float_state(model), self.optimizer_state(model, opt, (state or {}).get("step", 0) + 1)

    # -- training ------------------------------------------------------------------------------------

    def train(
        self,
        x: np.ndarray,
        y: np.ndarray,
        init: Params,
        orders: np.ndarray,
        record_steps: int = 0,
        on_epoch: Callable[[int, float], Any] | None = None,
        dither_seed: int | None = None,
        float64: bool = False,
        dropout: bool = False,
        seed: int = 0,
        float32_adam: bool = False,
        reorder_seed: int | None = None,
        dither_tensor: bool = False,
        init_state: dict | None = None,
        lr_factor: Callable[[int, int], float] | None = None,
        amsgrad: bool = False,
        accumulate: int = 1,
    ) -> Trace:
        """The training loop of a PyTorch script with an explicit initialization and batch order:
        zero_grad, loss on the batch, backward, step; the epoch loss is the mean of the batch losses.
        `dither_seed` and `float64` give the float32 envelope's members (harness/reference/train.py);
        `reorder_seed` permutes the rows inside every batch (the same batch, summed in another order: the
        rounding noise a port's own accumulation order puts into every sum, at each sum's own scale);
        `dither_tensor` dithers every gradient element by one ULP of its tensor's largest |g| instead of
        its own (a sum's rounding error scales with its summands, which the tensor's largest element
        bounds; an element whose true gradient is near zero gets noise of that size in any port);
        `init_state` starts the optimizer from a state (a run resumed mid-training). `lr_factor(epoch,
        step)` (both from 0, the step counted over the whole run) scales the learning rate of that step,
        `amsgrad` trains with AMSGrad, and `accumulate` > 1 steps once every that many batches on their
        mean gradient: all three are diagnosis candidates (harness/diagnosis/train.py)."""
        if amsgrad and init_state and init_state.get("step", 0):
            # The running maximum of the second moment is not in the state the harness carries.
            raise ValueError("AMSGrad cannot resume from a state without its maximum second moment")
        torch.set_num_threads(1)
        model = self.build(init)
        if float64:
            model = model.double()
            y = y.astype(np.float64)
        self.train_mode(model, dropout)
        if dropout:
            torch.manual_seed(seed)
        dither = torch.Generator().manual_seed(dither_seed) if dither_seed is not None else None
        reorder = np.random.default_rng(reorder_seed) if reorder_seed is not None else None
        opt = self.make_optimizer(model, float32_adam, amsgrad)
        self.load_optimizer_state(model, opt, init_state)
        criterion = self.criterion()
        xt, yt = self.batch(x, float64), torch.from_numpy(y)
        bs = self.cfg.batch_size
        step_loss: list[float] = []
        epoch_loss: list[float] = []
        grad_norm: list[float] = []
        trace = Trace(np.empty(0), np.empty(0), init, init, [], orders=orders)
        for epoch, order in enumerate(orders):
            total, batches = 0.0, 0
            for start in range(0, len(order), bs):
                if lr_factor is not None:
                    for group in opt.param_groups:
                        group["lr"] = self.cfg.lr * lr_factor(epoch, len(step_loss))
                rows = order[start : start + bs]
                idx = torch.from_numpy(rows if reorder is None else reorder.permutation(rows))
                record = len(step_loss) < record_steps
                if record:
                    trace.step_states.append(self.optimizer_state(model, opt, len(step_loss)))
                if len(step_loss) % accumulate == 0:
                    opt.zero_grad()
                loss = self._loss(model(xt[idx]), yt[idx], criterion)
                (loss / accumulate if accumulate > 1 else loss).backward()
                if record:
                    trace.step_grads.append({n: p.grad.numpy().copy() for n, p in model.named_parameters()})
                grads = [p.grad for p in model.parameters() if p.grad is not None]
                grad_norm.append(float(torch.stack(torch._foreach_norm(grads)).max()) if grads else 0.0)
                if dither is not None:
                    with torch.no_grad():
                        for p in model.parameters():
                            up = torch.randint(0, 2, p.shape, generator=dither, dtype=torch.bool)
                            if dither_tensor:
                                top = p.grad.abs().max()
                                ulp = torch.nextafter(top, torch.tensor(torch.inf, dtype=top.dtype)) - top
                                p.grad.add_(torch.where(up, ulp, -ulp))
                            else:
                                p.grad.copy_(torch.nextafter(p.grad, torch.where(up, torch.inf, -torch.inf)))
                if (len(step_loss) + 1) % accumulate == 0:
                    opt.step()
                if record:
                    trace.step_params.append(_float_state(model))
                step_loss.append(loss.item())
                total += loss.item()
                batches += 1
            epoch_loss.append(total / batches)
            trace.epoch_params.append(_float_state(model))
            trace.epoch_states.append(self.optimizer_state(model, opt, len(step_loss)))
            if callable(on_epoch):
                on_epoch(len(epoch_loss), epoch_loss[-1])
        trace.step_loss = np.asarray(step_loss, dtype=np.float64 if float64 else np.float32)
        trace.epoch_loss = np.asarray(epoch_loss)
        trace.step_grad_norm = np.asarray(grad_norm)
        trace.final = _float_state(model)
        return trace

    # -- metric --------------------------------------------------------------------------------------

    def predictions(self, params: Params, x: np.ndarray) -> np.ndarray:
        """What the metric reads, flat: probabilities (BCELoss), logits otherwise ([n] or [n * C])."""
        out = self.outputs(params, x)
        return out[:, 0] if out.shape[1] == 1 else out.ravel()

    def metric(self, pred: np.ndarray, y: np.ndarray) -> float:
        """Accuracy (threshold on a probability or a logit, argmax over classes), or MSE for regression."""
        pred = np.asarray(pred, dtype=np.float32)
        if self.cfg.task == "regression":
            return float(np.mean((pred.astype(np.float64) - y) ** 2))
        if self.cfg.task == "multiclass":
            return float((pred.reshape(len(y), -1).argmax(axis=1) == y).mean())
        if self.loss_spec.output == LOGIT:
            pred = 1 / (1 + np.exp(-pred.astype(np.float64)))
        return float(((pred > self.cfg.threshold).astype(np.float32) == y).mean())

    def evaluate(self, params: Params, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        pred = self.predictions(params, x)
        return pred, self.metric(pred, y)

    def correct(self, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per row: is the prediction right (classification)."""
        pred = np.asarray(pred, dtype=np.float32)
        if self.cfg.task == "multiclass":
            return pred.reshape(len(y), -1).argmax(axis=1) == y
        if self.loss_spec.output == LOGIT:
            pred = 1 / (1 + np.exp(-pred.astype(np.float64)))
        return (pred > self.cfg.threshold) == (y > 0.5)


def _hyper(m: nn.Module | None) -> dict[str, Any]:
    """A layer's declared hyperparameters, the ones a port sets in its layer configs."""
    if isinstance(m, DROPOUT):
        return {"p": float(m.p)}
    if isinstance(m, nn.LayerNorm):
        return {"eps": float(m.eps)}
    if isinstance(m, nn.MultiheadAttention):
        # Burn's MultiHeadAttentionConfig defaults dropout to 0.1, torch's to 0.0.
        return {"num_heads": int(m.num_heads), "dropout": float(m.dropout)}
    if isinstance(m, nn.TransformerEncoderLayer):
        # Burn's TransformerEncoderConfig: d_ff, n_heads, dropout (0.1, as torch), norm_first,
        # layer_norm_eps. Its activation (GELU by default, torch's ReLU) is a function in torch, not a
        # setting a port reports: the forward stage's diagnosis names it.
        return {
            "num_heads": int(m.self_attn.num_heads),
            "dim_feedforward": int(m.linear1.out_features),
            "dropout": float(m.dropout.p),
            "norm_first": bool(m.norm_first),
            "layer_norm_eps": float(m.norm1.eps),
        }
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return {"eps": float(m.eps), "momentum": m.momentum}
    if isinstance(m, nn.modules.conv._ConvNd):
        if isinstance(m.padding, str):  # "same" / "valid": a port states the mode
            return {"kernel_size": list(m.kernel_size), "stride": list(m.stride), "padding": m.padding}
        return {"kernel_size": list(m.kernel_size), "stride": list(m.stride), "padding": list(m.padding)}
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        out = {k: _pair(getattr(m, k)) for k in ("kernel_size", "stride", "padding")}
        if isinstance(m, nn.AvgPool2d):
            out["count_include_pad"] = bool(m.count_include_pad)
        return out
    return {}


def _pair(v: Any) -> list[int]:
    """A 2-D pooling size as torch keeps it (an int or a pair) as a pair."""
    return [int(v), int(v)] if isinstance(v, int) else [int(u) for u in v]


def n_outputs(cfg: RunConfig, labels: np.ndarray) -> int:
    """Model outputs the task needs: one for binary and regression, one per class for multiclass."""
    if cfg.task != "multiclass":
        return 1
    return int(np.max(labels)) + 1 if len(labels) else 0

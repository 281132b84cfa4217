"""The losses and optimizers a reference may train with, one spec each. A new loss is one entry here (and
its edge suite in harness/reference/reference.py when its outputs are of a new kind); a new optimizer one
entry and its construction in the reference. Config validation, the reference, the stages and the
diagnoses read the specs, not the names. No torch here: the configuration imports it."""

from __future__ import annotations

from dataclasses import dataclass

# What the model's output is, as the loss and the metric read it.
PROBABILITY = "probability"  # one probability per row, after the model's own sigmoid
LOGIT = "logit"  # one pre-sigmoid logit per row
CLASS_LOGITS = "class_logits"  # one logit per class, targets are class indices
VALUE = "value"  # a regression output


@dataclass(frozen=True)
class LossOption:
    """One constructor argument of a loss, set in `[model.loss]`: torch's default, the closed range it
    must lie in (`low_open`: the low end excluded) and what the config stage says when a port's differs."""

    name: str
    default: float
    low: float
    high: float = float("inf")
    low_open: bool = False
    hint: str = ""
    # A residual's size where the loss changes form (Huber's delta): the loss stage's suite then holds
    # residuals on both sides of the configured value, so that a port with another one differs there.
    residual_scale: bool = False

    def check(self, v: float) -> str | None:
        """Why `v` is not a valid value, or None."""
        if v < self.low or (self.low_open and v == self.low) or v > self.high:
            left = "(" if self.low_open else "["
            return f"must be in {left}{self.low:g}, {self.high:g}], got {v:g}"
        return None


@dataclass(frozen=True)
class LossSpec:
    """One torch.nn loss: its class name, the task it serves, what the model's output is to it and the
    `[model.loss]` options it takes (RunConfig.loss_options, passed to the constructor by name)."""

    name: str
    task: str
    output: str
    options: tuple[LossOption, ...] = ()

    def option(self, name: str) -> LossOption:
        return next(o for o in self.options if o.name == name)

    @property
    def class_targets(self) -> bool:
        """Targets are class indices (int64), the output one logit per class."""
        return self.output == CLASS_LOGITS


LOSSES: dict[str, LossSpec] = {
    s.name: s
    for s in (
        LossSpec("BCELoss", "binary", PROBABILITY),
        LossSpec("BCEWithLogitsLoss", "binary", LOGIT),
        LossSpec(
            "CrossEntropyLoss",
            "multiclass",
            CLASS_LOGITS,
            (
                LossOption(
                    "label_smoothing",
                    0.0,
                    0.0,
                    1.0,
                    hint="label smoothing {got} vs {ref}: Burn's CrossEntropyLossConfig::with_smoothing takes it",
                ),
            ),
        ),
        LossSpec("MSELoss", "regression", VALUE),
        LossSpec("L1Loss", "regression", VALUE),
        LossSpec(
            "HuberLoss",
            "regression",
            VALUE,
            (
                LossOption(
                    "delta",
                    1.0,
                    0.0,
                    low_open=True,
                    residual_scale=True,
                    hint="Huber delta {got} vs {ref}: Burn's HuberLossConfig::new(delta) has no default; torch's is 1.0",
                ),
            ),
        ),
        LossSpec(
            "SmoothL1Loss",
            "regression",
            VALUE,
            (
                LossOption(
                    "beta",
                    1.0,
                    0.0,
                    residual_scale=True,
                    hint="SmoothL1 beta {got} vs {ref}: Burn's SmoothL1LossConfig::with_beta takes it (default 1.0)",
                ),
            ),
        ),
    )
}


@dataclass(frozen=True)
class OptimizerSpec:
    """One torch.optim optimizer: its class name, the `[model.optimizer]` keys it takes, torch's defaults
    where they differ between optimizers, its state slots (torch's names) and whether it is Adam's
    family (adaptive moments and a step count; `decoupled`: weight decay applied to the weights, AdamW)."""

    name: str
    options: tuple[str, ...]
    slots: tuple[str, ...]
    adaptive: bool
    decoupled: bool = False
    defaults: tuple[tuple[str, object], ...] = ()


ADAM_SLOTS = ("exp_avg", "exp_avg_sq")

OPTIMIZERS: dict[str, OptimizerSpec] = {
    s.name: s
    for s in (
        OptimizerSpec("Adam", ("lr", "betas", "eps", "weight_decay"), ADAM_SLOTS, adaptive=True),
        OptimizerSpec(
            "AdamW",
            ("lr", "betas", "eps", "weight_decay"),
            ADAM_SLOTS,
            adaptive=True,
            decoupled=True,
            defaults=(("weight_decay", 0.01),),
        ),
        OptimizerSpec(
            "SGD", ("lr", "momentum", "nesterov", "weight_decay"), ("momentum_buffer",), False, defaults=(("lr", 1e-3),)
        ),
    )
}

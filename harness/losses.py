"""The losses a reference may train with, one spec each: what a new loss needs is one entry here (and its
edge suite in harness/reference/reference.py when its outputs are of a new kind). Config validation, the
reference, the stages and the diagnoses read the spec, not the loss's name. No torch here: the
configuration imports it."""

from __future__ import annotations

from dataclasses import dataclass

# What the model's output is, as the loss and the metric read it.
PROBABILITY = "probability"  # one probability per row, after the model's own sigmoid
LOGIT = "logit"  # one pre-sigmoid logit per row
CLASS_LOGITS = "class_logits"  # one logit per class, targets are class indices
VALUE = "value"  # a regression output


@dataclass(frozen=True)
class LossSpec:
    """One torch.nn loss: its class name, the task it serves, the `[model.loss]` options it takes (each a
    RunConfig field passed to the constructor by name) and what the model's output is to it."""

    name: str
    task: str
    output: str
    options: tuple[str, ...] = ()

    @property
    def class_targets(self) -> bool:
        """Targets are class indices (int64), the output one logit per class."""
        return self.output == CLASS_LOGITS


LOSSES: dict[str, LossSpec] = {
    s.name: s
    for s in (
        LossSpec("BCELoss", "binary", PROBABILITY),
        LossSpec("BCEWithLogitsLoss", "binary", LOGIT),
        LossSpec("CrossEntropyLoss", "multiclass", CLASS_LOGITS, ("label_smoothing",)),
        LossSpec("MSELoss", "regression", VALUE),
    )
}

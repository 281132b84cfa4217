"""config: the hyperparameters each side really uses."""

from __future__ import annotations

from harness.compare import compare_value
from harness.diagnosis.config import diagnose
from harness.results import StageResult, result
from harness.specs import LOSSES
from harness.stages.base import Context, Stage

# What a differing field usually means in a Burn port (keyed by the field that differs).
FIELD_HINTS = {
    "eps": "Adam epsilon {got} vs {ref}: Burn's AdamConfig defaults to 1e-5, PyTorch to 1e-8; "
    "use AdamConfig::new().with_epsilon({ref})",
    "lr": "learning rate {got} vs {ref}: Burn takes the rate in optimizer.step(lr, ...); pass {ref}",
    "clip_norm": "the port clips gradients (norm {got}, per parameter tensor as Burn's "
    "GradientClippingConfig::Norm does); the reference does not clip: drop with_grad_clipping",
    "beta1": "Adam beta1 {got} vs {ref}",
    "beta2": "Adam beta2 {got} vs {ref}",
    "weight_decay": "weight decay {got} vs {ref}: Burn's AdamConfig::with_weight_decay adds L2 to the gradient",
    "batch_size": "batch size {got} vs {ref}",
    "epochs": "epochs {got} vs {ref}",
    "threshold": "decision threshold {got} vs {ref}",
    "scaler_fit_rows": "the scaler is fitted on '{got}' rows, the reference on '{ref}' rows (the reference "
    "script fits StandardScaler before the split)",
    "loss_reduction": "loss reduction '{got}' vs '{ref}'",
    "test_size": "test size {got} vs {ref}",
    "split_seed": "split seed {got} vs {ref}",
    "optimizer": "optimizer {got} vs {ref}",
    "loss": "loss {got} vs {ref}",
}


def run(ctx: Context) -> StageResult:
    ref = ctx.reference_hyperparameters
    got = ctx.port.effective_config()
    field_hints = FIELD_HINTS | {o.name: o.hint for o in LOSSES[ctx.cfg.loss].options if o.hint}
    checks = [compare_value(k, v, got.get(k, "<missing>")) for k, v in ref.items()]
    hints = [
        field_hints.get(c.name, c.name + " {got} vs {ref}").format(ref=ref[c.name], got=got.get(c.name))
        for c in checks
        if not c.passed
    ]
    causes = diagnose(ref, got, [c.name for c in checks if not c.passed])
    return result("config", checks, "; ".join(hints), diagnosis=[c.to_dict() for c in causes], reference=ref, port=got)


STAGE = Stage("config", "hyperparameters each side really uses", run)

"""Candidate causes for gradients that differ: the reference's backward pass (torch autograd through
the user's model) replayed with another loss on its output.

For any model whose output is a Sigmoid module's (the built-in classifier, an `nn.Sequential` ending in
`nn.Sigmoid()`) trained with BCELoss: the Sigmoid's input is the logits z every candidate starts from.

Evidence: the loss and every parameter's gradient on each case the stage ran (the first batch at the
initial weights, and saturated outputs both ways).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from harness.compare import Tolerance
from harness.diagnosis import Candidate, Cause, explain, ratios
from harness.reference.reference import Reference, model_output
from harness.reference.structure import Params
from harness.specs import PROBABILITY
from harness.tolerances import per_tensor

# A loss on (logits z, probabilities p, targets y).
Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Case:
    name: str
    params: Params
    x: np.ndarray
    y: np.ndarray
    loss: float  # the port's
    grads: Params
    # The port's own output on this case (its forward, evaluation mode), where it gave one: the float32 p
    # whose last ULP decides the loss's 1 / max(p (1 - p), 1e-12) near saturation.
    port_p: np.ndarray | None = None


def _clamped(z: torch.Tensor, p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((y - 1) * torch.log1p(-p).clamp_min(-100) - y * torch.log(p).clamp_min(-100)).mean()


LOSSES: dict[str, tuple[str, Loss]] = {
    "logits_loss": (
        "BCE with logits on the output Sigmoid's input (no clamp: the gradient stays (sigmoid(z) - y) / N where "
        "the reference's float32 sigmoid saturates)",
        lambda z, p, y: F.binary_cross_entropy_with_logits(z, y),
    ),
    "loss_sum": ("the loss summed over the batch", lambda z, p, y: F.binary_cross_entropy(p, y, reduction="sum")),
    "gradient_through_clamp": ("BCE with its gradient taken through the -100 clamp", _clamped),
    "unclamped": (
        "BCE without the clamp",
        lambda z, p, y: -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean(),
    ),
    "mse": ("mean squared error", lambda z, p, y: F.mse_loss(p, y)),
    "sigmoid_explicit": (
        "sigmoid written as 1 / (1 + exp(-z)): where float32 p rounds to 1 its gradient exp(-z) / (1 + exp(-z))^2 "
        "stays positive, and BCELoss's 1 / max(p (1 - p), 1e-12) multiplies it (torch's sigmoid backward, p (1 - p), "
        "is 0 there)",
        lambda z, p, y: F.binary_cross_entropy(1 / (1 + torch.exp(-z)), y),
    ),
}


def _explicit_sigmoid_with(port_p: np.ndarray) -> Loss:
    """BCELoss through a sigmoid written as 1 / (1 + exp(-z)), at the port's own float32 p: the value is
    BCE at p, the gradient BCELoss's coefficient at p times that formula's derivative. Two exp
    implementations round p differently near 1, and there one ULP of p moves the coefficient by orders of
    magnitude, so a replay with its own p could not reproduce any port's numbers."""
    pp = torch.from_numpy(np.asarray(port_p, np.float32).reshape(-1))

    def loss(z: torch.Tensor, p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        q = 1 / (1 + torch.exp(-z))
        coef = ((pp - y) / torch.clamp((1 - pp) * pp, min=1e-12) / len(y)).detach()
        surrogate = (coef * q).sum()
        # The difference first: exactly 0 with the surrogate's gradient, so the value is BCE's to the bit
        # (added to a 1e11 surrogate first, float32 would lose it).
        return F.binary_cross_entropy(pp, y).detach() + (surrogate - surrogate.detach())

    return loss


def output_sigmoid(reference: Reference) -> str | None:
    """The Sigmoid module whose output is the model's (its last layer), where a BCELoss model has one."""
    last = reference.layers[-1] if reference.layers else None
    if reference.loss_spec.output != PROBABILITY or last is None or last.kind != "Sigmoid":
        return None
    return last.name


def replay(reference: Reference, case: Case, loss: Loss) -> tuple[float, Params] | None:
    """The loss and every parameter's gradient with `loss` on the output Sigmoid's input (training mode,
    dropout off, as the stage's backward); None where the Sigmoid's output is not the model's."""
    name = output_sigmoid(reference)
    if name is None:
        return None
    model = reference.train_mode(reference.build(case.params), dropout=False)
    seen: dict[str, torch.Tensor] = {}

    def hook(_m: torch.nn.Module, args: tuple, out: torch.Tensor) -> None:
        seen.setdefault("z", args[0])
        seen.setdefault("p", out)

    handle = dict(model.named_modules())[name].register_forward_hook(hook)
    try:
        out = model_output(model(reference.batch(case.x)))
    finally:
        handle.remove()
    z, p = seen.get("z"), seen.get("p")
    if z is None or p is None or z.numel() != len(case.y) or not torch.equal(p.reshape(-1), out.reshape(-1)):
        return None  # the Sigmoid is not the model's output, or not one value a row
    z = z.reshape(-1)
    value = loss(z, torch.sigmoid(z), torch.from_numpy(case.y))
    value.backward()
    return float(value.item()), {n: p.grad.numpy().copy() for n, p in model.named_parameters() if p.grad is not None}


def diagnose(reference: Reference, cases: Sequence[Case], tol: Tolerance) -> list[Cause]:
    """The loss candidates that reproduce the port's loss and every gradient on each case; none for a
    model whose output is not a Sigmoid module's."""
    if output_sigmoid(reference) is None:
        return []

    def err(loss: Loss, key: str = "") -> float:
        worst = 0.0
        for c in cases:
            own = key == "sigmoid_explicit" and c.port_p is not None and c.port_p.size == len(c.y)
            with np.errstate(all="ignore"):
                got = replay(reference, c, _explicit_sigmoid_with(c.port_p) if own else loss)
            if got is None:
                return np.inf
            value, grads = got
            worst = max(worst, float(ratios(np.float32(c.loss), np.float32(value), tol).max()))
            for n, g in grads.items():
                # The stage's own rule: per tensor, its atol scaled by the tensor's largest value.
                worst = max(worst, float(ratios(c.grads[n], g, per_tensor(tol, g)).max()))
        return worst

    found = [Candidate(f"backward.{k}", what, lambda _, f=f, k=k: err(f, k)) for k, (what, f) in LOSSES.items()]
    return explain(found, f"the loss and every gradient on {len(cases)} cases ({', '.join(c.name for c in cases)})")

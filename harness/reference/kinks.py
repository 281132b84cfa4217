"""ReLU kinks within rounding of zero: where two correct implementations may take opposite sides.

A ReLU whose input is within float32 rounding of zero is active in one framework and inactive in the
other, and the gradient through that one element then differs by its whole contribution (a unit's
weight row in the layer before). Nothing is wrong with either side. Measured on examples/transformer
(two encoder layers, ReLU in the feed-forward, 16,384 ReLU inputs a batch), seed 1, the faithful port's
gradient at the seventh re-synchronized step differed from torch's by 4.7e-4 in one element of
`enc.layers.1.linear1.weight` (0.8 relative), where torch's ReLU input was 8.9e-8, 5.1e-8 of that call's
largest (KINK_RTOL below covers it 200x): a false divergence at the tight tolerance. Over that run's 59
re-synchronized steps 27 ReLU inputs fell within KINK_RTOL, about one in 36,000.

So a gradient comparison allows each element the change that flipping those ambiguous ReLUs makes to it:
the reference's gradients are computed again with each ambiguous element's derivative flipped (0 for 1,
1 for 0), and an element may differ by the sum of those changes (`slack`). Only ReLU inputs within
KINK_RTOL of their call's largest |input| count; a real divergence changes gradients everywhere, not only
through a few units at zero.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch

from harness.reference.structure import Params

# A ReLU input counts as at the kink when |z| <= KINK_RTOL x the largest |z| of the same call: float32's
# rounding of a sum of products is about 1e-7 of its largest terms, and two frameworks' sums differ by a
# few of those.
KINK_RTOL = 1e-5
# More ambiguous elements than this in one batch are flipped in groups of about equal size (each group one
# more backward), which keeps the cost bounded on a large model.
MAX_FLIPS = 16


@contextlib.contextmanager
def _relu(record: list[torch.Tensor] | None, flips: dict[int, torch.Tensor]) -> Iterator[None]:
    """torch.relu (what nn.ReLU and F.relu call) recording each call's input, and with the derivative of
    the elements in `flips` (call index -> flat indices) flipped."""
    plain = torch.relu
    calls = [0]

    def relu(z: torch.Tensor) -> torch.Tensor:
        k = calls[0]
        calls[0] += 1
        if record is not None:
            record.append(z.detach().clone())
        idx = flips.get(k)
        if idx is None:
            return plain(z)
        mask = (z > 0).to(z.dtype).flatten()
        mask[idx] = 1.0 - mask[idx]
        return z * mask.reshape(z.shape)

    torch.relu = relu  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.relu = plain


def slack(backward: Callable[[], Params], names: list[str]) -> dict[str, np.ndarray]:
    """Each gradient element's allowance for ReLU kinks: the sum over the batch's ambiguous ReLU inputs of
    how much flipping each one changes it. `backward()` computes the reference's gradients on the batch;
    {} when no ReLU input is at a kink (the allowance is then zero)."""
    seen: list[torch.Tensor] = []
    with _relu(seen, {}):
        base = backward()
    ambiguous = [
        (k, torch.nonzero(z.flatten().abs() <= KINK_RTOL * z.abs().max()).flatten())
        for k, z in enumerate(seen)
        if z.numel() and z.is_floating_point()
    ]
    elements = [(k, int(i)) for k, idx in ambiguous for i in idx]
    if not elements:
        return {}
    groups = np.array_split(np.arange(len(elements)), min(len(elements), MAX_FLIPS))
    out = {n: np.zeros_like(base[n], dtype=np.float64) for n in names if n in base}
    for group in groups:
        flips: dict[int, list[int]] = {}
        for j in group:
            k, i = elements[j]
            flips.setdefault(k, []).append(i)
        with _relu(None, {k: torch.tensor(v) for k, v in flips.items()}):
            flipped = backward()
        for n in out:
            out[n] += np.abs(flipped[n].astype(np.float64) - base[n])
    return out

"""Candidate causes for a parameter round trip that changes values: the round trip replayed with one
layout or precision slip, on every parameter tensor at once.

Evidence: every tensor the port hands back after loading the reference's initial weights.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from harness.compare import Tolerance
from harness.diagnosis import Candidate, Cause, explain, ratios
from harness.reference.model import Params

Slip = Callable[[np.ndarray], np.ndarray]


def _reshaped_back(v: np.ndarray) -> np.ndarray:
    """[out, in] loaded as Burn's [in, out] without a transpose, then exported with one."""
    return v.reshape(v.shape[1], v.shape[0]).T if v.ndim == 2 else v


def _bfloat16(v: np.ndarray) -> np.ndarray:
    """Rounded to bfloat16 (the top 16 bits, round to nearest even) and back."""
    bits = np.asarray(v, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32)


SLIPS: dict[str, tuple[str, Slip]] = {
    "reshaped": ("every weight's [out, in] buffer read as Burn's [in, out] without a transpose", _reshaped_back),
    "float16": ("parameters stored in float16", lambda v: v.astype(np.float16).astype(np.float32)),
    "bfloat16": ("parameters stored in bfloat16", lambda v: _bfloat16(v)),
    "zeroed_biases": ("biases not loaded (left at zero)", lambda v: v if v.ndim == 2 else np.zeros_like(v)),
}


def diagnose(params: Params, back: Params, tol: Tolerance) -> list[Cause]:
    def err(slip: Slip) -> float:
        worst = 0.0
        for k, v in params.items():
            if k not in back:
                return float("inf")
            worst = max(worst, float(ratios(back[k], slip(v), tol).max()))
        return worst

    found = [Candidate(f"weights.{k}", what, lambda _, s=slip: err(s)) for k, (what, slip) in SLIPS.items()]
    return explain(found, f"{len(params)} parameter tensors")

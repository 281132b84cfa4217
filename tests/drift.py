"""How far two float32 parameter chains have drifted apart, in terms that do not depend on one CPU's
kernels: the RMS distance in ULPs of the parameters, and the systematic part of the drift (the relative
factor along the total update), which a different rounding of the same algorithm does not have and a
different formula (torch's float64 bias corrections against Burn's float32 ones) does."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _flat(d: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    return np.concatenate([np.asarray(d[n], dtype=np.float64).ravel() for n in names])


@dataclass(frozen=True)
class Drift:
    """`other` against `base`, both started from `init`."""

    rms_ulp: float  # RMS over elements of |other - base| / ulp(max(|base|, lr)) in float32
    systematic: float  # least-squares factor f in other - base ~ f (base - init): 0 for rounding noise

    @staticmethod
    def of(other: dict, base: dict, init: dict, names: list[str], lr: float) -> Drift:
        """The unit is the float32 ULP of the parameter, or of an Adam step (about lr in size) where the
        parameter is smaller: the step's own roundings are on its scale, not on a near-zero parameter's."""
        b, o, i = (_flat(d, names) for d in (base, other, init))
        ulp = np.spacing(np.maximum(np.abs(b), lr).astype(np.float32)).astype(np.float64)
        d, u = o - b, b - i
        return Drift(float(np.sqrt(np.mean((d / ulp) ** 2))), float(d @ u / (u @ u)))


def rounding_walk_ulp(steps: int) -> float:
    """The RMS distance, in ULPs, that independent roundings of the same formula reach after `steps`
    updates: each step's result may round the other way (half an ULP of the parameter from the final
    add, and the step's own roundings, each half an ULP of the step, which is at most the unit), in
    either direction independently from step to step, so they add as a random walk: sqrt(steps) / 2
    units per rounding that may differ, and Adam's step has about four (two moments, sqrt, divide). A systematic difference grows linearly instead (steps x its per-step bias)."""
    return 4 * math.sqrt(steps) / 2

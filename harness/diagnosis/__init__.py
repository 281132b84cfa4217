"""Counterfactual diagnosis: a cause is named only when replaying the reference with that change
reproduces the port's numbers within the stage's own tolerance.

Each stage that diagnoses has a catalogue of candidate changes to the reference (never read from the
fault switch). A candidate may have continuous parameters (a learning rate, a beta); they are fitted
to the evidence by minimizing the worst error over every number the stage has (grid on a transformed
scale, then bounded Brent around the best grid point). The stage reports the candidates whose replay
is within tolerance everywhere, simplest first; when none is, it says so and shows the evidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.compare import Tolerance

# Grid points per parameter before Brent refines, and rounds of coordinate descent for joint fits.
GRID = 61
# A fitted value this close (relative) to the reference's own is the reference, not a cause.
SAME_AS_REFERENCE = 1e-3
GRID2 = 13
JOINT_STARTS = 3
JOINT_ROUNDS = 3


@dataclass(frozen=True)
class Cause:
    """A candidate that reproduces the port: its id, the fitted parameters, and the worst error of the
    replay against the port as a fraction of the stage's tolerance (<= 1 reproduces)."""

    cause: str
    description: str
    parameters: dict[str, float]
    max_error: float
    evidence: str
    size: int = 1
    # What the cause does to the learning rate, as a factor per epoch, where that is all it changes (a
    # schedule): the train stage replays the re-synchronized steps with it, which a cause fitted on the
    # free run's looser band must reproduce too.
    lr_per_epoch: tuple[float, ...] | None = None

    def sentence(self) -> str:
        fitted = ", ".join(f"{k} = {_num(v)}" for k, v in self.parameters.items())
        what = f"{self.description} ({fitted})" if fitted else self.description
        err = "exactly" if self.max_error == 0 else f"max error {self.max_error:.2g} of the tolerance"
        return f"reproduced by {what}: {err}, over {self.evidence}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "description": self.description,
            "parameters": self.parameters,
            "max_error": self.max_error,
        }


@dataclass(frozen=True)
class Param:
    """A continuous parameter of a candidate, searched on a log scale of `to_search(value)`."""

    name: str
    low: float  # bounds of the searched quantity (log10 of to_search(value))
    high: float
    to_value: Callable[[float], float] = field(default=lambda s: 10.0**s)
    # The reference's own value on the searched scale, where it has one: a fit that lands there is the
    # reference itself, not a cause.
    reference: float | None = None

    @property
    def start(self) -> float:
        return self.reference if self.reference is not None else (self.low + self.high) / 2

    def is_reference(self, value: float) -> bool:
        if self.reference is None:
            return False
        ref = self.to_value(self.reference)
        return abs(value - ref) <= SAME_AS_REFERENCE * max(abs(ref), 1e-300)


def _num(v: float) -> str:
    return f"{v:.4g}" if abs(v) >= 1e-3 else f"{v:.3g}"


def ratios(ref: np.ndarray, got: np.ndarray, tol: Tolerance) -> np.ndarray:
    """|got - ref| / (atol + rtol |ref|) per element (inf where a side is not finite and they differ,
    or the shapes differ). Unlike a check (harness/compare.py, where NaN against NaN passes only with
    equal_nan), a NaN here matches a NaN whatever the tolerance says: a candidate reproduces the port when
    its replay gives the port's numbers, and a port's NaN (an unclamped log, say) is one of them."""
    r, g = np.asarray(ref, dtype=np.float64), np.asarray(got, dtype=np.float64)
    if r.shape != g.shape:
        return np.array([math.inf])
    same = (r == g) | (np.isnan(r) & np.isnan(g))
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.where(same, 0.0, np.abs(g - r))
        allowed = tol.atol + tol.rtol * np.abs(r)
        q = np.where(np.isfinite(err), err / np.where(allowed > 0, allowed, np.inf), math.inf)
        q = np.where((allowed == 0) & (err > 0) & np.isfinite(err), math.inf, q)
    return q.ravel()


def ratio(ref: np.ndarray, got: np.ndarray, tol: Tolerance) -> float:
    """Largest of ratios(ref, got, tol)."""
    q = ratios(ref, got, tol)
    return float(q.max()) if q.size else 0.0


@dataclass(frozen=True)
class Candidate:
    """One change to the reference: `error(theta)` replays the stage with it and returns the worst
    tolerance ratio against the port's numbers."""

    cause: str
    description: str
    error: Callable[[Sequence[float]], float]
    params: tuple[Param, ...] = ()
    # Every element's tolerance ratio (error is their maximum): a smooth objective for joint fits, where
    # the maximum's ridges stall a search one parameter at a time.
    residuals: Callable[[Sequence[float]], np.ndarray] | None = None
    # How many changes to the reference it makes: larger candidates are tried only when no smaller one
    # reproduces the port (a pair that contains a reproducing change reproduces too, and says no more).
    size: int = 1
    # The worst error over all the evidence, at the fitted parameters, where `error` judges a cheaper part
    # of it (a window of steps): fitted on the part, a candidate must still reproduce the whole.
    confirm: Callable[[Sequence[float]], float] | None = None

    def fit(self) -> tuple[dict[str, float], float]:
        """Fitted parameters and the worst error there: one parameter by a grid then bounded Brent,
        several by coordinate descent from the reference's values."""
        if not self.params:
            return {}, self.error(())
        point = [0.0]
        best = math.inf
        if len(self.params) > 2:
            raise NotImplementedError("candidates are fitted in at most two parameters")
        if len(self.params) == 2:
            starts = self._grid2()
            point = starts[0]
            if self.residuals is not None:
                point, best = min((self._least_squares(s) for s in starts), key=lambda r: r[1])
        for _ in range(JOINT_ROUNDS if len(self.params) > 1 else 1):
            for i in range(len(self.params)):
                point[i], best = self._line(i, point)
        return {p.name: p.to_value(s) for p, s in zip(self.params, point, strict=True)}, best

    def _least_squares(self, start: list[float]) -> tuple[list[float], float]:
        assert self.residuals is not None

        def res(x: np.ndarray) -> np.ndarray:
            q = self.residuals([p.to_value(v) for p, v in zip(self.params, x, strict=True)])
            return np.where(np.isfinite(q), q, 1e6)

        lo = [p.low for p in self.params]
        hi = [p.high for p in self.params]
        from scipy.optimize import least_squares  # a second to import; only fitted candidates need it

        fit = least_squares(
            res, np.clip(start, lo, hi), bounds=(lo, hi), x_scale=0.1, diff_step=1e-4, xtol=1e-12, ftol=1e-12
        )
        point = [float(v) for v in fit.x]
        return point, self.error([p.to_value(v) for p, v in zip(self.params, point, strict=True)])

    def _grid2(self) -> list[list[float]]:
        """The best points of a coarse grid over two parameters, best first: where the joint fit starts
        (from the reference's values it stalls, since neither parameter alone explains the port)."""
        a, b = self.params
        scored = []
        for s in np.linspace(a.low, a.high, GRID2):
            for t in np.linspace(b.low, b.high, GRID2):
                try:
                    e = self.error([a.to_value(s), b.to_value(t)])
                except (FloatingPointError, OverflowError, ValueError):
                    continue
                scored.append((e, [float(s), float(t)]))
        scored.sort(key=lambda x: x[0])
        return [p for _, p in scored[:JOINT_STARTS]] or [[a.start, b.start]]

    def _line(self, i: int, point: list[float]) -> tuple[float, float]:
        p = self.params[i]

        def f(s: float) -> float:
            theta = [q.to_value(point[j] if j != i else s) for j, q in enumerate(self.params)]
            try:
                e = self.error(theta)
            except (FloatingPointError, OverflowError, ValueError):
                return math.inf
            return e if math.isfinite(e) else 1e300

        grid = np.linspace(p.low, p.high, GRID)
        values = [f(s) for s in grid]
        k = int(np.argmin(values))
        lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
        best_s, best = float(grid[k]), values[k]
        from scipy.optimize import minimize_scalar

        res = minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": 1e-9})
        if res.fun < best:
            best_s, best = float(res.x), float(res.fun)
        return best_s, best


def explain(candidates: Sequence[Candidate], evidence: str) -> list[Cause]:
    """The candidates whose replay reproduces the port (max error <= 1), simplest first, then best.

    Candidates with more changes are tried only when no smaller one reproduces."""
    found: list[Cause] = []
    for c in sorted(candidates, key=lambda c: c.size):
        if found and c.size > found[-1].size:
            break
        params, err = c.fit()
        if c.params and all(p.is_reference(params[p.name]) for p in c.params):
            continue  # the fit found no change: the reference itself
        if err <= 1.0 and c.confirm is not None:
            err = max(err, c.confirm([params[p.name] for p in c.params]))
        if err <= 1.0:
            found.append(Cause(c.cause, c.description, params, err, evidence, c.size))
    return sorted(found, key=lambda c: (c.size, len(c.parameters), c.max_error))

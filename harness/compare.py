"""The comparison core: one rule everywhere, |got - ref| <= atol + rtol * |ref|.

Defaults per dtype follow torch.testing. NaN or inf where the other side is finite always fails;
NaN on both sides fails unless the tolerance allows it; infinities must match in sign. A result names
the worst element (index, both values, abs and rel error), the mismatch count and share, the minimum
atol (with rtol 0) and minimum rtol (with atol 0) that would have passed, and summary statistics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float
    equal_nan: bool = False
    why: str = ""

    @classmethod
    def exact(cls, why: str = "must be identical") -> Tolerance:
        return cls(0.0, 0.0, False, why)


FLOAT32 = Tolerance(1.3e-6, 1e-5, why="torch.testing default for float32")
FLOAT64 = Tolerance(1e-7, 1e-7, why="torch.testing default for float64")


def default_tolerance(dtype: np.dtype) -> Tolerance:
    if np.issubdtype(dtype, np.floating):
        return FLOAT64 if np.dtype(dtype) == np.float64 else FLOAT32
    return Tolerance.exact("integers and indices are compared exactly")


def summary_stats(a: np.ndarray) -> dict[str, float]:
    finite = a[np.isfinite(a)] if a.size else a
    return {
        "min": float(finite.min()) if finite.size else float("nan"),
        "max": float(finite.max()) if finite.size else float("nan"),
        "mean": float(finite.mean()) if finite.size else float("nan"),
        "nonfinite": int(a.size - finite.size),
    }


@dataclass
class ArrayDiff:
    name: str
    passed: bool
    shape: list[int]
    tolerance: dict[str, Any]
    count: int = 0
    mismatches: int = 0
    share: float = 0.0
    worst_index: list[int] | None = None
    worst_ref: float | None = None
    worst_got: float | None = None
    abs_err: float | None = None
    rel_err: float | None = None
    min_atol: float | None = None
    min_rtol: float | None = None
    first_mismatch: list[int] | None = None
    ref_stats: dict[str, float] = field(default_factory=dict)
    got_stats: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    # Largest |got - ref| / allowed over all elements (<= 1 passes; inf where nothing is allowed and
    # something differs). One number per check makes checks with unlike units comparable in a chart.
    ratio: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.passed:
            return f"{self.name}: ok ({self.count} elements, max abs err {self.abs_err or 0:.3g})"
        if self.reason:
            return f"{self.name}: {self.reason}"
        t = self.tolerance
        return (
            f"{self.name}: {self.mismatches}/{self.count} mismatched ({self.share:.1%}); worst at "
            f"{tuple(self.worst_index or [])}: ref {self.worst_ref!r} got {self.worst_got!r} "
            f"(abs {self.abs_err:.3g}, rel {self.rel_err:.3g}; allowed atol {t.get('atol', 0):.3g} + rtol "
            f"{t.get('rtol', 0):.3g} x |ref|); would pass with atol {self.min_atol:.3g} or rtol {self.min_rtol:.3g}"
        )


class ElementwiseDiff(ArrayDiff):
    """|got - ref| <= atol + rtol |ref| element by element (torch.testing's rule)."""


class ValueDiff(ArrayDiff):
    """A declared value (a hyperparameter, a count, a name list): equal or not."""

    def summary(self) -> str:
        return f"{self.name}: ok" if self.passed else f"{self.name}: {self.reason}"


class SetDiff(ArrayDiff):
    """Set membership (rows of a split): the same members, in any order."""

    def summary(self) -> str:
        return f"{self.name}: ok ({self.count} members)" if self.passed else f"{self.name}: {self.reason}"


def _f(x: float) -> float:
    return float(x)


def compare(name: str, ref: Any, got: Any, tol: Tolerance | None = None, slack: Any = None) -> ArrayDiff:
    """`slack`: an extra allowance per element (the ref's shape), added to atol + rtol x |ref| (a gradient's
    ReLU-kink allowance, harness/reference/kinks.py, and its tensor's rounding allowance,
    GRADIENT_ROUNDING_FACTOR); the tolerance's `why` says how large it gets."""
    r = np.asarray(ref)
    g = np.asarray(got)
    tol = tol or default_tolerance(r.dtype)
    extra = None if slack is None else np.broadcast_to(np.asarray(slack, dtype=np.float64), r.shape)
    if extra is not None and extra.max(initial=0.0) > 0:
        tol = Tolerance(
            tol.rtol,
            tol.atol,
            tol.equal_nan,
            f"{tol.why}; plus each element's allowance for ReLU kinks and float32 rounding (up to {float(extra.max()):.3g}, "
            f"{int((extra > 0).sum())} elements)",
        )
    tol_d = {"rtol": tol.rtol, "atol": tol.atol, "equal_nan": tol.equal_nan, "why": tol.why}
    if r.shape != g.shape:
        return ElementwiseDiff(
            name,
            False,
            list(r.shape),
            tol_d,
            count=int(r.size),
            mismatches=int(r.size),
            share=1.0,
            reason=f"shape differs: reference {r.shape}, port {g.shape}",
        )
    if r.size == 0:
        return ElementwiseDiff(name, True, list(r.shape), tol_d)
    r64 = r.astype(np.float64)
    g64 = g.astype(np.float64)
    rf, gf = np.isfinite(r64), np.isfinite(g64)
    both_finite = rf & gf
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        diff = np.where(both_finite, np.abs(g64 - r64), 0.0)
        allowed = tol.atol + tol.rtol * np.abs(r64) + (extra if extra is not None else 0.0)
        bad_finite = both_finite & (diff > allowed)
        same_inf = np.isinf(r64) & np.isinf(g64) & (np.sign(r64) == np.sign(g64))
        both_nan = np.isnan(r64) & np.isnan(g64)
        bad_nonfinite = ~both_finite & ~same_inf & ~(both_nan & tol.equal_nan)
        bad = bad_finite | bad_nonfinite
        rel = np.where(both_finite & (r64 != 0), diff / np.abs(r64), np.where(diff > 0, np.inf, 0.0))
    mism = int(bad.sum())
    # Worst element: a non-finite mismatch first, else the largest excess over the allowed error.
    if bad_nonfinite.any():
        flat = int(np.flatnonzero(bad_nonfinite)[0])
    else:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            excess = np.where(both_finite, diff / np.maximum(allowed, np.finfo(np.float64).tiny), 0.0)
        flat = int(np.argmax(excess))
    idx = [int(i) for i in np.unravel_index(flat, r.shape)]
    min_atol = float(diff.max()) if not bad_nonfinite.any() else float("inf")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(allowed > 0, diff / np.where(allowed > 0, allowed, 1.0), np.where(diff > 0, np.inf, 0.0))
    ratio = float("inf") if bad_nonfinite.any() else float(ratios.max())
    min_rtol = float(rel[both_finite].max()) if both_finite.any() and not bad_nonfinite.any() else float("inf")
    return ElementwiseDiff(
        name=name,
        passed=mism == 0,
        shape=list(r.shape),
        tolerance=tol_d,
        count=int(r.size),
        mismatches=mism,
        share=mism / r.size,
        worst_index=idx,
        worst_ref=_f(r64.flat[flat]),
        worst_got=_f(g64.flat[flat]),
        abs_err=_f(abs(g64.flat[flat] - r64.flat[flat])) if both_finite.flat[flat] else float("inf"),
        rel_err=_f(rel.flat[flat]) if both_finite.flat[flat] else float("inf"),
        min_atol=min_atol,
        min_rtol=min_rtol,
        first_mismatch=[int(i) for i in np.unravel_index(int(np.flatnonzero(bad)[0]), r.shape)] if mism else None,
        ref_stats=summary_stats(r64),
        got_stats=summary_stats(g64),
        ratio=ratio,
    )


def compare_exact(name: str, ref: Any, got: Any) -> ArrayDiff:
    return compare(name, ref, got, Tolerance.exact())


def compare_sets(name: str, ref: Any, got: Any) -> SetDiff:
    """Membership regardless of order: passes when both hold the same elements."""
    r, g = set(np.asarray(ref).tolist()), set(np.asarray(got).tolist())
    missing, extra = sorted(r - g), sorted(g - r)
    ok = not missing and not extra
    reason = (
        ""
        if ok
        else f"{len(missing)} of {len(r)} reference members missing from the port ({len(r & g)} shared, "
        f"overlap {len(r & g) / max(len(r), 1):.1%}); first missing {missing[:3]}, first extra {extra[:3]} "
        "(sets must be equal)"
    )
    return SetDiff(
        name,
        ok,
        [len(r)],
        {"rtol": 0.0, "atol": 0.0, "equal_nan": False, "why": "set equality"},
        count=len(r),
        mismatches=len(missing) + len(extra),
        share=(len(missing) / max(len(r), 1)),
        reason=reason,
        ratio=0.0 if ok else float("inf"),
    )


def compare_value(name: str, ref: Any, got: Any) -> ValueDiff:
    """One declared value (number, string or None): equal or not."""
    ok = ref == got or (isinstance(ref, float) and isinstance(got, float) and np.isnan(ref) and np.isnan(got))
    numbers = isinstance(ref, (int, float)) and isinstance(got, (int, float)) and not ok
    abs_err = abs(float(got) - float(ref)) if numbers else None
    return ValueDiff(
        name,
        bool(ok),
        [],
        {"rtol": 0.0, "atol": 0.0, "equal_nan": False, "why": "declared value"},
        count=1,
        mismatches=0 if ok else 1,
        share=0.0 if ok else 1.0,
        worst_ref=float(ref) if numbers else None,
        worst_got=float(got) if numbers else None,
        abs_err=abs_err,
        rel_err=(abs_err / abs(float(ref)) if ref else float("inf")) if abs_err is not None else None,
        reason="" if ok else f"reference {ref!r}, port {got!r} (declared values must be equal)",
        ratio=0.0 if ok else float("inf"),
    )


def compare_names(name: str, what: str, ref: list[str], got: list[str]) -> SetDiff:
    """The reference's names (parameters, layers) against the port's: every missing and unexpected one
    named, so that a port whose structure differs is told which parameter or layer."""
    missing = [n for n in ref if n not in set(got)]
    extra = [n for n in got if n not in set(ref)]
    ok = not missing and not extra
    parts = []
    if missing:
        parts.append(f"the port has no {what} {', '.join(repr(n) for n in missing[:5])}")
    if extra:
        parts.append(f"the port has {what} {', '.join(repr(n) for n in extra[:5])} that the reference does not")
    return SetDiff(
        name,
        ok,
        [len(ref)],
        {"rtol": 0.0, "atol": 0.0, "equal_nan": False, "why": f"the reference's {what} names"},
        count=len(ref),
        mismatches=len(missing) + len(extra),
        share=len(missing) / max(len(ref), 1),
        reason="; ".join(parts),
        ratio=0.0 if ok else float("inf"),
    )

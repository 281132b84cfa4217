"""Candidate causes for a scaler that differs: sklearn's StandardScaler replayed with one change.

Evidence: the port's fitted mean, variance and scale (float64, per feature) and its scaled training
rows (float32), against the replay under the stage's own tolerances.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from harness.compare import Tolerance
from harness.diagnosis import Candidate, Cause, explain, ratio

SAMPLE_ROWS = 1000


@dataclass(frozen=True)
class Evidence:
    x: np.ndarray  # every row's features, float64
    train_idx: np.ndarray
    mean: np.ndarray  # the port's fit
    var: np.ndarray
    scale: np.ndarray
    scaled: np.ndarray  # the port's transform of x[train_idx][:SAMPLE_ROWS] with its own mean and scale


def _scale(mean: np.ndarray, var: np.ndarray, n: int) -> np.ndarray:
    """sklearn's scale: sqrt(var), 1 for constant features."""
    eps = np.finfo(np.float64).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    return np.where(constant, 1.0, np.sqrt(var))


def _float32_sequential(rows: np.ndarray, ddof: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance accumulated in float32 one row after the other (a plain loop), two passes."""
    x32 = rows.astype(np.float32)
    n = np.float32(len(rows))
    mean = (np.cumsum(x32, axis=0, dtype=np.float32)[-1] / n).astype(np.float32)
    sq = np.cumsum((x32 - mean) ** 2, axis=0, dtype=np.float32)[-1]
    return mean.astype(np.float64), (sq / (n - np.float32(ddof))).astype(np.float64)


def replay(
    ev: Evidence,
    *,
    train_rows: bool = False,
    ddof: int = 0,
    float32: bool = False,
    mean_divisor_minus_1: bool = False,
    fit_scale_is_var: bool = False,
    transform_by_var: bool = False,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rows = ev.x[ev.train_idx] if train_rows else ev.x
    n = len(rows)
    if float32:
        mean, var = _float32_sequential(rows, ddof)
    else:
        mean = rows.sum(axis=0) / (n - 1 if mean_divisor_minus_1 else n)
        var = ((rows - mean) ** 2).sum(axis=0) / (n - ddof)
    scale = var if fit_scale_is_var else _scale(mean, var, n)
    div = scale * scale if transform_by_var else scale
    sample = ev.x[ev.train_idx][:SAMPLE_ROWS]
    return {"mean": mean, "var": var, "scale": scale}, ((sample - mean) / div).astype(np.float32)


def error(ev: Evidence, stats_tol: Tolerance, sample_tol: Tolerance, **change: bool | int) -> float:
    stats, scaled = replay(ev, **change)
    got = {"mean": ev.mean, "var": ev.var, "scale": ev.scale}
    return max(*(ratio(got[k], stats[k], stats_tol) for k in stats), ratio(ev.scaled, scaled, sample_tol))


# One change each: (id, what it says, the replay's switch).
CHANGES = (
    ("fit_rows_train", "the scaler fitted on the training rows only (reference: all rows)", {"train_rows": True}),
    ("ddof1", "the variance with n - 1 (sample std; sklearn uses n)", {"ddof": 1}),
    ("float32", "mean and variance accumulated in float32 (sklearn: float64)", {"float32": True}),
    ("mean_divisor", "the mean divided by n - 1 instead of n", {"mean_divisor_minus_1": True}),
    (
        "scale_is_variance",
        "the scale set to the variance instead of the standard deviation",
        {"fit_scale_is_var": True},
    ),
    ("transform_by_variance", "features divided by the variance in transform", {"transform_by_var": True}),
)


def candidates(ev: Evidence, stats_tol: Tolerance, sample_tol: Tolerance) -> list[Candidate]:
    """Every change alone, then every two together (a hand-written scaler often has more than one)."""
    out = []
    for size in (1, 2):
        for combo in itertools.combinations(CHANGES, size):
            change = {k: v for _, _, sw in combo for k, v in sw.items()}
            out.append(
                Candidate(
                    "+".join(f"scaler.{c[0]}" for c in combo),
                    " and ".join(c[1] for c in combo),
                    lambda _, change=change: error(ev, stats_tol, sample_tol, **change),
                    size=size,
                )
            )
    return out


def diagnose(ev: Evidence, stats_tol: Tolerance, sample_tol: Tolerance) -> list[Cause]:
    rows = min(SAMPLE_ROWS, len(ev.train_idx))
    evidence = f"mean, variance and scale of every feature and the first {rows} scaled rows"
    return explain(candidates(ev, stats_tol, sample_tol), evidence)


def unexplained(ev: Evidence, ref: dict[str, np.ndarray]) -> str:
    """What the numbers show when no candidate reproduces them."""
    parts = []
    for k in ("mean", "var", "scale"):
        r = np.abs(getattr(ev, k) - ref[k]) / np.maximum(np.abs(ref[k]), 1e-300)
        if r.max() > 0:
            j = int(r.argmax())
            parts.append(f"{k} off by up to {r.max():.2g} relative (feature {j})")
    return "; ".join(parts) or "the fitted statistics match; the scaled values differ"

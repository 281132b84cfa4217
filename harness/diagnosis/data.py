"""Candidate causes for a parsed table that differs: pandas' reading replayed with one change.

Evidence: the port's feature matrix and labels, against the replay, exactly (parsing has no arithmetic).
A change of precision or type (float16, bfloat16, integers, a fixed number of decimals) may hit every
column or only some: a reader that infers each column's type from its first rows gives an integer type to
a column whose first values are whole numbers. Such a change is replayed on exactly the columns where it
reproduces the port, and those are named.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from harness.compare import Tolerance
from harness.diagnosis import Candidate, Cause, Param, explain, ratios

Table = tuple[np.ndarray, np.ndarray]

CHANGES: dict[str, tuple[str, Callable[[np.ndarray, np.ndarray], Table]]] = {
    "labels_inverted": ("the labels inverted (1 - y)", lambda x, y: (x, 1 - y)),
    "first_row_as_header": ("the first data row taken as a second header (dropped)", lambda x, y: (x[1:], y[1:])),
    "last_row_dropped": ("the last row dropped", lambda x, y: (x[:-1], y[:-1])),
    "header_as_row": (
        "the header line read as a first data row (its names parsed as NaN)",
        lambda x, y: (np.vstack([np.full((1, x.shape[1]), np.nan), x]), np.concatenate([[np.nan], y])),
    ),
}


def float16(x: np.ndarray) -> np.ndarray:
    """Round to float16, back to float64 (beyond 65504 it is inf, as in the port)."""
    with np.errstate(over="ignore"):
        return np.asarray(x).astype(np.float16).astype(np.float64)


def bfloat16(x: np.ndarray) -> np.ndarray:
    """Round to bfloat16 (nearest, ties to even) through float32's bits, back to float64."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32).astype(np.float64)


def half_away(x: np.ndarray) -> np.ndarray:
    """Round to the nearest integer, halves away from zero (Rust's f64::round; numpy rounds them to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


# Changes of each number's precision or type, applied per column.
PRECISION: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "float32_parse": (
        "parsed at float32 precision (pandas parses float64)",
        lambda x: x.astype(np.float32).astype(np.float64),
    ),
    "float16_parse": ("parsed at float16 precision", float16),
    "bfloat16_parse": ("parsed at bfloat16 precision", bfloat16),
    "truncated_to_integer": ("parsed as integers (the fraction truncated)", np.trunc),
    "rounded_to_integer": ("parsed as integers (rounded to the nearest, halves away from zero)", half_away),
}


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per column: every element equal (NaN equal to NaN)."""
    return np.all((a == b) | (np.isnan(a) & np.isnan(b)), axis=0)


def _columns(names: Sequence[str], cols: np.ndarray) -> str:
    picked = [names[j] if j < len(names) else f"column {j}" for j in np.flatnonzero(cols)]
    return ", ".join(picked[:4]) + (f" and {len(picked) - 4} more" if len(picked) > 4 else "")


def _column_order(x: np.ndarray, got_x: np.ndarray, tol: Tolerance) -> np.ndarray | None:
    """The permutation `perm` with got_x[:, j] == x[:, perm[j]] within `tol`, each of the port's columns
    matching exactly one of the reference's; None when there is none, or it is the identity."""
    perm = []
    for j in range(got_x.shape[1]):
        match = [k for k in range(x.shape[1]) if float(ratios(x[:, k], got_x[:, j], tol).max()) <= 1]
        if len(match) != 1:
            return None
        perm.append(match[0])
    order = np.array(perm)
    if len(set(perm)) != len(perm) or np.array_equal(order, np.arange(len(perm))):
        return None
    return order


def diagnose(
    x: np.ndarray,
    y: np.ndarray,
    got_x: np.ndarray,
    got_y: np.ndarray,
    tol: Tolerance,
    names: Sequence[str] = (),
) -> list[Cause]:
    def err(change: Callable[[np.ndarray, np.ndarray], Table]) -> float:
        rx, ry = change(x, y)
        return max(float(ratios(got_x, rx, tol).max()), float(ratios(got_y, ry, tol).max()))

    found = [Candidate(f"data.{k}", what, lambda _, c=change: err(c)) for k, (what, change) in CHANGES.items()]
    if got_x.shape == x.shape:

        def per_column(key: str, what: str, to: Callable[[np.ndarray], np.ndarray]) -> Candidate:
            changed = to(x)
            # The columns this change reproduces, where it changes anything: only those are replayed.
            cols = _same(got_x, changed) & ~_same(x, changed)
            everywhere = bool(np.all(cols | _same(x, changed)))
            where = "numbers" if everywhere else f"columns {_columns(names, cols)}"
            replay = np.where(cols[None, :], changed, x)
            return Candidate(
                f"data.{key}", f"{where} {what}", lambda _: err(lambda a, b: (replay, b)) if cols.any() else np.inf
            )

        found += [per_column(k, what, to) for k, (what, to) in PRECISION.items()]
        perm = _column_order(x, got_x, tol)
        if perm is not None:
            moved = [(j, int(k)) for j, k in enumerate(perm) if j != k]
            shown = ", ".join(f"{names[k] if k < len(names) else k} at {j}" for j, k in moved[:4])
            found.append(
                Candidate(
                    "data.columns_reordered",
                    f"the feature columns in another order ({len(moved)} moved: {shown}"
                    f"{', ...' if len(moved) > 4 else ''})",
                    lambda _: err(lambda a, b: (a[:, perm], b)),
                )
            )
        # A fixed number of decimals (a value written through a format string, or a decimal type): the
        # count is fitted over 1-6 and only a count that reproduces every number exactly is named.
        found.append(
            Candidate(
                "data.rounded_to_decimals",
                "numbers rounded to a fixed number of decimals",
                lambda th: err(lambda a, b: (np.round(a, int(th[0])), b)),
                (Param("decimals", 1, 6, to_value=lambda s: float(round(s))),),
            )
        )
    return explain(found, f"{x.shape[0]} rows x {x.shape[1]} features and the labels")

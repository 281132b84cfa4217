"""Candidate causes for a parsed table that differs: pandas' reading replayed with one change.

Evidence: the port's feature matrix and labels, against the replay, exactly (parsing has no arithmetic).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from harness.compare import Tolerance
from harness.diagnosis import Candidate, Cause, explain, ratios

Table = tuple[np.ndarray, np.ndarray]

CHANGES: dict[str, tuple[str, Callable[[np.ndarray, np.ndarray], Table]]] = {
    "float32_parse": (
        "numbers parsed at float32 precision (pandas parses float64)",
        lambda x, y: (x.astype(np.float32).astype(np.float64), y),
    ),
    "labels_inverted": ("the labels inverted (1 - y)", lambda x, y: (x, 1 - y)),
    "first_row_as_header": ("the first data row taken as a second header (dropped)", lambda x, y: (x[1:], y[1:])),
    "last_row_dropped": ("the last row dropped", lambda x, y: (x[:-1], y[:-1])),
    "header_as_row": (
        "the header line read as a first data row (its names parsed as NaN)",
        lambda x, y: (np.vstack([np.full((1, x.shape[1]), np.nan), x]), np.concatenate([[np.nan], y])),
    ),
}


def diagnose(x: np.ndarray, y: np.ndarray, got_x: np.ndarray, got_y: np.ndarray, tol: Tolerance) -> list[Cause]:
    def err(change: Callable[[np.ndarray, np.ndarray], Table]) -> float:
        rx, ry = change(x, y)
        return max(float(ratios(got_x, rx, tol).max()), float(ratios(got_y, ry, tol).max()))

    found = [Candidate(f"data.{k}", what, lambda _, c=change: err(c)) for k, (what, change) in CHANGES.items()]
    return explain(found, f"{x.shape[0]} rows x {x.shape[1]} features and the labels")

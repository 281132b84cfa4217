"""Candidate causes for a metric that differs on the reference's own predictions: the reference's
accuracy replayed with one change. Parameter-free only: the evidence is one number, and a fitted
threshold could match any accuracy; an exact count k/n from a fixed rule is evidence.
"""

from __future__ import annotations

import numpy as np

from harness.diagnosis import Candidate, Cause, explain

# Within half a row of the port's accuracy: the same count of correct rows.
RULES = {
    "argmax": ("accuracy as argmax over the [N, 1] output (every row predicted class 0)", lambda p, y, t: y == 0),
    "threshold_inclusive": (
        "predictions p >= threshold instead of p > threshold",
        lambda p, y, t: (p >= t) == (y > 0.5),
    ),
    "inverted": ("predictions inverted (p < threshold counted as class 1)", lambda p, y, t: (p < t) == (y > 0.5)),
    "all_positive": ("every row predicted class 1", lambda p, y, t: y == 1),
}


def diagnose(probs: np.ndarray, y: np.ndarray, threshold: float, got: float) -> list[Cause]:
    n = len(y)

    def err(rule) -> float:
        acc = float(np.mean(rule(probs, y, threshold)))
        return abs(acc - got) * n / 0.5  # <= 1: the same number of correct rows

    found = [Candidate(f"metrics.{k}", what, lambda _, r=rule: err(r)) for k, (what, rule) in RULES.items()]
    return explain(found, f"the port's accuracy on the reference's {n} predictions")

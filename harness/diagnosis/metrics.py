"""Candidate causes for a metric that differs on the reference's own predictions: the reference's
accuracy replayed with one change. Parameter-free only: the evidence is one number, and a fitted
threshold could match any accuracy; an exact count k/n from a fixed rule is evidence.
"""

from __future__ import annotations

import numpy as np

from harness.diagnosis import Candidate, Cause, explain

BATCH = 32


def _batch_mean(correct: np.ndarray) -> float:
    """The mean of per-batch accuracies (batches of 32): the last, smaller batch weighs as much as a full one."""
    return float(np.mean([correct[i : i + BATCH].mean() for i in range(0, len(correct), BATCH)]))


# Each rule gives an accuracy from the probabilities, the labels and the threshold.
RULES = {
    "argmax": (
        "accuracy as argmax over the [N, 1] output (every row predicted class 0)",
        lambda p, y, t: np.mean(y == 0),
    ),
    "threshold_inclusive": (
        "predictions p >= threshold instead of p > threshold",
        lambda p, y, t: np.mean((p >= t) == (y > 0.5)),
    ),
    "inverted": (
        "predictions inverted (p < threshold counted as class 1)",
        lambda p, y, t: np.mean((p < t) == (y > 0.5)),
    ),
    "all_positive": ("every row predicted class 1", lambda p, y, t: np.mean(y == 1)),
    "batch_mean": (
        f"the mean of per-batch accuracies (batches of {BATCH}) instead of correct rows over all rows",
        lambda p, y, t: _batch_mean((p > t) == (y > 0.5)),
    ),
}


def diagnose(probs: np.ndarray, y: np.ndarray, threshold: float, got: float) -> list[Cause]:
    n = len(y)

    def err(rule) -> float:
        acc = float(rule(probs, y, threshold))
        # Within half a row of the port's accuracy: the same number of correct rows (or, for a batch
        # mean, the same value to float rounding).
        return abs(acc - got) * n / 0.5

    found = [Candidate(f"metrics.{k}", what, lambda _, r=rule: err(r)) for k, (what, rule) in RULES.items()]
    return explain(found, f"the port's accuracy on the reference's {n} predictions")

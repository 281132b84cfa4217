"""Candidate causes for a metric that differs on the reference's own predictions: the reference's
accuracy replayed with one change. Parameter-free only: the evidence is one number, and a fitted
threshold or denominator could match any accuracy; an exact count k/n from a fixed rule is evidence.

Two families: how a row is judged right (threshold rules, for a probability output), and how the right
rows are counted (the denominator, batching, the unit). A port can slip in both at once (burn-train's
accuracy takes argmax over a [N, 1] output and reports percent), so pairs are tried, one of each family
or the percent unit with a denominator rule, when no single rule reproduces the number.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from harness.compare import Tolerance
from harness.diagnosis import Candidate, Cause, explain, ratio
from harness.tolerances import METRIC_RULE_RTOL

# Each rule gives the port's number from the per-row correctness (bool [n]), the batch size and the
# number of training rows, and the smallest change one row's verdict makes to it (the rule is judged to
# half of that and to METRIC_RULE_RTOL: the same count of correct rows, whatever float arithmetic the
# port used).
CountRule = Callable[[np.ndarray, int, int], tuple[float, float]]


def _batch_mean(c: np.ndarray, b: int) -> tuple[float, float]:
    """The mean of per-batch accuracies: the last, smaller batch weighs as much as a full one."""
    means = [c[i : i + b].mean() for i in range(0, len(c), b)]
    return float(np.mean(means)), 1 / (len(means) * min(b, len(c)))


def _share(k: float, d: float) -> tuple[float, float]:
    return (k / d, 1 / d) if d > 0 else (np.nan, 1.0)


def _batches(c: np.ndarray, b: int) -> int:
    return -(-len(c) // b)


def _dropped(c: np.ndarray, b: int) -> tuple[float, float]:
    full = len(c) // b * b
    return _share(c[:full].sum(), full) if len(c) % b and full else (np.nan, 1.0)


COUNT_RULES: dict[str, tuple[str, CountRule]] = {
    "batch_mean": (
        "the mean of per-batch accuracies (batches of {b}) instead of correct rows over all rows",
        lambda c, b, n_train: _batch_mean(c, b),
    ),
    "denominator_n_minus_1": ("correct rows divided by n - 1", lambda c, b, n_train: _share(c.sum(), len(c) - 1)),
    "denominator_n_plus_1": ("correct rows divided by n + 1", lambda c, b, n_train: _share(c.sum(), len(c) + 1)),
    "denominator_padded_batches": (
        "correct rows divided by the number of batches times the batch size (the last batch counted full)",
        lambda c, b, n_train: _share(c.sum(), _batches(c, b) * b),
    ),
    "denominator_train_rows": (
        "correct test rows divided by the number of training rows",
        lambda c, b, n_train: _share(c.sum(), n_train),
    ),
    "denominator_all_rows": (
        "correct test rows divided by all rows (train and test)",
        lambda c, b, n_train: _share(c.sum(), n_train + len(c)),
    ),
    "last_batch_dropped": (
        "the last, partial batch left out of the evaluation (DataLoader drop_last)",
        lambda c, b, n_train: _dropped(c, b),
    ),
    "correct_per_batch": (
        "correct rows divided by the number of batches (a count per batch, not a share)",
        lambda c, b, n_train: _share(c.sum(), _batches(c, b)),
    ),
    "percent": ("the accuracy in percent", lambda c, b, n_train: _share(100 * c.sum(), len(c))),
    "count": ("the number of correct rows, not divided", lambda c, b, n_train: (float(c.sum()), 1.0)),
}

# The unit rules among COUNT_RULES: they scale whatever a denominator rule gives, so they pair with one.
UNIT_RULES = ("percent", "count")

# Threshold rules, for a model whose output is a probability: each row's verdict (bool [n]) from the
# probabilities, labels and threshold.
THRESHOLD_RULES = {
    "argmax": (
        "accuracy as argmax over the [N, 1] output (every row predicted class 0)",
        lambda p, y, t: y == 0,
    ),
    "threshold_inclusive": (
        "predictions p >= threshold instead of p > threshold",
        lambda p, y, t: (p >= t) == (y > 0.5),
    ),
    "inverted": (
        "predictions inverted (p < threshold counted as class 1)",
        lambda p, y, t: (p < t) == (y > 0.5),
    ),
    "all_positive": ("every row predicted class 1", lambda p, y, t: y == 1),
}


# Probabilities of the threshold probe: 0 to 1 in steps of 1/2000, every row labelled 1.
PROBE_POINTS = 2001


def probe_threshold(accuracy: Callable[[np.ndarray, np.ndarray], float], threshold: float) -> float | None:
    """The port's decision threshold, measured: its metric on probabilities spread evenly over [0, 1], all
    labelled 1, counts the rows it calls positive (a share, or percent). The threshold lies between the
    last probability it calls negative and the first it calls positive; None when that interval holds the
    configured threshold, or the number is no count of these rows."""
    probs = np.linspace(0, 1, PROBE_POINTS).astype(np.float32)
    value = float(accuracy(probs, np.ones(PROBE_POINTS, np.float32)))
    for scale in (1.0, 100.0):
        count = value / scale * PROBE_POINTS
        if 0 < round(count) < PROBE_POINTS and abs(count - round(count)) < 1e-6 * PROBE_POINTS:
            k = PROBE_POINTS - round(count)  # rows called negative: probs[:k]
            low, high = float(probs[k - 1]), float(probs[k])
            if low <= threshold <= high:
                return None
            return round((low + high) / 2, 3)
    return None


def diagnose(
    correct: np.ndarray,
    got: float,
    batch_size: int,
    n_train: int,
    probs: np.ndarray | None = None,
    y: np.ndarray | None = None,
    threshold: float | None = None,
    measured_threshold: float | None = None,
) -> list[Cause]:
    """`correct`: the reference's per-row verdict on its own predictions; `probs`, `y` and `threshold`
    only for a probability output (the threshold rules); `measured_threshold` the port's own, from
    `probe_threshold`, replayed on the reference's predictions (a number measured, not fitted to this
    one: it must reproduce the port's accuracy here too)."""
    correct = np.asarray(correct, dtype=bool)
    n = len(correct)

    def err(value: float, step: float) -> float:
        # Within half a row of the port's number, in the rule's own unit (a share, percent or a count).
        allowed = min(0.5 * step, METRIC_RULE_RTOL * abs(value)) or 0.5 * step
        return abs(value - got) / allowed if np.isfinite(value) else np.inf

    def counted(verdict: np.ndarray, rule: CountRule, scale: float = 1.0) -> float:
        value, step = rule(verdict, batch_size, n_train)
        return err(scale * value, scale * step)

    counts = {k: (what.format(b=batch_size), rule) for k, (what, rule) in COUNT_RULES.items()}
    found = [
        Candidate(f"metrics.{k}", what, lambda _, r=rule: counted(correct, r)) for k, (what, rule) in counts.items()
    ]
    # The percent unit over another denominator (a count over one is the denominator rule itself).
    found += [
        Candidate(
            f"metrics.percent+{k}",
            f"{what}, in percent",
            lambda _, r=rule: counted(correct, r, 100.0),
            size=2,
        )
        for k, (what, rule) in counts.items()
        if k not in UNIT_RULES
    ]
    if probs is not None and y is not None and threshold is not None:
        verdicts = {
            k: (what, np.asarray(rule(probs, y, threshold), dtype=bool)) for k, (what, rule) in THRESHOLD_RULES.items()
        }
        found += [
            Candidate(f"metrics.{k}", what, lambda _, v=v: err(float(v.mean()), 1 / n))
            for k, (what, v) in verdicts.items()
        ]
        found += [
            Candidate(
                f"metrics.{t}+{k}",
                f"{t_what}, and {c_what}",
                lambda _, v=v, r=rule: counted(v, r),
                size=2,
            )
            for (t, (t_what, v)), (k, (c_what, rule)) in itertools.product(verdicts.items(), counts.items())
        ]
        if measured_threshold is not None:
            v = (probs > measured_threshold) == (y > 0.5)
            found.append(
                Candidate(
                    "metrics.threshold",
                    f"a decision threshold of {measured_threshold:g} instead of {threshold:g} (measured on a probe: "
                    f"probabilities 0 to 1, all labelled 1)",
                    lambda _, v=v: err(float(v.mean()), 1 / n),
                )
            )
    return explain(found, f"the port's accuracy on the reference's {n} predictions")


def _batch_mse(e: np.ndarray, b: int) -> float:
    return float(np.mean([np.mean(e[i : i + b] ** 2) for i in range(0, len(e), b)]))


# Regression: the port's number from the errors pred - y (float64, [n]) and the batch size.
REGRESSION_RULES: dict[str, tuple[str, Callable[[np.ndarray, int], float]]] = {
    "rmse": (
        "the root of the mean squared error (RMSE) instead of the MSE",
        lambda e, b: float(np.sqrt(np.mean(e**2))),
    ),
    "mae": ("the mean absolute error instead of the MSE", lambda e, b: float(np.mean(np.abs(e)))),
    "sse": ("the summed squared error, not divided by n", lambda e, b: float(np.sum(e**2))),
    "half_mse": ("half the MSE (the 1/2 of a loss's definition)", lambda e, b: float(np.mean(e**2) / 2)),
    "mse_n_minus_1": ("the squared errors divided by n - 1", lambda e, b: float(np.sum(e**2) / (len(e) - 1))),
    "mse_batch_mean": ("the mean of per-batch MSEs", _batch_mse),
}


def diagnose_regression(pred: np.ndarray, y: np.ndarray, got: float, batch_size: int, tol: Tolerance) -> list[Cause]:
    """Candidate rules for a regression metric that differs on the reference's own predictions, each
    judged with the metric's own tolerance."""
    e = np.asarray(pred, dtype=np.float64).ravel() - np.asarray(y, dtype=np.float64).ravel()
    found = [
        Candidate(f"metrics.{k}", what, lambda _, r=rule: ratio(np.float64(r(e, batch_size)), np.float64(got), tol))
        for k, (what, rule) in REGRESSION_RULES.items()
    ]
    return explain(found, f"the port's metric on the reference's {len(e)} predictions")

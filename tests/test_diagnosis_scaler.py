"""Counterfactual diagnosis of the scaler stage: ports whose scaler is sklearn's with one or two changes,
written here with sklearn and numpy (not with the diagnosis's replay), each asserting the cause named."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from harness.config import BUNDLED_DATA, RunConfig
from harness.pipeline import run_with
from harness.stages.base import Context

Fit = Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]


def sklearn_fit(rows: str = "all") -> Fit:
    def fit(x: np.ndarray, train_idx: np.ndarray) -> dict[str, np.ndarray]:
        s = StandardScaler().fit(x if rows == "all" else x[train_idx])
        return {"mean": s.mean_, "var": s.var_, "scale": s.scale_}

    return fit


def numpy_fit(ddof: int = 0, mean_divisor: int = 0, scale_is_var: bool = False, rows: str = "all") -> Fit:
    def fit(x: np.ndarray, train_idx: np.ndarray) -> dict[str, np.ndarray]:
        r = x if rows == "all" else x[train_idx]
        mean = r.sum(axis=0) / (len(r) - mean_divisor)
        var = ((r - mean) ** 2).sum(axis=0) / (len(r) - ddof)
        return {"mean": mean, "var": var, "scale": var if scale_is_var else np.sqrt(var)}

    return fit


def loop_f32_fit(x: np.ndarray, train_idx: np.ndarray) -> dict[str, np.ndarray]:
    """A plain loop over the rows, accumulating in float32."""
    s = np.zeros(x.shape[1], dtype=np.float32)
    for row in x.astype(np.float32):
        s += row
    mean = s / np.float32(len(x))
    q = np.zeros(x.shape[1], dtype=np.float32)
    for row in x.astype(np.float32):
        q += (row - mean) ** 2
    var = q / np.float32(len(x))
    return {"mean": mean.astype(np.float64), "var": var.astype(np.float64), "scale": np.sqrt(var).astype(np.float64)}


def median_fit(x: np.ndarray, train_idx: np.ndarray) -> dict[str, np.ndarray]:
    centre = np.median(x, axis=0)
    var = x.var(axis=0)
    return {"mean": centre, "var": var, "scale": np.sqrt(var)}


class ScalerOnlyPort:
    def __init__(self, fit: Fit, power: int = 1) -> None:
        self.fit_scaler = fit
        self._power = power

    def transform(self, x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
        return ((x - mean) / scale**self._power).astype(np.float32)


CASES = [
    ("fitted on the training rows", ScalerOnlyPort(sklearn_fit("train")), "scaler.fit_rows_train"),
    ("sample variance", ScalerOnlyPort(numpy_fit(ddof=1)), "scaler.ddof1"),
    ("float32 loop", ScalerOnlyPort(loop_f32_fit), "scaler.float32"),
    ("mean divided by n - 1", ScalerOnlyPort(numpy_fit(mean_divisor=1)), "scaler.mean_divisor"),
    ("scale is the variance", ScalerOnlyPort(numpy_fit(scale_is_var=True)), "scaler.scale_is_variance"),
    ("transform divides by the variance", ScalerOnlyPort(sklearn_fit(), power=2), "scaler.transform_by_variance"),
    (
        "training rows and sample variance",
        ScalerOnlyPort(numpy_fit(ddof=1, rows="train")),
        "scaler.fit_rows_train+scaler.ddof1",
    ),
]


def diagnose(port: ScalerOnlyPort):
    return run_with(Context(RunConfig(data=BUNDLED_DATA), port=port), ["scaler"]).results[0]


@pytest.mark.parametrize(("name", "port", "cause"), CASES, ids=[c[0] for c in CASES])
def test_the_diagnosis_names_the_change(name: str, port: ScalerOnlyPort, cause: str) -> None:
    res = diagnose(port)
    assert res.status == "FAIL"
    assert [d["cause"] for d in res.diagnosis][:1] == [cause], res.hint
    assert res.diagnosis[0]["max_error"] <= 1.0 and res.hint.startswith("reproduced by ")


def test_an_unexplained_scaler_is_said_to_be_unexplained() -> None:
    res = diagnose(ScalerOnlyPort(median_fit))
    assert res.status == "FAIL" and res.diagnosis == []
    assert res.hint.startswith("no candidate cause reproduces the port's scaler; mean off by up to")


def test_sklearn_itself_passes_without_a_diagnosis() -> None:
    res = diagnose(ScalerOnlyPort(sklearn_fit()))
    assert res.status == "PASS" and res.diagnosis == []

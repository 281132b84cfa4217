"""The comparison core's semantics, including property tests."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness.compare import FLOAT32, Tolerance, compare, compare_sets, compare_value

finite32 = arrays(np.float32, st.integers(1, 50), elements=st.floats(-1e6, 1e6, width=32))


@given(finite32)
def test_identical_arrays_pass(a: np.ndarray) -> None:
    d = compare("x", a, a.copy())
    assert d.passed and d.mismatches == 0


@given(finite32, st.floats(1e-3, 10))
def test_perturbation_beyond_tolerance_fails_and_names_worst(a: np.ndarray, delta: float) -> None:
    b = a.astype(np.float64)
    i = len(b) // 2
    bump = FLOAT32.atol + FLOAT32.rtol * abs(b[i]) + delta * (1 + abs(b[i]))
    b[i] += bump
    d = compare("x", a, b)
    assert not d.passed
    assert d.worst_index == [i]
    assert d.min_atol is not None and d.min_atol >= bump * 0.999
    # The minimum tolerance reported really passes.
    assert compare("x", a, b, Tolerance(0.0, d.min_atol * (1 + 1e-12))).passed


@given(finite32)
def test_rule_is_atol_plus_rtol_times_ref(a: np.ndarray) -> None:
    tol = Tolerance(1e-3, 1e-4)
    inside = a.astype(np.float64) + 0.5 * (tol.atol + tol.rtol * np.abs(a.astype(np.float64)))
    outside = a.astype(np.float64) + 2.0 * (tol.atol + tol.rtol * np.abs(a.astype(np.float64)))
    assert compare("x", a.astype(np.float64), inside, tol).passed
    assert not compare("x", a.astype(np.float64), outside, tol).passed


def test_nan_and_inf_policy() -> None:
    ref = np.array([1.0, np.nan, np.inf, 2.0])
    assert not compare("x", ref, ref).passed  # NaN on both sides fails by default
    assert compare("x", ref, ref, Tolerance(0, 0, equal_nan=True)).passed
    d = compare("x", np.array([1.0, 2.0]), np.array([1.0, np.nan]))
    assert not d.passed and d.worst_index == [1] and d.abs_err == float("inf")
    assert not compare("x", np.array([np.inf]), np.array([-np.inf])).passed
    assert not compare("x", np.array([1.0]), np.array([np.inf])).passed


def test_shape_mismatch_and_sets_and_values() -> None:
    assert "shape differs" in compare("x", np.zeros(3), np.zeros(4)).reason
    assert compare_sets("s", [3, 1, 2], [1, 2, 3]).passed
    d = compare_sets("s", [1, 2, 3, 4], [1, 2, 9, 8])
    assert not d.passed and "2 of 4" in d.reason
    assert not compare_value("eps", 1e-8, 1e-5).passed
    assert compare_value("lr", 1e-3, 1e-3).passed


def test_integers_are_exact() -> None:
    assert not compare("idx", np.array([1, 2, 3]), np.array([1, 2, 4])).passed

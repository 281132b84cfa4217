"""scaler: fitted mean and scale per feature, statistics of the scaled features, first samples.

Teacher-forced: the port fits on the reference's parsed features with the reference's split.
"""

from __future__ import annotations

import numpy as np

from harness.compare import compare
from harness.stages.base import Context, Stage, StageResult, result


def _close(a: np.ndarray, b: np.ndarray, rtol: float = 1e-9) -> bool:
    return bool(np.allclose(a, b, rtol=rtol, atol=0.0))


def diagnose(x: np.ndarray, train_idx: np.ndarray, ref: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> str:
    """Which fit explains the port's statistics: other rows, n-1, or float32 accumulation."""
    n = len(x)
    parts = []
    train_mean = x[train_idx].mean(axis=0)
    if not _close(got["mean"], ref["mean"]) and _close(got["mean"], train_mean, 1e-6):
        parts.append(
            f"the port's mean equals the mean of the {len(train_idx)} training rows: its scaler is fitted after the "
            "split; the reference fits on all rows before it"
        )
    var_rows = len(train_idx) if parts else n
    ref_var = x[train_idx].var(axis=0) if parts else ref["var"]
    if _close(got["var"], ref_var * var_rows / (var_rows - 1), 1e-6):
        parts.append("the port's variance is the reference's times n/(n-1): std uses n-1; sklearn uses n (ddof 0)")
    if not parts:
        rel = np.abs(got["mean"] - ref["mean"]) / np.maximum(np.abs(ref["mean"]), 1e-300)
        if 1e-12 < rel.max() < 1e-3:
            j = int(rel.argmax())
            parts.append(
                f"statistics off by up to {rel.max():.1g} relative (feature {j}, magnitude {abs(ref['mean'][j]):.3g}): "
                "accumulated in float32; sklearn accumulates in float64"
            )
    return "; ".join(parts) or "fitted statistics differ from sklearn's StandardScaler"


def run(ctx: Context) -> StageResult:
    p = ctx.prepared
    x = p.table.features
    got = ctx.port.fit_scaler(x, p.train_idx)
    ref = {"mean": p.mean, "var": p.var, "scale": p.scale}
    tol = ctx.tol("scaler.stats")
    checks = [compare(k, ref[k], np.asarray(got[k]), tol) for k in ("mean", "var", "scale")]
    scaled = ctx.port.transform(x[p.train_idx], np.asarray(got["mean"]), np.asarray(got["scale"]))
    tol_s = ctx.tol("scaler.samples")
    checks.append(compare("first_samples", p.x_train[:1000], scaled[:1000], tol_s))
    for name, stat in (("scaled_train_mean", np.mean), ("scaled_train_std", np.std)):
        checks.append(
            compare(name, stat(p.x_train, axis=0, dtype=np.float64), stat(scaled, axis=0, dtype=np.float64), tol_s)
        )
    ok = all(c.passed for c in checks)
    return result(
        "scaler",
        checks,
        "" if ok else diagnose(x, p.train_idx, ref, got),
        first_sample=[float(v) for v in p.x_train[0, :3]],
    )


STAGE = Stage("scaler", "fitted mean and scale; scaled statistics; first samples", run)

"""scaler: fitted mean and scale per feature, statistics of the scaled features, first samples.

Teacher-forced: the port fits on the reference's parsed features with the reference's split. A
failing fit is diagnosed by replaying sklearn's scaler with one change (harness/diagnosis/scaler.py).
"""

from __future__ import annotations

import numpy as np

from harness.compare import compare
from harness.diagnosis.scaler import SAMPLE_ROWS, Evidence, diagnose, unexplained
from harness.results import StageResult, result
from harness.stages.base import Context, Stage


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
    causes, hint = [], ""
    if not all(c.passed for c in checks):
        ev = Evidence(
            x,
            p.train_idx,
            *(np.asarray(got[k], dtype=np.float64) for k in ("mean", "var", "scale")),
            scaled[:SAMPLE_ROWS],
        )
        causes = diagnose(ev, tol, tol_s)
        hint = (
            causes[0].sentence()
            if causes
            else f"no candidate cause reproduces the port's scaler; {unexplained(ev, ref)}"
        )
    return result(
        "scaler",
        checks,
        hint,
        diagnosis=[c.to_dict() for c in causes],
        first_sample=[float(v) for v in p.x_train[0, :3]],
    )


STAGE = Stage("scaler", "fitted mean and scale; scaled statistics; first samples", run)

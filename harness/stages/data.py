"""data: rows, columns, parsed dtypes, values and label counts."""

from __future__ import annotations

import numpy as np

from harness.compare import compare, compare_value
from harness.stages.base import Context, Stage, StageResult, result


def run(ctx: Context) -> StageResult:
    table = ctx.prepared.table
    got = ctx.port.load_csv(ctx.cfg.data, ctx.cfg.label)
    tol = ctx.tol("data")
    checks = [
        compare_value("rows", len(table.labels), len(got["labels"])),
        compare_value("columns", table.feature_names, list(got["feature_names"])),
        compare_value("dtypes", table.dtypes, list(got["dtypes"])),
    ]
    if got["features"].shape == table.features.shape:
        checks.append(compare("features", table.features, got["features"], tol))
    checks.append(compare("labels", table.labels, got["labels"], tol))
    checks.append(compare_value("positives", int(table.labels.sum()), int(np.asarray(got["labels"]).sum())))
    hint = ""
    if not all(c.passed for c in checks):
        dt = [
            f"{n}: {a} vs {b}"
            for n, a, b in zip(table.feature_names, table.dtypes, got["dtypes"], strict=False)
            if a != b
        ]
        feat = next((c for c in checks if c.name == "features" and not c.passed), None)
        parts = []
        if dt:
            parts.append(f"parsed dtypes differ ({', '.join(dt[:3])}{', ...' if len(dt) > 3 else ''})")
        if feat is not None and feat.rel_err is not None and feat.rel_err < 1e-6:
            col = table.feature_names[feat.worst_index[1]] if feat.worst_index else "?"
            parts.append(
                f"values differ by at most {feat.min_rtol:.1g} relative (worst in '{col}'): numbers were "
                "parsed at float32 precision; parse as f64 like pandas and cast after scaling"
            )
        hint = "; ".join(parts) or "the parsed table differs from pandas' reading of the same file"
    return result("data", checks, hint, rows=len(table.labels), features=len(table.feature_names))


STAGE = Stage("data", "rows, columns, parsed dtypes, values, label counts", run)

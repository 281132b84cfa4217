"""data: rows, columns, parsed dtypes, values and label counts."""

from __future__ import annotations

import re

import numpy as np

from harness.compare import compare, compare_value
from harness.diagnosis.data import diagnose
from harness.results import StageResult, result
from harness.stages.base import Context, Stage

# Integer types by any name a reader gives them: numpy's and pandas' (int64, uint8), Rust's (i64, u32, usize).
_INTEGER = re.compile(r"u?int(8|16|32|64)?|[iu](8|16|32|64|128|size)")
_FLOAT = {"float": "float64", "double": "float64", "f64": "float64", "f32": "float32", "f16": "float16"}


def read_as(dtype: str) -> str:
    """What a parsed column holds, the part of its dtype two readers can disagree on: an integer column read
    exactly holds the same numbers whatever the width or sign (pandas says int64 where a Rust reader of
    counts says u64 or usize), while a float's width is the precision its numbers were rounded to."""
    d = dtype.strip().lower()
    if _INTEGER.fullmatch(d):
        return "integer"
    return _FLOAT.get(d, d)


def run(ctx: Context) -> StageResult:
    table = ctx.prepared.table
    got = ctx.port.load_csv(ctx.cfg.data, ctx.cfg.label)
    tol = ctx.tol("data")
    checks = [
        compare_value("rows", len(table.labels), len(got["labels"])),
        compare_value("columns", table.feature_names, list(got["feature_names"])),
        compare_value("dtypes", [read_as(d) for d in table.dtypes], [read_as(str(d)) for d in got["dtypes"]]),
    ]
    if got["features"].shape == table.features.shape:
        checks.append(compare("features", table.features, got["features"], tol))
    checks.append(compare("labels", table.labels, got["labels"], tol))
    got_labels = np.asarray(got["labels"], dtype=np.float64)
    if ctx.cfg.task == "binary":
        checks.append(compare_value("positives", int(table.labels.sum()), int(np.nansum(got_labels))))
    elif ctx.cfg.task == "multiclass":
        classes = sorted({int(v) for v in table.labels} | {int(v) for v in got_labels[np.isfinite(got_labels)]})
        checks.append(
            compare_value(
                "class_counts",
                {c: int((table.labels == c).sum()) for c in classes},
                {c: int((got_labels == c).sum()) for c in classes},
            )
        )
    if all(c.passed for c in checks):
        return result("data", checks, rows=len(table.labels), features=len(table.feature_names))
    got_x, got_y = np.asarray(got["features"], dtype=np.float64), np.asarray(got["labels"], dtype=np.float64)
    causes = diagnose(table.features, table.labels, got_x, got_y, tol, table.feature_names)
    dt = [
        f"{n}: {a} vs {b}"
        for n, a, b in zip(table.feature_names, table.dtypes, got["dtypes"], strict=False)
        if read_as(a) != read_as(str(b))
    ]
    parts = [causes[0].sentence()] if causes else []
    if dt:
        parts.append(f"parsed dtypes differ ({', '.join(dt[:3])}{', ...' if len(dt) > 3 else ''})")
    if causes and causes[0].cause == "data.float32_parse":
        parts.append("parse as f64 like pandas and cast to f32 after scaling")
    hint = (
        "; ".join(parts)
        if causes
        else "no candidate cause reproduces the parsed table; "
        + ("; ".join(parts) or next(c for c in checks if not c.passed).summary())
    )
    return result(
        "data",
        checks,
        hint,
        diagnosis=[c.to_dict() for c in causes],
        rows=len(table.labels),
        features=len(table.feature_names),
    )


STAGE = Stage("data", "rows, columns, parsed dtypes, values, label counts", run)

"""split: train/test row membership and order, against sklearn's train_test_split."""

from __future__ import annotations

from harness.compare import compare_exact, compare_sets, compare_value
from harness.stages.base import Context, Stage, StageResult, result


def run(ctx: Context) -> StageResult:
    p = ctx.prepared
    train, test = ctx.port.split(len(p.table.labels), ctx.cfg.test_size, ctx.cfg.split_seed)
    checks = [
        compare_value("train_size", len(p.train_idx), len(train)),
        compare_value("test_size", len(p.test_idx), len(test)),
        compare_sets("test_membership", p.test_idx, test),
        compare_sets("train_membership", p.train_idx, train),
    ]
    if len(test) == len(p.test_idx):
        checks.append(compare_exact("test_order", p.test_idx, test))
    if len(train) == len(p.train_idx):
        checks.append(compare_exact("train_order", p.train_idx, train))
    hint = ""
    if not all(c.passed for c in checks):
        overlap = len(set(p.test_idx.tolist()) & set(test.tolist())) / max(len(p.test_idx), 1)
        n = len(p.table.labels)
        expected_overlap = len(p.test_idx) / n
        if overlap < 0.5:
            hint = (
                f"test rows overlap {overlap:.1%} with sklearn's (about {expected_overlap:.0%} is chance): the port "
                f"shuffles with another generator; reproduce numpy RandomState({ctx.cfg.split_seed}).permutation(n) "
                "and take the first ceil(test_size*n) rows as test"
            )
        elif overlap == 1.0:
            hint = "same rows, different order: keep sklearn's permutation order for both sets"
        else:
            hint = (
                f"test rows overlap {overlap:.1%}: the split sizes or rounding differ from sklearn's ceil(test_size*n)"
            )
    return result("split", checks, hint)


STAGE = Stage("split", "train/test row membership and order", run)

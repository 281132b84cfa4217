"""split: train/test row membership and order, against sklearn's train_test_split."""

from __future__ import annotations

import numpy as np

from harness.compare import compare_exact, compare_sets, compare_value
from harness.diagnosis.split import diagnose, repeat_causes
from harness.results import StageResult, result
from harness.stages.base import Context, Stage


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
    if all(c.passed for c in checks):
        return result("split", checks)
    n = len(p.table.labels)
    seed = ctx.cfg.split_seed
    # The port asked again, with the same seed and with another: a split that is not a function of the
    # seed is named from the port's own answers, whatever generator it uses.
    again = ctx.port.split(n, ctx.cfg.test_size, seed)
    other = ctx.port.split(n, ctx.cfg.test_size, seed + 1)
    checks.append(compare_exact("repeat.test_order", np.asarray(test), np.asarray(again[1])))
    unseeded, ignored = repeat_causes((train, test), again, other)
    causes = unseeded or [
        *diagnose(n, ctx.cfg.test_size, seed, p.table.labels, np.asarray(train), np.asarray(test)),
        *ignored,
    ]
    if causes:
        hint = causes[0].sentence()
    else:
        overlap = len(set(p.test_idx.tolist()) & set(test.tolist())) / max(len(p.test_idx), 1)
        hint = (
            f"no candidate cause reproduces the split; test rows overlap {overlap:.1%} with sklearn's (about "
            f"{len(p.test_idx) / n:.0%} is chance); sizes {len(train)}/{len(test)} vs {len(p.train_idx)}/"
            f"{len(p.test_idx)}: the port shuffles with another generator or rule; reproduce numpy "
            f"RandomState({ctx.cfg.split_seed}).permutation(n) and take the first ceil(test_size*n) rows as test"
        )
    return result("split", checks, hint, diagnosis=[c.to_dict() for c in causes])


STAGE = Stage("split", "train/test row membership and order", run)

"""metrics: accuracy from the same predictions, and end-to-end independent runs compared statistically."""

from __future__ import annotations

import numpy as np
from scipy.stats import binom, binomtest

from harness import progress
from harness.compare import ArrayDiff, compare
from harness.reference import model as ref_model
from harness.reference import train as ref_train
from harness.stages.base import Context, Stage, StageResult, result
from harness.tolerances import END_TO_END_ACCURACY_PP, MCNEMAR_ALPHA


def mcnemar_p(ref_correct: np.ndarray, port_correct: np.ndarray) -> float:
    b, c = discordant(ref_correct, port_correct)
    return 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)


def discordant(ref_correct: np.ndarray, port_correct: np.ndarray) -> tuple[int, int]:
    """(b, c): rows right for the reference only, and for the port only."""
    return int((ref_correct & ~port_correct).sum()), int((~ref_correct & port_correct).sum())


def noise_flips(d: int, alpha: float = MCNEMAR_ALPHA) -> int:
    """The largest |c - b| that McNemar's exact test calls noise among d = b + c discordant rows."""
    if d == 0:
        return 0
    k = np.arange((d + 1) // 2, d + 1)  # the larger of b and c
    p = np.minimum(1.0, 2 * binom.sf(k - 1, d, 0.5))
    significant = np.flatnonzero(p < alpha)
    k_noise = int(k[significant[0]]) - 1 if significant.size else d
    return 2 * k_noise - d


def end_to_end_verdict(gap_pp: float, b: int, c: int, predictions: int) -> tuple[str, float]:
    """("pass" | "inconclusive" | "fail", allowed gap in points) for a mean accuracy gap measured on
    `predictions` rows (test rows x seeds) with b + c discordant; the rule is in harness/tolerances.py."""
    predictions = max(predictions, 1)
    noise = noise_flips(b + c)
    allowed = max(END_TO_END_ACCURACY_PP, 100 * noise / predictions)
    # Accuracies are counts over the predictions: judge the gap as a count, so that a gap exactly at
    # the bound does not fall on either side by rounding (3 flips in 40 rows: 7.499999999999996 points).
    gap_rows = round(gap_pp / 100 * predictions)
    if 100 * gap_rows <= END_TO_END_ACCURACY_PP * predictions:
        return "pass", allowed
    return ("inconclusive" if gap_rows <= noise else "fail"), allowed


def run(ctx: Context) -> StageResult:
    p = ctx.prepared
    cfg = ctx.cfg
    x, y = p.x_test, p.y_test
    final = ctx.ref_trace.final
    ref_probs, ref_acc = ref_train.evaluate(final, x, y, cfg.threshold)
    # The port's metric on the reference's own predictions: a metric bug, isolated from the model.
    port_acc = ctx.port.accuracy(ref_probs, y)
    n = len(y)
    checks = [
        compare(
            "same_predictions.accuracy", np.float64(ref_acc), np.float64(port_acc), ctx.tol("metrics.same_predictions")
        )
    ]
    hints = []
    if not checks[0].passed:
        share0 = float((y == 0).mean())
        share1 = float((y == 1).mean())
        pred_ref = ref_probs > cfg.threshold
        if abs(port_acc - share0) < 0.5 / n:
            hints.append(
                f"on the reference's own predictions the port's metric reports accuracy {port_acc:.4f} (reference {ref_acc:.4f}), exactly the "
                f"share of class 0 in the test set ({share0:.4f}): every sample is counted as class 0, as argmax over a "
                "[B, 1] output does (burn-train's AccuracyMetric); threshold the probability at 0.5 instead"
            )
        elif abs(port_acc - share1) < 0.5 / n:
            hints.append(
                f"the port's accuracy equals the share of class 1 ({share1:.4f}): every sample counted as class 1"
            )
        else:
            hints.append(
                f"on the reference's own predictions the port's metric gives {port_acc:.4f} vs {ref_acc:.4f} "
                f"({int(pred_ref.sum())} positives by the reference): the metric is computed differently"
            )
    # End-to-end: each side with its own initialization and shuffling, over cfg.seeds seeds.
    accs_ref, accs_port, flips, pvals = [], [], [], []
    b_all = c_all = 0
    for i in range(cfg.seeds):
        seed = cfg.seed + i
        if i == 0:
            ref_final = final
        else:
            init = ref_model.init_params(ctx.n_features, seed)
            orders = ref_train.batch_orders(len(p.y_train), cfg.epochs, seed)
            with progress.current().epochs(f"reference, seed {seed}", cfg.epochs) as on_epoch:
                ref_final = ref_train.train(p.x_train, p.y_train, init, orders, cfg, on_epoch=on_epoch).final
        rp, ra = ref_train.evaluate(ref_final, x, y, cfg.threshold)
        with progress.current().epochs(f"port, own init, seed {seed}", cfg.epochs) as on_epoch:
            own = ctx.port.train(p.x_train, p.y_train, epochs=cfg.epochs, seed=seed, on_epoch=on_epoch)
        pp, pa = ctx.port.evaluate(own["final"], x, y)
        accs_ref.append(ra)
        accs_port.append(pa)
        ref_pred = rp > cfg.threshold
        port_pred = np.asarray(pp) > cfg.threshold
        flips.append(int((ref_pred != port_pred).sum()))
        pvals.append(mcnemar_p(ref_pred == (y > 0.5), port_pred == (y > 0.5)))
        b, c = discordant(ref_pred == (y > 0.5), port_pred == (y > 0.5))
        b_all, c_all = b_all + b, c_all + c
    gap_pp = 100 * abs(float(np.mean(accs_port)) - float(np.mean(accs_ref)))
    predictions = n * cfg.seeds
    verdict, allowed_pp = end_to_end_verdict(gap_pp, b_all, c_all, predictions)
    e2e = ArrayDiff(
        "end_to_end.accuracy_gap_pp",
        verdict != "fail",
        [],
        {
            "rtol": 0.0,
            "atol": allowed_pp,
            "equal_nan": False,
            "why": f"independent runs: mean accuracy within {END_TO_END_ACCURACY_PP:g} point, or within "
            f"McNemar's noise for {b_all + c_all} discordant of {predictions} predictions",
        },
        count=1,
        mismatches=int(verdict == "fail"),
        worst_ref=float(np.mean(accs_ref)),
        worst_got=float(np.mean(accs_port)),
        abs_err=gap_pp / 100,
        ratio=gap_pp / allowed_pp,
    )
    accuracies = f"mean test accuracy {np.mean(accs_port):.4f} (port) vs {np.mean(accs_ref):.4f} (reference)"
    inconclusive = ""
    if verdict == "fail":
        e2e.reason = accuracies
    elif verdict == "inconclusive":
        inconclusive = (
            f"end-to-end inconclusive: {accuracies}, a {gap_pp:.2g}-point gap that {predictions} test predictions "
            f"({b_all + c_all} discordant) cannot tell from noise; use more test rows or --seeds"
        )
        e2e.reason = inconclusive
    checks.append(e2e)
    mc = ArrayDiff(
        "end_to_end.mcnemar_p",
        min(pvals) >= MCNEMAR_ALPHA,
        [],
        {"rtol": 0.0, "atol": MCNEMAR_ALPHA, "equal_nan": False, "why": "McNemar exact test on errors"},
        count=len(pvals),
        worst_got=float(min(pvals)),
        # A p-value passes when large: alpha / p puts it on the same "<= 1 passes" scale as errors.
        ratio=MCNEMAR_ALPHA / max(float(min(pvals)), 1e-300),
    )
    if not mc.passed:
        mc.reason = f"McNemar p = {min(pvals):.2g} < {MCNEMAR_ALPHA:g}: the two models make different errors"
    checks.append(mc)
    if not e2e.passed and not hints:
        hints.append(f"independent runs reach {np.mean(accs_port):.4f} (port) vs {np.mean(accs_ref):.4f} (reference)")
    return result(
        "metrics",
        checks,
        "; ".join(hints),
        accuracy_ref=accs_ref,
        accuracy_port=accs_port,
        flips=flips,
        mcnemar_p=pvals,
        same_weights_accuracy={"reference": ref_acc, "port": port_acc},
        end_to_end={"verdict": verdict, "gap_pp": gap_pp, "allowed_pp": allowed_pp, "discordant": [b_all, c_all]},
        **({"inconclusive": inconclusive} if inconclusive else {}),
    )


STAGE = Stage("metrics", "accuracy from the same weights; independent runs compared statistically", run)

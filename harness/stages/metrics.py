"""metrics: accuracy from the same predictions, and end-to-end independent runs compared statistically."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import binom, binomtest
from scipy.stats import t as student_t

from harness import progress
from harness.compare import ArrayDiff, compare
from harness.diagnosis import Cause
from harness.diagnosis.metrics import diagnose, diagnose_regression, probe_threshold
from harness.errors import PortFailure, PortUnsupported
from harness.results import StageResult, result
from harness.specs import PROBABILITY
from harness.stages.base import Context, Stage
from harness.tolerances import END_TO_END_ACCURACY_PP, MCNEMAR_ALPHA, SEED_SPREAD_ALPHA


class GapDiff(ArrayDiff):
    """Independent runs: |mean accuracy gap| within what matters, the reference's seed-to-seed spread, or
    the test set's sampling noise (harness/tolerances.py)."""


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


def seed_spread_pp(ref_accuracies: list[float], port_seeds: int, alpha: float = SEED_SPREAD_ALPHA) -> float:
    """How far the mean accuracy of `port_seeds` independent port runs may lie from the mean of the
    reference's runs over K seeds, in points, if the port is one more draw from the reference's own
    seed-to-seed distribution: the two-sided (1 - alpha) prediction bound
    t(1 - alpha/2, K - 1) * s * sqrt(1/port_seeds + 1/K), s the reference's sample standard deviation."""
    k = len(ref_accuracies)
    if k < 2:
        return 0.0
    s = float(np.std(ref_accuracies, ddof=1))
    return 100 * float(student_t.ppf(1 - alpha / 2, k - 1)) * s * float(np.sqrt(1 / port_seeds + 1 / k))


def end_to_end_verdict(gap_pp: float, b: int, c: int, predictions: int, spread_pp: float = 0.0) -> tuple[str, float]:
    """("pass" | "inconclusive" | "fail", allowed gap in points) for a mean accuracy gap measured on
    `predictions` rows (test rows x seeds) with b + c discordant, given the reference's own seed-to-seed
    allowance `spread_pp` (seed_spread_pp); the rule is in harness/tolerances.py."""
    predictions = max(predictions, 1)
    noise = noise_flips(b + c)
    allowed = max(END_TO_END_ACCURACY_PP, spread_pp, 100 * noise / predictions)
    # Accuracies are counts over the predictions: judge the gap as a count, so that a gap exactly at
    # the bound does not fall on either side by rounding (3 flips in 40 rows: 7.499999999999996 points).
    gap_rows = round(gap_pp / 100 * predictions)
    if 100 * gap_rows <= max(END_TO_END_ACCURACY_PP, spread_pp) * predictions:
        return "pass", allowed
    return ("inconclusive" if gap_rows <= noise else "fail"), allowed


def port_metric(ctx: Context) -> Callable[[np.ndarray, np.ndarray], float]:
    """The port's metric as a function of probabilities. A port whose model returns logits (`[port]
    loss_input = "logits"`) takes its outputs: the logit of each probability, which keeps every row on
    its side of the threshold (p > 0.5 exactly when the logit is > 0)."""
    if not ctx.reference.takes_logits():
        return ctx.port.accuracy
    return lambda probs, y: ctx.port.accuracy(logits_of(probs), y)


def logits_of(probs: np.ndarray) -> np.ndarray:
    """float32 logits of probabilities, +-100 where p is 0 or 1 (a metric reads which side of its
    threshold a logit lies on, and the logit is monotone in p)."""
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore"):
        z = np.log(p) - np.log1p(-p)
    return np.clip(z, -100.0, 100.0).astype(np.float32)


def probabilities_of(ctx: Context, outputs: np.ndarray) -> np.ndarray:
    """A logits port's predictions as float32 probabilities (the sigmoid the reference's model applies)."""
    if not ctx.reference.takes_logits():
        return outputs
    z = np.asarray(outputs, dtype=np.float32)
    return (1 / (1 + np.exp(-z.astype(np.float64)))).astype(np.float32)


def _measured_threshold(ctx: Context) -> float | None:
    """The port's decision threshold from its metric on a probe (harness/diagnosis/metrics.py); None when
    the port's metric rejects the probe: it is evidence for a cause only, never a verdict of its own."""
    try:
        return probe_threshold(port_metric(ctx), ctx.cfg.threshold)
    except PortFailure:
        return None


def same_predictions(
    ctx: Context, ref_probs: np.ndarray, ref_acc: float
) -> tuple[float, list[ArrayDiff], list[str], list[Cause]]:
    """The port's metric on the reference's own predictions: a metric bug, isolated from the model. The
    port's number, the check, the hint's parts and the causes that reproduce the port's number."""
    cfg, p = ctx.cfg, ctx.prepared
    y, ref = p.y_test, ctx.reference
    port_acc = port_metric(ctx)(ref_probs, y)
    checks = [
        compare(
            "same_predictions.accuracy", np.float64(ref_acc), np.float64(port_acc), ctx.tol("metrics.same_predictions")
        )
    ]
    hints = []
    causes = []
    if not checks[0].passed:
        probability = ref.loss_spec.output == PROBABILITY
        causes = diagnose(
            ref.correct(ref_probs, y),
            port_acc,
            cfg.batch_size,
            len(p.y_train),
            *((ref_probs, y, cfg.threshold, _measured_threshold(ctx)) if probability else ()),
        )
        if causes:
            hints.append(
                f"on the reference's own predictions the port's metric gives {port_acc:.4f} (reference {ref_acc:.4f}); "
                + causes[0].sentence()
                + (
                    f" (the share of class 0 in the test set is {float((y == 0).mean()):.4f}; burn-train's AccuracyMetric "
                    "does this on a [B, 1] output: threshold the probability instead)"
                    if causes[0].cause == "metrics.argmax"
                    else ""
                )
            )
        else:
            seen = (
                f"{int((ref_probs > cfg.threshold).sum())} positives by the reference"
                if cfg.task == "binary"
                else f"{len(y)} rows, {ref.n_outputs} classes"
            )
            hints.append(
                f"on the reference's own predictions the port's metric gives {port_acc:.4f} vs {ref_acc:.4f} "
                f"({seen}); no candidate cause reproduces it"
            )
    return port_acc, checks, hints, causes


def run(ctx: Context) -> StageResult:
    p = ctx.prepared
    cfg = ctx.cfg
    x, y = p.x_test, p.y_test
    final = ctx.ref_trace.final
    ref = ctx.reference
    if cfg.task == "regression":
        return _regression(ctx)
    ref_probs, ref_acc = ref.evaluate(final, x, y)
    port_acc, checks, hints, causes = same_predictions(ctx, ref_probs, ref_acc)
    try:
        return _end_to_end(ctx, ref_acc, port_acc, checks, hints, causes)
    except PortUnsupported as e:
        # An inference-only port: its metric on the reference's predictions is judged; independent runs
        # need its training, so that part says why it did not run.
        why = f"not implemented by the port: {e}"
        return result(
            "metrics",
            checks,
            "; ".join(hints),
            diagnosis=[c.to_dict() for c in causes],
            tried=not checks[0].passed,  # the catalogue explains the metric on the reference's predictions
            same_weights_accuracy={"reference": ref_acc, "port": port_acc},
            end_to_end={"verdict": "skipped", "reason": why},
        )


def _end_to_end(
    ctx: Context, ref_acc: float, port_acc: float, checks: list[ArrayDiff], hints: list[str], causes: list[Cause]
) -> StageResult:
    """Independent runs: each side with its own initialization and shuffling, judged statistically."""
    p, cfg, ref = ctx.prepared, ctx.cfg, ctx.reference
    x, y = p.x_test, p.y_test
    final = ctx.ref_trace.final
    n = len(y)
    # End-to-end: each side with its own initialization and shuffling. The port over cfg.seeds seeds; the
    # reference over those and more (its seed-to-seed spread is the yardstick), trained in the worker.
    ref_finals = {cfg.seed: final, **ctx.ensemble.seeds}
    ref_seeds = [cfg.seed, *ctx.reference_seeds]
    ref_probs_by_seed, accs_ref_all = {}, []
    for seed in ref_seeds:
        rp, ra = ref.evaluate(ref_finals[seed], x, y)
        ref_probs_by_seed[seed] = rp
        accs_ref_all.append(ra)
    accs_port, flips, pvals = [], [], []
    b_all = c_all = 0
    for i in range(cfg.seeds):
        seed = cfg.seed + i
        with progress.current().epochs(f"port, own init, seed {seed}", cfg.epochs) as on_epoch:
            own = ctx.port.train(p.x_train, p.y_train, epochs=cfg.epochs, seed=seed, on_epoch=on_epoch, dropout=True)
        pp, pa = ctx.port.evaluate(own["final"], x, y)
        accs_port.append(pa)
        ref_right = ref.correct(ref_probs_by_seed[seed], y)
        port_right = ref.correct(probabilities_of(ctx, np.asarray(pp)), y)
        flips.append(int((ref_right != port_right).sum()))
        pvals.append(mcnemar_p(ref_right, port_right))
        b, c = discordant(ref_right, port_right)
        b_all, c_all = b_all + b, c_all + c
    accs_ref = accs_ref_all[: cfg.seeds]
    gap_pp = 100 * abs(float(np.mean(accs_port)) - float(np.mean(accs_ref_all)))
    spread_pp = seed_spread_pp(accs_ref_all, cfg.seeds)
    predictions = n * cfg.seeds
    verdict, allowed_pp = end_to_end_verdict(gap_pp, b_all, c_all, predictions, spread_pp)
    spread_sd = 100 * float(np.std(accs_ref_all, ddof=1))
    e2e = GapDiff(
        "end_to_end.accuracy_gap_pp",
        verdict != "fail",
        [],
        {
            "rtol": 0.0,
            "atol": allowed_pp,
            "equal_nan": False,
            "why": f"independent runs: mean accuracy within {END_TO_END_ACCURACY_PP:g} point, within the "
            f"reference's own seed-to-seed spread ({len(accs_ref_all)} seeds, sd {spread_sd:.2g} points, "
            f"{1 - SEED_SPREAD_ALPHA:g} prediction bound {spread_pp:.2g}), or within McNemar's noise for "
            f"{b_all + c_all} discordant of {predictions} predictions",
        },
        count=1,
        mismatches=int(verdict == "fail"),
        worst_ref=float(np.mean(accs_ref_all)),
        worst_got=float(np.mean(accs_port)),
        abs_err=gap_pp / 100,
        ratio=gap_pp / allowed_pp,
    )
    accuracies = (
        f"mean test accuracy {np.mean(accs_port):.4f} (port, {cfg.seeds} seed(s)) vs {np.mean(accs_ref_all):.4f} "
        f"(reference, {len(accs_ref_all)} seeds, {min(accs_ref_all):.4f} to {max(accs_ref_all):.4f})"
    )
    inconclusive = ""
    if verdict == "fail":
        e2e.reason = f"{accuracies}; allowed gap {allowed_pp:.2g} points"
    elif verdict == "inconclusive":
        inconclusive = (
            f"end-to-end inconclusive: {accuracies}, a {gap_pp:.2g}-point gap that {predictions} test predictions "
            f"({b_all + c_all} discordant) cannot tell from noise; use more test rows or --seeds"
        )
        e2e.reason = inconclusive
    checks.append(e2e)
    if not e2e.passed and not hints:
        hints.append(f"independent runs reach {accuracies}")
    return result(
        "metrics",
        checks,
        "; ".join(hints),
        diagnosis=[c.to_dict() for c in causes],
        tried=not checks[0].passed,
        accuracy_ref=accs_ref,
        accuracy_port=accs_port,
        # Since 1.2: the reference over all its seeds (the first cfg.seeds are accuracy_ref).
        accuracy_ref_seeds=dict(zip([str(s) for s in ref_seeds], accs_ref_all, strict=True)),
        flips=flips,
        mcnemar_p=pvals,
        same_weights_accuracy={"reference": ref_acc, "port": port_acc},
        end_to_end={
            "verdict": verdict,
            "gap_pp": gap_pp,
            "allowed_pp": allowed_pp,
            "discordant": [b_all, c_all],
            "seed_spread_pp": spread_pp,
        },
        **({"inconclusive": inconclusive} if inconclusive else {}),
    )


def _regression(ctx: Context) -> StageResult:
    """Regression: the port's MSE on the reference's predictions, and independent runs' mean test MSE
    within the reference's own seed-to-seed spread (the same prediction bound as accuracy's)."""
    p, cfg, ref = ctx.prepared, ctx.cfg, ctx.reference
    x, y = p.x_test, p.y_test
    ref_pred, ref_mse = ref.evaluate(ctx.ref_trace.final, x, y)
    port_mse = ctx.port.accuracy(ref_pred, y)
    tol = ctx.tol("metrics.regression")
    checks = [compare("same_predictions.mse", np.float64(ref_mse), np.float64(port_mse), tol)]
    finals = {cfg.seed: ctx.ref_trace.final, **ctx.ensemble.seeds}
    ref_mses = [ref.evaluate(finals[s], x, y)[1] for s in [cfg.seed, *ctx.reference_seeds]]
    port_mses = []
    for i in range(cfg.seeds):
        seed = cfg.seed + i
        with progress.current().epochs(f"port, own init, seed {seed}", cfg.epochs) as on_epoch:
            own = ctx.port.train(p.x_train, p.y_train, epochs=cfg.epochs, seed=seed, on_epoch=on_epoch, dropout=True)
        port_mses.append(ctx.port.evaluate(own["final"], x, y)[1])
    gap = abs(float(np.mean(port_mses)) - float(np.mean(ref_mses)))
    allowed = seed_spread_pp(ref_mses, cfg.seeds) / 100
    e2e = GapDiff(
        "end_to_end.mse_gap",
        gap <= allowed,
        [],
        {
            "rtol": 0.0,
            "atol": allowed,
            "equal_nan": False,
            "why": f"the reference's seed-to-seed spread of test MSE "
            f"({len(ref_mses)} seeds, {1 - SEED_SPREAD_ALPHA:g} prediction bound)",
        },
        count=1,
        mismatches=int(gap > allowed),
        worst_ref=float(np.mean(ref_mses)),
        worst_got=float(np.mean(port_mses)),
        abs_err=gap,
        ratio=gap / allowed if allowed else float("inf"),
    )
    if not e2e.passed:
        e2e.reason = f"mean test MSE {np.mean(port_mses):.4g} (port) vs {np.mean(ref_mses):.4g} (reference); allowed gap {allowed:.3g}"
    checks.append(e2e)
    causes = diagnose_regression(ref_pred, y, port_mse, cfg.batch_size, tol) if not checks[0].passed else []
    hint = "; ".join(
        [
            *(
                [
                    f"on the reference's own predictions the port's metric gives {port_mse:.6g} (MSE {ref_mse:.6g}); "
                    + causes[0].sentence()
                ]
                if causes
                else []
            ),
            *(c.summary() for c in checks if not c.passed),
        ]
    )
    mae = float(np.mean(np.abs(ref_pred.astype(np.float64) - y)))
    return result(
        "metrics",
        checks,
        hint,
        diagnosis=[c.to_dict() for c in causes],
        tried=not checks[0].passed,
        mse_ref=ref_mses,
        mse_port=port_mses,
        mae_ref=mae,
    )


STAGE = Stage("metrics", "accuracy from the same weights; independent runs compared statistically", run)

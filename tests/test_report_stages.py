"""Which failing stages the report calls an echo of an earlier one: only a stage whose every failing check is
a free run (envelope, shadow, end-to-end), since every other check is teacher-forced, fed the reference's
inputs. Negative controls: a teacher-forced failure after the first is never marked, and nothing is marked
when only one stage fails."""

from __future__ import annotations

import io
import json

import numpy as np
from rich.console import Console

from harness.compare import Tolerance, compare, compare_value
from harness.config import BUNDLED_DATA, RunConfig
from harness.report.terminal import print_report
from harness.results import Report, result


def _stage(name: str, *failing: str, passing: str = "ok") -> object:
    return result(name, [compare_value(passing, 1, 1), *(compare_value(c, 1, 2) for c in failing)], f"{name} hint")


def _report(*stages: object) -> Report:
    r = Report(RunConfig(data=BUNDLED_DATA))
    r.results.extend(stages)  # type: ignore[arg-type]
    return r


def test_only_free_run_failures_after_the_first_are_marked() -> None:
    forward = _stage("forward", "relu2")
    optimizer = _stage("optimizer", "step1.fc1.weight")
    train = _stage("train", "envelope.params", "envelope.epoch_loss", passing="resync.params")
    mixed = _stage("metrics", "end_to_end.accuracy_gap_pp", "same_predictions.accuracy")
    report = _report(forward, optimizer, train, mixed)
    assert [report.downstream_of(s) for s in report.results] == [None, None, "forward", None]
    stages = json.loads(json.dumps(report.to_dict()))["stages"]
    assert [s["downstream_of"] for s in stages] == [None, None, "forward", None]
    out = io.StringIO()
    print_report(report, Console(file=out, width=200))
    text = out.getvalue()
    assert "downstream?" not in text
    assert "also diverging, each on the reference's inputs: optimizer, metrics" in text
    assert "failing only in the free run, which compounds forward: train" in text


def test_a_lone_free_run_failure_is_the_first_divergence() -> None:
    report = _report(_stage("forward"), _stage("train", "envelope.params"))
    assert report.first_divergence is report.results[1]
    assert [report.downstream_of(s) for s in report.results] == [None, None]


def test_a_stage_result_says_what_its_diagnosis_came_to() -> None:
    """result(): 'named' with causes, 'unexplained' when the catalogue was tried and named none, '' when it
    passed or was not tried; nothing reads it from the hint."""
    bad = [compare("x", np.float32(1.0), np.float32(2.0), Tolerance(0.0, 0.0))]
    good = [compare("x", np.float32(1.0), np.float32(1.0), Tolerance(0.0, 0.0))]
    cause = {"cause": "c", "description": "d", "parameters": {}, "max_error": 0.0}
    assert result("s", bad, "h", diagnosis=[cause]).diagnosis_outcome == "named"
    assert result("s", bad, "no candidate cause reproduces it", diagnosis=[]).diagnosis_outcome == "unexplained"
    assert result("s", bad, "no candidate cause reproduces it").diagnosis_outcome == ""
    assert result("s", bad, "h", diagnosis=[], tried=False).diagnosis_outcome == ""
    assert result("s", good, diagnosis=[]).diagnosis_outcome == ""
    assert result("s", bad, "h", diagnosis=[]).to_dict()["diagnosis_outcome"] == "unexplained"

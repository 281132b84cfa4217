"""The HTML reports without a browser: self-contained, built from the JSON report, written only over
the harness's own files; and progress that stays out of logs. The browser check is test_html_browser.py."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest
from rich.console import Console

from harness import progress
from harness.report import owner
from harness.report.files import SCHEMA_PATH
from harness.report.html import MARKER, check_ratio, render_diff, render_faults

FIXTURES = Path(__file__).with_name("fixtures")
VOID = {"meta", "br", "link", "img", "input", "hr", "col", "area", "base", "wbr", "source", "track", "embed"}
SVG_SELF_CLOSING = {"line", "circle", "rect", "polyline", "polygon", "path"}


def harness(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=600, env=env
    )


class Balance(HTMLParser):
    """Every element closed in order: a broken page can still look fine until one section vanishes."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        return None

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()


def stored(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def assert_self_contained(html: str) -> None:
    assert html.startswith(owner.html_head(MARKER)), "the CLI replaces only files that begin so"
    p = Balance()
    p.feed(html)
    assert not p.errors and not p.stack, (p.errors[:5], p.stack[:5])
    # Nothing is fetched at view time: no scripts, styles, fonts or images from anywhere.
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|@import|url\(", html)
    urls = set(re.findall(r"https?://[^\s\"'<>]+", html)) - {"http://www.w3.org/2000/svg"}
    assert not urls, urls
    assert "<script>" not in html and "<script " not in html.replace('<script type="application/json"', "")


@pytest.mark.parametrize("name", ["diff-faithful.json", "diff-missing-relu.json"])
def test_stored_reports_validate_and_render_self_contained(name: str) -> None:
    report = stored(name)
    jsonschema.validate(report, json.loads(SCHEMA_PATH.read_text()))
    html = render_diff(report)
    assert_self_contained(html)
    assert html.count("<svg ") == 5
    embedded = re.search(r'<script type="application/json" id="harness-data">(.*?)</script>', html, re.S)
    assert embedded and json.loads(embedded.group(1)) == report


def test_failing_report_names_the_divergence_and_its_evidence() -> None:
    report = stored("diff-missing-relu.json")
    html = render_diff(report)
    first = report["first_divergence"]
    assert f"first at stage {first['stage']}" in html
    from html import escape

    assert escape(first["hint"]) in html
    assert "would pass with" in html and "error / allowed" in html
    # The diagnosis table lists the causes that reproduce the port, from the report's own stage record.
    forward = next(s for s in report["stages"] if s["stage"] == first["stage"])
    assert forward["diagnosis"] and '<table class="diagnosis">' in html
    for cause in forward["diagnosis"]:
        assert f"<code>{escape(cause['cause'])}</code>" in html


def test_a_stage_without_a_reproducing_cause_says_so() -> None:
    report = stored("diff-missing-relu.json")
    first = report["first_divergence"]["stage"]
    for s in report["stages"]:
        if s["stage"] == first:
            s["diagnosis"] = []
    html = render_diff(report)
    assert "No candidate cause reproduces the port" in html and '<table class="diagnosis">' not in html


def test_report_older_than_schema_1_1_still_renders() -> None:
    report = stored("diff-faithful.json")
    report["schema_version"] = "1.0"
    for s in report["stages"]:
        for key in ("max_param_diff_allowed", "epoch_loss_allowed", "epoch_loss_envelope"):
            s["metrics"].pop(key, None)
        for c in s["checks"]:
            c.pop("ratio", None)
    html = render_diff(report)
    assert_self_contained(html)
    assert "Parameter distance" in html


def test_ratio_is_the_worst_error_over_its_allowance() -> None:
    tol = {"atol": 1e-5, "rtol": 1e-3, "equal_nan": False}
    assert check_ratio({"passed": True, "tolerance": tol, "abs_err": 1e-5, "worst_ref": 10.0}) == pytest.approx(
        1e-5 / (1e-5 + 1e-2)
    )
    assert check_ratio({"passed": False, "tolerance": tol, "ratio": "inf"}) == float("inf")
    exact = {"atol": 0.0, "rtol": 0.0}
    assert check_ratio({"passed": True, "tolerance": exact, "abs_err": 0.0, "worst_ref": 1.0}) == 0.0


def test_fault_page_has_a_section_per_run() -> None:
    matrix = stored("faults-rows.json")
    rows = matrix["rows"]
    reports = {"faithful (seed 0)": stored("diff-faithful.json"), "missing-relu": stored("diff-missing-relu.json")}
    html = render_faults(rows, all(r["ok"] for r in rows), reports, matrix["catalogue"])
    assert_self_contained(html)
    for r in rows:
        assert html.count(f'href="#fault-{"".join(c if c.isalnum() else "-" for c in r["fault"])}"') == 1
    assert "What goes wrong:</b> the ReLU after the second Linear layer" in html
    ids = re.findall(r' id="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "duplicate element ids"


def test_cli_writes_html_and_never_overwrites_a_foreign_file(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    r = harness("diff", "loss", "--html", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert_self_contained(out.read_text())
    # Its own file may be replaced; anything else is refused before any stage runs.
    assert harness("diff", "loss", "--html", str(out)).returncode == 0
    foreign = tmp_path / "notes.html"
    foreign.write_text("<html><body>mine</body></html>")
    for args in (("diff", "loss"), ("faults", "check")):
        r = harness(*args, "--html", str(foreign))
        assert r.returncode == 2 and "was not written by harness" in r.stderr, r.stderr
    assert foreign.read_text() == "<html><body>mine</body></html>"


def test_progress_is_silent_off_a_terminal_and_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = Console(file=io.StringIO(), force_terminal=True)
    monkeypatch.setenv("CI", "true")
    assert not progress.interactive(tty)
    monkeypatch.delenv("CI")
    assert progress.interactive(tty)
    assert not progress.interactive(Console(file=io.StringIO(), force_terminal=False))
    with progress.live(Console(file=io.StringIO(), force_terminal=False)) as t:
        assert type(t) is progress.Tracker


def test_progress_draws_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    buf = io.StringIO()
    with progress.live(Console(file=buf, force_terminal=True, width=100)) as t:
        assert progress.current() is t and isinstance(t, progress.LiveTracker)
        with t.runs("faults check", 2) as advance:
            advance("faithful")
            t.stage("train", 10, 11)
            with t.epochs("reference", 3) as on_epoch:
                for e in range(1, 4):
                    on_epoch(e, 0.5)
    assert progress.current() is not t
    assert "reference" in buf.getvalue() or "faults check" in buf.getvalue()


def test_train_command_prints_no_progress_bar_into_a_pipe() -> None:
    r = harness("train", "--framework", "torch", "--epochs", "2")
    assert r.returncode == 0, r.stderr
    # The bar's own text ("epoch 2/2"), which rich prints once when it stops even off a terminal.
    assert "epoch 2/2" not in r.stdout and "test accuracy" in r.stdout


def test_the_envelope_bound_is_drawn_from_the_report_not_todays_constants() -> None:
    """A stored report renders as it was judged: its own envelope factor and floor, where it has them."""
    report = json.loads((FIXTURES / "diff-missing-relu.json").read_text())
    train = next(s for s in report["stages"] if s["stage"] == "train")
    train["metrics"].update(envelope_factor=7.0, envelope_floor=3e-5)
    assert "max(3e-05, 7× the envelope's running max)" in render_diff(report)
    del train["metrics"]["envelope_factor"], train["metrics"]["envelope_floor"]
    html = render_diff(report)
    # A report that did not record its rule is not redrawn under today's constants.
    assert "the bound the report does not record (it predates schema 1.7)" in html
    assert "the envelope's running max" not in html


def test_a_stored_report_renders_without_torch_or_the_harness_constants() -> None:
    """The page is a function of the JSON alone: rendering a stored diff report and a stored detection
    matrix loads neither torch, the stages, the tolerances nor the reference."""
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from harness.report.html import render_diff, render_faults\n"
        f"fx = Path({str(FIXTURES)!r})\n"
        "html = render_diff(json.loads((fx / 'diff-missing-relu.json').read_text()))\n"
        "rows = json.loads((fx / 'faults-rows.json').read_text())\n"
        "page = render_faults(rows['rows'], False)\n"
        "assert '<svg ' in html and 'Detection matrix' in page\n"
        "loaded = ('torch', 'harness.stages', 'harness.stage_names', 'harness.tolerances',\n"
        "          'harness.reference', 'harness.config')\n"
        "print(sorted(m for m in loaded if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout

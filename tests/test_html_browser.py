"""The HTML reports, opened in a real browser: headless Chromium (Debian's `chromium`) driven by
Playwright's Python API with the system executable (Playwright's own browser download is never used).

Asserts that every plot rendered (SVG elements with a real size and the expected number of points),
that no label overlaps another or leaves its chart, and that the page logged no console error; saves
full-page screenshots (to $HARNESS_SCREENSHOTS when set, as CI does, else to the test's tmp folder).

The reports come from real `diff all` runs when the Burn extension is built; otherwise from the JSON
reports of real runs stored in tests/fixtures, so the browser check still runs on a machine without
the Rust build.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.report.html import render_diff, render_faults
from tests.needs import module, require

FIXTURES = Path(__file__).with_name("fixtures")
FAULT = "missing-relu"


def _chromium() -> str | None:
    env = os.environ.get("HARNESS_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = _chromium()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.needs.with_args(
        require,
        CHROMIUM is not None,
        "no Chromium installed: the HTML report's browser check needs one (apt-get install chromium; "
        "or set HARNESS_CHROMIUM to a Chromium executable)",
    ),
]


@pytest.fixture(scope="module")
def reports(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A faithful report and a failing one (missing ReLU), plus the detection-matrix rows for both."""
    from harness.port import IMPORT_ERROR

    if IMPORT_ERROR is None:
        from harness.faults import _row
        from harness.pipeline import run_with
        from harness.report.files import report_json
        from harness.stages.base import Context

        base, faithful = request.getfixturevalue("faithful_run")
        ctx = Context(base.cfg.with_(fault=FAULT))
        ctx.adopt_reference(base)
        broken = run_with(ctx)
        from harness.port import available_faults

        cause = next(f["cause"] for f in available_faults() if f["name"] == FAULT)
        rows = [_row("faithful (seed 0)", None, faithful), _row(FAULT, "forward", broken, "fail", cause)]
        return {
            "source": "live",
            "faithful": report_json(faithful),
            "fault": report_json(broken),
            "rows": rows,
            "catalogue": [f for f in available_faults() if f["name"] == FAULT],
        }
    faithful = json.loads((FIXTURES / "diff-faithful.json").read_text())
    broken = json.loads((FIXTURES / f"diff-{FAULT}.json").read_text())
    matrix = json.loads((FIXTURES / "faults-rows.json").read_text())
    return {"source": "stored", "faithful": faithful, "fault": broken, **matrix}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = module("playwright.sync_api", "playwright (Python package) is not installed: pip install playwright")
    with sync_api.sync_playwright() as p:
        # As root (CI, containers) Chromium's sandbox cannot start; Playwright passes --no-sandbox by default.
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--disable-gpu", "--disable-dev-shm-usage"])
        yield b
        b.close()


def _screens_dir(tmp_path: Path) -> Path:
    out = os.environ.get("HARNESS_SCREENSHOTS")
    d = Path(out) if out else tmp_path
    d.mkdir(parents=True, exist_ok=True)
    return d


# Runs in the page: per chart, its size, its points, and every pair of labels whose boxes intersect.
INSPECT = """
() => {
  const charts = [...document.querySelectorAll('svg.chart')].map(svg => {
    const box = svg.getBoundingClientRect();
    const texts = [...svg.querySelectorAll('text')].map(t => ({s: t.textContent, r: t.getBoundingClientRect()}));
    const overlaps = [];
    for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++) {
      const a = texts[i].r, b = texts[j].r;
      const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (w > 1 && h > 1) overlaps.push([texts[i].s, texts[j].s]);
    }
    const outside = texts.filter(t => t.r.left < box.left - 1 || t.r.right > box.right + 1 ||
                                      t.r.top < box.top - 1 || t.r.bottom > box.bottom + 1).map(t => t.s);
    const series = {};
    for (const p of svg.querySelectorAll('polyline.series')) {
      const n = p.getAttribute('data-series');
      series[n] = (series[n] || 0) + p.points.numberOfItems;
    }
    return {
      title: svg.getAttribute('aria-label'), width: box.width, height: box.height,
      texts: texts.length, overlaps, outside, series,
      dots: svg.querySelectorAll('circle.dot').length, bars: svg.querySelectorAll('rect.bar').length,
      bands: [...svg.querySelectorAll('polygon.band')].map(p => p.points.numberOfItems),
      crosses: svg.querySelectorAll('g[stroke] > line').length,
    };
  });
  return {charts, title: document.title, embedded: !!document.getElementById('harness-data')};
}
"""


def _open(
    browser: Any, html: str, path: Path, shot: Path, expand: bool = False
) -> tuple[dict[str, Any], list[str], list[str]]:
    path.write_text(html, encoding="utf-8")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Self-contained means the page asks for nothing but itself.
    page.on("request", lambda r: requests.append(r.url) if not r.url.startswith("file:") else None)
    page.goto(path.as_uri(), wait_until="load")
    # The screenshot shows the page as it opens.
    page.screenshot(path=str(shot), full_page=True)
    if expand:
        # Charts inside a closed <details> have no size; open them all to measure them.
        page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
    info = page.evaluate(INSPECT)
    page.close()
    return info, errors, requests


def _by_title(info: dict[str, Any], start: str) -> dict[str, Any]:
    found = [c for c in info["charts"] if c["title"].startswith(start)]
    assert found, f"no chart titled '{start}…' in {[c['title'] for c in info['charts']]}"
    return found[0]


def _common(info: dict[str, Any], errors: list[str], requests: list[str]) -> None:
    assert not errors, f"console errors: {errors}"
    assert not requests, f"the report fetched {requests}"
    assert info["embedded"]
    for c in info["charts"]:
        assert c["width"] > 300 and c["height"] > 150, c
        assert c["texts"] >= 5, c
        assert not c["overlaps"], f"labels overlap in '{c['title']}': {c['overlaps']}"
        assert not c["outside"], f"labels leave '{c['title']}': {c['outside']}"


def test_diff_report_renders_in_chromium(browser: Any, reports: dict[str, Any], tmp_path: Path) -> None:
    t0 = time.perf_counter()
    rep = reports["faithful"]
    shot = _screens_dir(tmp_path) / "report.png"
    info, errors, requests = _open(browser, render_diff(rep), tmp_path / "report.html", shot)
    _common(info, errors, requests)
    stages = rep["stages"]
    epochs = rep["config"]["epochs"]
    assert len(info["charts"]) == 5, [c["title"] for c in info["charts"]]
    assert _by_title(info, "Worst error against tolerance")["dots"] == len(stages)
    loss = _by_title(info, "Training loss")
    # One point per epoch on both curves; the allowed band and the envelope band each go out and back.
    assert loss["series"] == {"reference": epochs, "port": epochs}, loss["series"]
    assert loss["bands"] == [2 * epochs, 2 * epochs], loss["bands"]
    dev = _by_title(info, "Loss deviation")
    assert dev["series"]["port"] >= epochs - 1 and dev["series"]["allowed"] == epochs, dev["series"]
    dist = _by_title(info, "Parameter distance")
    assert dist["series"]["port"] == epochs and dist["series"]["envelope drift"] == epochs, dist["series"]
    forward = next(s for s in stages if s["stage"] == "forward")
    layers = [c for c in forward["checks"] if c["name"] != "layer names"]  # one bar per layer
    assert _by_title(info, "Per-layer forward error")["bars"] == len(layers) == 6
    assert "No divergence" in info["title"] and shot.stat().st_size > 50_000
    print(f"\nbrowser check ({reports['source']} report): {time.perf_counter() - t0:.1f} s, screenshot {shot}")


def test_failing_report_shows_divergence_in_chromium(browser: Any, reports: dict[str, Any], tmp_path: Path) -> None:
    rep = reports["fault"]
    shot = _screens_dir(tmp_path) / f"report-{FAULT}.png"
    info, errors, requests = _open(browser, render_diff(rep), tmp_path / "fault.html", shot)
    _common(info, errors, requests)
    assert "first at stage forward" in info["title"]
    stage_chart = _by_title(info, "Worst error against tolerance")
    assert stage_chart["dots"] == len(rep["stages"])
    assert _by_title(info, "Per-layer forward error")["bars"] == 6


def test_fault_matrix_renders_in_chromium(browser: Any, reports: dict[str, Any], tmp_path: Path) -> None:
    rows = reports["rows"]
    by_name = {"faithful (seed 0)": reports["faithful"], FAULT: reports["fault"]}
    html = render_faults(rows, all(r["ok"] for r in rows), by_name, reports["catalogue"])
    shot = _screens_dir(tmp_path) / "faults.png"
    info, errors, requests = _open(browser, html, tmp_path / "faults.html", shot, expand=True)
    _common(info, errors, requests)
    # Each run's section carries its own full report: a stage chart per run.
    stage_charts = [c for c in info["charts"] if c["title"].startswith("Worst error against tolerance")]
    assert len(stage_charts) == len(rows)
    assert "1 of 1 fault detected at its stage" in info["title"]

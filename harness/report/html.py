"""The HTML reports: one self-contained file for `diff --html` and one for `faults check --html`.

Rendered from the JSON report (the same dict `--json` writes), so a stored JSON report renders the
same page as a live run. Charts are inline SVG (harness/report/svg.py); styles are inline; nothing is
fetched at view time. The JSON report is embedded as well, so the page is a complete artifact.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from harness.report import owner
from harness.report.svg import (
    ENV_COLOR,
    MUTED,
    PORT_COLOR,
    REF_COLOR,
    Band,
    RatioRow,
    Series,
    as_float,
    finite,
    fmt_num,
    line_chart,
    ratio_chart,
)

# The page's first bytes (owner.html_head): the CLI replaces an HTML file only when it starts so.
MARKER = "burn-torch-harness/html-report"

STATUS_CLASS = {"PASS": "pass", "FAIL": "fail", "ERROR": "error", "SKIP": "skip"}

CSS = """
:root { --pass:#2b8a3e; --fail:#c92a2a; --error:#862e9c; --muted:#868e96; --line:#dee2e6; --bg:#f8f9fa; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
  color:#212529; background:#fff; }
main { max-width:1180px; margin:0 auto; padding:0 24px 48px; }
header.verdict { padding:20px 24px 16px; border-bottom:1px solid var(--line); }
header.verdict > div { max-width:1132px; margin:0 auto; }
header.pass { background:#ebfbee; } header.fail { background:#fff5f5; } header.error { background:#f8f0fc; }
h1 { font-size:22px; margin:0 0 4px; } h2 { font-size:18px; margin:32px 0 8px; padding-bottom:4px;
  border-bottom:1px solid var(--line); } h3 { font-size:15px; margin:20px 0 6px; }
.meta { color:#495057; margin:0; } .meta code { background:rgba(0,0,0,.05); padding:0 4px; border-radius:3px; }
.kpis { display:flex; flex-wrap:wrap; gap:10px; list-style:none; padding:0; margin:12px 0 0; }
.kpis li { background:#fff; border:1px solid var(--line); border-radius:6px; padding:6px 12px; }
.kpis b { display:block; font-size:16px; }
nav { position:sticky; top:0; background:rgba(255,255,255,.95); border-bottom:1px solid var(--line);
  padding:8px 24px; z-index:1; font-size:13px; }
nav a { margin-right:16px; color:#1c5fb4; text-decoration:none; }
.badge { display:inline-block; min-width:52px; text-align:center; font-weight:600; font-size:12px;
  padding:1px 8px; border-radius:10px; color:#fff; }
.badge.pass { background:var(--pass); } .badge.fail { background:var(--fail); }
.badge.error { background:var(--error); } .badge.skip { background:var(--muted); }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { text-align:left; vertical-align:top; padding:6px 8px; border-bottom:1px solid var(--line); }
th { background:var(--bg); font-weight:600; white-space:nowrap; }
td.num { text-align:right; white-space:nowrap; font-variant-numeric:tabular-nums; }
tr.fail td { background:#fff8f8; } tr.root td { background:#ffe3e3; }
.card { border:1px solid var(--line); border-left:4px solid var(--fail); border-radius:6px; padding:12px 16px;
  background:#fff; margin:8px 0; }
.card.pass { border-left-color:var(--pass); }
.hint { font-size:15px; margin:4px 0 10px; }
dl.detail { display:grid; grid-template-columns:max-content 1fr; gap:2px 16px; margin:0; font-size:13px; }
dl.detail dt { color:#495057; } dl.detail dd { margin:0; font-variant-numeric:tabular-nums; }
.charts { display:grid; grid-template-columns:repeat(auto-fit,minmax(520px,1fr)); gap:16px 24px; }
figure { margin:0; } figcaption { font-weight:600; margin:8px 0 4px; }
figcaption span { font-weight:normal; color:#495057; display:block; font-size:13px; }
.note { background:#fff8e1; border-left:3px solid #f0ad4e; padding:6px 10px; font-size:13px; }
svg.chart { width:100%; height:auto; display:block; }
details { border:1px solid var(--line); border-radius:6px; margin:6px 0; }
details > summary { cursor:pointer; padding:6px 10px; background:var(--bg); }
details > table { margin:0; }
.muted { color:var(--muted); }
.also { margin:10px 0 0; font-size:13px; }
/* Long hints stay three lines in the table; the full text is in the tooltip and the sections below. */
.clamp { display:-webkit-box; -webkit-line-clamp:3; -webkit-box-orient:vertical; overflow:hidden; max-width:520px; }
.matrix td { vertical-align:middle; } .matrix td:first-child { white-space:nowrap; }
.matrix td.cell { text-align:center; font-weight:700; font-size:16px; width:64px; }
.matrix td.cell.root { background:#fa5252; color:#fff; } .matrix td.cell.down { background:#ffc9c9; color:#862e2e; }
.matrix td.cell.ok { background:#ebfbee; color:#2b8a3e; } .matrix td.cell.error { background:#eebefa; }
.matrix td.cell.expected { outline:3px solid #1c5fb4; outline-offset:-3px; }
footer { color:var(--muted); font-size:12px; margin-top:40px; }
"""


def _stage_map(report: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {s["stage"]: s for s in report.get("stages", [])}


def check_ratio(check: Mapping[str, Any]) -> float | None:
    """The check's worst error over its allowed error. Reports older than schema 1.1 have no 'ratio';
    for an elementwise check the worst element is the one with the largest excess, so its own error
    over its own allowance gives the same number."""
    r = as_float(check.get("ratio"))
    if r is not None:
        return r
    tol = check.get("tolerance") or {}
    abs_err, ref = as_float(check.get("abs_err")), as_float(check.get("worst_ref"))
    atol, rtol = as_float(tol.get("atol")), as_float(tol.get("rtol"))
    if abs_err is None or atol is None:
        return 0.0 if check.get("passed") else math.inf
    allowed = atol + (rtol or 0.0) * abs(ref or 0.0)
    if allowed <= 0:
        return 0.0 if abs_err == 0 else math.inf
    return abs_err / allowed


def stage_worst(stage: Mapping[str, Any]) -> tuple[float | None, Mapping[str, Any] | None]:
    """The stage's largest ratio and the check that has it (a failing check first)."""
    checks = stage.get("checks", [])
    if not checks:
        return None, None
    failing = [c for c in checks if not c.get("passed")]
    pool = failing or checks
    best = max(pool, key=lambda c: _order(check_ratio(c)))
    return check_ratio(best), best


def _order(v: float | None) -> float:
    return -1.0 if v is None else (math.inf if not finite(v) else v)


def _e(v: object) -> str:
    return escape(str(v))


def _badge(status: str, text: str | None = None) -> str:
    return f'<span class="badge {STATUS_CLASS.get(status, "skip")}">{_e(text or status)}</span>'


def _diagnosis(causes: list[dict]) -> str:
    """The causes that reproduce the port's numbers when the reference is replayed with them."""
    if not causes:
        return '<p class="diagnosis">No candidate cause reproduces the port\'s numbers; the evidence is below.</p>'
    rows = "".join(
        f"<tr><td><code>{_e(c['cause'])}</code></td><td>{_e(c['description'])}</td><td>"
        + _e(", ".join(f"{k} = {fmt_num(v)}" for k, v in c.get("parameters", {}).items()) or "—")
        + f"</td><td>{_e(fmt_num(c['max_error']))}</td></tr>"
        for c in causes
    )
    return (
        '<table class="diagnosis"><caption>Causes that reproduce the port when the reference is replayed with '
        "them (max error as a fraction of the stage's tolerance)</caption><thead><tr><th>cause</th><th>change"
        f"</th><th>fitted</th><th>max error</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def check_detail(check: Mapping[str, Any]) -> str:
    """Everything a porting engineer needs from one failing check, as a definition list."""
    tol = check.get("tolerance") or {}
    rows: list[tuple[str, str]] = [("check", f"<code>{_e(check.get('name'))}</code>")]
    if check.get("reason"):
        rows.append(("what", _e(check["reason"])))
    if check.get("worst_index") is not None:
        rows.append(("worst element", _e(tuple(check["worst_index"]))))
    if check.get("worst_ref") is not None or check.get("worst_got") is not None:
        rows.append(
            (
                "reference / port",
                f"{_e(fmt_num(as_float(check.get('worst_ref')), 9))} / {_e(fmt_num(as_float(check.get('worst_got')), 9))}",
            )
        )
    if check.get("abs_err") is not None:
        rows.append(
            (
                "error",
                f"abs {_e(fmt_num(as_float(check.get('abs_err'))))}, rel {_e(fmt_num(as_float(check.get('rel_err'))))}",
            )
        )
    count = check.get("count") or 0
    if count:
        rows.append(
            ("mismatched", f"{_e(check.get('mismatches'))} of {_e(count)} ({(as_float(check.get('share')) or 0):.1%})")
        )
    if check.get("min_atol") is not None or check.get("min_rtol") is not None:
        rows.append(
            (
                "would pass with",
                f"atol {_e(fmt_num(as_float(check.get('min_atol'))))} or rtol {_e(fmt_num(as_float(check.get('min_rtol'))))}",
            )
        )
    atol = tol.get("atol")
    rows.append(
        (
            "tolerance",
            f"atol {_e(fmt_num(as_float(atol)) if atol is not None else '–')}, rtol {_e(fmt_num(as_float(tol.get('rtol'))))}"
            + (f' <span class="muted">({_e(tol["why"])})</span>' if tol.get("why") else ""),
        )
    )
    ratio = check_ratio(check)
    rows.append(("error / allowed", _e(fmt_num(ratio))))
    return '<dl class="detail">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _divergence_section(report: Mapping[str, Any]) -> str:
    first = report.get("first_divergence")
    stages = report.get("stages", [])
    errors = [s for s in stages if s.get("status") == "ERROR"]
    parts = ['<section id="divergence"><h2>First divergence</h2>']
    if first is None:
        if errors:
            parts.append('<div class="card">The harness could not run every stage; no stage diverged.</div>')
        else:
            parts.append(
                f'<div class="card pass">No divergence: every one of {len(stages)} stages is within tolerance.</div>'
            )
    else:
        parts.append(
            f'<div class="card"><div>{_badge("FAIL")} stage <b>{_e(first["stage"])}</b> is the first to diverge '
            "(stages run teacher-forced, so this stage is divergent in itself)</div>"
        )
        if first.get("hint"):
            parts.append(f'<p class="hint"><b>Why:</b> {_e(first["hint"])}</p>')
        stage = _stage_map(report).get(first["stage"], {})
        parts.append(_diagnosis(stage.get("diagnosis") or []))
        failing = [c for c in stage.get("checks", []) if not c.get("passed")]
        # Checks run in pipeline order (layer by layer, step by step), so the first failing check is
        # where the stage goes wrong; the rest are listed, with their detail further down.
        lead = failing[0] if failing else first.get("check")
        if lead:
            parts.append(check_detail(lead))
        if len(failing) > 1:
            others = ", ".join(
                f"<code>{_e(c.get('name'))}</code> ({_e(fmt_num(check_ratio(c)))}× allowed)" for c in failing[1:8]
            )
            more = f" and {len(failing) - 8} more" if len(failing) > 8 else ""
            parts.append(
                f'<p class="also">Also failing in this stage: {others}{more} — '
                f'<a href="#checks-{_e(first["stage"])}">every check</a>.</p>'
            )
        parts.append("</div>")
        later = [s for s in stages if s.get("status") == "FAIL" and s["stage"] != first["stage"]]
        if later:
            # Teacher-forced stages: each later failure is its own divergence, but for a free run.
            parts.append("<h3>Also diverging, each on the reference's inputs</h3><ul>")
            for s in later:
                echo = f" (free run only, after {_e(s['downstream_of'])})" if s.get("downstream_of") else ""
                parts.append(f"<li><b>{_e(s['stage'])}</b>{echo}: {_e(s.get('hint') or 'diverged')}</li>")
            parts.append("</ul>")
    for s in errors:
        parts.append(f'<div class="card">{_badge("ERROR")} <b>{_e(s["stage"])}</b>: {_e(s.get("error"))}</div>')
    parts.append("</section>")
    return "".join(parts)


def _stage_rows(report: Mapping[str, Any]) -> list[RatioRow]:
    first = (report.get("first_divergence") or {}).get("stage")
    rows = []
    for s in report.get("stages", []):
        ratio, worst = stage_worst(s)
        status = s.get("status")
        note = "error: could not run" if status == "ERROR" else ("skipped" if status == "SKIP" else "")
        if worst is not None and not note:
            note = f"{worst.get('name')} ({len(s.get('checks', []))} checks)"
        points = [(c.get("name", ""), check_ratio(c), bool(c.get("passed"))) for c in s.get("checks", [])]
        rows.append(
            RatioRow(
                s["stage"],
                ratio if status in ("PASS", "FAIL") else math.inf if status == "ERROR" else None,
                status in ("PASS", "SKIP"),
                note,
                points,
                emphasis=s["stage"] == first,
            )
        )
    return rows


def _stage_table(report: Mapping[str, Any]) -> str:
    first = (report.get("first_divergence") or {}).get("stage")
    out = [
        "<table><thead><tr><th>stage</th><th>status</th><th>checks</th><th>worst check</th>"
        '<th class="num">error / allowed</th><th>hint</th><th class="num">s</th></tr></thead><tbody>'
    ]
    for s in report.get("stages", []):
        status = s.get("status", "")
        ratio, worst = stage_worst(s)
        checks = s.get("checks", [])
        nfail = sum(not c.get("passed") for c in checks)
        label = status + (f" (free run, after {s['downstream_of']})" if s.get("downstream_of") else "")
        cls = "root" if s["stage"] == first else ("fail" if status == "FAIL" else "")
        hint = s.get("error") if status == "ERROR" else s.get("hint")
        out.append(
            f'<tr class="{cls}"><td><a href="#checks-{_e(s["stage"])}">{_e(s["stage"])}</a></td>'
            f"<td>{_badge(status, label)}</td><td>{len(checks)}"
            + (f' <span style="color:var(--fail)">({nfail} failed)</span>' if nfail else "")
            + f"</td><td><code>{_e(worst.get('name') if worst else '–')}</code></td>"
            f'<td class="num">{_e(fmt_num(ratio) if worst else "–")}</td>'
            f'<td><div class="clamp" title="{_e(hint or "")}">{_e(hint or "")}</div></td>'
            f'<td class="num">{as_float(s.get("seconds")) or 0:.1f}</td></tr>'
        )
    out.append("</tbody></table>")
    return "".join(out)


def _train_charts(train: Mapping[str, Any], loss_name: str = "BCE") -> list[str]:
    m = train.get("metrics") or {}
    # The rule the run itself applied (since schema 1.7). A report from before did not record it; the page
    # says so rather than stand today's constants in for a judgement made under other ones.
    factor = as_float(m.get("envelope_factor"))
    floor = as_float(m.get("envelope_floor"))
    ref = [as_float(v) for v in m.get("epoch_loss_ref", [])]
    port = m.get("epoch_loss_port", [])
    if not ref:
        return []
    epochs = list(range(1, len(ref) + 1))
    members = [[as_float(v) for v in run] for run in m.get("epoch_loss_envelope", [])]
    allowed = [as_float(v) for v in m.get("epoch_loss_allowed", [])]
    bands: list[Band] = []
    if allowed and len(allowed) == len(ref):
        bands.append(
            Band(
                "allowed (±bound)",
                epochs,
                [r - a for r, a in zip(ref, allowed, strict=True)],
                [r + a for r, a in zip(ref, allowed, strict=True)],
                ENV_COLOR,
                0.16,
            )
        )
    if members:
        lo = [min([r, *(mm[i] for mm in members)]) for i, r in enumerate(ref)]
        hi = [max([r, *(mm[i] for mm in members)]) for i, r in enumerate(ref)]
        bands.append(Band(f"envelope ({len(members)} runs)", epochs, lo, hi, REF_COLOR, 0.3))
    loss = line_chart(
        "Training loss per epoch: reference, port and the reference's float32 envelope",
        [
            Series("reference", epochs, ref, REF_COLOR, width=2.4),
            Series("port", epochs, port, PORT_COLOR, dash="6 4", width=2.2),
        ],
        bands,
        y_label=f"mean {loss_name} loss",
    )
    # At the loss's own scale a passing port and the envelope are one line; their distances from the
    # reference, on a log axis, show how much room the port has left.
    dev_series = [
        Series(
            f"envelope runs ({len(members)})" if k == 0 else f"envelope run {k + 1}",
            epochs,
            [_absdiff(v, r) for v, r in zip(mm, ref, strict=False)],
            ENV_COLOR,
            width=1.2,
            markers=False,
            in_legend=k == 0,
        )
        for k, mm in enumerate(members)
    ]
    dev_series.append(Series("allowed", epochs[: len(allowed)], allowed, MUTED, dash="4 3", width=1.8, markers=False))
    dev_series.append(
        Series(
            "port", epochs[: len(port)], [_absdiff(as_float(v), r) for v, r in zip(port, ref, strict=False)], PORT_COLOR
        )
    )
    deviation = line_chart(
        "Loss deviation from the reference per epoch (log scale)",
        dev_series,
        y_label="|loss − loss_ref|",
        log_y=True,
        fail_above=allowed,
    )
    d_port = m.get("max_param_diff_port", [])
    d_env = m.get("max_param_diff_envelope", [])
    d_allowed = m.get("max_param_diff_allowed") or (
        _running_allowed(d_env, factor, floor) if factor is not None and floor is not None else []
    )
    dist = line_chart(
        "Parameter distance from the reference per epoch (log scale)",
        [
            Series("envelope drift", epochs[: len(d_env)], d_env, REF_COLOR, width=2),
            Series("allowed", epochs[: len(d_allowed)], d_allowed, MUTED, dash="4 3", width=1.8, markers=False),
            Series("port", epochs[: len(d_port)], d_port, PORT_COLOR, width=2.4),
        ],
        y_label="max |θ − θ_ref|",
        log_y=True,
        fail_above=d_allowed,
    )
    ok = {c.get("name"): c.get("passed") for c in train.get("checks", [])}
    bound = (
        f"max({floor:g}, {factor:g}× the envelope's running max)"
        if factor is not None and floor is not None
        else "the report does not record (it predates schema 1.7)"
    )
    loss_badge = _badge("PASS" if ok.get("envelope.epoch_loss", True) else "FAIL")
    shadow_note = (
        "<p class=\"note\">The port's free run left the reference's envelope while epoch 1 and every "
        "re-synchronized step agreed; the reference trained on from the port's own epoch-1 parameters (its "
        "shadow) follows the port within the same bound (checks shadow.params, shadow.epoch_loss), so the "
        "plots below show the reference's own sensitivity, not a divergence of the port.</p>"
        if m.get("shadowed")
        else ""
    )
    figs = [
        f"<figure><figcaption>Loss per epoch {loss_badge}<span>Same initial weights and batch order. Dark band: "
        "the spread of the reference's own float32 envelope runs; light band: how far the port may be.</span>"
        f"</figcaption>{loss}</figure>",
        f"<figure><figcaption>Loss deviation {loss_badge}<span>|loss − reference loss| per epoch for each "
        f"envelope run and the port; the port fails above the bound {bound}.</span></figcaption>{deviation}</figure>",
        f"<figure><figcaption>Parameter distance {_badge('PASS' if ok.get('envelope.params', True) else 'FAIL')}"
        "<span>Largest |port − reference| over all parameters after each epoch, against the envelope's own "
        f"drift and the bound {bound}.</span></figcaption>{dist}</figure>",
    ]
    figs[0] = figs[0].replace("<figure>", '<figure id="training">', 1)
    if shadow_note:
        figs.insert(0, shadow_note)
    return figs


def _absdiff(v: float | None, r: float | None) -> float | None:
    if v is None or r is None:
        return None
    return abs(v - r) if finite(v) else v


def _running_allowed(d_env: Sequence[Any], factor: float, floor: float) -> list[float]:
    """For reports older than schema 1.1, which did not record the bound."""
    out, peak = [], 0.0
    for v in d_env:
        f = as_float(v)
        peak = max(peak, f if finite(f) else peak)
        out.append(max(floor, factor * peak))
    return out


def _forward_chart(forward: Mapping[str, Any]) -> list[str]:
    checks = forward.get("checks", [])
    if not checks:
        return []
    first = (forward.get("metrics") or {}).get("first_divergent_layer")
    rows = []
    for c in checks:
        if c["name"] == "layer names":  # the structure check, not a layer (harness/stages/forward.py)
            continue
        mism = c.get("mismatches", 0)
        note = f"abs {fmt_num(as_float(c.get('min_atol')))}"
        if mism:
            note += f", {as_float(c.get('share')) or 0:.0%} out"
        rows.append(RatioRow(c["name"], check_ratio(c), bool(c.get("passed")), note, emphasis=c["name"] == first))
    chart = ratio_chart("Per-layer forward error against tolerance", rows, bars=True, width=560)
    samples = (forward.get("metrics") or {}).get("samples")
    return [
        '<figure id="forward"><figcaption>'
        f"Per-layer forward error {_badge(forward.get('status', 'SKIP'))}<span>Every layer's activations on the "
        f"{_e(samples or 'whole')} test samples from the same weights; the worst element's error over its allowed "
        "error (atol + rtol·|ref|)." + (f" First divergent layer: <b>{_e(first)}</b>." if first else "") + "</span>"
        f"</figcaption>{chart}</figure>"
    ]


def _checks_section(report: Mapping[str, Any]) -> str:
    out = ['<section id="checks"><h2>Every check</h2>']
    for s in report.get("stages", []):
        checks = s.get("checks", [])
        nfail = sum(not c.get("passed") for c in checks)
        opened = " open" if nfail and s.get("stage") == (report.get("first_divergence") or {}).get("stage") else ""
        out.append(
            f'<details id="checks-{_e(s["stage"])}"{opened}><summary>{_badge(s.get("status", ""))} '
            f"<b>{_e(s['stage'])}</b> — {len(checks)} checks"
            + (f", {nfail} failed" if nfail else "")
            + "</summary><table><thead><tr><th>check</th><th>result</th><th>shape</th>"
            '<th class="num">max abs err</th><th class="num">error / allowed</th><th>tolerance</th><th>detail</th>'
            "</tr></thead><tbody>"
        )
        for c in checks:
            tol = c.get("tolerance") or {}
            detail = c.get("reason") or ""
            if not detail and not c.get("passed") and c.get("worst_index") is not None:
                detail = (
                    f"worst at {tuple(c['worst_index'])}: ref {fmt_num(as_float(c.get('worst_ref')), 8)}, "
                    f"port {fmt_num(as_float(c.get('worst_got')), 8)}; {c.get('mismatches')} of {c.get('count')} outside"
                )
            atol = tol.get("atol")
            out.append(
                f'<tr class="{"" if c.get("passed") else "fail"}"><td><code>{_e(c.get("name"))}</code></td>'
                f"<td>{_badge('PASS' if c.get('passed') else 'FAIL', 'ok' if c.get('passed') else 'FAIL')}</td>"
                f'<td class="num">{_e(c.get("shape", ""))}</td>'
                f'<td class="num">{_e(fmt_num(as_float(c.get("min_atol"))))}</td>'
                f'<td class="num">{_e(fmt_num(check_ratio(c)))}</td>'
                f"<td>atol {_e(fmt_num(as_float(atol)) if atol is not None else '–')}, rtol "
                f"{_e(fmt_num(as_float(tol.get('rtol'))))}"
                + (f'<br><span class="muted">{_e(tol["why"])}</span>' if tol.get("why") else "")
                + f"</td><td>{_e(detail)}</td></tr>"
            )
        if s.get("status") == "ERROR":
            out.append(f'<tr class="fail"><td colspan="7">{_e(s.get("error"))}</td></tr>')
        out.append("</tbody></table></details>")
    out.append("</section>")
    return "".join(out)


def _kpis(report: Mapping[str, Any]) -> str:
    stages = _stage_map(report)
    items = [("exit code", str(report.get("exit_code")))]
    metrics = (stages.get("metrics") or {}).get("metrics") or {}
    ar, ap = metrics.get("accuracy_ref"), metrics.get("accuracy_port")
    if ar and ap:
        items.append(("test accuracy (ref / port)", f"{_mean(ar):.1%} / {_mean(ap):.1%}"))
    counts: dict[str, int] = {}
    for s in report.get("stages", []):
        counts[s.get("status", "")] = counts.get(s.get("status", ""), 0) + 1
    items.append(("stages", ", ".join(f"{n} {k.lower()}" for k, n in counts.items())))
    items.append(("checks", str(sum(len(s.get("checks", [])) for s in report.get("stages", [])))))
    return '<ul class="kpis">' + "".join(f"<li>{_e(k)}<b>{_e(v)}</b></li>" for k, v in items) + "</ul>"


def _mean(xs: Sequence[Any]) -> float:
    return sum(as_float(x) or 0.0 for x in xs) / len(xs)


def _headline(report: Mapping[str, Any]) -> tuple[str, str]:
    first = report.get("first_divergence")
    if report.get("exit_code") == 2:
        return "error", "The harness could not run every stage"
    if first:
        return "fail", f"The port diverges, first at stage {first['stage']}"
    return "pass", "No divergence: the port matches the reference"


def report_body(report: Mapping[str, Any], heading: str = "h1", id_prefix: str = "") -> str:
    """The report's sections without the page around them (the faults page embeds one per run, with
    its element ids prefixed so that links inside each run's report stay within it)."""
    stages = _stage_map(report)
    parts = [_divergence_section(report)]
    parts.append(
        '<section id="stages"><h2>Stages</h2><figure><figcaption>Worst error against tolerance, per stage'
        "<span>Each stage's worst check (large dot) and every other check (small dots): the error over the "
        "error its tolerance allows. Left of the dashed line passes. Hover a dot for the check's name.</span>"
        f"</figcaption>{ratio_chart('Worst error against tolerance per stage', _stage_rows(report))}</figure>"
        f"{_stage_table(report)}</section>"
    )
    # Reports before 1.3 have no model record: the classifier's BCELoss.
    loss_name = str(((report.get("config") or {}).get("model") or {}).get("loss", "BCELoss")).removesuffix("Loss")
    figs = _train_charts(stages["train"], loss_name) if "train" in stages else []
    figs += _forward_chart(stages["forward"]) if "forward" in stages else []
    if figs:
        parts.append('<section id="plots"><h2>Training and forward pass</h2><div class="charts">' + "".join(figs))
        parts.append("</div></section>")
    parts.append(_checks_section(report))
    body = "".join(parts)
    if heading != "h1":
        # Nested in a fault's section: demote headings one level so the page outline stays right.
        body = body.replace("<h3>", "<h4>").replace("</h3>", "</h4>").replace("<h2>", "<h3>").replace("</h2>", "</h3>")
    if id_prefix:
        body = body.replace(' id="', f' id="{id_prefix}').replace(' href="#', f' href="#{id_prefix}')
    return body


def _config_line(cfg: Mapping[str, Any]) -> str:
    keys = ("data", "label", "backend", "fault", "seed", "epochs", "seeds")
    bits = [f"{k} <code>{_e(cfg.get(k) if cfg.get(k) not in ('', None) else '—')}</code>" for k in keys if k in cfg]
    if cfg.get("tolerance_overrides"):
        bits.append(f"tolerance overrides <code>{_e(json.dumps(cfg['tolerance_overrides']))}</code>")
    return " · ".join(bits)


def _embed_json(obj: Any) -> str:
    # "</" would close the <script> element early; JSON allows "\\/" for "/".
    text = json.dumps(obj, allow_nan=False, default=str).replace("</", "<\\/")
    return f'<script type="application/json" id="harness-data">{text}</script>'


def _page(title: str, status: str, header: str, nav: Sequence[tuple[str, str]], body: str, data: Any) -> str:
    links = "".join(f'<a href="#{_e(a)}">{_e(t)}</a>' for a, t in nav)
    return (
        owner.html_head(MARKER) + '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f'<header class="verdict {status}"><div>{header}</div></header><nav>{links}</nav>'
        f"<main>{body}<footer>Written by burn-torch-harness. The JSON behind this page is embedded in it "
        "(script#harness-data).</footer></main>"
        f"{_embed_json(data)}</body></html>\n"
    )


def render_diff(report: Mapping[str, Any]) -> str:
    """The page for one `harness diff` run, from its JSON report (pipeline.Report via report_json)."""
    status, headline = _headline(report)
    cfg = report.get("config") or {}
    header = (
        f'<h1>{_e(headline)}</h1><p class="meta">{_config_line(cfg)} · {len(report.get("stages", []))} stages in '
        f"{as_float(report.get('seconds')) or 0:.1f} s · harness {_e(report.get('harness_version', '?'))}, "
        f"report schema {_e(report.get('schema_version', '?'))}</p>{_kpis(report)}"
    )
    stages = _stage_map(report)
    nav = [("divergence", "First divergence"), ("stages", "Stages")]
    if "train" in stages:
        nav.append(("training", "Training"))
    if "forward" in stages:
        nav.append(("forward", "Forward"))
    nav.append(("checks", "Every check"))
    title = f"harness diff — {headline}"
    return _page(title, status, header, nav, report_body(report), report)


def _fault_id(name: str) -> str:
    return "fault-" + "".join(ch if ch.isalnum() else "-" for ch in name)


def render_faults(
    rows: Sequence[Mapping[str, Any]],
    passed: bool,
    reports: Mapping[str, Mapping[str, Any]] | None = None,
    catalogue: Sequence[Mapping[str, Any]] = (),
    config: Mapping[str, Any] | None = None,
) -> str:
    """The detection matrix: one row per run (faithful seeds, then each fault), one column per stage,
    and a section per run with its hint, its fix and its full report when one was kept."""
    reports = reports or {}
    about = {f["name"]: f for f in catalogue}
    stage_names: list[str] = []
    for rep in reports.values():
        for s in rep.get("stages", []):
            if s["stage"] not in stage_names:
                stage_names.append(s["stage"])
    for r in rows:
        for st in (*r.get("failing_stages", []), r.get("expected_stage"), r.get("first_stage")):
            if st and st not in stage_names:
                stage_names.append(st)
    n_faults = sum(1 for r in rows if r.get("expected_stage"))
    misses = [r for r in rows if not r.get("ok")]
    status = "pass" if passed else "fail"
    plural = "s" if n_faults != 1 else ""
    headline = (
        f"{n_faults} of {n_faults} fault{plural} detected at {'their' if plural else 'its'} stage; no false alarms"
        if passed
        else f"Detection matrix has {len(misses)} miss{'es' if len(misses) != 1 else ''}"
    )
    header = f"<h1>{_e(headline)}</h1>"
    if config:
        header += f'<p class="meta">{_config_line(config)}</p>'
    head = "".join(f"<th>{_e(s)}</th>" for s in stage_names)
    table = [
        '<section id="matrix"><h2>Detection matrix</h2><p class="muted">Red: the first divergent stage (root '
        "cause); pink: later failing stages; blue outline: the stage the fault belongs to. A faithful run passes "
        'when nothing fails.</p><table class="matrix"><thead><tr><th>run</th><th>verdict</th>'
        f"<th>expected</th><th>first divergence</th>{head}</tr></thead><tbody>"
    ]
    for r in rows:
        name = r["fault"]
        failing = set(r.get("failing_stages", []))
        errored = {e.split(":")[0] for e in r.get("errors", [])}
        cells = []
        for s in stage_names:
            cls = "ok"
            mark = ""
            if s == r.get("first_stage"):
                cls, mark = "root", "✕"
            elif s in failing:
                cls, mark = "down", "•"
            elif s in errored:
                cls, mark = "error", "!"
            if s == r.get("expected_stage"):
                cls += " expected"
            cells.append(f'<td class="cell {cls}" title="{_e(s)}">{mark}</td>')
        verdict = _badge("PASS" if r.get("ok") else "FAIL", "ok" if r.get("ok") else "MISS")
        table.append(
            f'<tr><td><a href="#{_fault_id(name)}">{_e(name)}</a></td><td>{verdict}</td>'
            f"<td>{_e(r.get('expected_stage') or 'none')}</td><td>{_e(r.get('first_stage') or '—')}</td>"
            + "".join(cells)
            + "</tr>"
        )
    table.append("</tbody></table></section>")
    sections = ['<section id="runs"><h2>Runs</h2>']
    for r in rows:
        name = r["fault"]
        info = about.get(name, {})
        sections.append(
            f'<section id="{_fault_id(name)}" class="run"><h3>{_e(name)} '
            f"{_badge('PASS' if r.get('ok') else 'FAIL', 'ok' if r.get('ok') else 'MISS')}</h3>"
        )
        if info.get("description"):
            sections.append(f"<p><b>What goes wrong:</b> {_e(info['description'])}</p>")
        sections.append(
            f"<p>Expected stage: <b>{_e(r.get('expected_stage') or 'none (faithful port)')}</b>; first divergence: "
            f"<b>{_e(r.get('first_stage') or 'none')}</b>; exit code {_e(r.get('exit_code'))}.</p>"
        )
        if r.get("hint"):
            sections.append(f'<p class="hint"><b>Hint shown:</b> {_e(r["hint"])}</p>')
        if r.get("expected_stage"):
            sections.append(
                f"<p>Diagnosis: <b>{_e(r.get('diagnosis') or 'no candidate reproduces it')}</b> (expected: "
                f"{_e(r.get('expected_cause') or 'none reproduces it')}).</p>"
            )
        if info.get("fix"):
            sections.append(f"<p><b>Fix in Burn:</b> {_e(info['fix'])}</p>")
        for e in r.get("errors", []):
            sections.append(f'<div class="card">{_badge("ERROR")} {_e(e)}</div>')
        rep = reports.get(name)
        if rep is not None:
            sections.append(
                f'<details><summary>Full report for {_e(name)}</summary><div style="padding:0 12px 12px">'
                f"{report_body(rep, heading='h3', id_prefix=_fault_id(name) + '-')}</div></details>"
            )
        sections.append("</section>")
    sections.append("</section>")
    nav = [("matrix", "Matrix"), ("runs", "Runs")]
    data = {"detection_matrix": list(rows), "passed": passed}
    return _page(f"harness faults check — {headline}", status, header, nav, "".join(table) + "".join(sections), data)


def write_html(text: str, path: Path) -> None:
    path.write_text(text, encoding="utf-8")

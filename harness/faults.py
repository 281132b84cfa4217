"""The detection matrix: `diff all` once per fault, plus the faithful port over several seeds.

The reference side does not depend on the fault, so its results are computed once and shared; the
port side runs afresh for every fault. The harness diagnoses from numbers only: the fault name is
used here to pick the port and to state the expected stage, never to produce a hint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from harness import progress
from harness.config import RunConfig
from harness.pipeline import run_with
from harness.port import available_faults
from harness.results import Report
from harness.stages.base import Context


def port_catalogue(cmd: str) -> list[dict[str, Any]]:
    """A port command's own faults: `CMD --list-faults` prints one per line, tab-separated: name, the
    stage that must catch it, the diagnosis id that must name it ('' when no replay can), description.
    Each is then run as `CMD --fault NAME`."""
    import shlex
    import subprocess

    from harness.errors import HarnessError

    try:
        out = subprocess.run(
            [*shlex.split(cmd), "--list-faults"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired, ValueError) as e:
        raise HarnessError(f"cannot list the port's faults with `{cmd} --list-faults`: {e}") from e
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no message"])[-1]
        raise HarnessError(f"`{cmd} --list-faults` exited with {out.returncode}: {last}")
    catalogue = []
    for no, line in enumerate(out.stdout.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 4:
            raise HarnessError(f"`{cmd} --list-faults`, line {no}: expected name, stage, cause and description")
        name, stage, cause, description = fields
        catalogue.append(
            {"name": name, "stage": stage, "cause": cause, "description": description, "fix": "", "outcome": "fail"}
        )
    return catalogue


def detection_matrix(
    cfg: RunConfig,
    seeds: int,
    only: list[str],
    console: Console,
    on_report: Callable[[str, dict[str, Any] | None, Report], None] | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """`on_report(row name, catalogue entry or None, report)` sees every run's full report. With a port
    command, the faults are the port's own (port_catalogue)."""
    catalogue = (
        port_catalogue(cfg.port_cmd)
        if cfg.port_cmd
        else [
            *available_faults(),
            {
                "name": "user-port",
                "stage": "config",
                "description": "all of the report's faults at once",
                "fix": "all of the fixes",
                "outcome": "fail",
                # Its first stage (config) lists every declared difference; the report's epsilon is one of them.
                "cause": "config.eps",
            },
        ]
    )
    if only:
        known = {f["name"] for f in catalogue}
        bad = [o for o in only if o not in known]
        if bad:
            from harness.errors import HarnessError

            raise HarnessError(f"unknown fault '{bad[0]}'; see `harness faults list`")
        catalogue = [f for f in catalogue if f["name"] in only]
    rows: list[dict[str, Any]] = []
    base: Context | None = None
    with progress.current().runs("faults check", seeds + len(catalogue)) as advance:
        for s in range(seeds):
            name = f"faithful (seed {cfg.seed + s})"
            advance(name)
            ctx = Context(cfg.with_(seed=cfg.seed + s))
            try:
                report = run_with(ctx)
            finally:
                ctx.close()
            if s == 0:
                base = ctx
            rows.append(_row(name, None, report))
            if on_report:
                on_report(name, None, report)
            console.print(f"faithful seed {cfg.seed + s}: exit {report.exit_code}")
        for f in catalogue:
            advance(f["name"])
            faulty = (
                cfg.with_(port_cmd=f"{cfg.port_cmd} --fault {f['name']}")
                if cfg.port_cmd
                else cfg.with_(fault=f["name"])
            )
            ctx = Context(faulty)
            if base is not None:
                ctx.adopt_reference(base)
            try:
                report = run_with(ctx)
            finally:
                ctx.close()
            rows.append(_row(f["name"], f["stage"], report, f.get("outcome", "fail"), f.get("cause", "")))
            if on_report:
                on_report(f["name"], f, report)
            console.print(f"{f['name']}: first divergence {rows[-1]['first_stage']} (expected {f['stage']})")
    ok = all(r["ok"] for r in rows)
    table = Table("fault", "detected", "first stage", "expected", "diagnosis (expected)", "all failing stages")
    for r in rows:
        mark = "[green]yes[/]" if r["ok"] else "[bold red]NO[/]"
        table.add_row(
            r["fault"],
            str(r["detected"]),
            str(r["first_stage"]),
            str(r["expected_stage"]),
            f"{r['diagnosis'] or '-'} ({r['expected_cause'] or 'none reproduces'})" if r["expected_stage"] else "-",
            ", ".join(r["failing_stages"]) + f"  {mark}",
        )
    console.print(table)
    console.print(
        "[green]every fault detected at its stage; no false alarms[/]"
        if ok
        else "[bold red]detection matrix has misses[/]"
    )
    return rows, ok


def _row(name: str, expected: str | None, report: Report, outcome: str = "fail", cause: str = "") -> dict[str, Any]:
    """One matrix row. A fault whose outcome is "error" (the port panics) must make its expected stage
    the first ERROR, with exit code 2 and the panic named; every other fault must make its expected
    stage the first FAIL, with a hint, and that stage's diagnosis must name the fault's cause (or, for a
    fault no replay can reproduce, name none and say so)."""
    first = report.first_divergence
    failing = [r.stage for r in report.results if r.status == "FAIL"]
    errored = [r for r in report.results if r.status == "ERROR"]
    errors = [f"{r.stage}: {r.error}" for r in errored]
    named = [d["cause"] for d in first.diagnosis] if first else []
    if expected is None:
        ok = report.exit_code == 0
    elif outcome == "error":
        ok = (
            report.exit_code == 2
            and bool(errored)
            and errored[0].stage == expected
            and errored[0].error_kind == "PortPanic"
        )
    else:
        ok = report.exit_code == 1 and first is not None and first.stage == expected and bool(first.hint)
        if cause:
            ok = ok and cause in named
        else:
            ok = ok and not named and first.diagnosis_outcome == "unexplained"
    return {
        "fault": name,
        "expected_stage": expected,
        "expected_cause": cause,
        "detected": report.exit_code == (2 if outcome == "error" else 1),
        "first_stage": first.stage if first else (errored[0].stage if errored else None),
        "diagnosis": ", ".join(named[:2]) + (", ..." if len(named) > 2 else ""),
        "hint": first.hint if first else "",
        "hints": {r.stage: r.hint for r in report.results if r.status == "FAIL"},
        "failing_stages": failing,
        "errors": errors,
        "exit_code": report.exit_code,
        "ok": ok,
    }

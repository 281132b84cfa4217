"""The terminal report: one row per stage, then the first divergence in detail."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from harness.results import Report, StageResult

STYLE = {"PASS": "green", "FAIL": "bold red", "ERROR": "bold magenta", "SKIP": "dim"}


def worst_metric(r: StageResult) -> str:
    if r.status == "ERROR":
        return r.error
    bad = r.first_failure
    if bad is None and r.metrics.get("inconclusive"):
        return str(r.metrics["inconclusive"])
    if bad is None:
        errs = [c.min_atol for c in r.checks if c.min_atol is not None]
        return f"{len(r.checks)} checks; max abs err {max(errs):.3g}" if errs else f"{len(r.checks)} checks"
    if bad.reason:
        return f"{bad.name}: {bad.reason}"
    tol = bad.tolerance
    return (
        f"{bad.name}: abs {bad.abs_err:.3g} rel {bad.rel_err:.3g} at {tuple(bad.worst_index or [])} "
        f"(atol {tol['atol']}, rtol {tol['rtol']})"
    )


def _title(report: Report) -> str:
    cfg = report.cfg
    if cfg.port_cmd:
        # The port command, not --backend/--fault, decides what runs: show what the port said in hello.
        port = report.port or {}
        faults = ",".join(port.get("faults") or [])
        return (
            f"harness diff — port {cfg.port_cmd}"
            + (f", backend {port['backend']}" if port.get("backend") else "")
            + (f", fault {faults}" if faults else "")
        )
    return f"harness diff — backend {cfg.backend}" + (f", fault {cfg.fault}" if cfg.fault else "")


def print_report(report: Report, console: Console | None = None) -> None:
    console = console or Console()
    first = report.first_divergence
    table = Table(title=_title(report), show_lines=False)
    for col in ("stage", "status", "worst metric vs tolerance", "hint", "s"):
        table.add_column(col, overflow="fold")
    for r in report.results:
        upstream = report.downstream_of(r)
        status = r.status + (f" (free run, after {upstream})" if upstream else "")
        table.add_row(r.stage, f"[{STYLE[r.status]}]{status}[/]", worst_metric(r), r.hint, f"{r.seconds:.1f}")
    console.print(table)
    if report.errored:
        for r in report.results:
            if r.status == "ERROR":
                console.print(f"[bold magenta]ERROR[/] {r.stage}: {r.error}")
    if first is None:
        if not report.errored:
            skipped = [r.stage for r in report.skipped]
            also = f"; skipped, not implemented by the port: {', '.join(skipped)}" if skipped else ""
            console.print(f"[green]No divergence[/] ({len(report.results)} stages, {report.seconds:.1f} s{also})")
        return
    console.print(f"\n[bold red]First divergence: {first.stage}[/]")
    if first.hint:
        console.print(f"  why: {first.hint}")
    for c in first.checks:
        if not c.passed:
            console.print(f"  - {c.summary()}")
            console.print(
                f"    tolerance: atol {c.tolerance['atol']}, rtol {c.tolerance['rtol']} ({c.tolerance['why']})"
            )
    own = [r.stage for r in report.results if r.status == "FAIL" and r is not first and not report.downstream_of(r)]
    echo = [r.stage for r in report.results if report.downstream_of(r)]
    if own:
        # Teacher-forced: each was fed the reference's inputs, so each is a divergence of its own.
        console.print(f"  also diverging, each on the reference's inputs: {', '.join(own)}")
    if echo:
        console.print(f"  failing only in the free run, which compounds {first.stage}: {', '.join(echo)}")

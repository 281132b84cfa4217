"""`harness`: train either side, run the user's checks, diff the port stage by stage, list faults.

Exit codes: 0 success / no divergence, 1 divergence, 2 the harness could not run (bad input, usage).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.config import BUNDLED_DATA, RunConfig, load_tolerance_overrides
from harness.errors import HarnessError
from harness.port import PortError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Differential testing of a PyTorch classifier and its Burn port.",
)
diff_app = typer.Typer(no_args_is_help=True, help="Compare the port with the reference, stage by stage.")
faults_app = typer.Typer(no_args_is_help=True, help="The catalogue of port faults and the detection matrix.")
data_app = typer.Typer(no_args_is_help=True, help="The bundled dataset.")
app.add_typer(diff_app, name="diff")
app.add_typer(faults_app, name="faults")
app.add_typer(data_app, name="data")

console = Console()

DataOpt = Annotated[Path, typer.Option("--data", help="CSV file (label column plus numeric/true-false features)")]
LabelOpt = Annotated[str, typer.Option("--label", help="name of the binary label column")]
BackendOpt = Annotated[str, typer.Option("--backend", help="Burn CPU backend: flex or ndarray")]
FaultOpt = Annotated[str, typer.Option("--fault", help="inject a port fault by name (see `harness faults list`)")]
SeedOpt = Annotated[int, typer.Option("--seed", min=0, help="seed for initialization and shuffling")]
EpochsOpt = Annotated[int, typer.Option("--epochs", min=1, help="training epochs")]


def fail(msg: str) -> None:
    # Plain stderr, not rich: an error must stay one line whatever the terminal width.
    first = msg.splitlines()[0] if msg else "unknown error"
    sys.stderr.write(f"error: {first}\n")
    raise typer.Exit(2)


def _framework(value: str) -> str:
    if value not in ("torch", "burn"):
        fail(f"unknown framework '{value}'; use torch or burn")
    return value


def _safe_output(path: Path, marker: str) -> None:
    """Refuse to overwrite a file the harness did not write itself, or write into a missing folder."""
    if not path.parent.is_dir():
        fail(f"cannot write '{path}': folder '{path.parent}' does not exist")
    if path.exists():
        head = path.read_text(errors="replace")[:4000] if path.is_file() else ""
        if marker not in head:
            fail(f"'{path}' exists and is not a report written by harness; remove it or choose another path")


@app.command()
def train(
    framework: Annotated[str, typer.Option("--framework", help="torch or burn")] = "torch",
    data: DataOpt = BUNDLED_DATA,
    label: LabelOpt = "label",
    epochs: EpochsOpt = 20,
    seed: SeedOpt = 0,
    backend: BackendOpt = "flex",
    json_path: Annotated[Path | None, typer.Option("--json", help="write epoch losses and accuracy here")] = None,
    init_path: Annotated[
        Path | None, typer.Option("--init", help="initial weights, .npz in PyTorch's layout (default: own init)")
    ] = None,
) -> None:
    """Train one side on its own pipeline (own preparation, init and shuffling) and report test accuracy."""
    _framework(framework)
    from harness.reference import model as ref_model

    given = ref_model.load_params(init_path) if init_path else None
    if json_path:
        _safe_output(json_path, '"framework"')
    cfg = RunConfig(data=data, label=label, epochs=epochs, seed=seed, backend=backend)
    t0 = time.perf_counter()
    if framework == "torch":
        from harness.data import prepare
        from harness.reference import model as ref_model
        from harness.reference import train as ref_train

        p = prepare(cfg)
        if given is not None:
            ref_model.check_params(given, p.x_train.shape[1])
        init = given if given is not None else ref_model.init_params(p.x_train.shape[1], seed)
        orders = ref_train.batch_orders(len(p.y_train), epochs, seed)
        with _Progress() as prog:
            task = prog.add_task("torch", total=epochs)
            trace = ref_train.train(
                p.x_train,
                p.y_train,
                init,
                orders,
                cfg,
                on_epoch=lambda e, loss: prog.update(task, completed=e, loss=loss),
            )
        epoch_loss = [float(v) for v in trace.epoch_loss]
        _, acc = ref_train.evaluate(trace.final, p.x_test, p.y_test, cfg.threshold)
    else:
        from harness.port import BurnPort

        port = BurnPort(backend, epochs=epochs)
        d = port.prepare(data, label, cfg.test_size, cfg.split_seed)
        with _Progress() as prog:
            task = prog.add_task(f"burn ({backend})", total=epochs)
            out = port.train(
                d["x_train"],
                d["y_train"],
                params=given,
                epochs=epochs,
                seed=seed,
                on_epoch=lambda e, loss: prog.update(task, completed=e, loss=loss),
            )
        epoch_loss = [float(v) for v in out["epoch_loss"]]
        _, acc = port.evaluate(out["final"], d["x_test"], d["y_test"])
    seconds = time.perf_counter() - t0
    table = Table("epoch", "loss")
    for i, v in enumerate(epoch_loss, start=1):
        table.add_row(str(i), f"{v:.6f}")
    console.print(table)
    console.print(f"{framework}: test accuracy {acc:.4f} ({seconds:.1f} s)")
    finite = all(np.isfinite(epoch_loss))
    if json_path:
        json_path.write_text(
            json.dumps(
                {
                    "framework": framework,
                    "backend": backend if framework == "burn" else None,
                    "data": str(data),
                    "seed": seed,
                    "epochs": epochs,
                    "epoch_loss": [v if np.isfinite(v) else str(v) for v in epoch_loss],
                    "test_accuracy": acc,
                    "finite_losses": finite,
                    "seconds": seconds,
                },
                indent=2,
            )
            + "\n"
        )


class _Progress(Progress):
    def __init__(self) -> None:
        super().__init__(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("epoch {task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
        )

    def update(self, task: Any, **kw: Any) -> None:
        loss = kw.pop("loss", None)
        if loss is not None:
            base = self._tasks[task].description.split(" | ")[0]
            kw["description"] = f"{base} | loss {loss:.5f}"
        super().update(task, **kw)


@app.command()
def check(
    what: Annotated[str, typer.Argument(help="data, bce or labels")],
    framework: Annotated[str, typer.Option("--framework", help="torch or burn")] = "torch",
    data: DataOpt = BUNDLED_DATA,
    label: LabelOpt = "label",
    backend: BackendOpt = "flex",
) -> None:
    """The user's original checks (test_scaler.py, test_bce_loss.py, test-label-percentage) for either side."""
    from harness import checks

    _framework(framework)
    fns = {"data": checks.check_data, "bce": checks.check_bce, "labels": checks.check_labels}
    if what not in fns:
        fail(f"unknown check '{what}'; use data, bce or labels")
    fns[what](RunConfig(data=data, label=label, backend=backend), framework, print)


def _diff(
    stage: str,
    data: Path,
    label: str,
    backend: str,
    fault: str,
    seed: int,
    epochs: int,
    seeds: int,
    json_path: Path | None,
    junit_path: Path | None,
    rtol: float | None,
    atol: float | None,
) -> int:
    from harness.pipeline import SCHEMA_NAME, run
    from harness.report.files import write_json, write_junit
    from harness.report.terminal import print_report
    from harness.stages import STAGE_NAMES

    if stage != "all" and stage not in STAGE_NAMES:
        fail(f"unknown stage '{stage}'; stages are: all, {', '.join(STAGE_NAMES)}")
    if fault:
        from harness.port import available_faults

        names = {f["name"] for f in available_faults()} | {"user-port"}
        unknown = [f for f in fault.split(",") if f.strip() and f.strip() not in names]
        if unknown:
            fail(f"unknown fault '{unknown[0]}'; see `harness faults list`")
    if json_path:
        _safe_output(json_path, SCHEMA_NAME)
    if junit_path:
        _safe_output(junit_path, "harness.diff")
    tolerances = load_tolerance_overrides()
    if rtol is not None or atol is not None:
        targets = STAGE_NAMES if stage == "all" else [stage]
        for s in targets:
            o = dict(tolerances.get(s, {}))
            if rtol is not None:
                o["rtol"] = rtol
            if atol is not None:
                o["atol"] = atol
            tolerances[s] = o
    cfg = RunConfig(
        data=data,
        label=label,
        backend=backend,
        fault=fault,
        seed=seed,
        epochs=epochs,
        seeds=seeds,
        tolerances=tolerances,
    )
    # Stages are teacher-forced: each computes what it needs from the reference, so one runs alone.
    stages = None if stage == "all" else [stage]
    with console.status("running stages..."):
        report = run(cfg, stages)
    print_report(report, console)
    if tolerances:
        console.print(f"tolerance overrides: {tolerances}")
    try:
        if json_path:
            write_json(report, json_path)
        if junit_path:
            write_junit(report, junit_path)
    except OSError as e:
        fail(f"cannot write the report: {e}")
    return report.exit_code


def _make_diff_command(stage: str) -> None:
    def command(
        data: DataOpt = BUNDLED_DATA,
        label: LabelOpt = "label",
        backend: BackendOpt = "flex",
        fault: FaultOpt = "",
        seed: SeedOpt = 0,
        epochs: EpochsOpt = 20,
        seeds: Annotated[int, typer.Option("--seeds", min=1, help="independent end-to-end runs (metrics)")] = 1,
        json_path: Annotated[Path | None, typer.Option("--json", help="write the versioned JSON report")] = None,
        junit_path: Annotated[Path | None, typer.Option("--junit", help="write JUnit XML, one case per stage")] = None,
        rtol: Annotated[float | None, typer.Option("--rtol", help="override rtol of the selected stage(s)")] = None,
        atol: Annotated[float | None, typer.Option("--atol", help="override atol of the selected stage(s)")] = None,
    ) -> None:
        raise typer.Exit(
            _diff(stage, data, label, backend, fault, seed, epochs, seeds, json_path, junit_path, rtol, atol)
        )

    command.__doc__ = "Run every stage in order." if stage == "all" else f"Run the {stage} stage alone."
    diff_app.command(stage)(command)


def _register_diff_commands() -> None:
    from harness.stages import STAGES

    _make_diff_command("all")
    for s in STAGES:
        _make_diff_command(s.name)


_register_diff_commands()


@faults_app.command("list")
def faults_list() -> None:
    """The fault catalogue: name, stage, description, fix."""
    from harness.port import available_faults

    table = Table("fault", "stage", "what goes wrong", "fix in Burn", show_lines=True)
    for f in available_faults():
        table.add_row(f["name"], f["stage"], f["description"], f["fix"])
    table.add_row("user-port", "config", "all of the report's faults at once", "all of the above")
    console.print(table)


@faults_app.command("check")
def faults_check(
    data: DataOpt = BUNDLED_DATA,
    label: LabelOpt = "label",
    backend: BackendOpt = "flex",
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="faithful-port runs (seeds 0..N-1)")] = 3,
    only: Annotated[str, typer.Option("--only", help="comma list of faults to check (default: all)")] = "",
    json_path: Annotated[Path | None, typer.Option("--json", help="write the detection matrix here")] = None,
) -> None:
    """Run `diff all` once per fault and the faithful port over several seeds; exit 1 on any miss."""
    from harness.faults import detection_matrix

    if json_path:
        _safe_output(json_path, '"detection_matrix"')
    rows, ok = detection_matrix(
        RunConfig(data=data, label=label, backend=backend, tolerances=load_tolerance_overrides()),
        seeds,
        [f for f in only.split(",") if f],
        console,
    )
    if json_path:
        json_path.write_text(json.dumps({"detection_matrix": rows, "passed": ok}, indent=2, default=str) + "\n")
    raise typer.Exit(0 if ok else 1)


@data_app.command("generate")
def data_generate(
    out: Annotated[Path, typer.Option("--out", help="where to write the CSV")] = BUNDLED_DATA,
    seed: Annotated[int, typer.Option("--seed")] = 20240601,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
) -> None:
    """Write the bundled dataset (deterministic for a seed)."""
    from harness.datagen import write

    try:
        n = write(out, seed, force)
    except FileExistsError as e:
        fail(str(e))
    console.print(f"wrote {n} rows to {out}")


def main() -> None:
    try:
        app(standalone_mode=True)
    except (HarnessError, PortError) as e:
        fail_msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        sys.stderr.write(f"error: {fail_msg}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()

"""`harness`: train either side, run the user's checks, diff the port stage by stage, list faults.

Exit codes: 0 success / no divergence, 1 divergence, 2 the harness could not run (bad input, usage).
"""

from __future__ import annotations

import math
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer._click.exceptions import ClickException, NoArgsIsHelpError  # typer vendors click

from harness import progress
from harness.config import BUNDLED_DATA, RunConfig, required_stages, resolve
from harness.errors import HarnessError, PortFailure

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
cache_app = typer.Typer(help="The reference cache: results of the reference side, reused across runs.")
app.add_typer(cache_app, name="cache")
app.add_typer(data_app, name="data")

console = Console()

DataOpt = Annotated[Path, typer.Option("--data", help="CSV file (label column plus numeric/true-false features)")]
LabelOpt = Annotated[str, typer.Option("--label", help="name of the binary label column")]
# Seeds are 32-bit so that every derived seed (seed + run, the envelope's dither seeds) fits every RNG
# on both sides; epochs and seeds are bounded so that a typo fails at once instead of running for days.
SEED_MAX = 2**32 - 1
EPOCHS_MAX = 100_000
SEEDS_MAX = 1_000


def _backend(value: str) -> str:
    """The port decides which backends exist; without the extension any later use of it fails anyway."""
    from harness.errors import PortRejected
    from harness.port import _burn

    if _burn is not None:
        try:
            _burn.Port(value)
        except PortRejected as e:
            raise typer.BadParameter(str(e).splitlines()[0] if str(e) else f"unknown backend '{value}'") from e
    return value


def _tolerance(value: float | None) -> float | None:
    from harness.tolerances import check_tolerance

    if value is None:
        return None
    try:
        return check_tolerance(value, "a tolerance")
    except HarnessError as e:
        raise typer.BadParameter(str(e)) from e


BackendOpt = Annotated[str, typer.Option("--backend", callback=_backend, help="Burn CPU backend: flex or ndarray")]
FaultOpt = Annotated[str, typer.Option("--fault", help="inject a port fault by name (see `harness faults list`)")]
SeedOpt = Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX, help="seed for initialization and shuffling")]
EpochsOpt = Annotated[int, typer.Option("--epochs", min=1, max=EPOCHS_MAX, help="training epochs")]
PortCmdOpt = Annotated[
    str | None,
    typer.Option(
        "--port-cmd",
        help="run the port as this command, spoken to over docs/protocol.md (default: \\[port] cmd in "
        'harness.toml, else the in-process extension; "" forces the extension)',
    ),
]
PortTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--port-timeout", help=f"seconds per port request before it is killed (default {RunConfig.port_timeout:g})"
    ),
]


def fail(msg: str) -> None:
    # Plain stderr, not rich: an error must stay one line whatever the terminal width.
    first = msg.splitlines()[0] if msg else "unknown error"
    sys.stderr.write(f"error: {first}\n")
    raise typer.Exit(2)


def _framework(value: str) -> str:
    if value not in ("torch", "burn"):
        fail(f"unknown framework '{value}'; use torch or burn")
    return value


def _safe_output(path: Path, head: str, *legacy: str) -> None:
    """Before any work: refuse a path that cannot be written, or a file the harness did not write itself
    (recognized by its exact first bytes, harness/report/owner.py)."""
    from harness.report import owner

    try:
        owner.check_writable(path, head, *legacy)
    except HarnessError as e:
        fail(str(e))


def _runnable(cmd: str, what: str = "port command", cwd: Path | None = None) -> None:
    """Before any work: the command names a program that exists (the stages would otherwise each fail on
    it after the reference's share of the work); a relative path is taken from `cwd` (default: here)."""
    try:
        argv = shlex.split(cmd)
    except ValueError as e:
        fail(f"cannot parse the {what} {cmd!r}: {e}")
    program = argv[0] if argv else ""
    if program and "/" in program and cwd is not None:
        program = str(cwd / program)
    if not program or shutil.which(program) is None:
        fail(f"{what} {cmd!r}: program {argv[0] if argv else ''!r} not found or not executable")


def _resolve(config: Path | None, options: dict[str, Any], *, discover: bool = True) -> RunConfig:
    """harness.config.resolve, its errors one line and exit 2."""
    try:
        return resolve(config, options, discover=discover)
    except HarnessError as e:
        fail(str(e))
        raise  # fail exits; this keeps the type checker's view of the flow


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="harness.toml naming the reference model, loss, optimizer, data and port (default ./harness.toml)",
    ),
]


def _given(ctx: typer.Context, names: tuple[str, ...]) -> frozenset[str]:
    """The options the user gave (not their defaults)."""
    return frozenset(
        n for n in names if getattr(ctx.get_parameter_source(n), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")
    )


def _readable_data(data: Path, label: str, task: str = "binary") -> None:
    """Before any work: the data file follows the rules both sides read by (harness/csvcheck.py)."""
    from harness import csvcheck

    try:
        csvcheck.read(data, label, task)
    except HarnessError as e:
        fail(str(e))


@app.command()
def train(
    framework: Annotated[str, typer.Option("--framework", help="torch or burn")] = "torch",
    data: DataOpt = RunConfig.data,
    label: LabelOpt = RunConfig.label,
    epochs: EpochsOpt = RunConfig.epochs,
    seed: SeedOpt = RunConfig.seed,
    backend: BackendOpt = RunConfig.backend,
    json_path: Annotated[Path | None, typer.Option("--json", help="write epoch losses and accuracy here")] = None,
    init_path: Annotated[
        Path | None, typer.Option("--init", help="initial weights, .npz in PyTorch's layout (default: own init)")
    ] = None,
) -> None:
    """Train one side on its own pipeline (own preparation, init and shuffling) and report test accuracy."""
    _framework(framework)
    from harness.reference import model as ref_model
    from harness.report import owner

    given = ref_model.load_params(init_path) if init_path else None
    if json_path:
        _safe_output(json_path, owner.json_head(owner.TRAIN_RUN))
    _readable_data(data, label)
    cfg = _resolve(
        None, {"data": data, "label": label, "epochs": epochs, "seed": seed, "backend": backend}, discover=False
    )
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
        run = {
            "framework": framework,
            "backend": backend if framework == "burn" else None,
            "data": str(data),
            "seed": seed,
            "epochs": epochs,
            "epoch_loss": epoch_loss,
            "test_accuracy": acc,
            "finite_losses": finite,
            "seconds": seconds,
        }
        owner.write(json_path, owner.json_text(owner.TRAIN_RUN, run))


class _Progress(Progress):
    def __init__(self) -> None:
        super().__init__(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("epoch {task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
            # Rich prints a finished bar once even off a terminal; CI logs and pipes get none.
            disable=not progress.interactive(console),
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
    data: DataOpt = RunConfig.data,
    label: LabelOpt = RunConfig.label,
    backend: BackendOpt = RunConfig.backend,
) -> None:
    """The user's original checks (test_scaler.py, test_bce_loss.py, test-label-percentage) for either side."""
    from harness import checks

    _framework(framework)
    fns = {"data": checks.check_data, "bce": checks.check_bce, "labels": checks.check_labels}
    if what not in fns:
        fail(f"unknown check '{what}'; use data, bce or labels")
    if what != "bce":
        _readable_data(data, label)
    fns[what](_resolve(None, {"data": data, "label": label, "backend": backend}, discover=False), framework, print)


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
    port_cmd: str | None = None,
    port_timeout: float | None = None,
    explicit: tuple[str, ...] = (),
    html_path: Path | None = None,
    config_path: Path | None = None,
    given: frozenset[str] = frozenset(),
    require: str | None = None,
    use_cache: bool = False,
) -> int:
    from harness.pipeline import run
    from harness.report import owner
    from harness.report.files import write_json, write_junit
    from harness.report.terminal import print_report
    from harness.results import SCHEMA_NAME
    from harness.stage_names import STAGE_NAMES

    if stage != "all" and stage not in STAGE_NAMES:
        fail(f"unknown stage '{stage}'; stages are: all, {', '.join(STAGE_NAMES)}")
    if port_timeout is not None and not (math.isfinite(port_timeout) and port_timeout > 0):
        fail(f"--port-timeout must be a positive number of seconds, got {port_timeout:g}")
    required = None
    if require is not None:
        try:
            required = required_stages(require, "--require", STAGE_NAMES)
        except HarnessError as e:
            fail(str(e))
    # The file's values win over an option's default, an option the user gave over the file.
    options = {"data": data, "label": label, "seed": seed, "epochs": epochs}
    cfg = _resolve(
        config_path,
        {
            **{k: v for k, v in options.items() if k in given},
            "backend": backend,
            "fault": fault,
            "seeds": seeds,
            "port_cmd": port_cmd,
            "port_timeout": port_timeout,
            "require": required,
            "cache": use_cache,
        },
    )
    if cfg.port_cmd:
        _runnable(cfg.port_cmd)
    if cfg.port_cmd and explicit:
        source = "--port-cmd" if port_cmd else "[port] cmd in harness.toml"
        fail(f"{explicit[0]} cannot be combined with {source}: the port command decides its backend and faults")
    if fault and not cfg.port_cmd:
        from harness.port import available_faults

        names = {f["name"] for f in available_faults()} | {"user-port"}
        unknown = [f for f in fault.split(",") if f.strip() and f.strip() not in names]
        if unknown:
            fail(f"unknown fault '{unknown[0]}'; see `harness faults list`")
    if json_path:
        _safe_output(json_path, owner.json_head(SCHEMA_NAME))
    if junit_path:
        _safe_output(junit_path, owner.xml_head(owner.DIFF_JUNIT), owner.LEGACY_JUNIT)
    if html_path:
        from harness.report.html import MARKER as HTML_MARKER

        _safe_output(html_path, owner.html_head(HTML_MARKER))
    _readable_data(cfg.data, cfg.label, cfg.task)
    if rtol is not None or atol is not None:
        tolerances = dict(cfg.tolerances)
        for s in STAGE_NAMES if stage == "all" else [stage]:
            tolerances[s] = {
                **tolerances.get(s, {}),
                **({"rtol": rtol} if rtol is not None else {}),
                **({"atol": atol} if atol is not None else {}),
            }
        cfg = cfg.with_(tolerances=tolerances)
    tolerances = cfg.tolerances
    if not cfg.port_cmd and cfg.reference:
        fail("a config that names its own reference model needs its port: [port] cmd or --port-cmd")
    # Stages are teacher-forced: each computes what it needs from the reference, so one runs alone.
    stages = None if stage == "all" else [stage]
    with progress.live(console):
        report = run(cfg, stages)
    print_report(report, console)
    if report.cache and report.cache["parts"]:
        parts = ", ".join(f"{part} {how}" for part, how in report.cache["parts"].items())
        console.print(f"reference cache ({report.cache['dir']}, key {report.cache['key'][:12]}): {parts}")
    if tolerances:
        console.print(f"tolerance overrides: {tolerances}")
    errored = next((r for r in report.results if r.status == "ERROR"), None)
    if errored is not None:
        # The table may wrap the message; the contract is one line on stderr (after the reports below).
        failure = f"error: stage {errored.stage}: {(errored.error.splitlines() or ['could not run'])[0]}\n"
    try:
        if json_path:
            write_json(report, json_path)
        if junit_path:
            write_junit(report, junit_path)
        if html_path:
            from harness.report.files import report_json
            from harness.report.html import render_diff, write_html

            write_html(render_diff(report_json(report)), html_path)
    except OSError as e:
        fail(f"cannot write the report: {e}")
    if errored is not None:
        sys.stderr.write(failure)
    return report.exit_code


def _make_diff_command(stage: str) -> None:
    def command(
        ctx: typer.Context,
        data: DataOpt = RunConfig.data,
        label: LabelOpt = RunConfig.label,
        backend: BackendOpt = RunConfig.backend,
        fault: FaultOpt = RunConfig.fault,
        seed: SeedOpt = RunConfig.seed,
        epochs: EpochsOpt = RunConfig.epochs,
        seeds: Annotated[
            int, typer.Option("--seeds", min=1, max=SEEDS_MAX, help="independent end-to-end runs (metrics)")
        ] = 1,
        json_path: Annotated[Path | None, typer.Option("--json", help="write the versioned JSON report")] = None,
        junit_path: Annotated[Path | None, typer.Option("--junit", help="write JUnit XML, one case per stage")] = None,
        html_path: Annotated[
            Path | None, typer.Option("--html", help="write a self-contained HTML report with plots")
        ] = None,
        rtol: Annotated[
            float | None, typer.Option("--rtol", callback=_tolerance, help="override rtol of the selected stage(s)")
        ] = None,
        atol: Annotated[
            float | None, typer.Option("--atol", callback=_tolerance, help="override atol of the selected stage(s)")
        ] = None,
        port_cmd: PortCmdOpt = None,
        port_timeout: PortTimeoutOpt = None,
        config: ConfigOpt = None,
        require: Annotated[
            str | None,
            typer.Option(
                "--require",
                help="comma list of stages the port must implement: SKIP (not implemented) becomes FAIL "
                "(default: [port] require in harness.toml)",
            ),
        ] = None,
        use_cache: Annotated[
            bool,
            typer.Option(
                "--cache/--no-cache",
                help="reuse the reference's training, envelope and seed runs from $HARNESS_CACHE or "
                "./.harness-cache when the data, config, harness and torch are the same",
            ),
        ] = True,
    ) -> None:
        given_opts = _given(ctx, ("data", "label", "seed", "epochs"))
        # Only options the user gave conflict with a port command, not their defaults.
        given = tuple(
            f"--{name}"
            for name in ("backend", "fault")
            if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")
        )
        raise typer.Exit(
            _diff(
                stage,
                data,
                label,
                backend,
                fault,
                seed,
                epochs,
                seeds,
                json_path,
                junit_path,
                rtol,
                atol,
                port_cmd=port_cmd,
                port_timeout=port_timeout,
                explicit=given,
                html_path=html_path,
                config_path=config,
                given=given_opts,
                require=require,
                use_cache=use_cache,
            )
        )

    command.__doc__ = "Run every stage in order." if stage == "all" else f"Run the {stage} stage alone."
    diff_app.command(stage)(command)


def _register_diff_commands() -> None:
    # By name: importing the stages loads torch, which a command that never reaches them need not wait for.
    from harness.stage_names import STAGE_NAMES

    _make_diff_command("all")
    for name in STAGE_NAMES:
        _make_diff_command(name)


_register_diff_commands()


@app.command()
def watch(
    config: ConfigOpt = None,
    port_cmd: Annotated[str | None, typer.Option("--port-cmd", help="the port command (default: [port] cmd)")] = None,
    build: Annotated[str | None, typer.Option("--build", help="the build command (default: [port] build)")] = None,
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="seconds between looks for changes")] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="build and diff once, exit with the diff's code")] = False,
) -> None:
    """Rebuild the port and re-run the stages that failed, whenever a file it is built from changes
    (`[port] build` and `[port] watch` in harness.toml); the reference side comes from the cache."""
    from harness.config import load_port_build
    from harness.pipeline import run
    from harness.report.terminal import print_report
    from harness.results import ERROR, FAIL
    from harness.watch import Build, loop

    path = config if config is not None else Path("harness.toml")
    if not path.is_file():
        fail(f"watch needs a harness.toml: '{path}' not found (--config PATH)")
    try:
        build_cmd, paths = load_port_build(path)
    except HarnessError as e:
        fail(str(e))
    if not math.isfinite(interval):
        fail(f"--interval must be a finite number of seconds, got {interval:g}")
    build_cmd = build if build is not None else build_cmd
    if build_cmd:
        _runnable(build_cmd, "build command", path.resolve().parent)
    if port_cmd:
        _runnable(port_cmd)
    builder = Build(build_cmd, path.resolve().parent) if build_cmd else None
    overrides: dict[str, Any] = {"cache": True, **({"port_cmd": port_cmd} if port_cmd else {})}

    def diff(stages: list[str] | None) -> tuple[int, list[str]]:
        try:  # read again each cycle: the file may have changed too
            cfg = resolve(path, overrides)
        except HarnessError as e:
            console.print(f"[red]{e}[/]")
            return 2, []
        with progress.live(console):
            report = run(cfg, stages)
        print_report(report, console)
        return report.exit_code, [r.stage for r in report.results if r.status in (FAIL, ERROR)]

    try:
        code = loop(builder, paths, diff, console.print, interval, 1 if once else None)
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


@cache_app.command("info")
def cache_info() -> None:
    """Where the cache is, how many keys and entries it holds, and its size."""
    from harness import cache

    i = cache.info()
    console.print(f"{i['dir']}: {i['keys']} key(s), {i['entries']} entries, {i['bytes'] / 1e6:.1f} MB")


@cache_app.command("clear")
def cache_clear() -> None:
    """Remove every entry of the cache."""
    from harness import cache

    console.print(f"{cache.cache_dir()}: removed {cache.clear()} file(s)")


@faults_app.command("list")
def faults_list(config: ConfigOpt = None) -> None:
    """The fault catalogue: name, stage, description, fix (with --config: the port command's own faults)."""
    from harness.port import available_faults

    if config is not None:
        from harness.faults import port_catalogue

        cmd = _resolve(config, {}).port_cmd
        if not cmd:
            fail(f"{config} names no port command ([port] cmd)")
        try:
            own = port_catalogue(cmd)
        except HarnessError as e:
            fail(str(e))
        table = Table("fault", "stage", "cause it must be diagnosed as", "what goes wrong", show_lines=True)
        for f in own:
            table.add_row(f["name"], f["stage"], f["cause"] or "-", f["description"])
        console.print(table)
        return
    table = Table("fault", "stage", "what goes wrong", "fix in Burn", show_lines=True)
    for f in available_faults():
        table.add_row(f["name"], f["stage"], f["description"], f["fix"])
    table.add_row("user-port", "config", "all of the report's faults at once", "all of the above")
    console.print(table)


@faults_app.command("check")
def faults_check(
    ctx: typer.Context,
    data: DataOpt = RunConfig.data,
    label: LabelOpt = RunConfig.label,
    backend: BackendOpt = RunConfig.backend,
    seeds: Annotated[int, typer.Option("--seeds", min=1, max=SEEDS_MAX, help="faithful-port runs (seeds 0..N-1)")] = 3,
    only: Annotated[str, typer.Option("--only", help="comma list of faults to check (default: all)")] = "",
    json_path: Annotated[Path | None, typer.Option("--json", help="write the detection matrix here")] = None,
    html_path: Annotated[
        Path | None, typer.Option("--html", help="write the matrix as HTML, with each run's full report")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Run `diff all` once per fault and the faithful port over several seeds; exit 1 on any miss. With a
    config whose port is a command, the faults are the port's own (`CMD --list-faults`)."""
    from harness.faults import detection_matrix
    from harness.report import owner
    from harness.report.html import MARKER as HTML_MARKER

    if json_path:
        _safe_output(json_path, owner.json_head(owner.DETECTION_MATRIX))
    if html_path:
        _safe_output(html_path, owner.html_head(HTML_MARKER))
    given = _given(ctx, ("data", "label"))
    options = {k: v for k, v in {"data": data, "label": label}.items() if k in given}
    cfg = _resolve(config, {**options, "backend": backend})
    _readable_data(cfg.data, cfg.label, cfg.task)
    if cfg.reference and not cfg.port_cmd:
        fail("a config that names its own reference model needs its port: [port] cmd")
    # Each run's full report, kept only for the HTML page (the JSON matrix stays as it was).
    reports: dict[str, Any] = {}
    catalogue: list[dict[str, Any]] = []

    def keep(name: str, info: dict[str, Any] | None, report: Any) -> None:
        from harness.report.files import report_json

        reports[name] = report_json(report)
        if info:
            catalogue.append(info)

    with progress.live(console):
        rows, ok = detection_matrix(
            cfg, seeds, [f for f in only.split(",") if f], console, on_report=keep if html_path else None
        )
    if json_path:
        owner.write(json_path, owner.json_text(owner.DETECTION_MATRIX, {"detection_matrix": rows, "passed": ok}))
    if html_path:
        from harness.report.html import render_faults, write_html

        config = {"data": str(cfg.data), "label": cfg.label, "backend": cfg.backend, "seeds": seeds}
        try:
            write_html(render_faults(rows, ok, reports, catalogue, config), html_path)
        except OSError as e:
            fail(f"cannot write the report: {e}")
    raise typer.Exit(0 if ok else 1)


@data_app.command("generate")
def data_generate(
    out: Annotated[Path, typer.Option("--out", help="where to write the CSV")] = BUNDLED_DATA,
    seed: Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX)] = 20240601,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
) -> None:
    """Write the bundled dataset (deterministic for a seed)."""
    from harness.datagen import write

    if not out.parent.is_dir():
        fail(f"cannot write '{out}': folder '{out.parent}' does not exist")
    if out.is_dir():
        fail(f"cannot write '{out}': it is a directory")
    try:
        n = write(out, seed, force)
    except FileExistsError as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot write '{out}': {e.strerror or e}")
    console.print(f"wrote {n} rows to {out}")


def main(args: list[str] | None = None) -> None:
    """The console script. Whatever stops a run before its verdict, a usage error included, is one
    line on stderr and exit code 2 (click's own report is a usage block plus a framed message)."""
    try:
        code = app(args=args, standalone_mode=False)
    except NoArgsIsHelpError as e:  # the help text is already printed
        sys.exit(e.exit_code)
    except ClickException as e:
        message = " ".join(e.format_message().split()) or type(e).__name__
        sys.stderr.write(f"error: {message}\n")
        sys.exit(2)
    except typer.Abort:
        sys.stderr.write("error: aborted\n")
        sys.exit(2)
    except (HarnessError, PortFailure) as e:
        fail_msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        sys.stderr.write(f"error: {fail_msg}\n")
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()

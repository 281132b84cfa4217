"""Diffs as pytest tests: `pytest --harness-config path/to/harness.toml` collects one test per stage of
each configured model, seed (`--harness-seeds 0,1,2`) and backend (`--harness-backends flex,ndarray`),
named `harness[<config>-seed<N>-<backend>]::<stage>`. A backend goes to the harness's own port as
`backend`, and to a port command as ` --backend NAME` appended (as `faults check` appends `--fault`).

A stage that passes is a pass, SKIP is a skip with its reason, FAIL and ERROR fail with the stage's
first failing check, its hint (the named cause) and the path of the run's JSON and HTML reports, which
are written under `--harness-reports` (default: pytest's basetemp) and recorded as junit properties.
Each (config, seed) runs `diff all` once per process; with pytest-xdist (`-n auto`) the workers share
the reference cache (harness/cache.py), so the reference is trained once, by whichever worker is first.
Registered through the `pytest11` entry point; plain `pytest` without the option collects nothing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

_RUNS: dict[tuple[str, int, str], Any] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "burn-torch-harness diffs as tests")
    group.addoption(
        "--harness-config",
        action="append",
        default=[],
        metavar="PATH",
        help="a harness.toml whose diff is collected as one test per stage (repeatable)",
    )
    group.addoption("--harness-seeds", default="", metavar="N,...", help="seeds to run (default: the config's)")
    group.addoption(
        "--harness-backends", default="", metavar="NAME,...", help="Burn backends to run (default: the config's)"
    )
    group.addoption("--harness-reports", default="", metavar="DIR", help="where each run's JSON and HTML go")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    paths = config.getoption("harness_config")
    if not paths:
        return
    from harness.stages import STAGE_NAMES

    seeds = [int(s) for s in str(config.getoption("harness_seeds")).split(",") if s.strip()] or [None]
    backends = [b.strip() for b in str(config.getoption("harness_backends")).split(",") if b.strip()] or [None]
    for path in paths:
        for seed in seeds:
            for backend in backends:
                name = _run_name(path, seed, backend)
                run = HarnessRun.from_parent(
                    session, name=name, nodeid=name, toml=Path(path), seed=seed, backend=backend
                )
                items.extend(
                    HarnessStage.from_parent(run, name=stage, nodeid=f"{name}::{stage}", stage=stage)
                    for stage in STAGE_NAMES
                )


def _run_name(path: str, seed: int | None, backend: str | None = None) -> str:
    parts = [Path(path).parent.name or Path(path).stem]
    parts += [] if seed is None else [f"seed{seed}"]
    parts += [] if backend is None else [backend]
    return f"harness[{'-'.join(parts)}]"


class HarnessRun(pytest.Collector):
    """One configured model at one seed: its `diff all`, computed on first use in this process."""

    def __init__(self, *, toml: Path, seed: int | None, backend: str | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.config_path = toml.resolve()
        self.seed = seed
        self.backend = backend

    def collect(self) -> list[pytest.Item]:  # items are added by pytest_collection_modifyitems
        return []

    def report(self) -> Any:
        key = (str(self.config_path), -1 if self.seed is None else self.seed, self.backend or "")
        if key not in _RUNS:
            _RUNS[key] = self._run()
        return _RUNS[key]

    def _run(self) -> Any:
        from harness.config import resolve
        from harness.errors import HarnessError
        from harness.pipeline import run
        from harness.report.files import report_json, write_json
        from harness.report.html import render_diff, write_html

        overrides: dict[str, Any] = {"cache": True}
        if self.seed is not None:
            overrides["seed"] = self.seed
        try:
            cfg = resolve(self.config_path, overrides)
        except HarnessError as e:
            return e
        if self.backend is not None:
            cmd = f"{cfg.port_cmd} --backend {self.backend}" if cfg.port_cmd else None
            cfg = cfg.with_(backend=self.backend, port_cmd=cmd)
        report = run(cfg)
        out = self.config.getoption("harness_reports")
        if not out:
            factory = getattr(self.config, "_tmp_path_factory", None)
            out = str(factory.getbasetemp()) if factory is not None else tempfile.mkdtemp(prefix="harness-")
        stem = Path(out) / self.name.replace("[", "-").replace("]", "")
        stem.parent.mkdir(parents=True, exist_ok=True)
        write_json(report, stem.with_suffix(".json"))
        write_html(render_diff(report_json(report)), stem.with_suffix(".html"))
        report.files = [str(stem.with_suffix(".json")), str(stem.with_suffix(".html"))]  # type: ignore[attr-defined]
        return report


class StageFailed(Exception):
    """A stage that did not pass; the message is the report's."""


class HarnessStage(pytest.Item):
    def __init__(self, *, stage: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.stage = stage

    def runtest(self) -> None:
        from harness.errors import HarnessError

        assert isinstance(self.parent, HarnessRun)
        report = self.parent.report()
        if isinstance(report, HarnessError):
            raise StageFailed(f"the config cannot run: {report}")
        for f in getattr(report, "files", []):
            self.user_properties.append(("harness_report", f))
        res = next(r for r in report.results if r.stage == self.stage)
        if res.status == "PASS":
            return
        if res.status == "SKIP":
            pytest.skip(res.hint)
        worst = res.first_failure
        lines = [f"{res.stage} {res.status}: {res.error or res.hint}"]
        if worst is not None:
            lines.append(f"  {worst.summary()}")
        lines += [f"  report: {f}" for f in getattr(report, "files", [])]
        raise StageFailed("\n".join(lines))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, StageFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        assert isinstance(self.parent, HarnessRun)
        return self.parent.config_path, 0, f"{self.parent.name}::{self.stage}"

"""The harness's layers point one way: no import cycle between its packages and top-level modules
(harness.config, data, stages, diagnosis, reference, transport, report, pipeline, ...), counting imports
inside functions too; and the bottom layers (the configuration, the stage names, the results and their
reports) load without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "harness"


def _unit(module: str) -> str | None:
    """The package or top-level module of `module` within harness (`harness.stages.base` -> `stages`)."""
    parts = module.split(".")
    if parts[0] != "harness":
        return None
    return parts[1] if len(parts) > 1 else "harness"


def import_graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for f in HARNESS.rglob("*.py"):
        name = ".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        src = _unit(name)
        for node in ast.walk(ast.parse(f.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                unit = _unit(t)
                if unit and src and unit != src:
                    edges[src].add(unit)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_between_the_harness_packages_has_no_cycle() -> None:
    edges = import_graph()
    assert {"config", "stages", "diagnosis", "reference", "transport", "report", "pipeline"} <= set(edges)
    assert cycles(edges) == [], {k: sorted(v) for k, v in edges.items()}


def test_the_cycle_finder_finds_a_cycle() -> None:
    # Control: the check above can fail.
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_bottom_layers_load_without_torch() -> None:
    code = (
        "import sys\n"
        "import harness.config, harness.stage_names, harness.results, harness.report.owner, harness.report.files\n"
        "import harness.stages\n"
        "assert harness.stages.STAGE_NAMES[0] == 'config'\n"
        "print(sorted(m for m in ('torch', 'harness.reference', 'harness.stages.base') if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr

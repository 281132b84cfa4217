"""The JSON and JUnit XML reports."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from harness.pipeline import Report

SCHEMA_PATH = Path(__file__).with_name("schema.json")


def _clean(o: Any) -> Any:
    """JSON has no NaN or inf: write them as strings so the report stays standard JSON."""
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if hasattr(o, "item") and callable(o.item):
        return _clean(o.item())
    return o


def report_json(report: Report) -> dict[str, Any]:
    return _clean(report.to_dict())


def write_json(report: Report, path: Path) -> None:
    path.write_text(json.dumps(report_json(report), indent=2, allow_nan=False) + "\n")


def write_junit(report: Report, path: Path) -> None:
    results = report.results
    suite = ET.Element(
        "testsuite",
        name="harness.diff",
        tests=str(len(results)),
        failures=str(sum(r.status == "FAIL" for r in results)),
        errors=str(sum(r.status == "ERROR" for r in results)),
        skipped=str(sum(r.status == "SKIP" for r in results)),
        time=f"{report.seconds:.3f}",
    )
    for r in results:
        case = ET.SubElement(suite, "testcase", classname="harness.diff", name=r.stage, time=f"{r.seconds:.3f}")
        if r.status == "FAIL":
            worst = r.first_failure
            f = ET.SubElement(case, "failure", message=r.hint or (worst.summary() if worst else "diverged"))
            f.text = "\n".join(c.summary() for c in r.checks if not c.passed)
        elif r.status == "ERROR":
            ET.SubElement(case, "error", message=r.error)
        elif r.status == "SKIP":
            ET.SubElement(case, "skipped")
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="unicode", xml_declaration=True)

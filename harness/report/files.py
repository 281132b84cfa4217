"""The JSON and JUnit XML reports."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from harness.report import owner
from harness.results import Report

SCHEMA_PATH = Path(__file__).with_name("schema.json")


def report_json(report: Report) -> dict[str, Any]:
    return owner.plain(report.to_dict())


def write_json(report: Report, path: Path) -> None:
    owner.write(path, owner.json_text(owner.DIFF_REPORT, report_json(report)))


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
    # The ownership comment comes first (no XML declaration: UTF-8 is XML's default).
    owner.write(path, owner.xml_head(owner.DIFF_JUNIT) + ET.tostring(root, encoding="unicode") + "\n")

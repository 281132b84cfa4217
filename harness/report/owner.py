"""Which output files the harness may overwrite: only those it wrote itself.

Ownership is decided by the file's first bytes, which the harness always writes first and checks
exactly: for JSON `{` then `"schema": "<schema id>",` on the next line, for XML a comment line naming
the schema. A foreign file that merely mentions a schema id or a tool name somewhere cannot match.
Whether the path can be written is tried before any work, so a long run never ends in a write error.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.results import SCHEMA_NAME

# The diff report's schema id lives with the report (harness/results.py).
DIFF_REPORT = SCHEMA_NAME
DIFF_JUNIT = "burn-torch-harness/diff-junit"
TRAIN_RUN = "burn-torch-harness/train-run"
DETECTION_MATRIX = "burn-torch-harness/detection-matrix"
# The JUnit files written before the header comment existed: ElementTree's declaration, then the
# suite the harness names. Exact, so that nothing but those reports matches.
LEGACY_JUNIT = "<?xml version='1.0' encoding='utf-8'?>\n<testsuites><testsuite name=\"harness.diff\""


def plain(o: Any) -> Any:
    """JSON has no NaN or inf: write them as strings so the file stays standard JSON; numpy scalars as
    Python numbers."""
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    if isinstance(o, dict):
        return {k: plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [plain(v) for v in o]
    if hasattr(o, "item") and callable(o.item):
        return plain(o.item())
    return o


def json_head(schema: str) -> str:
    return '{\n  "schema": ' + json.dumps(schema) + ","


def xml_head(schema: str) -> str:
    return f"<!-- written by harness: {schema} -->\n"


def html_head(schema: str) -> str:
    """What harness/report/html.py's pages begin with (tests/test_contract.py holds the two together)."""
    return f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="{schema}">'


def json_text(schema: str, payload: dict[str, Any]) -> str:
    """`payload` as the harness writes JSON: the schema id first, standard JSON (no NaN)."""
    text = json.dumps(plain({"schema": schema, **payload}), indent=2, allow_nan=False, default=str) + "\n"
    assert text.startswith(json_head(schema))
    return text


def check_writable(path: Path, head: str, *legacy: str) -> None:
    """HarnessError unless `path` can be written and is new or was written by the harness (starts with
    `head` or one of the `legacy` heads). Tries the write without changing an existing file."""
    path = Path(path)
    if not path.parent.is_dir():
        raise HarnessError(f"cannot write '{path}': folder '{path.parent}' does not exist")
    if path.is_dir():
        raise HarnessError(f"cannot write '{path}': it is a directory")
    if path.exists():
        heads = [h.encode() for h in (head, *legacy)]
        try:
            with path.open("rb") as f:
                first = f.read(max(len(h) for h in heads))
        except OSError as e:
            raise HarnessError(f"cannot read '{path}' to check who wrote it: {e.strerror or e}") from e
        if not any(first.startswith(h) for h in heads):
            raise HarnessError(f"'{path}' exists and was not written by harness; remove it or choose another path")
    try:
        if path.exists():
            with path.open("r+b"):
                pass
        else:
            with path.open("xb"):
                pass
            path.unlink()
    except OSError as e:
        raise HarnessError(f"cannot write '{path}': {e.strerror or e}") from e


def write(path: Path, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as e:
        raise HarnessError(f"cannot write '{path}': {e.strerror or e}") from e

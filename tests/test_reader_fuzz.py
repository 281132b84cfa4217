"""Differential fuzzing of the two CSV readers: every generated file is either read by the reference
(harness/data.py) and the port (rust_bridge's load_csv) into the same table, or rejected by the harness
with one line naming the line and column. The rules both follow are harness/csvcheck.py's docstring.

Fixed budget and derandomized, so CI runs the same cases every time.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from harness.csvcheck import Table
from harness.data import differences, load_table
from harness.errors import HarnessError
from tests.needs import burn as needs_burn

EXAMPLES = 200
BUDGET = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

# Cells by kind. Each column draws mostly from one kind, so that many files are valid and the
# accepted path is exercised as much as the rejections.
INTS = ["0", "1", "-0", "+5", "007", "42", "-17", "9007199254740993", "9223372036854775807", "-9223372036854775808"]
BIG_INTS = ["9223372036854775808", "-9223372036854775809", "100000000000000000000", "18446744073709551616"]
FLOATS = ["0.5", "1.", ".5", "-.25", "+1.5", "1e5", "1E+05", "1.e5", "2.5e-3", "0.1000000000000000055511151231257827"]
EXTREMES = ["1e-320", "4.9e-324", "2e-324", "1e-400", "1.7976931348623157e308", "1e150", "-1e200", "1e300"]
BOOLS = ["true", "True", "TRUE", "false", "False", "FALSE"]
ODD_BOOLS = ["tRue", "yes", "no", "t", "f", "T", "F"]
NONFINITE = ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "+inf", "1e400", "-1e999"]
MISSING = ["", "NA", "N/A", "null", "NULL", "None", "#N/A", "n/a", "<NA>", "-1.#IND"]
GARBAGE = ["x", "1_000", "0x1A", "1,5", "１", "1d5", "½", "1 2", "--1", "1e", "e5", ".", "+", "1.2.3", "٣"]
SPACED = [" 1", "1 ", "\t2", " true", "0.5 ", "\u00a01"]
LABELS = ["0", "1", "true", "false", "True", "FALSE", "1.00", "0.0", "1e0", "-0", "+1", ".0"]
BAD_LABELS = ["2", "-1", "0.5", "", "nan", "yes", " 1"]
GOOD_NAMES = ["x", "nan", "NA", "1", "a b", "a,b", 'a"b', "é", "f.", "True", "Unnamed", "#"]
BAD_NAMES = ["", "Unnamed: 0", "Unnamed: 3", " a", "a ", "\ufeffz", "a\u200bb", "\t"]
BREAKAGES = ["no rows", "names", "label twice", "labels", "cells", "line ends", "blank lines", "ragged"]

KINDS = {
    "int": INTS,
    "bigint": INTS + BIG_INTS,
    "float": INTS + FLOATS,
    "extreme": FLOATS + EXTREMES[:-1],
    "bool": BOOLS,
}
NOISE = NONFINITE + MISSING + GARBAGE + SPACED + ODD_BOOLS + BOOLS + INTS + EXTREMES[-1:]


@dataclass
class Case:
    text: str
    label: str


@st.composite
def csv_files(draw: st.DrawFn) -> Case:
    """Half the files follow the rules (so the accepted path is exercised as much as rejections);
    the other half carry one breakage, of every kind the rules name."""
    clean = draw(st.booleans())
    broken = set() if clean else {draw(st.sampled_from(BREAKAGES))}
    n_features = draw(st.one_of(st.integers(1, 6), st.integers(1, 199)))
    n_rows = draw(st.integers(0 if "no rows" in broken else 1, 6))
    label = draw(st.sampled_from(["label", "y", "Label"]))
    names = [f"f{j}" for j in range(n_features)]
    for j in range(n_features):
        if draw(st.integers(0, 9)) == 0:
            names[j] = draw(st.sampled_from(GOOD_NAMES)) + str(j)
    if "names" in broken:
        # Duplicates, blanks, pandas' placeholders, spaces, an invisible character.
        j = draw(st.integers(0, n_features - 1))
        names[j] = draw(st.sampled_from([*BAD_NAMES, names[0]]))
    names.insert(draw(st.integers(0, n_features)), label)
    if "label twice" in broken:
        names.append(label)
    kinds = [draw(st.sampled_from(list(KINDS))) for _ in names]
    label_spellings = draw(
        st.lists(st.sampled_from(LABELS), min_size=1, max_size=3 if "labels" in broken else 2, unique=True)
    )
    noise = draw(st.sampled_from([0.02, 0.1, 0.3])) if "cells" in broken else 0.0
    rows = []
    for _ in range(n_rows):
        row = []
        for name, kind in zip(names, kinds, strict=True):
            if name == label:
                bad = "labels" in broken and draw(st.floats(0, 1)) < 0.2
                row.append(draw(st.sampled_from(BAD_LABELS if bad else label_spellings)))
            else:
                bad = draw(st.floats(0, 1)) < noise
                row.append(draw(st.sampled_from(NOISE if bad else KINDS[kind])))
        rows.append(row)
    quote_all = draw(st.booleans())
    quote_some = draw(st.floats(0, 0.3))

    def render(field: str) -> str:
        needs = any(c in field for c in ',"\n\r')
        if needs or quote_all or draw(st.floats(0, 1)) < quote_some:
            return '"' + field.replace('"', '""') + '"'
        return field

    eol = draw(st.sampled_from(["\r", "\n\r"] if "line ends" in broken else ["\n", "\r\n"]))
    lines = [",".join(render(f) for f in r) for r in [names, *rows]]
    blanks = ["", " ", ",", '"', "\t"] if "blank lines" in broken else [""]
    for _ in range(draw(st.integers(0, 3))):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(blanks)))
    if "ragged" in broken and rows:
        i = draw(st.integers(1, len(lines) - 1))
        lines[i] = lines[i] + draw(st.sampled_from([",", ",1", ',"x"', '"', '"1"x']))
    text = eol.join(lines) + (eol if draw(st.booleans()) else "")
    if draw(st.integers(0, 5)) == 0:
        text = "\ufeff" + text
    return Case(text, label)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


_counter = itertools.count()
# A rejection names where: a line and a column, or says what is wrong with the whole file.
WHERE = re.compile(r"^line \d+, columns? ")
FILE_LEVEL = ("is empty", "has a header but no rows", "not found in", "has no feature columns")


def reference(case: Case, folder: Path) -> tuple[Path, Table | HarnessError]:
    # A fresh name per example: nothing may depend on one file's earlier version.
    path = folder / f"case{next(_counter)}.csv"
    path.write_bytes(case.text.encode("utf-8"))
    try:
        return path, load_table(path, case.label)
    except HarnessError as e:
        msg = str(e)
        assert "\n" not in msg and "\r" not in msg and len(msg.splitlines()) == 1, repr(msg)
        assert WHERE.match(msg) or any(s in msg for s in FILE_LEVEL), msg
        assert "internal error" not in msg, msg
        return path, e


@BUDGET
@given(case=csv_files())
def test_reference_reader_reads_by_the_shared_rules_or_rejects_in_one_line(case: Case, folder: Path) -> None:
    """No file makes the reference raise anything but a one-line HarnessError naming where; an
    accepted file's pandas table equals the rules' table (load_table checks that itself)."""
    _, got = reference(case, folder)
    # Shown by --hypothesis-show-statistics: the share of files that reach the port.
    event("accepted" if isinstance(got, Table) else "rejected")


@pytest.fixture(scope="module")
def port():  # the in-process port
    needs_burn()
    from harness.port import BurnPort

    return BurnPort("flex")


@BUDGET
@given(case=csv_files())
def test_the_port_reads_every_accepted_file_into_the_same_table(case: Case, folder: Path, port) -> None:
    path, ref = reference(case, folder)
    if isinstance(ref, HarnessError):
        return  # rejected by the harness before any comparison: the port never sees it
    try:
        got = port.load_csv(path, case.label)
    except Exception as e:
        pytest.fail(f"the harness accepts this file but the port rejects it: {e}\n{case.text!r}")
    table = Table(
        list(got["feature_names"]), list(got["dtypes"]), np.asarray(got["features"]), np.asarray(got["labels"])
    )
    what = differences(ref, table)
    assert not what, f"reference vs port: {what}\n{case.text!r}"

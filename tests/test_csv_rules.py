"""The shared CSV rules (harness/csvcheck.py), form by form: what both sides read, and to what, and what
the harness rejects with which one-line message. The accepted forms are also read by the port, which
must agree; the rejected ones never reach it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.csvcheck import Table
from harness.data import differences, load_table
from harness.errors import HarnessError
from tests.needs import burn as needs_burn

H = "f1,f2,label\n"

# (id, file text, feature names, dtypes, features, labels)
ACCEPTED = [
    (
        "ints floats bools",
        "a,b,c,label\n1,true,0.5,true\n2,false,1.5,false\n",
        ["a", "b", "c"],
        ["int64", "bool", "float64"],
        [[1, 1, 0.5], [2, 0, 1.5]],
        [1, 0],
    ),
    (
        "number notations",
        H + "+5,1.\n007,.5\n-0,1e5\n1E+05,1.e5\n".replace("\n", ",1\n"),
        ["f1", "f2"],
        ["float64", "float64"],
        [[5, 1], [7, 0.5], [0, 1e5], [1e5, 1e5]],
        [1, 1, 1, 1],
    ),
    (
        "bool spellings",
        H + "true,FALSE,1\nTrue,false,0\nTRUE,False,1\n",
        ["f1", "f2"],
        ["bool", "bool"],
        [[1, 0], [1, 0], [1, 0]],
        [1, 0, 1],
    ),
    ("label 1.00/0.00", H + "1,2,1.00\n3,4,0.00\n", ["f1", "f2"], ["int64", "int64"], [[1, 2], [3, 4]], [1, 0]),
    ("label mixes true and 0", H + "1,2,true\n3,4,0\n", ["f1", "f2"], ["int64", "int64"], [[1, 2], [3, 4]], [1, 0]),
    ("label 1e0/-0", H + "1,2,1e0\n3,4,-0\n", ["f1", "f2"], ["int64", "int64"], [[1, 2], [3, 4]], [1, 0]),
    (
        "integers beyond int64 are float64",
        H + "100000000000000000000,9223372036854775808,1\n2,3,0\n",
        ["f1", "f2"],
        ["float64", "float64"],
        [[1e20, 9223372036854775808.0], [2, 3]],
        [1, 0],
    ),
    (
        "int64 extremes stay int64",
        H + "9223372036854775807,-9223372036854775808,1\n9007199254740993,0,0\n",
        ["f1", "f2"],
        ["int64", "int64"],
        [[2.0**63, -(2.0**63)], [9007199254740992.0, 0]],
        [1, 0],
    ),
    (
        "5,000 leading zeros",
        H + "0" * 5000 + "1,-" + "0" * 30 + "5,1\n2,3,0\n",
        ["f1", "f2"],
        ["int64", "int64"],
        [[1, -5], [2, 3]],
        [1, 0],
    ),
    (
        "subnormal and underflow",
        H + "1e-320,1e-400,1\n4.9e-324,2e-324,0\n",
        ["f1", "f2"],
        ["float64", "float64"],
        [[1e-320, 0.0], [5e-324, 0.0]],
        [1, 0],
    ),
    (
        "long decimals round correctly",
        H + "0.1000000000000000055511151231257827,2.5,1\n1,2,0\n",
        ["f1", "f2"],
        ["float64", "float64"],
        [[0.1, 2.5], [1, 2]],
        [1, 0],
    ),
    (
        "quoted fields and names",
        '"f1","a,b","x""y",label\n"1","2.5","true",1\n3,4,false,0\n',
        ["f1", "a,b", 'x"y'],
        ["int64", "float64", "bool"],
        [[1, 2.5, 1], [3, 4, 0]],
        [1, 0],
    ),
    ("CRLF", "f1,f2,label\r\n1,2,1\r\n3,4,0\r\n", ["f1", "f2"], ["int64", "int64"], [[1, 2], [3, 4]], [1, 0]),
    ("no final newline", H + "1,2,1\n3,4,0", ["f1", "f2"], ["int64", "int64"], [[1, 2], [3, 4]], [1, 0]),
    (
        "blank lines anywhere",
        "\n\n" + H + "1,2,1\n\n\r\n3,4,0\n\n",
        ["f1", "f2"],
        ["int64", "int64"],
        [[1, 2], [3, 4]],
        [1, 0],
    ),
    ("byte-order mark", "\ufeff" + H + "1,2,1\n3,4,0\n", ["f1", "f2"], ["int64", "int64"], [[1, 2], [3, 4]], [1, 0]),
    ("label first", "label,f1\n1,2\n0,3\n", ["f1"], ["int64"], [[2], [3]], [1, 0]),
    (
        "odd but printable names",
        "nan,NA,1,a b,é,label\n1,2,3,4,5,1\n",
        ["nan", "NA", "1", "a b", "é"],
        ["int64"] * 5,
        [[1, 2, 3, 4, 5]],
        [1],
    ),
]

# (id, file text, message)
REJECTED = [
    ("space before a value", H + "1, 2,1\n", "line 2, column 'f2': ' 2' has spaces around it"),
    ("tab after a value", H + "1,2\t,1\n", "line 2, column 'f2': '2\\t' has spaces around it"),
    ("spaces inside quotes", H + '1," 2",1\n', "line 2, column 'f2': ' 2' has spaces around it"),
    ("no-break space", H + "1,2\u00a0,1\n", "line 2, column 'f2': '2\\xa0' has spaces around it"),
    ("space around a name", "f1, f2,label\n1,2,1\n", "line 1, column 2: column name ' f2' has spaces around it"),
    ("invisible character in a name", "f\u200b1,f2,label\n1,2,1\n", "line 1, column 1: column name 'f\\u200b1' holds"),
    ("duplicate names", "f1,f1,label\n1,2,1\n", "line 1, columns 1 and 2: duplicate column name 'f1'"),
    ("label twice", "label,f1,label\n1,2,1\n", "line 1, columns 1 and 3: duplicate column name 'label'"),
    ("pandas index column", ",f1,label\n0,2,1\n", "line 1, column 1: empty column name (a pandas index column?"),
    ("pandas placeholder name", "Unnamed: 0,f1,label\n0,2,1\n", "column 'Unnamed: 0' is a pandas index column"),
    ("trailing comma", "f1,f2,label,\n1,2,1,\n", "line 1, column 4: empty column name"),
    ("whitespace-only line", H + "1,2,1\n  \n3,4,0\n", "line 3, column 1: a line holding only whitespace"),
    ("lone carriage return", "f1,f2,label\r1,2,1\r", "line 1, column 12 (character): a carriage return"),
    ("text after a closing quote", H + '"1"2,3,1\n', "line 2, column 'f1': text after the closing quote"),
    ("quote inside a field", H + '1,2"3,1\n', "line 2, column 'f2': a quote inside an unquoted field"),
    ("unterminated quote", H + '"1,2,1\n', "line 2, column 'f1': a quoted field does not end on its line"),
    ("line break in a quoted name", '"f\n1",f2,label\n1,2,1\n', "line 1, column 1: a quoted field does not end"),
    ("a field too many", H + "1,2,1,4\n", "line 2, column 4: a field beyond the header's 3 columns"),
    ("a field too few", H + "1,2\n", "line 2, column 'label': missing (the line has 2 fields, the header 3)"),
    ("empty cell after blank lines", H + "1,2,1\n\n\n,4,0\n", "line 5, column 'f1': empty cell"),
    ("quoted empty cell", H + '"",2,1\n', "line 2, column 'f1': empty cell"),
    ("NaN", H + "1,2,1\nNaN,4,0\n", "line 3, column 'f1': 'NaN' is not a finite number"),
    ("-inf", H + "1,-inf,1\n", "line 2, column 'f2': '-inf' is not a finite number"),
    ("Infinity", H + "Infinity,2,1\n", "line 2, column 'f1': 'Infinity' is not a finite number"),
    ("overflowing literal", H + "1e400,2,1\n", "line 2, column 'f1': '1e400' is not a finite number"),
    (
        "a 401-digit integer",
        H + "1" + "0" * 400 + ",2,1\n",
        "line 2, column 'f1': '1000000000000000000000000000000000000000...' is",
    ),
    ("NA marker", H + "NA,2,1\n", "line 2, column 'f1': 'NA' is not a number or true/false"),
    ("underscore digits", H + "1_000,2,1\n", "'1_000' is not a number or true/false"),
    ("hexadecimal", H + "0x1A,2,1\n", "'0x1A' is not a number or true/false"),
    ("non-ASCII digit", H + "\uff11,2,1\n", "is not a number or true/false"),
    ("other boolean spellings", H + "yes,2,1\n", "'yes' is not a number or true/false"),
    ("booleans mixed with numbers", H + "true,2,1\n1,2,0\n", "line 3, column 'f1': '1' mixes true/false with numbers"),
    ("label not binary", H + "1,2,2\n", "line 2, column 'label': '2' is not 0, 1, true or false"),
    ("three label spellings", H + "1,2,1\n3,4,1.0\n5,6,0\n", "line 4, column 'label': a third spelling '0'"),
    ("scaler overflow", H + "1e200,2,1\n-1e200,3,0\n", "line 2, column 'f1': 1e+200 is too large to scale"),
    ("header only", H, "has a header but no rows"),
    ("blank file", "\n\n", "is empty"),
    ("label missing", "f1,f2\n1,2\n", "label column 'label' not found"),
    ("no features", "label\n1\n", "has no feature columns"),
]


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "d.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


@pytest.mark.parametrize(
    ("text", "names", "dtypes", "features", "labels"), [a[1:] for a in ACCEPTED], ids=[a[0] for a in ACCEPTED]
)
def test_the_reference_reads_the_accepted_forms(
    tmp_path: Path, text: str, names: list[str], dtypes: list[str], features: list[list[float]], labels: list[int]
) -> None:
    t = load_table(_write(tmp_path, text), "label")
    expected = Table(names, dtypes, np.array(features, dtype=np.float64), np.array(labels, dtype=np.float32))
    assert differences(expected, t) == ""


@pytest.mark.parametrize("text", [a[1] for a in ACCEPTED], ids=[a[0] for a in ACCEPTED])
def test_the_port_reads_the_accepted_forms_into_the_same_table(tmp_path: Path, text: str) -> None:
    needs_burn()
    from harness.port import BurnPort

    path = _write(tmp_path, text)
    got = BurnPort("flex").load_csv(path, "label")
    port = Table(
        list(got["feature_names"]), list(got["dtypes"]), np.asarray(got["features"]), np.asarray(got["labels"])
    )
    assert differences(load_table(path, "label"), port) == ""


@pytest.mark.parametrize(("text", "message"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_the_harness_rejects_the_other_forms_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(HarnessError) as e:
        load_table(_write(tmp_path, text), "label")
    assert message in str(e.value) and len(str(e.value).splitlines()) == 1, str(e.value)


def test_binary_and_foreign_encodings_are_rejected(tmp_path: Path) -> None:
    import bz2
    import gzip
    import lzma

    plain = (H + "1,2,1\n").encode()
    for data, kind in [(gzip.compress(plain), "gzip"), (bz2.compress(plain), "bzip2"), (lzma.compress(plain), "xz")]:
        with pytest.raises(HarnessError, match=f"is {kind}-compressed"):
            load_table(_write(tmp_path, data), "label")
    with pytest.raises(HarnessError, match="is UTF-16 text"):
        load_table(_write(tmp_path, (H + "1,2,1\n").encode("utf-16")), "label")
    with pytest.raises(HarnessError, match=r"line 2, column 3 \(byte\): byte 0xff is not UTF-8"):
        load_table(_write(tmp_path, H.encode() + b"1,\xff2,1\n"), "label")

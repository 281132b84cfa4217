"""The one reading of a data file that both sides share, and the harness's check that enforces it.

Every file is either read by both sides into the same table, or rejected here with one line
(HarnessError, exit code 2) before any comparison: a file the two readers could read differently
must never reach the data stage, where the difference would be blamed on the port. `read` is the
executable form of the rules below; the reference's pandas reader (harness/data.py) is checked
against it on every load, and the port's reader (rust_bridge: burn-diff's src/prep/csv.rs, formerly
src/data.rs) by tests/test_reader_fuzz.py and tests/test_csv_rules.py.

The shared rules (a line number is the file's physical line, 1-based, blank lines included):

File
  F1  A regular, readable file. A missing path is "not found", a directory "is a directory",
      anything else (device, fifo) "is not a regular file"; a read error is reported as such.
  F2  Plain text whatever the name: gzip, bzip2, xz, zstd, zip and lz4 files (by magic bytes) are
      rejected; a plain file named .gz is read as plain text.
  F3  UTF-8; a byte-order mark at the very start is skipped (UTF-16 is rejected).
Lines
  L1  Lines end with \\n or \\r\\n; a lone \\r is rejected.
  L2  Empty lines are skipped anywhere, before the header too. A line holding only whitespace is
      rejected.
Fields
  Q1  Comma-separated. A field is unquoted and holds no '"', or is wholly quoted: "...", with ""
      standing for one '"', ending on its own line and followed by a comma or the line end.
  Q2  No whitespace at either end of a field, inside or outside quotes (nothing is trimmed).
      Quoting does not change a cell's meaning: "1" is the number 1, "true" the boolean.
Header (the first non-empty line)
  H1  Every name is non-empty, printable (no control, format or separator characters) and not
      pandas' placeholder for a nameless column ("Unnamed: 0"): both are a pandas index column.
  H2  Names are unique (so the label column appears once), compared exactly; at least two columns;
      the label column is one of them.
Records
  R1  Every record has as many fields as the header; at least one record.
  R2  No empty cell ("" quoted is empty too).
Cells
  C1  Booleans: true True TRUE false False FALSE, read as 1.0 and 0.0.
  C2  Numbers: ASCII [+-]?(D+(.D*)?|.D+)([eE][+-]?D+)? with D a digit 0-9: "1.", ".5", "+1",
      "007", "1e5", "1E+05" are numbers; "1_000", "0x1A", "1,5", "1d5", non-ASCII digits are not.
      Value: the correctly rounded float64 of the decimal; an integer (no '.', no exponent) in the
      int64 range is the exact integer, then rounded to float64 to nearest-even.
  C3  nan, inf, infinity in any case and sign, and numbers beyond float64's range (1e400), are
      "not a finite number"; everything else that is not C1 or C2 is "not a number or true/false".
Columns
  K1  A feature column is "bool" when every cell is a boolean, "int64" when every cell is an
      integer in the int64 range, "float64" otherwise; booleans mixed with numbers are rejected.
  K2  The label column: every cell a boolean or a number equal to 0 or 1 (any notation: 1, 1.00,
      1e0, -0); true or 1 is 1.0, else 0.0; at most two distinct spellings in the file.
Preparation
  P1  Each feature's largest magnitude m must satisfy n * (2m)^2 < float64's maximum (n rows): then
      no sum the scaler forms (values, squares, squared deviations) can overflow, in any order.

Messages name the line and the column: "line 7, column 'f3': 'nan' is not a finite number".
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import HarnessError


@dataclass
class Table:
    feature_names: list[str]
    dtypes: list[str]
    features: np.ndarray  # float64 [n, d]
    labels: np.ndarray  # float32 [n], 0/1


BOOLEANS = {"true": 1.0, "True": 1.0, "TRUE": 1.0, "false": 0.0, "False": 0.0, "FALSE": 0.0}
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NONFINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
_QUOTED = re.compile(r'"((?:[^"]|"")*)"')
_PANDAS_PLACEHOLDER = re.compile(r"Unnamed: [0-9]+")
_INT64 = (-(2**63), 2**63 - 1)
# Magic bytes of the compressed formats pandas would open by file name (compression="infer").
COMPRESSED = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"PK\x03\x04": "zip",
    b"\x04\x22\x4d\x18": "lz4",
}
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

# A cell's class: a boolean, an integer in int64, another number; anything else is an error message.
BOOL, INT, FLOAT = "bool", "int64", "float64"


def show(text: str, limit: int = 40) -> str:
    """A cell or name quoted for a one-line message: invisible characters escaped, long text cut."""
    s = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return f"'{s[:limit]}...'" if len(s) > limit else f"'{s}'"


def classify(token: str) -> tuple[str, float] | str:
    """(class, value) of one cell by C1-C3, or the problem with it. `token` is already unquoted."""
    if token == "":
        return "empty cell"
    if token != token.strip():
        return f"{show(token)} has spaces around it"
    if token in BOOLEANS:
        return BOOL, BOOLEANS[token]
    if _INTEGER.fullmatch(token):
        # Leading zeros stripped first: Python's int() refuses strings of more than 4,300 digits.
        digits = token.lstrip("+-").lstrip("0") or "0"
        if len(digits) <= 19:
            i = int(digits) * (-1 if token.startswith("-") else 1)
            if _INT64[0] <= i <= _INT64[1]:
                return INT, float(i)
    if _NUMBER.fullmatch(token):
        v = float(token)
        if not math.isfinite(v):
            return f"{show(token)} is not a finite number (beyond float64's range)"
        return FLOAT, v
    if _NONFINITE.fullmatch(token):
        return f"{show(token)} is not a finite number"
    return f"{show(token)} is not a number or true/false"


def label_value(token: str) -> float | str:
    """A label cell's value by K2, or the problem with it."""
    c = classify(token)
    if isinstance(c, str):
        return c
    if c[1] in (0.0, 1.0):
        return 1.0 if c[1] == 1.0 else 0.0
    return f"{show(token)} is not 0, 1, true or false; the label must be binary"


def read(path: Path, label: str, task: str = "binary") -> Table:
    """The table both sides must read from `path`, or HarnessError with the first broken rule.

    Cached by content and label: the reference, the port wrapper and the CLI's early validation all
    read the same file. The cached arrays are read-only for that reason.
    """
    raw = _bytes(Path(path))
    key = (hashlib.blake2b(raw, digest_size=16).digest(), label, task)
    table = _CACHE.get(key)
    if table is None:
        table = _parse(raw, Path(path), label, task)
        if len(_CACHE) >= 4:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = table
    return table


_CACHE: dict[tuple[bytes, str, str], Table] = {}


def _parse(raw: bytes, path: Path, label: str, task: str = "binary") -> Table:
    lines = _lines(_text(raw, path))
    if not lines:
        raise HarnessError(f"data file '{path}' is empty")
    header_no, header_line = lines[0]
    names = _fields(header_line, header_no, None)
    _check_names(names, header_no)
    if label not in names:
        raise HarnessError(
            f"label column '{label}' not found in '{path}'; columns are: {', '.join(show(n)[1:-1] for n in names)}"
        )
    if len(names) < 2:
        raise HarnessError(f"data file '{path}' has no feature columns")
    rows: list[list[str]] = []
    numbers: list[int] = []
    for no, line in lines[1:]:
        fields = _fields(line, no, names)
        if len(fields) != len(names):
            if len(fields) > len(names):
                raise HarnessError(
                    f"line {no}, column {len(names) + 1}: a field beyond the header's {len(names)} columns"
                )
            raise HarnessError(
                f"line {no}, column '{names[len(fields)]}': missing (the line has {len(fields)} fields, "
                f"the header {len(names)})"
            )
        rows.append(fields)
        numbers.append(no)
    if not rows:
        raise HarnessError(f"data file '{path}' has a header but no rows")
    return _table(names, label, rows, numbers, task)


def _bytes(path: Path) -> bytes:
    if not path.exists():
        raise HarnessError(f"data file '{path}' not found")
    if path.is_dir():
        raise HarnessError(f"data file '{path}' is a directory, not a CSV file")
    if not path.is_file():
        raise HarnessError(f"data file '{path}' is not a regular file")
    try:
        return path.read_bytes()
    except OSError as e:
        raise HarnessError(f"cannot read data file '{path}': {e.strerror or e}") from e


def _text(raw: bytes, path: Path) -> str:
    for magic, kind in COMPRESSED.items():
        if raw.startswith(magic):
            raise HarnessError(f"data file '{path}' is {kind}-compressed; decompress it: both sides read plain CSV")
    skip = len(UTF8_BOM) if raw.startswith(UTF8_BOM) else 0
    if raw.startswith(UTF16_BOMS):
        raise HarnessError(f"data file '{path}' is UTF-16 text; save it as UTF-8")
    try:
        return raw[skip:].decode("utf-8")
    except UnicodeDecodeError as e:
        at = skip + e.start
        line = raw.count(b"\n", 0, at) + 1
        column = at - (raw.rfind(b"\n", 0, at) + 1) + 1
        raise HarnessError(
            f"line {line}, column {column} (byte): byte 0x{raw[at]:02x} is not UTF-8; save the file as UTF-8"
        ) from e


def _lines(text: str) -> list[tuple[int, str]]:
    """Non-empty lines with their numbers (L1, L2)."""
    out = []
    for i, line in enumerate(text.split("\n"), start=1):
        if line.endswith("\r"):
            line = line[:-1]
        if "\r" in line:
            raise HarnessError(
                f"line {i}, column {line.index(chr(13)) + 1} (character): a carriage return without a line feed; "
                "end lines with \\n or \\r\\n"
            )
        if not line:
            continue
        if not line.strip():
            raise HarnessError(f"line {i}, column 1: a line holding only whitespace")
        out.append((i, line))
    return out


def _where(no: int, j: int, names: list[str] | None) -> str:
    return (
        f"line {no}, column {show(names[j])}" if names is not None and j < len(names) else f"line {no}, column {j + 1}"
    )


def _fields(line: str, no: int, names: list[str] | None) -> list[str]:
    """One line's fields by Q1 (unquoted; quotes removed, "" made ")."""
    if '"' not in line:
        return line.split(",")
    out: list[str] = []
    pos, n = 0, len(line)
    while True:
        if pos < n and line[pos] == '"':
            m = _QUOTED.match(line, pos)
            if m is None:
                raise HarnessError(f"{_where(no, len(out), names)}: a quoted field does not end on its line")
            out.append(m.group(1).replace('""', '"'))
            pos = m.end()
            if pos == n:
                return out
            if line[pos] != ",":
                raise HarnessError(f"{_where(no, len(out) - 1, names)}: text after the closing quote")
            pos += 1
            continue
        end = line.find(",", pos)
        field = line[pos:] if end < 0 else line[pos:end]
        if '"' in field:
            raise HarnessError(f"{_where(no, len(out), names)}: a quote inside an unquoted field")
        out.append(field)
        if end < 0:
            return out
        pos = end + 1


def _check_names(names: list[str], no: int) -> None:
    seen: dict[str, int] = {}
    for j, name in enumerate(names):
        where = f"line {no}, column {j + 1}"
        if name == "":
            raise HarnessError(f"{where}: empty column name (a pandas index column? write the CSV with index=False)")
        if name != name.strip():
            raise HarnessError(f"{where}: column name {show(name)} has spaces around it")
        if not name.isprintable():
            raise HarnessError(f"{where}: column name {show(name)} holds an invisible character")
        if _PANDAS_PLACEHOLDER.fullmatch(name):
            raise HarnessError(f"{where}: column {show(name)} is a pandas index column; write the CSV with index=False")
        if name in seen:
            raise HarnessError(f"line {no}, columns {seen[name] + 1} and {j + 1}: duplicate column name {show(name)}")
        seen[name] = j


def _table(names: list[str], label: str, rows: list[list[str]], numbers: list[int], task: str = "binary") -> Table:
    li = names.index(label)
    columns = list(zip(*rows, strict=True))
    # (row, column, message) of the first broken rule in each column; the earliest in row-major order wins.
    problems: list[tuple[int, int, str]] = []
    values: list[np.ndarray] = []
    kinds: list[str] = []
    for j, col in enumerate(columns):
        if j == li:
            problem, v = _label_column(col) if task == "binary" else _target_column(col, task)
        else:
            problem, v, kind = _feature_column(col)
            kinds.append(kind)
        if problem is not None:
            problems.append((problem[0], j, problem[1]))
        values.append(v)
    if problems:
        row, j, msg = min(problems)
        raise HarnessError(f"line {numbers[row]}, column {show(names[j])}: {msg}")
    features = np.stack([v for j, v in enumerate(values) if j != li], axis=1)
    feature_names = [name for j, name in enumerate(names) if j != li]
    _check_scaling(feature_names, features, numbers)
    features.flags.writeable = False
    labels = values[li].astype(np.float32)
    labels.flags.writeable = False
    return Table(feature_names, kinds, features, labels)


def _first_row(col: tuple[str, ...], bad: set[str]) -> int:
    return next(i for i, t in enumerate(col) if t in bad)


def _feature_column(col: tuple[str, ...]) -> tuple[tuple[int, str] | None, np.ndarray, str]:
    classes = {t: classify(t) for t in set(col)}
    bad = {t for t, c in classes.items() if isinstance(c, str)}
    if bad:
        i = _first_row(col, bad)
        return (i, str(classes[col[i]])), np.zeros(0), FLOAT
    kinds = {c[0] for c in classes.values() if not isinstance(c, str)}
    if BOOL in kinds and len(kinds) > 1:
        first = classes[col[0]][0]  # type: ignore[index]
        i = next(i for i, t in enumerate(col) if (classes[t][0] == BOOL) != (first == BOOL))  # type: ignore[index]
        return (i, f"{show(col[i])} mixes true/false with numbers in one column"), np.zeros(0), FLOAT
    kind = BOOL if kinds == {BOOL} else INT if kinds == {INT} else FLOAT
    value = {t: c[1] for t, c in classes.items() if not isinstance(c, str)}
    return None, np.fromiter((value[t] for t in col), dtype=np.float64, count=len(col)), kind


def _label_column(col: tuple[str, ...]) -> tuple[tuple[int, str] | None, np.ndarray]:
    spellings = {t: label_value(t) for t in set(col)}
    bad = {t for t, v in spellings.items() if isinstance(v, str)}
    problems = []
    if bad:
        i = _first_row(col, bad)
        problems.append((i, str(spellings[col[i]])))
    if len(spellings) > 2:
        seen: list[str] = []
        for i, t in enumerate(col):
            if t not in seen:
                seen.append(t)
                if len(seen) == 3:
                    problems.append(
                        (
                            i,
                            f"a third spelling {show(t)} after {show(seen[0])} and {show(seen[1])}; "
                            "the label must be binary (true/false or 0/1), one spelling per class",
                        )
                    )
                    break
    if problems:
        return min(problems), np.zeros(0)
    value = {t: float(v) for t, v in spellings.items()}
    return None, np.fromiter((value[t] for t in col), dtype=np.float64, count=len(col))


def _target_column(col: tuple[str, ...], task: str) -> tuple[tuple[int, str] | None, np.ndarray]:
    """K3: a multiclass label is a class index (an integer from 0); a regression target any finite number."""
    values = {t: classify(t) for t in set(col)}
    for i, t in enumerate(col):
        c = values[t]
        if isinstance(c, str):
            return (i, c), np.zeros(0)
        if task == "multiclass" and (c[0] == BOOL or c[1] != int(c[1]) or not 0 <= c[1] < 2**24):
            return (i, f"{show(t)} is not a class index; a multiclass label is an integer from 0"), np.zeros(0)
    return None, np.fromiter((values[t][1] for t in col), dtype=np.float64, count=len(col))  # type: ignore[index]


def scaling_limit(n_rows: int) -> float:
    """P1's largest usable magnitude: n * (2m)^2 below float64's maximum."""
    return math.sqrt(np.finfo(np.float64).max / max(n_rows, 1)) / 2


def _check_scaling(names: list[str], features: np.ndarray, numbers: list[int]) -> None:
    if features.size == 0:
        return
    limit = scaling_limit(features.shape[0])
    peak = np.abs(features).max(axis=0)
    over = np.flatnonzero(peak > limit)
    if over.size:
        j = int(over[0])
        i = int(np.argmax(np.abs(features[:, j])))
        raise HarnessError(
            f"line {numbers[i]}, column {show(names[j])}: {features[i, j]:.3g} is too large to scale: the scaler's "
            f"sums over {features.shape[0]} rows would overflow float64 beyond {limit:.3g}; rescale the column"
        )

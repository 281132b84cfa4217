//! CSV loading by the harness's shared rules: the docstring of `harness/csvcheck.py` (rules F1-P1)
//! is the specification, and its `read` the executable form this reader mirrors step by step. A
//! file is either read into the same table as the reference reads (pandas' semantics for this
//! schema: true/false cells are booleans, integer columns stay exact, floats are correctly rounded
//! f64), or rejected with the same one-line message, naming the physical line and the column.
//!
//! The reader is hand-written rather than built on the `csv` crate: the rules reject forms that a
//! general CSV reader accepts silently (text after a closing quote, a quote inside an unquoted field,
//! a line break inside quotes, a lone `\r`), trims or not at its own discretion, and counts records
//! rather than physical lines. Reading bytes, splitting lines and fields here keeps every decision
//! visible and identical to csvcheck.py's, including which problem is reported first.

use std::borrow::Cow;
use std::path::Path;

use crate::contract::Table;
use crate::error::{input, Result};
use crate::tensor::Matrix64;

/// Magic bytes of the compressed formats pandas would open by file name (F2), in csvcheck.py's order.
const COMPRESSED: [(&[u8], &str); 6] = [
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"PK\x03\x04", "zip"),
    (b"\x04\x22\x4d\x18", "lz4"),
];
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";
const UTF16_BOMS: [&[u8]; 2] = [b"\xff\xfe", b"\xfe\xff"];

/// A feature column's class (K1), as its dtype name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Float,
}

impl Kind {
    fn dtype(self) -> &'static str {
        match self {
            Kind::Bool => "bool",
            Kind::Int => "int64",
            Kind::Float => "float64",
        }
    }
}

/// The first broken rule of one column: its row (0-based among the records) and the message.
type Problem = (usize, String);

/// What the label column holds: csvcheck.py's `task`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// K2: 0/1 or true/false.
    Binary,
    /// K3: class indices, integers from 0.
    Multiclass,
    /// K3: any finite number (true/false read as 1 and 0, as pandas does).
    Regression,
}

/// Loads `path`, taking `label` as the target column and every other column as a feature.
///
/// Follows the harness's shared CSV rules (`harness/csvcheck.py`): any file the rules reject is an
/// input error with csvcheck.py's one-line message, so the port and the harness say the same thing.
pub fn read_csv(path: &Path, label: &str) -> Result<Table> {
    read(path, label, Target::Binary)
}

/// [`read_csv`] for a multiclass label (csvcheck.py's `read(path, label, "multiclass")`, rule K3):
/// every label cell is a class index, a number equal to an integer in `0..2^24` (not a boolean),
/// read as that index.
pub fn read_csv_multiclass(path: &Path, label: &str) -> Result<Table> {
    read(path, label, Target::Multiclass)
}

/// [`read_csv`] for a regression target (csvcheck.py's `read(path, label, "regression")`, rule K3):
/// every label cell is a finite number, read as f32 (the contract's targets) after its f64 parse.
pub fn read_csv_regression(path: &Path, label: &str) -> Result<Table> {
    read(path, label, Target::Regression)
}

fn read(path: &Path, label: &str, target: Target) -> Result<Table> {
    let shown = path.display().to_string();
    let raw = read_bytes(path, &shown)?;
    let text = decode(&raw, &shown)?;
    // All lines are checked (L1, L2) before the header is looked at, as csvcheck.py does.
    let lines = split_lines(text)?;
    let Some((&(header_no, header_line), records)) = lines.split_first() else {
        return input(format!("data file '{shown}' is empty"));
    };
    let names: Vec<String> = fields(header_line, header_no, None)?
        .into_iter()
        .map(Cow::into_owned)
        .collect();
    check_names(&names, header_no)?;
    let Some(li) = names.iter().position(|n| n == label) else {
        let listed: Vec<String> = names
            .iter()
            .map(|n| {
                let s = show(n);
                s[1..s.len() - 1].to_string()
            })
            .collect();
        return input(format!(
            "label column '{label}' not found in '{shown}'; columns are: {}",
            listed.join(", ")
        ));
    };
    if names.len() < 2 {
        return input(format!("data file '{shown}' has no feature columns"));
    }
    // Cells row-major, `names.len()` per record; `numbers[i]` is record i's physical line.
    let width = names.len();
    let mut cells: Vec<Cow<str>> = Vec::with_capacity(records.len() * width);
    let mut numbers = Vec::with_capacity(records.len());
    for &(no, line) in records {
        let row = fields(line, no, Some(names.as_slice()))?;
        if row.len() > width {
            return input(format!(
                "line {no}, column {}: a field beyond the header's {width} columns",
                width + 1
            ));
        }
        if row.len() < width {
            return input(format!(
                "line {no}, column '{}': missing (the line has {} fields, the header {width})",
                names[row.len()],
                row.len()
            ));
        }
        cells.extend(row);
        numbers.push(no);
    }
    if numbers.is_empty() {
        return input(format!("data file '{shown}' has a header but no rows"));
    }
    table(&names, li, label, &cells, &numbers, target)
}

/// F1: a regular, readable file, its whole content.
fn read_bytes(path: &Path, shown: &str) -> Result<Vec<u8>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        // The errors for which Python's `Path.exists()` answers False.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT | libc::ENOTDIR | libc::EBADF | libc::ELOOP)
            ) =>
        {
            return input(format!("data file '{shown}' not found"));
        }
        Err(e) => return input(format!("cannot read data file '{shown}': {}", strerror(&e))),
    };
    if meta.is_dir() {
        return input(format!(
            "data file '{shown}' is a directory, not a CSV file"
        ));
    }
    if !meta.is_file() {
        return input(format!("data file '{shown}' is not a regular file"));
    }
    std::fs::read(path)
        .or_else(|e| input(format!("cannot read data file '{shown}': {}", strerror(&e))))
}

/// An OS error as Python's `strerror` words it: without Rust's " (os error N)" suffix.
fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(p) if s.ends_with(')') => s[..p].to_string(),
        _ => s,
    }
}

/// F2, F3: plain UTF-8 text, without a leading byte-order mark.
fn decode<'a>(raw: &'a [u8], shown: &str) -> Result<&'a str> {
    for (magic, kind) in COMPRESSED {
        if raw.starts_with(magic) {
            return input(format!(
                "data file '{shown}' is {kind}-compressed; decompress it: both sides read plain CSV"
            ));
        }
    }
    let skip = if raw.starts_with(UTF8_BOM) {
        UTF8_BOM.len()
    } else {
        0
    };
    if UTF16_BOMS.iter().any(|b| raw.starts_with(b)) {
        return input(format!(
            "data file '{shown}' is UTF-16 text; save it as UTF-8"
        ));
    }
    std::str::from_utf8(&raw[skip..]).or_else(|e| {
        // Line and column (in bytes, from the file's start) of the first byte that is not UTF-8.
        let at = skip + e.valid_up_to();
        let line = raw[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        let start = raw[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        input(format!(
            "line {line}, column {} (byte): byte 0x{:02x} is not UTF-8; save the file as UTF-8",
            at - start + 1,
            raw[at]
        ))
    })
}

/// L1, L2: the non-empty lines with their physical (1-based) numbers, line ends removed.
fn split_lines(text: &str) -> Result<Vec<(usize, &str)>> {
    let mut out = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let no = i + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(p) = line.find('\r') {
            return input(format!(
                "line {no}, column {} (character): a carriage return without a line feed; \
                 end lines with \\n or \\r\\n",
                line[..p].chars().count() + 1
            ));
        }
        if line.is_empty() {
            continue;
        }
        if line.chars().all(is_space) {
            return input(format!(
                "line {no}, column 1: a line holding only whitespace"
            ));
        }
        out.push((no, line));
    }
    Ok(out)
}

/// Where a field is, for a message: the column's name on a record line, its number on the header
/// or beyond the header's columns.
fn place(no: usize, j: usize, names: Option<&[String]>) -> String {
    match names {
        Some(names) if j < names.len() => format!("line {no}, column {}", show(&names[j])),
        _ => format!("line {no}, column {}", j + 1),
    }
}

/// Q1: one line's fields, quotes removed and `""` made `"`.
fn fields<'a>(line: &'a str, no: usize, names: Option<&[String]>) -> Result<Vec<Cow<'a, str>>> {
    if !line.contains('"') {
        return Ok(line.split(',').map(Cow::Borrowed).collect());
    }
    let bytes = line.as_bytes();
    let n = bytes.len();
    let mut out: Vec<Cow<str>> = Vec::new();
    let mut pos = 0;
    loop {
        if pos < n && bytes[pos] == b'"' {
            let Some(end) = closing_quote(&bytes[pos + 1..]).map(|e| pos + 1 + e) else {
                return input(format!(
                    "{}: a quoted field does not end on its line",
                    place(no, out.len(), names)
                ));
            };
            let content = &line[pos + 1..end];
            out.push(if content.contains('"') {
                Cow::Owned(content.replace("\"\"", "\""))
            } else {
                Cow::Borrowed(content)
            });
            pos = end + 1;
            if pos == n {
                return Ok(out);
            }
            if bytes[pos] != b',' {
                return input(format!(
                    "{}: text after the closing quote",
                    place(no, out.len() - 1, names)
                ));
            }
            pos += 1;
            continue;
        }
        let rest = &line[pos..];
        let (field, next) = match rest.find(',') {
            Some(e) => (&rest[..e], Some(pos + e + 1)),
            None => (rest, None),
        };
        if field.contains('"') {
            return input(format!(
                "{}: a quote inside an unquoted field",
                place(no, out.len(), names)
            ));
        }
        out.push(Cow::Borrowed(field));
        match next {
            Some(p) => pos = p,
            None => return Ok(out),
        }
    }
}

/// The index in `after` (the line after an opening quote) of the quote that closes the field, as
/// csvcheck.py's greedy regular expression `"((?:[^"]|"")*)"` finds it. Quotes come in runs: an odd
/// run ends the field at its last quote (the others are `""` pairs). When every run on the line is
/// even, there is no closing quote in RFC 4180's sense, but the regex backtracks to the last pair's
/// first quote; the field then "ends" there and the text after it (the pair's second quote) is
/// reported as such, exactly as csvcheck.py reports it. No quote at all: the field does not end.
fn closing_quote(after: &[u8]) -> Option<usize> {
    let mut candidate = None;
    let mut i = 0;
    while i < after.len() {
        if after[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i;
        while i < after.len() && after[i] == b'"' {
            i += 1;
        }
        let run = i - start;
        if run % 2 == 1 {
            return Some(start + run - 1);
        }
        candidate = Some(start + run - 2);
    }
    candidate
}

/// H1, H2 (all but the label's presence): every name non-empty, without spaces at its ends,
/// printable, not pandas' placeholder, and unique.
fn check_names(names: &[String], no: usize) -> Result<()> {
    for (j, name) in names.iter().enumerate() {
        let at = format!("line {no}, column {}", j + 1);
        if name.is_empty() {
            return input(format!(
                "{at}: empty column name (a pandas index column? write the CSV with index=False)"
            ));
        }
        if has_spaces(name) {
            return input(format!(
                "{at}: column name {} has spaces around it",
                show(name)
            ));
        }
        if !name.chars().all(is_printable) {
            return input(format!(
                "{at}: column name {} holds an invisible character",
                show(name)
            ));
        }
        if is_pandas_placeholder(name) {
            return input(format!(
                "{at}: column {} is a pandas index column; write the CSV with index=False",
                show(name)
            ));
        }
        if let Some(first) = names[..j].iter().position(|n| n == name) {
            return input(format!(
                "line {no}, columns {} and {}: duplicate column name {}",
                first + 1,
                j + 1,
                show(name)
            ));
        }
    }
    Ok(())
}

/// `Unnamed: [0-9]+`, the name pandas gives a nameless (index) column.
fn is_pandas_placeholder(name: &str) -> bool {
    name.strip_prefix("Unnamed: ")
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// R2, C1-C3, K1, K2, P1: the table from the records' cells, or the first broken rule in row-major
/// order (the earliest row; within a row, the leftmost column), then the scaling limit.
fn table(
    names: &[String],
    li: usize,
    label: &str,
    cells: &[Cow<str>],
    numbers: &[usize],
    target: Target,
) -> Result<Table> {
    let width = names.len();
    let n = numbers.len();
    let column =
        |j: usize| -> Vec<&str> { (0..n).map(|i| cells[i * width + j].as_ref()).collect() };
    let mut first: Option<(usize, usize, String)> = None;
    let mut features: Vec<Vec<f64>> = Vec::with_capacity(width - 1);
    let mut dtypes = Vec::with_capacity(width - 1);
    let mut labels = Vec::new();
    for j in 0..width {
        let col = column(j);
        let result = if j == li {
            match target {
                Target::Binary => label_column(&col),
                Target::Multiclass => class_column(&col),
                Target::Regression => value_column(&col),
            }
            .map(|v| labels = v)
        } else {
            feature_column(&col).map(|(kind, v)| {
                dtypes.push(kind.dtype().to_string());
                features.push(v);
            })
        };
        if let Err((row, msg)) = result {
            if first.as_ref().is_none_or(|f| (row, j) < (f.0, f.1)) {
                first = Some((row, j, msg));
            }
        }
    }
    if let Some((row, j, msg)) = first {
        return input(format!(
            "line {}, column {}: {msg}",
            numbers[row],
            show(&names[j])
        ));
    }
    let feature_names: Vec<String> = names
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != li)
        .map(|(_, name)| name.clone())
        .collect();
    check_scaling(&feature_names, &features, numbers)?;
    let d = features.len();
    let data = (0..n * d).map(|k| features[k % d][k / d]).collect();
    Ok(Table {
        feature_names,
        dtypes,
        features: Matrix64::new(data, n, d)?,
        labels,
        label_name: label.to_string(),
    })
}

/// K1: a feature column's class and values, or its first problem.
fn feature_column(col: &[&str]) -> std::result::Result<(Kind, Vec<f64>), Problem> {
    let mut classes = Vec::with_capacity(col.len());
    for (i, token) in col.iter().enumerate() {
        classes.push(classify(token).map_err(|msg| (i, msg))?);
    }
    let first_bool = classes[0].0 == Kind::Bool;
    if let Some(i) = classes
        .iter()
        .position(|c| (c.0 == Kind::Bool) != first_bool)
    {
        return Err((
            i,
            format!(
                "{} mixes true/false with numbers in one column",
                show(col[i])
            ),
        ));
    }
    let kind = if first_bool {
        Kind::Bool
    } else if classes.iter().all(|c| c.0 == Kind::Int) {
        Kind::Int
    } else {
        Kind::Float
    };
    Ok((kind, classes.into_iter().map(|c| c.1).collect()))
}

/// K2: the label column's values (1.0 or 0.0), or its first problem: a cell that is not a binary
/// value, or a third distinct spelling, whichever comes first (csvcheck.py's `min`).
fn label_column(col: &[&str]) -> std::result::Result<Vec<f32>, Problem> {
    let mut problems: Vec<Problem> = Vec::new();
    let mut values = Vec::with_capacity(col.len());
    for (i, token) in col.iter().enumerate() {
        match label_value(token) {
            Ok(v) => values.push(v),
            Err(msg) => {
                problems.push((i, msg));
                break;
            }
        }
    }
    let mut seen: Vec<&str> = Vec::with_capacity(3);
    for (i, &token) in col.iter().enumerate() {
        if !seen.contains(&token) {
            seen.push(token);
            if seen.len() == 3 {
                problems.push((
                    i,
                    format!(
                        "a third spelling {} after {} and {}; the label must be binary \
                         (true/false or 0/1), one spelling per class",
                        show(token),
                        show(seen[0]),
                        show(seen[1])
                    ),
                ));
                break;
            }
        }
    }
    match problems.into_iter().min() {
        Some(p) => Err(p),
        None => Ok(values),
    }
}

/// K3 (multiclass): the label column's class indices, or its first problem in row order: a cell
/// that is not a number, or a number that is not a class index (csvcheck.py's `_target_column`).
fn class_column(col: &[&str]) -> std::result::Result<Vec<f32>, Problem> {
    let mut values = Vec::with_capacity(col.len());
    for (i, token) in col.iter().enumerate() {
        let (kind, v) = classify(token).map_err(|msg| (i, msg))?;
        if kind == Kind::Bool || v.fract() != 0.0 || !(0.0..16_777_216.0).contains(&v) {
            return Err((
                i,
                format!(
                    "{} is not a class index; a multiclass label is an integer from 0",
                    show(token)
                ),
            ));
        }
        values.push(v as f32);
    }
    Ok(values)
}

/// K3 (regression): the label column's numbers, or its first problem in row order.
fn value_column(col: &[&str]) -> std::result::Result<Vec<f32>, Problem> {
    col.iter()
        .enumerate()
        .map(|(i, token)| {
            classify(token)
                .map(|(_, v)| v as f32)
                .map_err(|msg| (i, msg))
        })
        .collect()
}

/// A label cell's value by K2, or the problem with it.
fn label_value(token: &str) -> std::result::Result<f32, String> {
    let (_, v) = classify(token)?;
    if v == 1.0 {
        Ok(1.0)
    } else if v == 0.0 {
        Ok(0.0)
    } else {
        Err(format!(
            "{} is not 0, 1, true or false; the label must be binary",
            show(token)
        ))
    }
}

/// R2, Q2, C1-C3: one (unquoted) cell's class and value, or the problem with it.
fn classify(token: &str) -> std::result::Result<(Kind, f64), String> {
    if token.is_empty() {
        return Err("empty cell".into());
    }
    if has_spaces(token) {
        return Err(format!("{} has spaces around it", show(token)));
    }
    match token {
        "true" | "True" | "TRUE" => return Ok((Kind::Bool, 1.0)),
        "false" | "False" | "FALSE" => return Ok((Kind::Bool, 0.0)),
        _ => {}
    }
    // `i64::from_str` takes exactly [+-]?[0-9]+ (leading zeros included); out of range it fails
    // and the token is read as a float, as csvcheck.py does.
    if is_integer(token) {
        if let Ok(i) = token.parse::<i64>() {
            return Ok((Kind::Int, i as f64));
        }
    }
    if is_number(token) {
        // Rust's parse is correctly rounded and accepts all of C2's grammar; beyond f64 it is inf.
        if let Ok(v) = token.parse::<f64>() {
            if !v.is_finite() {
                return Err(format!(
                    "{} is not a finite number (beyond float64's range)",
                    show(token)
                ));
            }
            return Ok((Kind::Float, v));
        }
    }
    if is_nonfinite(token) {
        return Err(format!("{} is not a finite number", show(token)));
    }
    Err(format!("{} is not a number or true/false", show(token)))
}

/// Counts the ASCII digits at the start of `b`.
fn digits(b: &[u8]) -> usize {
    b.iter().take_while(|c| c.is_ascii_digit()).count()
}

/// `[+-]?[0-9]+`
fn is_integer(s: &str) -> bool {
    let b = s.strip_prefix(['+', '-']).unwrap_or(s).as_bytes();
    !b.is_empty() && digits(b) == b.len()
}

/// C2: `[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?`
fn is_number(s: &str) -> bool {
    let b = s.strip_prefix(['+', '-']).unwrap_or(s).as_bytes();
    let whole = digits(b);
    let mut i = whole;
    let mut fraction = 0;
    if b.get(i) == Some(&b'.') {
        fraction = digits(&b[i + 1..]);
        i += 1 + fraction;
    }
    if whole == 0 && fraction == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exponent = digits(&b[i..]);
        if exponent == 0 {
            return false;
        }
        i += exponent;
    }
    i == b.len()
}

/// C3: `[+-]?(nan|inf|infinity)` in any case, as Python's case-insensitive regex matches it (which
/// lets U+0130 and U+0131, the dotted capital and dotless small i, stand for `i`).
fn is_nonfinite(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let same = |word: &str| {
        s.chars().count() == word.len()
            && s.chars().zip(word.chars()).all(|(c, w)| {
                c.to_ascii_lowercase() == w || (w == 'i' && matches!(c, '\u{130}' | '\u{131}'))
            })
    };
    ["nan", "inf", "infinity"].into_iter().any(same)
}

/// Python's `str.isspace()` for one character: Unicode's White_Space plus the information
/// separators U+001C-U+001F, which Python counts and Rust's `char::is_whitespace` does not.
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Q2: whitespace at either end (Python's `s != s.strip()`).
fn has_spaces(s: &str) -> bool {
    s.chars().next().is_some_and(is_space) || s.chars().next_back().is_some_and(is_space)
}

/// Python's `str.isprintable()` for one character: not in the categories Cc, Cf, Cs, Co, Cn, Zl,
/// Zp, or Zs other than the space. The standard library holds exactly that table (it is what
/// `escape_debug` consults) but does not export it; `str::escape_debug` leaves a character after
/// the first one unescaped iff it is printable by that table, quotes and the backslash aside.
fn is_printable(c: char) -> bool {
    if matches!(c, '\\' | '"' | '\'') {
        return true;
    }
    let mut buf = [b'a'; 5];
    let len = 1 + c.encode_utf8(&mut buf[1..]).len();
    let Ok(s) = std::str::from_utf8(&buf[..len]) else {
        return false;
    };
    let mut escaped = s.escape_debug().skip(1);
    escaped.next() == Some(c) && escaped.next().is_none()
}

/// A cell or name quoted for a one-line message as csvcheck.py's `show` does it: characters that are
/// not printable escaped as Python's `unicode_escape` writes them, text longer than 40 cut.
fn show(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if is_printable(c) {
            s.push(c);
            continue;
        }
        let u = c as u32;
        match c {
            '\t' => s.push_str("\\t"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            _ if u < 0x100 => s.push_str(&format!("\\x{u:02x}")),
            _ if u < 0x10000 => s.push_str(&format!("\\u{u:04x}")),
            _ => s.push_str(&format!("\\U{u:08x}")),
        }
    }
    match s.char_indices().nth(40) {
        Some((cut, _)) => format!("'{}...'", &s[..cut]),
        None => format!("'{s}'"),
    }
}

/// P1: each feature's largest magnitude m satisfies n * (2m)^2 < f64::MAX, so that no sum the
/// scaler forms (values, squares, squared deviations) can overflow, in any order.
fn check_scaling(names: &[String], features: &[Vec<f64>], numbers: &[usize]) -> Result<()> {
    let n = numbers.len();
    let limit = (f64::MAX / n.max(1) as f64).sqrt() / 2.0;
    for (name, col) in names.iter().zip(features) {
        let peak = col.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if peak > limit {
            // The first row holding the peak magnitude, as numpy's argmax finds it.
            let i = col.iter().position(|v| v.abs() == peak).unwrap_or(0);
            return input(format!(
                "line {}, column {}: {} is too large to scale: the scaler's sums over {n} rows \
                 would overflow float64 beyond {}; rescale the column",
                numbers[i],
                show(name),
                format_g3(col[i]),
                format_g3(limit)
            ));
        }
    }
    Ok(())
}

/// Python's `format(x, ".3g")` for a finite x: three significant digits, trailing zeros dropped,
/// scientific notation (exponent signed, at least two digits) below 1e-4 or from 1e3 on.
fn format_g3(x: f64) -> String {
    let sci = format!("{x:.2e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if (-4..3).contains(&exponent) {
        trim(&format!("{x:.*}", (2 - exponent) as usize))
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exponent.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A file under the temporary directory, removed when dropped.
    struct TempCsv(std::path::PathBuf);

    impl TempCsv {
        fn new(content: impl AsRef<[u8]>) -> Self {
            static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let p = std::env::temp_dir()
                .join(format!("burn_diff_csv_test_{}_{n}.csv", std::process::id()));
            let mut f = std::fs::File::create(&p).unwrap();
            f.write_all(content.as_ref()).unwrap();
            Self(p)
        }
    }

    impl Drop for TempCsv {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    const H: &str = "f1,f2,label\n";

    fn read(content: impl AsRef<[u8]>) -> Result<Table> {
        let f = TempCsv::new(content);
        read_csv(&f.0, "label")
    }

    /// The message of a rejected file, checked to be one line.
    fn rejected(content: impl AsRef<[u8]>) -> String {
        let f = TempCsv::new(content);
        let err = read_csv(&f.0, "label")
            .err()
            .unwrap_or_else(|| {
                panic!(
                    "accepted: {:?}",
                    String::from_utf8_lossy(&std::fs::read(&f.0).unwrap())
                )
            })
            .to_string();
        assert!(!err.contains('\n') && !err.contains('\r'), "{err:?}");
        err
    }

    fn assert_rejects(content: &str, expected: &str) {
        let err = rejected(content);
        assert!(
            err.contains(expected),
            "{content:?}:\n  got      {err}\n  expected {expected}"
        );
    }

    fn assert_reads(content: &str, names: &[&str], dtypes: &[&str], x: &[f64], y: &[f32]) {
        let t = read(content).unwrap_or_else(|e| panic!("{content:?}: {e}"));
        assert_eq!(t.feature_names, names, "{content:?}");
        assert_eq!(t.dtypes, dtypes, "{content:?}");
        assert_eq!(t.features.data.len(), x.len(), "{content:?}");
        for (a, b) in t.features.data.iter().zip(x) {
            assert_eq!(a.to_bits(), b.to_bits(), "{content:?}: {a} vs {b}");
        }
        assert_eq!(t.labels, y, "{content:?}");
        assert_eq!(t.label_name, "label");
    }

    #[test]
    fn parses_bools_ints_and_floats() {
        assert_reads(
            "a,b,c,label\n1,true,0.5,true\n2,false,1.5,false\n",
            &["a", "b", "c"],
            &["int64", "bool", "float64"],
            &[1.0, 1.0, 0.5, 2.0, 0.0, 1.5],
            &[1.0, 0.0],
        );
    }

    #[test]
    fn reads_the_accepted_forms() {
        let two = [1.0, 2.0, 3.0, 4.0];
        let ints = ["int64", "int64"];
        let f12 = ["f1", "f2"];
        // C2: every number notation; "-0" is the integer 0 (positive zero), as in csvcheck.py.
        assert_reads(
            &format!("{H}+5,1.,1\n007,.5,1\n-0,1e5,1\n1E+05,1.e5,1\n"),
            &f12,
            &["float64", "float64"],
            &[5.0, 1.0, 7.0, 0.5, 0.0, 1e5, 1e5, 1e5],
            &[1.0; 4],
        );
        // C1: the six boolean spellings.
        assert_reads(
            &format!("{H}true,FALSE,1\nTrue,false,0\nTRUE,False,1\n"),
            &f12,
            &["bool", "bool"],
            &[1.0, 0.0, 1.0, 0.0, 1.0, 0.0],
            &[1.0, 0.0, 1.0],
        );
        // K2: any notation of 0 and 1, booleans and numbers mixed.
        for labels in [("1.00", "0.00"), ("true", "0"), ("1e0", "-0"), ("+1", ".0")] {
            let text = format!("{H}1,2,{}\n3,4,{}\n", labels.0, labels.1);
            assert_reads(&text, &f12, &ints, &two, &[1.0, 0.0]);
        }
        // C2: integers beyond int64 are float64; int64's extremes stay int64, rounded to f64.
        assert_reads(
            &format!("{H}100000000000000000000,9223372036854775808,1\n2,3,0\n"),
            &f12,
            &["float64", "float64"],
            &[1e20, 9223372036854775808.0, 2.0, 3.0],
            &[1.0, 0.0],
        );
        assert_reads(
            &format!("{H}9223372036854775807,-9223372036854775808,1\n9007199254740993,0,0\n"),
            &f12,
            &ints,
            &[2f64.powi(63), -(2f64.powi(63)), 9007199254740992.0, 0.0],
            &[1.0, 0.0],
        );
        assert_reads(
            &format!("{H}{}1,-{}5,1\n2,3,0\n", "0".repeat(5000), "0".repeat(30)),
            &f12,
            &ints,
            &[1.0, -5.0, 2.0, 3.0],
            &[1.0, 0.0],
        );
        assert_reads(
            &format!("{H}1e-320,1e-400,1\n4.9e-324,2e-324,0\n0.1000000000000000055511151231257827,2.5,0\n"),
            &f12,
            &["float64", "float64"],
            &[1e-320, 0.0, 5e-324, 0.0, 0.1, 2.5],
            &[1.0, 0.0, 0.0],
        );
        // Q1: quoted fields and names, "" for a quote; quoting does not change a cell's meaning.
        assert_reads(
            "\"f1\",\"a,b\",\"x\"\"y\",label\n\"1\",\"2.5\",\"true\",1\n3,4,false,0\n",
            &["f1", "a,b", "x\"y"],
            &["int64", "float64", "bool"],
            &[1.0, 2.5, 1.0, 3.0, 4.0, 0.0],
            &[1.0, 0.0],
        );
        // L1, L2, F3: CRLF, no final newline, blank lines anywhere, a byte-order mark.
        for text in [
            "f1,f2,label\r\n1,2,1\r\n3,4,0\r\n".to_string(),
            format!("{H}1,2,1\n3,4,0"),
            format!("\n\n{H}1,2,1\n\n\r\n3,4,0\n\n"),
            format!("\u{feff}{H}1,2,1\n3,4,0\n"),
        ] {
            assert_reads(&text, &f12, &ints, &two, &[1.0, 0.0]);
        }
        assert_reads(
            "label,f1\n1,2\n0,3\n",
            &["f1"],
            &["int64"],
            &[2.0, 3.0],
            &[1.0, 0.0],
        );
        // H1: odd but printable names, a space inside, a combining accent, a backslash.
        assert_reads(
            "nan,NA,1,a b,é,e\u{301},\\,label\n1,2,3,4,5,6,7,1\n",
            &["nan", "NA", "1", "a b", "é", "e\u{301}", "\\"],
            &["int64"; 7],
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            &[1.0],
        );
        // F2: a plain file named .gz is plain text.
        let dir = std::env::temp_dir().join(format!("burn_diff_csv_gz_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let gz = dir.join("plain.csv.gz");
        std::fs::write(&gz, format!("{H}1,2,1\n")).unwrap();
        assert_eq!(
            read_csv(&gz, "label").unwrap().features.data,
            vec![1.0, 2.0]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rejects_whitespace_around_cells_and_names() {
        assert_rejects(
            &format!("{H}1, 2,1\n"),
            "line 2, column 'f2': ' 2' has spaces around it",
        );
        assert_rejects(
            &format!("{H}1,2\t,1\n"),
            "line 2, column 'f2': '2\\t' has spaces around it",
        );
        assert_rejects(
            &format!("{H}1,\" 2\",1\n"),
            "line 2, column 'f2': ' 2' has spaces around it",
        );
        assert_rejects(
            &format!("{H}1,2\u{a0},1\n"),
            "line 2, column 'f2': '2\\xa0' has spaces around it",
        );
        assert_rejects(
            &format!("{H}1,\u{3000}2,1\n"),
            "line 2, column 'f2': '\\u30002' has spaces",
        );
        // Python counts U+001C-U+001F as whitespace; Rust's is_whitespace does not.
        assert_rejects(
            &format!("{H}1,2\u{1f},1\n"),
            "line 2, column 'f2': '2\\x1f' has spaces around it",
        );
        assert_rejects(
            &format!("{H}1,2, 1\n"),
            "line 2, column 'label': ' 1' has spaces around it",
        );
        assert_rejects(
            "f1, f2,label\n1,2,1\n",
            "line 1, column 2: column name ' f2' has spaces around it",
        );
        assert_rejects(
            "f1,f2,label \n1,2,1\n",
            "line 1, column 3: column name 'label ' has spaces",
        );
        assert_rejects(
            "f1,\"\tf2\",label\n1,2,1\n",
            "line 1, column 2: column name '\\tf2' has spaces",
        );
        // A zero-width space is not whitespace (for Python either): in a cell it is not a number.
        assert_rejects(
            &format!("{H}1,2\u{200b},1\n"),
            "line 2, column 'f2': '2\\u200b' is not a number or true/false",
        );
    }

    #[test]
    fn rejects_bad_names() {
        assert_rejects(
            "f1,f1,label\n1,2,1\n",
            "line 1, columns 1 and 2: duplicate column name 'f1'",
        );
        assert_rejects(
            "label,f1,label\n1,2,1\n",
            "line 1, columns 1 and 3: duplicate column name 'label'",
        );
        assert_rejects(
            ",f1,label\n0,2,1\n",
            "line 1, column 1: empty column name (a pandas index column? write the CSV with index=False)",
        );
        assert_rejects(
            "Unnamed: 0,f1,label\n0,2,1\n",
            "line 1, column 1: column 'Unnamed: 0' is a pandas index column; write the CSV with index=False",
        );
        assert_rejects(
            "f1,Unnamed: 12,label\n0,2,1\n",
            "line 1, column 2: column 'Unnamed: 12' is a pandas",
        );
        assert_rejects(
            "f1,f2,label,\n1,2,1,\n",
            "line 1, column 4: empty column name",
        );
        assert_rejects(
            "f\u{200b}1,f2,label\n1,2,1\n",
            "line 1, column 1: column name 'f\\u200b1' holds an invisible character",
        );
        assert_rejects(
            "f1,\"a\nb\",label\n1,2,1\n",
            "line 1, column 2: a quoted field does not end on its line",
        );
        assert_rejects(
            "f1,\u{feff}z,label\n1,2,1\n",
            "line 1, column 2: column name '\\ufeffz' holds an invisible",
        );
        assert_rejects(
            "f1,a\u{7f},label\n1,2,1\n",
            "column name 'a\\x7f' holds an invisible",
        );
        assert_rejects(
            "f1,a\u{e000},label\n1,2,1\n",
            "column name 'a\\ue000' holds an invisible",
        );
        assert_rejects(
            "f1,a\u{f0000},label\n1,2,1\n",
            "column name 'a\\U000f0000' holds an invisible",
        );
        assert_rejects(
            "f1,a\u{2028}b,label\n1,2,1\n",
            "column name 'a\\u2028b' holds an invisible",
        );
        // "Unnamed" alone, or without digits, is an ordinary name.
        assert!(read("Unnamed,Unnamed:1,Unnamed: 1a,label\n1,2,3,1\n").is_ok());
    }

    #[test]
    fn rejects_broken_lines_and_quotes() {
        assert_rejects(
            &format!("{H}1,2,1\n  \n3,4,0\n"),
            "line 3, column 1: a line holding only whitespace",
        );
        assert_rejects(
            &format!("{H}1,2,1\n\t\r\n"),
            "line 3, column 1: a line holding only whitespace",
        );
        assert_rejects(
            "f1,f2,label\r1,2,1\r",
            "line 1, column 12 (character): a carriage return without a line feed; end lines with \\n or \\r\\n",
        );
        assert_rejects(
            &format!("{H}é,2\r,1\n"),
            "line 2, column 4 (character): a carriage return",
        );
        assert_rejects(
            &format!("{H}1,2,1\r\r\n"),
            "line 2, column 6 (character): a carriage return",
        );
        assert_rejects(
            &format!("{H}\"1\"2,3,1\n"),
            "line 2, column 'f1': text after the closing quote",
        );
        assert_rejects(
            &format!("{H}\"1\" ,3,1\n"),
            "line 2, column 'f1': text after the closing quote",
        );
        assert_rejects(
            &format!("{H}1,2\"3,1\n"),
            "line 2, column 'f2': a quote inside an unquoted field",
        );
        assert_rejects(
            &format!("{H}1, \"2\",1\n"),
            "line 2, column 'f2': a quote inside an unquoted field",
        );
        assert_rejects(
            "f\"1,f2,label\n1,2,1\n",
            "line 1, column 1: a quote inside an unquoted field",
        );
        assert_rejects(
            &format!("{H}\"1,2,1\n"),
            "line 2, column 'f1': a quoted field does not end on its line",
        );
        assert_rejects(
            &format!("{H}1,2,\"1\n\"\n"),
            "line 2, column 'label': a quoted field does not end",
        );
        assert_rejects(
            "\"f\n1\",f2,label\n1,2,1\n",
            "line 1, column 1: a quoted field does not end",
        );
        // Only "" pairs after the opening quote: csvcheck.py's regex backtracks to the last pair, so
        // the field ends there and the pair's second quote is text after it.
        assert_rejects(
            &format!("{H}\"1\"\",2,1\n"),
            "line 2, column 'f1': text after the closing quote",
        );
        // Fields beyond the header are named by number.
        assert_rejects(
            &format!("{H}1,2,1,\"x\n"),
            "line 2, column 4: a quoted field does not end",
        );
        assert_rejects(
            &format!("{H}1,2,1,4\n"),
            "line 2, column 4: a field beyond the header's 3 columns",
        );
        assert_rejects(
            &format!("{H}1,2,1,\n"),
            "line 2, column 4: a field beyond the header's 3 columns",
        );
        assert_rejects(
            &format!("{H}1,2\n"),
            "line 2, column 'label': missing (the line has 2 fields, the header 3)",
        );
        // Every line is checked before the header: a lone \r far down comes first.
        assert_rejects(
            "f1,f1,label\n1,2,1\n3,4\r,0\n",
            "line 3, column 4 (character)",
        );
    }

    #[test]
    fn rejects_bad_cells_naming_the_physical_line() {
        assert_rejects(
            &format!("{H}1,2,1\n\n\n,4,0\n"),
            "line 5, column 'f1': empty cell",
        );
        assert_rejects(&format!("{H}\"\",2,1\n"), "line 2, column 'f1': empty cell");
        assert_rejects(
            &format!("{H}1,2,1\nNaN,4,0\n"),
            "line 3, column 'f1': 'NaN' is not a finite number",
        );
        assert_rejects(
            &format!("{H}1,-inf,1\n"),
            "line 2, column 'f2': '-inf' is not a finite number",
        );
        assert_rejects(
            &format!("{H}Infinity,2,1\n"),
            "line 2, column 'f1': 'Infinity' is not a finite number",
        );
        assert_rejects(
            &format!("{H}\u{131}nf,2,1\n"),
            "line 2, column 'f1': '\u{131}nf' is not a finite number",
        );
        assert_rejects(
            &format!("{H}1e400,2,1\n"),
            "line 2, column 'f1': '1e400' is not a finite number (beyond float64's range)",
        );
        assert_rejects(
            &format!("{H}1{},2,1\n", "0".repeat(400)),
            "line 2, column 'f1': '1000000000000000000000000000000000000000...' is not a finite number",
        );
        for bad in [
            "NA", "1_000", "0x1A", "\u{ff11}", "yes", "tRue", "1d5", "1e", "e5", ".", "+", "--1",
            "1.2.3",
        ] {
            let shown = show(bad);
            assert_rejects(
                &format!("{H}{bad},2,1\n"),
                &format!("line 2, column 'f1': {shown} is not a number or true/false"),
            );
        }
        assert_rejects(
            &format!("{H}true,2,1\n1,2,0\n"),
            "line 3, column 'f1': '1' mixes true/false with numbers in one column",
        );
        // The earliest row wins across columns; within a row, the leftmost column.
        assert_rejects(
            &format!("{H}1,2,1\n3,x,0\ny,4,1\n"),
            "line 3, column 'f2': 'x' is not a number",
        );
        assert_rejects(
            &format!("{H}1,x,7\n"),
            "line 2, column 'f2': 'x' is not a number",
        );
    }

    #[test]
    fn rejects_labels_that_are_not_binary() {
        assert_rejects(
            &format!("{H}1,2,2\n"),
            "line 2, column 'label': '2' is not 0, 1, true or false; the label must be binary",
        );
        assert_rejects(
            &format!("{H}1,2,1\n3,4,\n"),
            "line 3, column 'label': empty cell",
        );
        assert_rejects(
            &format!("{H}1,2,1\n3,4,1.0\n5,6,0\n"),
            "line 4, column 'label': a third spelling '0' after '1' and '1.0'; the label must be binary \
             (true/false or 0/1), one spelling per class",
        );
        // A bad third spelling: the two problems share the row, and csvcheck.py's min takes the
        // smaller message.
        assert_rejects(
            &format!("{H}1,2,1\n3,4,0\n5,6,2\n"),
            "line 4, column 'label': '2' is not 0, 1",
        );
        assert_rejects(
            &format!("{H}1,2,1\n3,4,0\n5,6,\n"),
            "line 4, column 'label': a third spelling ''",
        );
    }

    #[test]
    fn rejects_features_the_scaler_would_overflow() {
        assert_rejects(
            &format!("{H}1e200,2,1\n-1e200,3,0\n"),
            "line 2, column 'f1': 1e+200 is too large to scale: the scaler's sums over 2 rows would \
             overflow float64 beyond 4.74e+153; rescale the column",
        );
        assert_rejects(
            &format!("{H}1,2,1\n-1.5e300,3,0\n"),
            "line 3, column 'f1': -1.5e+300 is too large",
        );
        // Just below the limit for one row is accepted.
        let limit = (f64::MAX).sqrt() / 2.0;
        assert!(read(format!("{H}{limit:e},2,1\n")).is_ok());
        assert_eq!(format_g3(0.000123456), "0.000123");
        assert_eq!(format_g3(12.5), "12.5");
        assert_eq!(format_g3(999.5), "1e+03");
        assert_eq!(format_g3(2.0), "2");
        assert_eq!(format_g3(1.234e-7), "1.23e-07");
    }

    #[test]
    fn rejects_whole_files_in_one_line() {
        assert_rejects(H, "has a header but no rows");
        assert_rejects("\n\n", "is empty");
        assert_rejects("", "is empty");
        assert_rejects("f1,f2\n1,2\n", "label column 'label' not found in '");
        assert_rejects("f1,f2\n1,2\n", "'; columns are: f1, f2");
        assert_rejects("label\n1\n", "has no feature columns");
        let err = read_csv(Path::new("/nonexistent.csv"), "label").unwrap_err();
        assert_eq!(err.to_string(), "data file '/nonexistent.csv' not found");
        let err = read_csv(Path::new("/etc/passwd/x.csv"), "label").unwrap_err();
        assert!(err.to_string().ends_with("not found"), "{err}");
        let dir = std::env::temp_dir();
        let err = read_csv(&dir, "label").unwrap_err().to_string();
        assert!(err.ends_with("is a directory, not a CSV file"), "{err}");
        let err = read_csv(Path::new("/dev/null"), "label").unwrap_err();
        assert_eq!(
            err.to_string(),
            "data file '/dev/null' is not a regular file"
        );
    }

    #[test]
    fn rejects_compressed_and_foreign_encodings() {
        for (magic, kind) in COMPRESSED {
            let mut bytes = magic.to_vec();
            bytes.extend_from_slice(b"rest");
            assert_rejects_bytes(
                &bytes,
                &format!("is {kind}-compressed; decompress it: both sides read plain CSV"),
            );
        }
        let utf16: Vec<u8> = [0xfeffu16]
            .into_iter()
            .chain(format!("{H}1,2,1\n").encode_utf16())
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_rejects_bytes(&utf16, "is UTF-16 text; save it as UTF-8");
        assert_rejects_bytes(&[b"\xfe\xff".as_slice(), b"\0f"].concat(), "is UTF-16 text");
        let bad = [H.as_bytes(), b"1,\xff2,1\n"].concat();
        assert_rejects_bytes(
            &bad,
            "line 2, column 3 (byte): byte 0xff is not UTF-8; save the file as UTF-8",
        );
        // Columns in bytes from the file's start, the byte-order mark included.
        let bad = [UTF8_BOM, b"f\xc3(1,label\n"].concat();
        assert_rejects_bytes(&bad, "line 1, column 5 (byte): byte 0xc3 is not UTF-8");
    }

    fn assert_rejects_bytes(bytes: &[u8], expected: &str) {
        let err = rejected(bytes);
        assert!(err.contains(expected), "got {err}, expected {expected}");
    }

    #[test]
    fn shows_cells_as_python_does() {
        assert_eq!(
            show("a\tb\n\r\u{0}\u{85}\u{200b}\u{10ffff}\\é"),
            "'a\\tb\\n\\r\\x00\\x85\\u200b\\U0010ffff\\é'"
        );
        assert_eq!(show(&"x".repeat(41)), format!("'{}...'", "x".repeat(40)));
        assert_eq!(show(&"x".repeat(40)), format!("'{}'", "x".repeat(40)));
        assert!(is_printable(' ') && is_printable('\u{301}') && is_printable('"'));
        assert!(!is_printable('\u{a0}') && !is_printable('\u{200c}') && !is_printable('\u{ad}'));
    }

    #[test]
    fn multiclass_labels_are_class_indices() {
        let f = TempCsv::new(format!("{H}1,2,0\n3,4,9\n5,6,2.0\n"));
        let t = read_csv_multiclass(&f.0, "label").unwrap();
        assert_eq!(t.labels, vec![0.0, 9.0, 2.0]);
        // The binary reader refuses the same file: a third class.
        assert!(read_csv(&f.0, "label").is_err());
        for bad in ["1.5", "-1", "true", "nan"] {
            let f = TempCsv::new(format!("{H}1,2,0\n3,4,{bad}\n"));
            let err = read_csv_multiclass(&f.0, "label").unwrap_err().to_string();
            assert!(err.starts_with("line 3, column 'label'"), "{bad}: {err}");
            assert!(!err.contains('\n'), "{err:?}");
        }
    }

    #[test]
    fn regression_targets_are_any_finite_number() {
        let f = TempCsv::new(format!("{H}1,2,151\n3,4,-2.5\n5,6,1e3\n7,8,true\n"));
        let t = read_csv_regression(&f.0, "label").unwrap();
        assert_eq!(t.labels, vec![151.0, -2.5, 1000.0, 1.0]);
        // Neither classification reader takes these targets.
        assert!(read_csv(&f.0, "label").is_err() && read_csv_multiclass(&f.0, "label").is_err());
        // The messages are csvcheck.py's (tests/test_models.py checks the same for "abc").
        for (bad, says) in [
            ("abc", "'abc' is not a number or true/false"),
            ("nan", "'nan' is not a finite number"),
            ("", "empty cell"),
        ] {
            let f = TempCsv::new(format!("{H}1,2,0\n3,4,{bad}\n"));
            let err = read_csv_regression(&f.0, "label").unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("line 3, column 'label': {says}")),
                "{bad}: {err}"
            );
        }
    }
}

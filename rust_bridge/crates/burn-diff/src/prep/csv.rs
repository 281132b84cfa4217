//! CSV loading with pandas' semantics for this schema: true/false cells are booleans, integer
//! columns stay exact, floats are parsed as f64. Every problem becomes a one-line message.

use std::path::Path;

use crate::contract::Table;
use crate::error::{input, Result};
use crate::tensor::Matrix64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Float,
}

fn parse_cell(cell: &str) -> Option<(f64, Kind)> {
    let s = cell.trim();
    match s {
        "true" | "True" | "TRUE" => return Some((1.0, Kind::Bool)),
        "false" | "False" | "FALSE" => return Some((0.0, Kind::Bool)),
        _ => {}
    }
    if let Ok(i) = s.parse::<i64>() {
        return Some((i as f64, Kind::Int));
    }
    Some((s.parse::<f64>().ok()?, Kind::Float))
}

/// Loads `path`, taking `label` as the target column and every other column as a feature.
pub fn read_csv(path: &Path, label: &str) -> Result<Table> {
    let shown = path.display();
    if !path.is_file() {
        return input(format!("data file '{shown}' not found"));
    }
    let mut reader = match ::csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
    {
        Ok(r) => r,
        Err(e) => return input(format!("cannot read data file '{shown}': {e}")),
    };
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_string()).collect(),
        Err(e) => return input(format!("cannot read the header of '{shown}': {e}")),
    };
    if headers.is_empty() || headers.iter().all(|h| h.is_empty()) {
        return input(format!("data file '{shown}' is empty"));
    }
    let Some(label_idx) = headers.iter().position(|h| h == label) else {
        return input(format!(
            "label column '{label}' not found in '{shown}'; columns are: {}",
            headers.join(", ")
        ));
    };
    if headers.len() < 2 {
        return input(format!("data file '{shown}' has no feature columns"));
    }
    let n_cols = headers.len();
    let mut kinds: Vec<Option<Kind>> = vec![None; n_cols];
    let mut features = Vec::new();
    let mut labels = Vec::new();
    let mut label_values: Vec<String> = Vec::new();
    let mut n_rows = 0usize;
    for (row, record) in reader.records().enumerate() {
        let record = match record {
            Ok(r) => r,
            Err(e) => return input(format!("malformed CSV in '{shown}': {e}")),
        };
        let line = row + 2;
        for (col, cell) in record.iter().enumerate() {
            let name = &headers[col];
            if cell.trim().is_empty() {
                return input(format!("line {line}, column '{name}': empty cell"));
            }
            if col == label_idx {
                let key = cell.trim().to_string();
                if !label_values.contains(&key) {
                    label_values.push(key);
                }
                let (v, _) = parse_cell(cell).unwrap_or((f64::NAN, Kind::Float));
                labels.push(if v == 1.0 { 1.0f32 } else { 0.0 });
                continue;
            }
            let Some((v, kind)) = parse_cell(cell) else {
                return input(format!(
                    "line {line}, column '{name}': '{}' is not a number or true/false",
                    cell.trim()
                ));
            };
            if !v.is_finite() {
                return input(format!(
                    "line {line}, column '{name}': '{}' is not a finite number",
                    cell.trim()
                ));
            }
            kinds[col] = Some(match (kinds[col], kind) {
                (None, k) => k,
                (Some(Kind::Bool), Kind::Bool) => Kind::Bool,
                (Some(Kind::Bool), _) | (Some(_), Kind::Bool) => {
                    return input(format!(
                        "line {line}, column '{name}': mixes true/false with numbers"
                    ))
                }
                (Some(Kind::Int), Kind::Int) => Kind::Int,
                _ => Kind::Float,
            });
            features.push(v);
        }
        n_rows += 1;
    }
    if n_rows == 0 {
        return input(format!("data file '{shown}' has a header but no rows"));
    }
    check_binary_labels(label, &label_values)?;
    let feature_names: Vec<String> = headers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != label_idx)
        .map(|(_, h)| h.clone())
        .collect();
    let dtypes = kinds
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != label_idx)
        .map(|(_, k)| match k {
            Some(Kind::Bool) => "bool",
            Some(Kind::Int) => "int64",
            _ => "float64",
        })
        .map(String::from)
        .collect();
    let d = feature_names.len();
    Ok(Table {
        feature_names,
        dtypes,
        features: Matrix64::new(features, n_rows, d)?,
        labels,
        label_name: label.to_string(),
    })
}

fn check_binary_labels(label: &str, values: &[String]) -> Result<()> {
    let ok = |v: &String| {
        matches!(
            v.as_str(),
            "true" | "True" | "TRUE" | "false" | "False" | "FALSE"
        ) || matches!(v.parse::<f64>(), Ok(x) if x == 0.0 || x == 1.0)
    };
    if values.len() > 2 || !values.iter().all(ok) {
        let mut shown: Vec<&str> = values.iter().take(5).map(String::as_str).collect();
        if values.len() > 5 {
            shown.push("...");
        }
        return input(format!(
            "label column '{label}' must be binary (true/false or 0/1); found {} distinct values: {}",
            values.len(),
            shown.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(content: &str) -> tempfile_path::TempCsv {
        tempfile_path::TempCsv::new(content)
    }

    mod tempfile_path {
        use super::*;
        pub struct TempCsv(pub std::path::PathBuf);
        impl TempCsv {
            pub fn new(content: &str) -> Self {
                static COUNTER: std::sync::atomic::AtomicUsize =
                    std::sync::atomic::AtomicUsize::new(0);
                let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let p = std::env::temp_dir()
                    .join(format!("burn_diff_csv_test_{}_{n}.csv", std::process::id()));
                let mut f = std::fs::File::create(&p).unwrap();
                f.write_all(content.as_bytes()).unwrap();
                Self(p)
            }
        }
        impl Drop for TempCsv {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn parses_bools_ints_and_floats() {
        let f = write("a,b,c,label\n1,true,0.5,true\n2,false,1.5,false\n");
        let d = read_csv(&f.0, "label").unwrap();
        assert_eq!(d.dtypes, vec!["int64", "bool", "float64"]);
        assert_eq!(d.features.data, vec![1.0, 1.0, 0.5, 2.0, 0.0, 1.5]);
        assert_eq!(d.labels, vec![1.0, 0.0]);
    }

    #[test]
    fn rejects_bad_input_with_one_line_messages() {
        let cases = [
            ("a,label\n1,true\n,false\n", "empty cell"),
            ("a,label\n1,true\nx,false\n", "'x' is not a number"),
            ("a,label\n1,0\n2,1\n3,2\n", "must be binary"),
            ("a,label\nnan,0\n", "not a finite number"),
            ("a,label\n", "no rows"),
            ("a,b\n1,2\n", "label column 'label' not found"),
            ("a,label\n1,0,7\n", "malformed CSV"),
        ];
        for (content, expected) in cases {
            let f = write(content);
            let err = read_csv(&f.0, "label").unwrap_err().to_string();
            assert!(err.contains(expected), "{content:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let err = read_csv(Path::new("/nonexistent.csv"), "label").unwrap_err();
        assert!(err.to_string().contains("not found"));
    }
}

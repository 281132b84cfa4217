//! The data: the CSV file read with the `csv` crate, a shuffled 80/20 split, a standard scaler fitted
//! on every row, and the `Batcher` the training `DataLoader` uses.

use std::path::Path;

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::bugs::{self, Bug};

/// The file as read: feature names, how each column was parsed, rows and labels.
pub struct Table {
    /// Feature column names, without the label.
    pub names: Vec<String>,
    /// `int64`, `bool`, `float64` (or `float32`) per feature column.
    pub dtypes: Vec<String>,
    /// Features, one row per record.
    pub rows: Vec<Vec<f64>>,
    /// Labels, 0 or 1.
    pub labels: Vec<f32>,
}

fn number(s: &str) -> Option<f64> {
    match s.trim() {
        "true" | "True" => Some(1.0),
        "false" | "False" => Some(0.0),
        t if bugs::on(Bug::F32Parse) => t.parse::<f32>().ok().map(f64::from),
        t => t.parse::<f64>().ok(),
    }
}

fn dtype(column: &[&str]) -> &'static str {
    if column
        .iter()
        .all(|s| matches!(s.trim(), "true" | "false" | "True" | "False"))
    {
        "bool"
    } else if column.iter().all(|s| s.trim().parse::<i64>().is_ok()) {
        "int64"
    } else if bugs::on(Bug::F32Parse) {
        "float32"
    } else {
        "float64"
    }
}

/// Reads the CSV file at `path` with `label` as the label column.
pub fn read_csv(path: &Path, label: &str) -> Result<Table, String> {
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(String::from)
        .collect();
    let label_at = header
        .iter()
        .position(|h| h == label)
        .ok_or(format!("no column '{label}'"))?;
    let records: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let field = |r: &csv::StringRecord, j: usize| -> Result<f64, String> {
        number(&r[j]).ok_or(format!("cannot read '{}' in column {}", &r[j], header[j]))
    };
    let features: Vec<usize> = (0..header.len()).filter(|&j| j != label_at).collect();
    let mut table = Table {
        names: features.iter().map(|&j| header[j].clone()).collect(),
        dtypes: Vec::new(),
        rows: Vec::with_capacity(records.len()),
        labels: Vec::with_capacity(records.len()),
    };
    for &j in &features {
        let column: Vec<&str> = records.iter().map(|r| &r[j]).collect();
        table.dtypes.push(dtype(&column).to_string());
    }
    for r in &records {
        table.rows.push(
            features
                .iter()
                .map(|&j| field(r, j))
                .collect::<Result<_, _>>()?,
        );
        table.labels.push(field(r, label_at)? as f32);
    }
    Ok(table)
}

/// Train and test rows: sklearn's `train_test_split(test_size, random_state=seed)`, through the
/// harness library's compatible implementation, so that the port trains on the reference's rows.
pub fn split(n: usize, test_size: f64, seed: u32) -> Result<(Vec<usize>, Vec<usize>), String> {
    if bugs::on(Bug::UnseededSplit) {
        return Ok(clock_split(n, test_size));
    }
    let s =
        burn_diff::prep::split::train_test_split(n, test_size, seed).map_err(|e| e.to_string())?;
    Ok((s.train, s.test))
}

/// A Fisher-Yates shuffle from a generator seeded by the clock, the first rows for training.
fn clock_split(n: usize, test_size: f64) -> (Vec<usize>, Vec<usize>) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut state = nanos | 1;
    let mut rows: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        rows.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let n_test = (n as f64 * test_size).ceil() as usize;
    let test = rows.split_off(n - n_test);
    (rows, test)
}

/// A fitted standard scaler: per-feature mean and population standard deviation.
#[derive(Debug, Clone)]
pub struct Scaler {
    /// Per-feature mean.
    pub mean: Vec<f64>,
    /// Per-feature variance.
    pub var: Vec<f64>,
    /// Per-feature divisor (the standard deviation, 1 where it is 0).
    pub scale: Vec<f64>,
}

impl Scaler {
    /// Fits the scaler to `rows`.
    pub fn fit(rows: &[Vec<f64>]) -> Self {
        let d = rows.first().map_or(0, Vec::len);
        let n = rows.len().max(1) as f64;
        let mut s = Scaler {
            mean: vec![0.0; d],
            var: vec![0.0; d],
            scale: vec![1.0; d],
        };
        for j in 0..d {
            if bugs::on(Bug::F32Scaler) {
                let m = rows.iter().map(|r| r[j] as f32).sum::<f32>() / n as f32;
                let v = rows.iter().map(|r| (r[j] as f32 - m).powi(2)).sum::<f32>() / n as f32;
                (s.mean[j], s.var[j]) = (f64::from(m), f64::from(v));
            } else {
                let m = rows.iter().map(|r| r[j]).sum::<f64>() / n;
                s.mean[j] = m;
                s.var[j] = rows.iter().map(|r| (r[j] - m).powi(2)).sum::<f64>() / n;
            }
            s.scale[j] = if s.var[j] > 0.0 { s.var[j].sqrt() } else { 1.0 };
        }
        s
    }

    /// One row scaled, to f32.
    pub fn transform(&self, row: &[f64]) -> Vec<f32> {
        row.iter()
            .zip(self.mean.iter().zip(&self.scale))
            .map(|(x, (m, s))| ((x - m) / s) as f32)
            .collect()
    }
}

/// One example: scaled features and its class.
#[derive(Debug, Clone)]
pub struct Row {
    /// Scaled features.
    pub features: Vec<f32>,
    /// 0 or 1.
    pub label: i64,
}

/// A batch: features `[batch, d]` and classes `[batch]`.
#[derive(Debug, Clone)]
pub struct RowBatch {
    /// Features.
    pub features: Tensor<2>,
    /// Classes.
    pub labels: Tensor<1, Int>,
}

/// Stacks rows into a [`RowBatch`].
#[derive(Debug, Clone, Default)]
pub struct RowBatcher;

impl Batcher<Row, RowBatch> for RowBatcher {
    fn batch(&self, items: Vec<Row>, device: &Device) -> RowBatch {
        let (n, d) = (items.len(), items.first().map_or(0, |r| r.features.len()));
        let x: Vec<f32> = items
            .iter()
            .flat_map(|r| r.features.iter().copied())
            .collect();
        let y: Vec<i64> = items.iter().map(|r| r.label).collect();
        RowBatch {
            features: Tensor::from_data(TensorData::new(x, [n, d]), device),
            labels: Tensor::from_data(TensorData::new(y, [n]), device),
        }
    }
}

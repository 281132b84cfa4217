//! The port's CSV reading: the library's pandas-compatible reader, or, with the f32-parse fault,
//! features deserialized straight into f32 fields (values rounded to float32 before any scaling);
//! with the columns-swapped fault, two columns in each other's place.

use std::path::Path;

use burn_diff::error::Result;
use burn_diff::prep::csv::read_csv;
use burn_diff::Table;

use crate::faults::{Fault, Faults};

/// Loads `path` with `label` as the target column.
pub fn load_csv(path: &Path, label: &str, faults: &Faults) -> Result<Table> {
    let mut t = read_csv(path, label)?;
    if faults.has(Fault::F32Parse) {
        let d = t.features.d;
        for (k, v) in t.features.data.iter_mut().enumerate() {
            if t.dtypes[k % d] == "float64" {
                *v = f64::from(*v as f32);
            }
        }
        for dt in t.dtypes.iter_mut().filter(|dt| *dt == "float64") {
            *dt = "float32".into();
        }
    }
    if faults.has(Fault::ColumnsSwapped) && t.features.d > 5 {
        // A struct that declares feature6 where feature3 is, and the other way round.
        let d = t.features.d;
        for row in t.features.data.chunks_mut(d) {
            row.swap(2, 5);
        }
        t.feature_names.swap(2, 5);
        t.dtypes.swap(2, 5);
    }
    Ok(t)
}

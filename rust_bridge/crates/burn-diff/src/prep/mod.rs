//! The reference's data preparation reproduced exactly, for ports to call: pandas' reading of a
//! numeric CSV, sklearn's `train_test_split` and `StandardScaler`, numpy's `RandomState`. A port
//! may write its own; these are what the harness's own port uses on its faithful path.

pub mod csv;
pub mod mt19937;
pub mod scaler;
pub mod split;

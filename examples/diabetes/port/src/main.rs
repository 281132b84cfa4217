//! A Burn port of the diabetes reference (examples/diabetes/model.py), tested by the harness:
//!
//! ```text
//! cargo build -p diabetes-port
//! harness diff all --config examples/diabetes/harness.toml
//! ```
//!
//! `--list-faults` prints the fault catalogue (`burn_diff::faults`). The model, the loss and the
//! training loop are ordinary Burn code (`burn::nn` layers, `HuberLoss`, `Adam` through
//! `ModuleOptimizer`); data preparation reuses burn-diff's sklearn-compatible helpers.

mod faults;
mod model;
mod port;

use std::process::ExitCode;

use crate::faults::Fault;
use crate::port::{Backend, DiabetesPort};

fn main() -> ExitCode {
    burn_diff::faults::main::<Fault, _>("diabetes-port", |backend: Backend, faults| {
        DiabetesPort::new(backend, faults)
    })
}

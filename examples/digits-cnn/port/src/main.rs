//! A Burn port of the digits CNN reference (examples/digits-cnn/model.py), tested by the harness:
//!
//! ```text
//! cargo build -p digits-cnn-port
//! harness diff all --port-cmd "target/debug/digits-cnn-port [--backend flex|ndarray] [--fault NAME[,NAME...]]"
//! ```
//!
//! `--list-faults` prints the fault catalogue (`burn_diff::faults`). The model,
//! the loss, the optimizer and the training loop are ordinary Burn code (`burn::nn` layers,
//! `CrossEntropyLoss`, `Adam` through `ModuleOptimizer`); data preparation reuses burn-diff's
//! sklearn-compatible helpers. Where Burn 0.22.1 differs from PyTorch the port says so in a comment
//! (see also docs/burn-0.22.md).

mod faults;
mod model;
mod port;

use std::process::ExitCode;

use crate::faults::Fault;
use crate::port::{Backend, CnnPort};

fn main() -> ExitCode {
    burn_diff::faults::main::<Fault, _>("digits-cnn-port", |backend: Backend, faults| {
        CnnPort::new(backend, faults)
    })
}

//! A Burn port of the digits reference (examples/digits/model.py), tested by the harness:
//!
//! ```text
//! cargo build -p digits-port
//! harness diff all --port-cmd "target/debug/digits-port [--backend flex|ndarray] [--fault NAME[,NAME...]]"
//! ```
//!
//! `--list-faults` prints the fault catalogue (`burn_diff::faults`). The model,
//! the loss, the optimizer and the training loop are ordinary Burn code (`burn::nn` layers,
//! `CrossEntropyLoss`, `AdamW` through `ModuleOptimizer`); data preparation reuses burn-diff's
//! sklearn-compatible helpers. Where Burn 0.22.1 differs from PyTorch the port says so in a comment
//! (see also examples/digits/BURN_FACTS.md).

mod faults;
mod loss;
mod model;
mod port;

use std::process::ExitCode;

use crate::faults::Fault;
use crate::port::{Backend, DigitsPort};

fn main() -> ExitCode {
    burn_diff::faults::main::<Fault, _>("digits-port", |backend: Backend, faults| {
        DigitsPort::new(backend, faults)
    })
}

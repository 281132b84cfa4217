//! A Burn port of the transformer reference (examples/transformer/model.py), tested by the harness:
//!
//! ```text
//! cargo build -p transformer-port
//! harness diff all --port-cmd "target/debug/transformer-port [--backend flex|ndarray] [--fault NAME[,NAME...]]"
//! ```
//!
//! `--list-faults` prints the fault catalogue (`burn_diff::faults`). The model (Burn's
//! `TransformerEncoder`), the loss, the optimizer and the training loop are ordinary Burn code;
//! data preparation reuses burn-diff's sklearn-compatible helpers. Where Burn 0.22.1 differs from
//! PyTorch the port says so in a comment (see also docs/burn-0.22.md).

mod faults;
mod model;
mod port;

use std::process::ExitCode;

use crate::faults::Fault;
use crate::port::{Backend, TransformerPort};

fn main() -> ExitCode {
    burn_diff::faults::main::<Fault, _>("transformer-port", |backend: Backend, faults| {
        TransformerPort::new(backend, faults)
    })
}

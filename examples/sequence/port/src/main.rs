//! A Burn port of the sequence reference (examples/sequence/model.py), tested by the harness:
//!
//! ```text
//! cargo build -p sequence-port
//! harness diff all --port-cmd "target/debug/sequence-port [--backend flex|ndarray] [--fault NAME[,NAME...]]"
//! ```
//!
//! `--list-faults` prints the fault catalogue, `name<TAB>stage<TAB>description` per line. The model,
//! the loss, the optimizer and the training loop are ordinary Burn code (`burn::nn` layers,
//! `CrossEntropyLoss`, `Adam` through `ModuleOptimizer`); data preparation reuses burn-diff's
//! sklearn-compatible helpers. Where Burn 0.22.1 differs from PyTorch the port says so in a comment
//! (see also docs/burn-0.22.md).

mod faults;
mod model;
mod port;

use std::process::ExitCode;

use burn_diff::error::{input, Result};

use crate::faults::Faults;
use crate::port::{Backend, SequencePort};

const USAGE: &str =
    "usage: sequence-port [--backend flex|ndarray] [--fault NAME[,NAME...]] [--list-faults]";

enum Command {
    Serve(SequencePort),
    ListFaults,
}

fn parse_args() -> Result<Command> {
    let (mut backend, mut fault) = ("flex".to_string(), String::new());
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        match flag.as_str() {
            "--list-faults" => return Ok(Command::ListFaults),
            "--backend" | "--fault" => {
                let Some(value) = inline.or_else(|| it.next()) else {
                    return input(format!("{flag} needs a value; {USAGE}"));
                };
                if flag == "--backend" {
                    backend = value;
                } else {
                    fault = value;
                }
            }
            other => return input(format!("unknown option '{other}'; {USAGE}")),
        }
    }
    Ok(Command::Serve(SequencePort::new(
        Backend::parse(&backend)?,
        Faults::parse(&fault)?,
    )))
}

fn main() -> ExitCode {
    match parse_args() {
        Ok(Command::Serve(port)) => burn_diff::serve(port),
        Ok(Command::ListFaults) => {
            print!("{}", faults::catalogue());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

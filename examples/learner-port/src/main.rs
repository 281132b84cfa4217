//! A Burn port of the reference classifier, written the way most Burn users write one: a
//! `#[derive(Module)]` model with its own layer names returning logits, burn-train's `Learner` with a
//! `DataLoader` and `Batcher`, Adam from `AdamConfig`, a CSV reader on the `csv` crate and its own
//! scaler. Its bugs are switchable (`--fault`, `--list-faults`); off by default.
//!
//! ```text
//! learner-port train DATA.csv LABEL [ARTIFACT_DIR]   the port's own program
//! learner-port serve                                the port, served to the harness (src/harness.rs)
//! ```

mod bugs;
mod data;
mod harness;
mod model;
mod training;

use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: learner-port [--fault NAME[,NAME...]|all] [--backend flex] [--list-faults] train DATA.csv LABEL [DIR] | serve";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list-faults") {
        print!("{}", bugs::catalogue());
        return ExitCode::SUCCESS;
    }
    let mut faults = String::new();
    if let Some(i) = args.iter().position(|a| a == "--fault") {
        if i + 1 >= args.len() {
            eprintln!("learner-port: --fault needs a value\n{USAGE}");
            return ExitCode::from(2);
        }
        faults = args.remove(i + 1);
        args.remove(i);
    }
    // The harness's backend axis appends `--backend NAME`; this port runs on Flex, the backend its
    // Learner gets.
    if let Some(i) = args.iter().position(|a| a == "--backend") {
        let backend = args.get(i + 1).cloned().unwrap_or_default();
        if backend != "flex" {
            eprintln!("learner-port: runs on the flex backend only, not '{backend}'");
            return ExitCode::from(2);
        }
        args.drain(i..i + 2);
    }
    if let Err(e) = bugs::switch_on(&faults) {
        eprintln!("learner-port: {e}");
        return ExitCode::from(2);
    }
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve"] => harness::serve(),
        ["train", data, label, rest @ ..] => {
            let dir = rest.first().copied().unwrap_or("artifacts");
            match training::run(Path::new(data), label, Path::new(dir)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("learner-port: {e}");
                    ExitCode::from(2)
                }
            }
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

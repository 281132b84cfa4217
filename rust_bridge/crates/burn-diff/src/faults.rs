//! A port's switchable faults and its command line, as `harness faults check` drives them: the port
//! program takes `--fault NAME[,NAME...]` and `--backend NAME`, and `--list-faults` prints the
//! catalogue, `name<TAB>stage<TAB>cause<TAB>description` per line (read by harness/faults.py). A port
//! lists its faults as an enum implementing [`Fault`]; [`main`] is its whole `fn main`.

use std::process::ExitCode;

use crate::backend::BackendKind;
use crate::contract::Port;
use crate::error::{input, Result};

/// One way a port goes wrong, on purpose.
pub trait Fault: Copy + PartialEq + 'static {
    /// Every fault, in catalogue order.
    const ALL: &'static [Self];

    /// `(name, stage that must catch it first, the diagnosis that must name it, description)`.
    fn info(self) -> (&'static str, &'static str, &'static str, &'static str);

    /// The name `--fault` takes.
    fn name(self) -> &'static str {
        self.info().0
    }
}

/// The faults that are on; empty for the faithful port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Faults<F>(Vec<F>);

impl<F> Default for Faults<F> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<F: Fault> Faults<F> {
    /// Parses a comma-separated list of fault names (`""` and `"none"` for none).
    pub fn parse(spec: &str) -> Result<Self> {
        let mut out = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "none" {
                continue;
            }
            let Some(f) = F::ALL.iter().find(|f| f.name() == part) else {
                let names: Vec<&str> = F::ALL.iter().map(|f| f.name()).collect();
                return input(format!(
                    "unknown fault '{part}'; known faults: {}",
                    names.join(", ")
                ));
            };
            if !out.contains(f) {
                out.push(*f);
            }
        }
        Ok(Self(out))
    }

    /// Whether `f` is on.
    pub fn has(&self, f: F) -> bool {
        self.0.contains(&f)
    }

    /// The names of the faults that are on.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|f| f.name().to_string()).collect()
    }
}

/// The catalogue as `--list-faults` prints it.
pub fn catalogue<F: Fault>() -> String {
    F::ALL
        .iter()
        .map(|f| {
            let (name, stage, cause, description) = f.info();
            format!("{name}\t{stage}\t{cause}\t{description}\n")
        })
        .collect()
}

enum Command<F> {
    Serve(BackendKind, Faults<F>),
    ListFaults,
}

fn parse_args<F: Fault>(program: &str, args: impl Iterator<Item = String>) -> Result<Command<F>> {
    let usage = format!(
        "usage: {program} [--backend flex|ndarray] [--fault NAME[,NAME...]] [--list-faults]"
    );
    let (mut backend, mut fault) = ("flex".to_string(), String::new());
    let mut it = args;
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        match flag.as_str() {
            "--list-faults" => return Ok(Command::ListFaults),
            "--backend" | "--fault" => {
                let Some(value) = inline.or_else(|| it.next()) else {
                    return input(format!("{flag} needs a value; {usage}"));
                };
                if flag == "--backend" {
                    backend = value;
                } else {
                    fault = value;
                }
            }
            other => return input(format!("unknown option '{other}'; {usage}")),
        }
    }
    Ok(Command::Serve(
        BackendKind::parse(&backend)?,
        Faults::parse(&fault)?,
    ))
}

/// A port program's `main`: serves `make(backend, faults)` over the subprocess protocol
/// ([`crate::serve`]), or prints the fault catalogue for `--list-faults`. Bad arguments are one
/// line on standard error and exit code 2.
pub fn main<F: Fault, P: Port>(
    program: &str,
    make: impl FnOnce(BackendKind, Faults<F>) -> P,
) -> ExitCode {
    match parse_args::<F>(program, std::env::args().skip(1)) {
        Ok(Command::Serve(backend, faults)) => crate::serve(make(backend, faults)),
        Ok(Command::ListFaults) => {
            print!("{}", catalogue::<F>());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Slip {
        A,
        B,
    }

    impl Fault for Slip {
        const ALL: &'static [Self] = &[Slip::A, Slip::B];
        fn info(self) -> (&'static str, &'static str, &'static str, &'static str) {
            match self {
                Slip::A => ("a-slip", "forward", "forward.a", "the first"),
                Slip::B => ("b-slip", "loss", "loss.b", "the second"),
            }
        }
    }

    fn args(a: &[&str]) -> impl Iterator<Item = String> {
        a.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn faults_parse_by_name_once_each_and_refuse_unknown_ones() {
        let f = Faults::<Slip>::parse("b-slip, a-slip,b-slip").unwrap();
        assert_eq!(f.names(), vec!["b-slip", "a-slip"]);
        assert!(f.has(Slip::A) && Faults::<Slip>::parse("none").unwrap().names().is_empty());
        let e = Faults::<Slip>::parse("c-slip").unwrap_err().to_string();
        assert!(
            e.contains("unknown fault 'c-slip'; known faults: a-slip, b-slip"),
            "{e}"
        );
        assert_eq!(
            catalogue::<Slip>(),
            "a-slip\tforward\tforward.a\tthe first\nb-slip\tloss\tloss.b\tthe second\n"
        );
    }

    #[test]
    fn the_command_line_takes_backend_fault_and_list() {
        let Ok(Command::Serve(_, f)) =
            parse_args::<Slip>("p", args(&["--fault=a-slip", "--backend", "flex"]))
        else {
            panic!("expected a port to serve");
        };
        assert_eq!(f.names(), vec!["a-slip"]);
        assert!(matches!(
            parse_args::<Slip>("p", args(&["--list-faults"])),
            Ok(Command::ListFaults)
        ));
        let e = parse_args::<Slip>("p", args(&["--fault"]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("--fault needs a value; usage: p "), "{e}");
        let e = parse_args::<Slip>("p", args(&["--what"]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("unknown option '--what'"), "{e}");
    }
}

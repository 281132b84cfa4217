//! The error kinds a port reports. Each crosses both transports as its own kind: a Python
//! exception class in-process, an `error.kind` string over the protocol.

use std::fmt;

/// Why a port could not answer a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortError {
    /// The input is unusable: a file, CSV content, labels, an unknown name.
    Input(String),
    /// Arrays or parameters of the wrong shape, or missing/unknown parameter names.
    Shape(String),
    /// The port's code panicked; the message is the panic's.
    Panic(String),
    /// The port does not implement this part of the contract.
    Unsupported(String),
    /// The port's model does not have the parameters it was given (a missing bias, other names):
    /// a divergence of the port, not a broken harness. Carries the model's own parameters, by
    /// their PyTorch names and shapes, so the harness can say which differ and how to map them.
    Structure(String, Vec<(String, Vec<usize>)>),
}

impl PortError {
    /// The kind as the protocol spells it (`docs/protocol.md`).
    pub fn kind(&self) -> &'static str {
        match self {
            PortError::Input(_) => "input",
            PortError::Shape(_) => "shape",
            PortError::Panic(_) => "panic",
            PortError::Unsupported(_) => "unsupported",
            PortError::Structure(..) => "structure",
        }
    }

    /// The message without the kind.
    pub fn message(&self) -> &str {
        match self {
            PortError::Input(m)
            | PortError::Shape(m)
            | PortError::Panic(m)
            | PortError::Unsupported(m)
            | PortError::Structure(m, _) => m,
        }
    }

    /// The port model's own parameters (PyTorch names and shapes) of a [`PortError::Structure`];
    /// empty for the other kinds.
    pub fn parameters(&self) -> &[(String, Vec<usize>)] {
        match self {
            PortError::Structure(_, p) => p,
            _ => &[],
        }
    }

    /// Rebuilds an error from its protocol kind and message (a structure error without its
    /// parameter list).
    pub fn from_kind(kind: &str, message: String) -> Self {
        match kind {
            "shape" => PortError::Shape(message),
            "structure" => PortError::Structure(message, Vec::new()),
            "panic" => PortError::Panic(message),
            "unsupported" => PortError::Unsupported(message),
            _ => PortError::Input(message),
        }
    }
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for PortError {}

/// The result of every contract method.
pub type Result<T> = std::result::Result<T, PortError>;

/// Shorthand for an [`PortError::Input`] error.
pub fn input<T>(msg: impl Into<String>) -> Result<T> {
    Err(PortError::Input(msg.into()))
}

/// Shorthand for a [`PortError::Shape`] error.
pub fn shape<T>(msg: impl Into<String>) -> Result<T> {
    Err(PortError::Shape(msg.into()))
}

/// Runs `f`, turning a panic into [`PortError::Panic`] so that neither transport dies with it.
pub fn catch_panic<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            let first = msg.lines().next().unwrap_or("").to_string();
            Err(PortError::Panic(format!("the port panicked: {first}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for e in [
            PortError::Input("a".into()),
            PortError::Shape("b".into()),
            PortError::Panic("c".into()),
            PortError::Unsupported("d".into()),
            PortError::Structure("e".into(), Vec::new()),
        ] {
            assert_eq!(PortError::from_kind(e.kind(), e.message().into()), e);
        }
    }

    #[test]
    fn panics_become_errors() {
        let r: Result<()> = catch_panic(|| {
            let v: Vec<u8> = Vec::new();
            let _ = v[3];
            Ok(())
        });
        match r {
            Err(PortError::Panic(m)) => assert!(m.contains("index out of bounds"), "{m}"),
            other => panic!("expected a panic error, got {other:?}"),
        }
    }
}

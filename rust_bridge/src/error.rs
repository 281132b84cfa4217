//! One error type for the port: every failure is a message, never a panic.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum PortError {
    /// The user's input is unusable (file, CSV content, labels, unknown names).
    Input(String),
    /// Arrays or parameters of the wrong shape.
    Shape(String),
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortError::Input(m) | PortError::Shape(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for PortError {}

pub type Result<T> = std::result::Result<T, PortError>;

pub fn input<T>(msg: impl Into<String>) -> Result<T> {
    Err(PortError::Input(msg.into()))
}

pub fn shape<T>(msg: impl Into<String>) -> Result<T> {
    Err(PortError::Shape(msg.into()))
}

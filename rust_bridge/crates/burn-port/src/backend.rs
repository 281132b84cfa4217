//! The CPU backends the port runs on, chosen at run time by name. Burn 0.22 carries the backend in
//! the `Device`, so model code has no backend type parameter.

use burn::tensor::Device;
use burn_diff::error::{input, Result};

/// The default backend: the faster one in bench/ (see README).
pub const DEFAULT_BACKEND: &str = "flex";
/// Every backend this build has.
pub const BACKENDS: [&str; 2] = ["flex", "ndarray"];

/// A backend by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Burn's pure-Rust CPU backend (0.22's recommended one).
    Flex,
    /// The NdArray backend (deprecated in 0.22, dropped in 0.23).
    NdArray,
}

impl BackendKind {
    /// Parses `flex` or `ndarray`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "flex" => Ok(Self::Flex),
            "ndarray" => Ok(Self::NdArray),
            other => input(format!(
                "unknown backend '{other}'; known backends: {}",
                BACKENDS.join(", ")
            )),
        }
    }

    /// The backend's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::NdArray => "ndarray",
        }
    }

    /// The device to compute on, without autodiff.
    pub fn device(self) -> Device {
        match self {
            Self::Flex => Device::flex(),
            #[allow(deprecated)]
            Self::NdArray => Device::ndarray(),
        }
    }
}

//! The CPU backends a port runs on, chosen at run time by name. Burn 0.22 carries the backend in
//! the `Device`, so model code has no backend type parameter.
//!
//! Flex (Burn 0.22's own CPU backend) is always built. NdArray (deprecated in 0.22, gone in 0.23)
//! is behind this crate's `ndarray` feature: it doubles Burn's compile, so only a backend matrix
//! (CI, `./dev test --all`) turns it on.

use burn::tensor::Device;

use crate::error::{input, Result};

/// The default backend: the faster one in bench/ (see README).
pub const DEFAULT_BACKEND: &str = "flex";

/// Every backend Burn 0.22 offers on the CPU that a port may name, built or not.
pub const KNOWN_BACKENDS: [&str; 2] = ["flex", "ndarray"];

/// The backends this build has.
pub fn backends() -> Vec<&'static str> {
    KNOWN_BACKENDS
        .into_iter()
        .filter(|name| *name != "ndarray" || cfg!(feature = "ndarray"))
        .collect()
}

/// A backend by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Burn's pure-Rust CPU backend (0.22's recommended one).
    Flex,
    /// The NdArray backend (deprecated in 0.22, dropped in 0.23).
    NdArray,
}

impl BackendKind {
    /// Parses `flex` or `ndarray`; a known backend this build lacks is an input error that says how
    /// to build it.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "flex" => Ok(Self::Flex),
            "ndarray" if cfg!(feature = "ndarray") => Ok(Self::NdArray),
            "ndarray" => input(
                "backend 'ndarray' is not in this build; build with the cargo feature `ndarray` \
                 (./dev test --all, or cargo build --features burn-diff/ndarray)",
            ),
            other => input(format!(
                "unknown backend '{other}'; known backends: {}",
                backends().join(", ")
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
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            Self::NdArray => Device::ndarray(),
            #[cfg(not(feature = "ndarray"))]
            Self::NdArray => unreachable!("parse refuses ndarray in a build without it"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flex_is_always_built_and_unknown_names_list_what_is() {
        assert_eq!(BackendKind::parse("flex").unwrap(), BackendKind::Flex);
        assert!(backends().contains(&DEFAULT_BACKEND));
        let e = BackendKind::parse("wgpu").unwrap_err().to_string();
        assert!(
            e.contains("unknown backend 'wgpu'") && e.contains("flex"),
            "{e}"
        );
    }

    #[test]
    fn ndarray_parses_exactly_when_built() {
        let parsed = BackendKind::parse("ndarray");
        assert_eq!(parsed.is_ok(), cfg!(feature = "ndarray"));
        if let Err(e) = parsed {
            assert!(e.to_string().contains("cargo feature `ndarray`"), "{e}");
        }
    }
}

//! The CPU backends the port runs on, chosen at run time by name.

use crate::error::{input, Result};

pub type FlexAd = burn::backend::Autodiff<burn::backend::Flex>;
pub type NdArrayAd = burn::backend::Autodiff<burn::backend::NdArray<f32>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Flex,
    NdArray,
}

/// The default backend: the faster one in bench/ (see README).
pub const DEFAULT_BACKEND: &str = "flex";
pub const BACKENDS: [&str; 2] = ["flex", "ndarray"];

impl BackendKind {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "flex" => Ok(Self::Flex),
            "ndarray" => Ok(Self::NdArray),
            other => input(format!(
                "unknown backend '{other}'; known backends: flex, ndarray"
            )),
        }
    }
}

/// Runs `$body` with `$B` bound to the autodiff backend of `$kind`.
#[macro_export]
macro_rules! with_backend {
    ($kind:expr, $B:ident => $body:expr) => {
        match $kind {
            $crate::backend::BackendKind::Flex => {
                type $B = $crate::backend::FlexAd;
                $body
            }
            $crate::backend::BackendKind::NdArray => {
                type $B = $crate::backend::NdArrayAd;
                $body
            }
        }
    };
}

//! # burn-diff: the port contract of burn-torch-harness
//!
//! The harness compares a PyTorch reference with a Burn port stage by stage. It reaches the port
//! through the [`Port`] trait: implement it for your port (data preparation, the model's forward
//! and backward, one optimizer step, the training loop, the metric), then either
//!
//! - serve it as a subprocess: `fn main() -> ExitCode { burn_diff::serve(MyPort::default()) }`
//!   and run `harness diff all --port-cmd "target/debug/my-port"` (the wire format is in
//!   `docs/protocol.md`), or
//! - wrap it in a Python extension (the harness's own port does this, crate `burn-py`).
//!
//! Values cross in PyTorch's layout and naming; [`layout`] converts them to and from a Burn module
//! with burn-store's PyTorch adapters.
#![warn(missing_docs)]

pub mod backend;
pub mod contract;
pub mod error;
pub mod faults;
pub mod layout;
#[cfg(feature = "learner")]
pub mod learner;
pub mod optim;
pub mod packed;
pub mod prep;
pub mod protocol;
pub mod serve;
pub mod tensor;

pub use contract::{
    Activations, EffectiveConfig, OptimState, Port, PortInfo, Prepared, Progress, Roundtrip,
    ScalerStats, SplitIndices, Table, TrainRequest, TrainTrace,
};
pub use error::{catch_panic, input, shape, PortError, Result};
pub use serve::{call, serve};
pub use tensor::{Matrix, Matrix64, NamedTensor, Params};

//! The Burn port of the reference classifier, written as a Burn user writes it (`burn::nn::Linear`,
//! Burn's `Adam` through `ModuleOptimizer`, weights loaded with burn-store's PyTorch adapter), on
//! the harness's contract (`burn_diff::Port`). Each file holds one piece: data, split, scaler,
//! model, loss, optimizer, training, faults; `port` answers the contract with them.
#![warn(missing_docs)]

pub mod config;
pub mod data;
pub mod faults;
pub mod loss;
pub mod model;
pub mod optim;
pub mod port;
pub mod scaler;
pub mod split;
pub mod train;

pub use port::ClassifierPort;

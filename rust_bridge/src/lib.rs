//! The Burn port of the reference classifier and its pipeline. Each file holds one piece
//! (data, split, scaler, model, loss, optimizer, training, faults); `python` is the PyO3 glue.

pub mod adam;
pub mod backend;
pub mod config;
pub mod data;
pub mod error;
pub mod faults;
pub mod loss;
pub mod model;
pub mod mt19937;
pub mod scaler;
pub mod split;
pub mod train;

#[cfg(feature = "python")]
mod python;

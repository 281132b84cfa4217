//! The hyperparameters the port really uses. Defaults reproduce the reference script; faults change
//! them exactly where a real port's configuration would differ.

use crate::faults::{Fault, Faults};

/// The training hyperparameters, by the reference's names.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Learning rate passed to every `optimizer.step`.
    pub lr: f64,
    /// Adam's beta_1.
    pub beta1: f64,
    /// Adam's beta_2.
    pub beta2: f64,
    /// Adam's epsilon.
    pub eps: f64,
    /// Weight decay (none in the reference).
    pub weight_decay: f64,
    /// Per-parameter gradient norm clipping (Burn's GradientClippingConfig::Norm), if any.
    pub clip_norm: Option<f32>,
    /// Adam's AMSGrad variant. Not a key of the contract's effective config: the harness sees it only
    /// in the port's training run.
    pub amsgrad: bool,
    /// Rows per batch.
    pub batch_size: usize,
    /// Epochs.
    pub epochs: usize,
    /// Probability above which the metric predicts class 1.
    pub threshold: f32,
    /// Share of rows held out for testing.
    pub test_size: f64,
    /// Seed of the train/test split.
    pub split_seed: u32,
}

impl TrainConfig {
    /// The reference script's values.
    pub const fn reference() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            clip_norm: None,
            amsgrad: false,
            batch_size: 32,
            epochs: 20,
            threshold: 0.5,
            test_size: 0.2,
            split_seed: 42,
        }
    }

    /// The reference defaults as this port, with its faults, really runs them.
    pub fn effective(faults: &Faults) -> Self {
        let mut c = Self::reference();
        if faults.has(Fault::AdamEps) {
            c.eps = 1e-5;
        }
        if faults.has(Fault::GradClip) {
            c.clip_norm = Some(1.0);
        }
        if faults.has(Fault::Lr1e4) {
            c.lr = 1e-4;
        }
        if faults.has(Fault::Amsgrad) {
            c.amsgrad = true;
        }
        c
    }
}

/// How the port computes what is not a number (reported by effective_config next to the numbers).
pub fn descriptive(faults: &Faults) -> Vec<(&'static str, String)> {
    let fit_rows = if faults.has(Fault::ScalerTrainOnly) {
        "train"
    } else {
        "all"
    };
    vec![
        ("optimizer", "Adam".to_string()),
        ("loss", "BCELoss".to_string()),
        ("loss_reduction", "mean".to_string()),
        ("scaler_fit_rows", fit_rows.to_string()),
    ]
}

//! The loss: PyTorch's `CrossEntropyLoss(label_smoothing=0.1)` (mean reduction) on logits, as
//! Burn's `CrossEntropyLoss` with `smoothing: Some(0.1)`.
//!
//! Burn fact: Burn's smoothed targets are `onehot (1 - a) + a / C` and the loss is
//! `-mean_rows(sum_c log_softmax(logits, 1) * targets)` (burn-nn src/loss/cross_entropy.rs:138-169,
//! 202-216): PyTorch's formula, `(1 - a) nll + a mean_c(-log p)`, term for term.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

pub use burn_diff::tensor::class_indices;

use crate::faults::{Fault, Faults};

/// nn.CrossEntropyLoss(label_smoothing=0.1).
pub const LABEL_SMOOTHING: f32 = 0.1;

/// The mean loss (a one-element tensor) of `logits` `[n, C]` against class indices `y`.
pub fn cross_entropy(logits: Tensor<2>, y: &[i64], faults: &Faults) -> Tensor<1> {
    let device = logits.device();
    let n = y.len();
    if faults.has(Fault::SoftmaxDim) {
        // A hand-written cross-entropy with the log-softmax over the wrong axis.
        let [_, classes] = logits.dims();
        let a = LABEL_SMOOTHING;
        let mut t = vec![a / classes as f32; n * classes];
        for (i, &c) in y.iter().enumerate() {
            t[i * classes + c as usize] += 1.0 - a;
        }
        let targets = Tensor::<2>::from_data(TensorData::new(t, [n, classes]), &device);
        return (log_softmax(logits, 0) * targets).sum_dim(1).mean().neg();
    }
    let targets = Tensor::<1, Int>::from_data(TensorData::new(y.to_vec(), [n]), &device);
    let config = if faults.has(Fault::NoLabelSmoothing) {
        CrossEntropyLossConfig::new()
    } else {
        CrossEntropyLossConfig::new().with_smoothing(Some(LABEL_SMOOTHING))
    };
    config.init(&device).forward(logits, targets)
}

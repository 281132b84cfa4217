//! Binary cross-entropy equal to PyTorch's `nn.BCELoss` in value and in gradient.
//!
//! Value: mean((y-1)*max(log1p(-p), -100) - y*max(log(p), -100)).
//! Gradient: (p - y) / max((1-p)*p, 1e-12) / N (aten/src/ATen/native/Loss.cpp). Burn's autodiff of
//! the clamped formula would give 0 from the clamp and 1/p from the log, i.e. NaN at p in {0, 1},
//! which a float32 sigmoid reaches during training. So the gradient is attached explicitly: the
//! backward pass runs through `sum(p * c)` with `c` the detached PyTorch gradient, whose derivative
//! with respect to `p` is exactly `c`.

use burn::nn::loss::BinaryCrossEntropyLossConfig;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};

use crate::faults::{Fault, Faults};

const LOG_CLAMP: f32 = -100.0;
const GRAD_EPS: f32 = 1e-12;

/// A loss: its value (reported) and the tensor to call `backward` on.
pub struct Loss<B: AutodiffBackend> {
    pub value: Tensor<B::InnerBackend, 1>,
    pub backward_root: Tensor<B, 1>,
}

/// PyTorch's BCELoss value on plain tensors.
pub fn bce_value<B: Backend>(p: Tensor<B, 1>, y: Tensor<B, 1>) -> Tensor<B, 1> {
    let log_p = p.clone().log().clamp_min(LOG_CLAMP);
    let log_1mp = p.neg().log1p().clamp_min(LOG_CLAMP);
    ((y.clone() - 1.0) * log_1mp - y * log_p).mean()
}

/// PyTorch's BCELoss gradient with respect to `p`, mean reduction.
pub fn bce_grad<B: Backend>(p: Tensor<B, 1>, y: Tensor<B, 1>) -> Tensor<B, 1> {
    let n = p.dims()[0] as f32;
    let denom = (p.clone().neg() + 1.0).mul(p.clone()).clamp_min(GRAD_EPS);
    (p - y).div(denom).div_scalar(n)
}

/// The loss on probabilities `p` (shape [N]) against 0/1 targets `y`, as this port computes it.
pub fn bce_on_probabilities<B: AutodiffBackend>(
    p: Tensor<B, 1>,
    y: Tensor<B::InnerBackend, 1>,
    faults: &Faults,
) -> Loss<B> {
    if faults.has(Fault::UnclampedBce) {
        // Burn 0.16's BinaryCrossEntropyLoss: no clamp, plain autodiff.
        let yb = Tensor::<B, 1>::from_inner(y);
        let loss = ((yb.clone() - 1.0) * p.clone().neg().log1p() - yb * p.log()).mean();
        return Loss {
            value: loss.clone().inner(),
            backward_root: loss,
        };
    }
    if faults.has(Fault::BurnStockBce) {
        let targets: Tensor<B, 1, Int> = Tensor::from_inner(y.int());
        let loss = BinaryCrossEntropyLossConfig::new()
            .init(&p.device())
            .forward(p, targets);
        return Loss {
            value: loss.clone().inner(),
            backward_root: loss,
        };
    }
    let p_inner = p.clone().inner();
    let value = bce_value(p_inner.clone(), y.clone());
    let coef = Tensor::<B, 1>::from_inner(bce_grad(p_inner, y));
    Loss {
        value,
        backward_root: (p * coef).sum(),
    }
}

/// Burn's BCE with logits (the logits-bce fault's training loss).
pub fn bce_on_logits<B: AutodiffBackend>(
    z: Tensor<B, 1>,
    y: Tensor<B::InnerBackend, 1>,
) -> Loss<B> {
    let targets: Tensor<B, 1, Int> = Tensor::from_inner(y.int());
    let loss = BinaryCrossEntropyLossConfig::new()
        .with_logits(true)
        .init(&z.device())
        .forward(z, targets);
    Loss {
        value: loss.clone().inner(),
        backward_root: loss,
    }
}

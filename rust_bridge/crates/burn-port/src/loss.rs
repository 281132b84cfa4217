//! Binary cross-entropy equal to PyTorch's `nn.BCELoss` in value and in gradient: the port's one
//! deliberate deviation from stock Burn, documented in docs/burn-0.22.md.
//!
//! Value: mean((y-1)*max(log1p(-p), -100) - y*max(log(p), -100)), as Burn 0.22's
//! `BinaryCrossEntropyLoss` computes it (burn-nn/src/loss/binary_cross_entropy.rs).
//! Gradient: (p - y) / max((1-p)*p, 1e-12) / N, as PyTorch's (aten/src/ATen/native/Loss.cpp).
//! Burn's autodiff of the clamped formula gives 0 from the clamp times 1/p from the log, NaN at
//! p in {0, 1}, which a float32 sigmoid reaches during training. So the gradient is attached
//! explicitly: backward runs through `sum(p * c)` with `c` the detached PyTorch gradient, whose
//! derivative with respect to `p` is exactly `c`.

use burn::nn::loss::BinaryCrossEntropyLossConfig;
use burn::tensor::{Int, Tensor};

use crate::faults::{Fault, Faults};

const LOG_CLAMP: f32 = -100.0;
const GRAD_EPS: f32 = 1e-12;

/// A loss: its value (reported) and the tensor to call `backward` on.
pub struct Loss {
    /// The loss value, without autodiff.
    pub value: Tensor<1>,
    /// The tensor whose backward gives the loss's gradients.
    pub backward_root: Tensor<1>,
}

/// PyTorch's BCELoss value.
pub fn bce_value(p: Tensor<1>, y: Tensor<1>) -> Tensor<1> {
    let log_p = p.clone().log().clamp_min(LOG_CLAMP);
    let log_1mp = p.neg().log1p().clamp_min(LOG_CLAMP);
    ((y.clone() - 1.0) * log_1mp - y * log_p).mean()
}

/// PyTorch's BCELoss gradient with respect to `p`, mean reduction.
pub fn bce_grad(p: Tensor<1>, y: Tensor<1>) -> Tensor<1> {
    let n = p.dims()[0] as f32;
    let denom = (p.clone().neg() + 1.0).mul(p.clone()).clamp_min(GRAD_EPS);
    (p - y).div(denom).div_scalar(n)
}

fn stock(loss: Tensor<1>) -> Loss {
    Loss {
        value: loss.clone().inner(),
        backward_root: loss,
    }
}

/// The loss on probabilities `p` (`[N]`, autodiff) against 0/1 targets `y`, as this port computes it.
pub fn bce_on_probabilities(p: Tensor<1>, y: Tensor<1>, faults: &Faults) -> Loss {
    let y = y.inner();
    let y = if faults.has(Fault::LabelSmoothing) {
        y * 0.9 + 0.05
    } else {
        y
    };
    if faults.has(Fault::UnclampedBce) {
        // Burn 0.16's BinaryCrossEntropyLoss: no clamp, plain autodiff.
        let yb = y.autodiff();
        return stock(((yb.clone() - 1.0) * p.clone().neg().log1p() - yb * p.log()).mean());
    }
    if faults.has(Fault::BurnStockBce) {
        let targets: Tensor<1, Int> = y.int().autodiff();
        let loss = BinaryCrossEntropyLossConfig::new()
            .init(&p.device())
            .forward(p, targets);
        return stock(loss);
    }
    let p_inner = p.clone().inner();
    let value = bce_value(p_inner.clone(), y.clone());
    let coef = bce_grad(p_inner, y).autodiff();
    Loss {
        value,
        backward_root: (p * coef).sum(),
    }
}

/// Burn's BCE with logits (the logits-bce fault's training loss).
pub fn bce_on_logits(z: Tensor<1>, y: Tensor<1>) -> Loss {
    let targets: Tensor<1, Int> = y.inner().int().autodiff();
    stock(
        BinaryCrossEntropyLossConfig::new()
            .with_logits(true)
            .init(&z.device())
            .forward(z, targets),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn grad_of(p: [f32; 4], y: [f32; 4], faults: &Faults) -> (f32, Vec<f32>) {
        let device = Device::flex().autodiff();
        let pt = Tensor::<1>::from_data(TensorData::new(p.to_vec(), [4]), &device).require_grad();
        let yt = Tensor::<1>::from_data(TensorData::new(y.to_vec(), [4]), &device);
        let loss = bce_on_probabilities(pt.clone(), yt, faults);
        let g = pt.grad(&loss.backward_root.backward()).unwrap();
        let v = loss
            .value
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()[0];
        (
            v,
            g.into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap(),
        )
    }

    #[test]
    fn burn_stock_bce_gradient_is_nan_at_the_edges() {
        // The fact docs/burn-0.22.md relies on: Burn's clamped loss has a NaN gradient at p in {0, 1}.
        let (v, g) = grad_of(
            [0.0, 1.0, 0.5, 0.25],
            [0.0, 1.0, 1.0, 0.0],
            &Faults::parse("burn-stock-bce").unwrap(),
        );
        assert!(v.is_finite());
        assert!(g[0].is_nan() && g[1].is_nan(), "{g:?}");
        assert!(g[2].is_finite() && g[3].is_finite());
    }

    #[test]
    fn port_bce_matches_pytorch_value_and_gradient() {
        let (v, g) = grad_of([0.0, 1.0, 0.5, 0.25], [0.0, 1.0, 1.0, 0.0], &Faults::none());
        // PyTorch: mean(-log(1-0) - log(1) - log(0.5) - log(0.75)) = (0 + 0 + ln 2 + ln 4/3) / 4.
        let expected = (std::f32::consts::LN_2 + (4.0f32 / 3.0).ln()) / 4.0;
        assert!((v - expected).abs() < 1e-6, "{v}");
        // (p - y) / max(p(1-p), 1e-12) / N.
        let expected = [0.0, 0.0, (0.5 - 1.0) / 0.25 / 4.0, 0.25 / 0.1875 / 4.0];
        for (a, b) in g.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{g:?}");
        }
        // The user's report: perfect predictions 0, wrong ones 100 (clamped), uncertain ln 2.
        let (wrong, _) = grad_of([0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0], &Faults::none());
        assert_eq!(wrong, 100.0);
    }
}

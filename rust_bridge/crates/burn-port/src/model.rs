//! The classifier, Linear(d,64)-ReLU-Linear(64,32)-ReLU-Linear(32,1)-Sigmoid, written as a Burn
//! user writes it: `burn::nn::Linear` layers named like the reference's attributes, so PyTorch's
//! `state_dict()` names (`fc1.weight`) are the module's own paths and burn-store's PyTorch adapter
//! loads them (see `burn_diff::layout`).

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor};

use burn_diff::{NamedTensor, Params};

use crate::faults::{Fault, Faults};
use burn_diff::prep::mt19937::Mt19937;

/// Hidden widths of the reference.
pub const HIDDEN: [usize; 2] = [64, 32];

/// The port's model.
#[derive(Module, Debug)]
pub struct Classifier {
    /// First layer, `n_features -> 64`.
    pub fc1: Linear,
    /// Second layer, `64 -> 32`.
    pub fc2: Linear,
    /// Output layer, `32 -> 1`.
    pub fc3: Linear,
}

/// (in, out) of each Linear layer for `n_features` inputs.
pub fn layer_dims(n_features: usize) -> [(usize, usize); 3] {
    [
        (n_features, HIDDEN[0]),
        (HIDDEN[0], HIDDEN[1]),
        (HIDDEN[1], 1),
    ]
}

impl Classifier {
    /// A freshly initialized model (Burn's own initializer) on `device`; with the no-bias fault, its
    /// second layer has no bias.
    pub fn new(n_features: usize, device: &Device, faults: &Faults) -> Self {
        let [a, b, c] = layer_dims(n_features).map(|(i, o)| LinearConfig::new(i, o));
        let b = b.with_bias(!faults.has(Fault::NoBias));
        let [a, b, c] = [a, b, c].map(|l| l.init(device));
        Self {
            fc1: a,
            fc2: b,
            fc3: c,
        }
    }

    /// Every layer's output by the reference's layer names; the last is what forward returns.
    pub fn layers(&self, x: Tensor<2>, faults: &Faults) -> Vec<(&'static str, Tensor<2>)> {
        let z1 = self.fc1.forward(x);
        let a1 = relu(z1.clone());
        let z2 = self.fc2.forward(a1.clone());
        let a2 = if faults.has(Fault::MissingRelu) {
            z2.clone()
        } else {
            relu(z2.clone())
        };
        let logits = self.fc3.forward(a2.clone());
        // The logits variant returns logits from forward; only its inference applies sigmoid.
        let out = if faults.has(Fault::LogitsBce) {
            logits.clone()
        } else if faults.has(Fault::SigmoidByHand) {
            let d = logits.clone().neg().exp() + 1.0;
            d.ones_like() / d
        } else {
            sigmoid(logits.clone())
        };
        vec![
            ("fc1", z1),
            ("relu1", a1),
            ("fc2", z2),
            ("relu2", a2),
            ("fc3", logits),
            ("sigmoid", out),
        ]
    }

    /// What the model returns: probabilities `[n, 1]` (logits with the logits-bce fault).
    pub fn forward(&self, x: Tensor<2>, faults: &Faults) -> Tensor<2> {
        let mut layers = self.layers(x, faults);
        layers.pop().expect("the model has layers").1
    }

    /// Probabilities, whatever forward returns.
    pub fn predict(&self, x: Tensor<2>, faults: &Faults) -> Tensor<2> {
        let out = self.forward(x, faults);
        if faults.has(Fault::LogitsBce) {
            sigmoid(out)
        } else {
            out
        }
    }
}

/// The port's own initialization when the harness gives none: Burn's default distribution for
/// Linear, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), from the port's own seeded stream so that
/// independent runs are reproducible. Returned in PyTorch's layout, like any other parameters.
pub fn own_init(n_features: usize, seed: u64, faults: &Faults) -> Params {
    let mut rng = Mt19937::new((seed ^ (seed >> 32)) as u32 ^ 0xA5A5_0001);
    let mut out = Vec::new();
    for (layer, &(d_in, d_out)) in layer_dims(n_features).iter().enumerate() {
        let bound = 1.0 / (d_in as f32).sqrt();
        let mut draw = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| rng.next_f32() * 2.0 * bound - bound)
                .collect()
        };
        let w = draw(d_in * d_out);
        out.push(NamedTensor {
            name: format!("fc{}.weight", layer + 1),
            shape: vec![d_out, d_in],
            data: w,
        });
        let bias = draw(d_out);
        if layer == 1 && faults.has(Fault::NoBias) {
            continue;
        }
        out.push(NamedTensor {
            name: format!("fc{}.bias", layer + 1),
            shape: vec![d_out],
            data: bias,
        });
    }
    Params(out)
}

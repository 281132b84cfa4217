//! DiabetesNet, written as a Burn user writes it: `burn::nn` layers named like the reference's
//! attributes, so PyTorch's `state_dict()` names (`fc1.weight`, `out.bias`) are the module's own
//! paths, and burn-store's PyTorch adapter loads them (it transposes Linear weights).

use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::tensor::{Device, Tensor};

/// fc1's width.
pub const HIDDEN: usize = 64;
/// fc2's width.
pub const BOTTLENECK: usize = 32;
/// The reference's layer names, in forward order.
pub const LAYERS: [&str; 5] = ["fc1", "act1", "fc2", "act2", "out"];

/// The reference's DiabetesNet.
#[derive(Module, Debug)]
pub struct DiabetesNet {
    /// Linear(n_features, 64).
    pub fc1: Linear,
    /// ReLU.
    pub act1: Relu,
    /// Linear(64, 32).
    pub fc2: Linear,
    /// ReLU.
    pub act2: Relu,
    /// Linear(32, 1).
    pub out: Linear,
}

impl DiabetesNet {
    /// A freshly initialized model (Burn's Linear default is PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in))).
    pub fn new(n_features: usize, device: &Device) -> Self {
        Self {
            fc1: LinearConfig::new(n_features, HIDDEN).init(device),
            act1: Relu::new(),
            fc2: LinearConfig::new(HIDDEN, BOTTLENECK).init(device),
            act2: Relu::new(),
            out: LinearConfig::new(BOTTLENECK, 1).init(device),
        }
    }

    /// Every layer's output, by the reference's layer names; the last is the prediction `[n, 1]`.
    pub fn layers(&self, x: Tensor<2>) -> Vec<(&'static str, Tensor<2>)> {
        let fc1 = self.fc1.forward(x);
        let act1 = self.act1.forward(fc1.clone());
        let fc2 = self.fc2.forward(act1.clone());
        let act2 = self.act2.forward(fc2.clone());
        let out = self.out.forward(act2.clone());
        LAYERS
            .into_iter()
            .zip([fc1, act1, fc2, act2, out])
            .collect()
    }

    /// The prediction `[n, 1]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.layers(x).pop().expect("the model has layers").1
    }
}

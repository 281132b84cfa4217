//! The classifier, Linear(d,64)-ReLU-Linear(64,32)-ReLU-Linear(32,1)-Sigmoid, on Burn's `Linear`.
//! Parameters cross the port's boundary by name in PyTorch's layout (`fcN.weight` is [out, in]);
//! Burn stores [in, out], so the conversion is explicit here and nowhere else.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::error::{shape, Result};
use crate::faults::{Fault, Faults};
use crate::mt19937::Mt19937;

pub const HIDDEN: [usize; 2] = [64, 32];
pub const PARAM_NAMES: [&str; 6] = [
    "fc1.weight",
    "fc1.bias",
    "fc2.weight",
    "fc2.bias",
    "fc3.weight",
    "fc3.bias",
];

/// One parameter in PyTorch's layout, independent of any framework.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// All parameters in PyTorch's layout and naming, in `PARAM_NAMES` order.
#[derive(Debug, Clone, PartialEq)]
pub struct TorchParams(pub Vec<NamedTensor>);

/// (in, out) of each Linear layer for `n_features` inputs.
pub fn layer_dims(n_features: usize) -> [(usize, usize); 3] {
    [
        (n_features, HIDDEN[0]),
        (HIDDEN[0], HIDDEN[1]),
        (HIDDEN[1], 1),
    ]
}

/// PyTorch shapes of every parameter, in `PARAM_NAMES` order.
pub fn torch_shapes(n_features: usize) -> Vec<Vec<usize>> {
    layer_dims(n_features)
        .iter()
        .flat_map(|&(i, o)| [vec![o, i], vec![o]])
        .collect()
}

impl TorchParams {
    /// Checks names and shapes; `n_features` is the width the data has.
    pub fn validate(&self, n_features: usize) -> Result<()> {
        let shapes = torch_shapes(n_features);
        if self.0.len() != PARAM_NAMES.len() {
            return shape(format!(
                "expected {} parameters ({}), got {}",
                PARAM_NAMES.len(),
                PARAM_NAMES.join(", "),
                self.0.len()
            ));
        }
        for ((t, name), expected) in self.0.iter().zip(PARAM_NAMES).zip(&shapes) {
            if t.name != name {
                return shape(format!("expected parameter '{name}', got '{}'", t.name));
            }
            if &t.shape != expected || t.data.len() != expected.iter().product::<usize>() {
                return shape(format!(
                    "parameter '{name}' has shape {:?}; expected {:?} for {n_features} input features",
                    t.shape, expected
                ));
            }
        }
        Ok(())
    }

    /// The port's own initialization: Burn's distribution, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
    /// weights and biases, drawn from the port's own seeded stream (not torch's), so independent
    /// runs are reproducible. (Burn's flex backend seeds only the next random op, so `B::seed`
    /// cannot make a whole initialization deterministic.)
    pub fn init(n_features: usize, seed: u64) -> Self {
        let mut rng = Mt19937::new((seed ^ (seed >> 32)) as u32 ^ 0xA5A5_0001);
        let mut out = Vec::new();
        for (layer, &(d_in, d_out)) in layer_dims(n_features).iter().enumerate() {
            let bound = 1.0 / (d_in as f32).sqrt();
            let mut draw = |n: usize| -> Vec<f32> {
                (0..n)
                    .map(|_| rng.next_f32() * 2.0 * bound - bound)
                    .collect()
            };
            // Drawn in Burn's [in, out] order, then stored in PyTorch's layout.
            let w_in_out = draw(d_in * d_out);
            let mut w = vec![0.0f32; d_in * d_out];
            for i in 0..d_in {
                for o in 0..d_out {
                    w[o * d_in + i] = w_in_out[i * d_out + o];
                }
            }
            out.push(NamedTensor {
                name: PARAM_NAMES[2 * layer].into(),
                shape: vec![d_out, d_in],
                data: w,
            });
            out.push(NamedTensor {
                name: PARAM_NAMES[2 * layer + 1].into(),
                shape: vec![d_out],
                data: draw(d_out),
            });
        }
        TorchParams(out)
    }
}

#[derive(Module, Debug)]
pub struct Classifier<B: Backend> {
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
    pub fc3: Linear<B>,
}

/// Every layer's output, for per-layer comparison. `output` is what the model returns.
pub struct Activations<B: Backend> {
    pub z1: Tensor<B, 2>,
    pub a1: Tensor<B, 2>,
    pub z2: Tensor<B, 2>,
    pub a2: Tensor<B, 2>,
    pub logits: Tensor<B, 2>,
    pub output: Tensor<B, 2>,
}

/// Burn's [in, out] weight from PyTorch's [out, in] data.
fn burn_weight<B: Backend>(t: &NamedTensor, faults: &Faults, device: &B::Device) -> Tensor<B, 2> {
    let (d_out, d_in) = (t.shape[0], t.shape[1]);
    if faults.has(Fault::WeightsReshaped) {
        // The classic slip: same buffer, new shape. Shapes line up; values land in the wrong place.
        Tensor::from_data(TensorData::new(t.data.clone(), [d_in, d_out]), device)
    } else {
        Tensor::<B, 2>::from_data(TensorData::new(t.data.clone(), [d_out, d_in]), device)
            .transpose()
    }
}

impl<B: Backend> Classifier<B> {
    /// Builds the model from PyTorch-layout parameters (validated by the caller).
    pub fn from_torch(params: &TorchParams, faults: &Faults, device: &B::Device) -> Self {
        let p = &params.0;
        let layer = |i: usize| {
            let bias = Tensor::from_data(
                TensorData::new(p[2 * i + 1].data.clone(), [p[2 * i + 1].data.len()]),
                device,
            );
            Linear {
                weight: Param::from_tensor(burn_weight::<B>(&p[2 * i], faults, device)),
                bias: Some(Param::from_tensor(bias)),
            }
        };
        Self {
            fc1: layer(0),
            fc2: layer(1),
            fc3: layer(2),
        }
    }

    /// Builds the model from Burn-layout tensors (weights [in, out]), marking them trainable.
    pub fn from_burn(tensors: &[Tensor<B, 2>; 3], biases: &[Tensor<B, 1>; 3]) -> Self {
        let layer = |i: usize| Linear {
            weight: Param::from_tensor(tensors[i].clone()),
            bias: Some(Param::from_tensor(biases[i].clone())),
        };
        Self {
            fc1: layer(0),
            fc2: layer(1),
            fc3: layer(2),
        }
    }

    pub fn forward(&self, x: Tensor<B, 2>, faults: &Faults) -> Activations<B> {
        let z1 = self.fc1.forward(x);
        let a1 = relu(z1.clone());
        let z2 = self.fc2.forward(a1.clone());
        let a2 = if faults.has(Fault::MissingRelu) {
            z2.clone()
        } else {
            relu(z2.clone())
        };
        let logits = self.fc3.forward(a2.clone());
        let output = if faults.has(Fault::LogitsBce) {
            // The logits variant returns logits from forward; its inference applies sigmoid.
            logits.clone()
        } else {
            sigmoid(logits.clone())
        };
        Activations {
            z1,
            a1,
            z2,
            a2,
            logits,
            output,
        }
    }

    /// Probabilities, whatever forward returns.
    pub fn predict(&self, x: Tensor<B, 2>, faults: &Faults) -> Tensor<B, 2> {
        let act = self.forward(x, faults);
        if faults.has(Fault::LogitsBce) {
            sigmoid(act.output)
        } else {
            act.output
        }
    }

    /// Burn's own layout of each weight, for the weights stage's layout report.
    pub fn burn_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for (i, l) in [&self.fc1, &self.fc2, &self.fc3].iter().enumerate() {
            out.push((
                PARAM_NAMES[2 * i].to_string(),
                l.weight.val().dims().to_vec(),
            ));
            if let Some(b) = &l.bias {
                out.push((PARAM_NAMES[2 * i + 1].to_string(), b.val().dims().to_vec()));
            }
        }
        out
    }

    /// Back to PyTorch's layout (always by transposing: this is the harness's reading of the port).
    pub fn to_torch(&self) -> TorchParams {
        let mut out = Vec::new();
        for (i, l) in [&self.fc1, &self.fc2, &self.fc3].iter().enumerate() {
            let w = l.weight.val();
            let [d_in, d_out] = w.dims();
            out.push(NamedTensor {
                name: PARAM_NAMES[2 * i].into(),
                shape: vec![d_out, d_in],
                data: to_vec(w.transpose()),
            });
            let b = l.bias.as_ref().map(|b| to_vec(b.val())).unwrap_or_default();
            out.push(NamedTensor {
                name: PARAM_NAMES[2 * i + 1].into(),
                shape: vec![d_out],
                data: b,
            });
        }
        TorchParams(out)
    }
}

/// A tensor's values as f32, in row-major order.
pub fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("float tensors convert to f32")
}

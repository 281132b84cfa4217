//! DigitsNet, written as a Burn user writes it: `burn::nn` layers named like the reference's
//! attributes, so PyTorch's `state_dict()` names (`fc1.weight`, `norm1.weight`, `bn.running_var`)
//! are the module's own paths, and burn-store's PyTorch adapter loads them (it renames
//! LayerNorm/BatchNorm `weight`/`bias` to Burn's `gamma`/`beta` and transposes Linear weights).
//!
//! Two places differ from stock Burn, each the smallest change that makes the port match PyTorch
//! (the facts, with their source lines, are in examples/digits/BURN_FACTS.md):
//! - BatchNorm's training-mode running variance (see [`DigitsNet::batch_norm`]);
//! - on the ndarray backend only, GELU's gradient (see [`gelu_erf`]).

use std::f64::consts::SQRT_2;

use burn::module::Module;
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Gelu, LayerNorm, LayerNormConfig, Linear,
    LinearConfig, Relu,
};
use burn::tensor::module::batch_norm_train;
use burn::tensor::{Device, Tensor};

use crate::faults::{Fault, Faults};

/// fc1's width.
pub const HIDDEN: usize = 128;
/// fc2's width, BatchNorm's features.
pub const BOTTLENECK: usize = 64;
/// Classes.
pub const OUTPUTS: usize = 10;
/// nn.Dropout(0.1).
pub const DROP_P: f64 = 0.1;
/// nn.LayerNorm's default eps.
pub const NORM_EPS: f64 = 1e-5;
/// nn.BatchNorm1d's default eps.
pub const BN_EPS: f64 = 1e-5;
/// nn.BatchNorm1d's default momentum, PyTorch's convention: running = (1 - m) running + m batch.
/// Burn's BatchNorm uses the same convention (burn-nn src/modules/norm/batch.rs:166-171).
pub const BN_MOMENTUM: f64 = 0.1;

/// The buffers of the model (PyTorch names): tensors it holds that no optimizer updates.
pub const BUFFERS: &[&str] = &["bn.running_mean", "bn.running_var"];

/// The reference's layer names, in forward order.
pub const LAYERS: [&str; 8] = ["fc1", "norm1", "act1", "drop", "fc2", "bn", "act2", "fc3"];

/// How the model is built: the faithful port's choices, changed by faults and the backend.
#[derive(Debug, Clone, Copy)]
pub struct NetOptions {
    /// Dropout probability while training (0 turns dropout off).
    pub dropout: f64,
    /// GELU with the tanh approximation (fault gelu-tanh).
    pub gelu_tanh: bool,
    /// GELU from erf with tensor ops, for an exact autodiff gradient (the ndarray backend).
    pub gelu_from_erf: bool,
    /// LayerNorm epsilon.
    pub norm_eps: f64,
    /// BatchNorm momentum, in Burn's (= PyTorch's) convention.
    pub bn_momentum: f64,
    /// PyTorch's running_var update (unbiased batch variance) instead of Burn's (biased).
    pub torch_running_var: bool,
}

impl NetOptions {
    /// The port's model with `faults` on; `gelu_from_erf` for a backend whose GELU gradient is
    /// the tanh approximation's; `dropout` whether dropout is active in training.
    pub fn new(faults: &Faults, gelu_from_erf: bool, dropout: bool) -> Self {
        Self {
            dropout: if dropout { DROP_P } else { 0.0 },
            gelu_tanh: faults.has(Fault::GeluTanh),
            gelu_from_erf,
            norm_eps: if faults.has(Fault::LayerNormEps) {
                1e-3
            } else {
                NORM_EPS
            },
            // A porter reading Keras' momentum=0.9 (running = 0.9 running + 0.1 batch) into Burn,
            // whose momentum weights the batch: running = 0.1 running + 0.9 batch.
            bn_momentum: if faults.has(Fault::BnMomentum) {
                0.9
            } else {
                BN_MOMENTUM
            },
            torch_running_var: !faults.has(Fault::BnBiasedRunningVar),
        }
    }
}

/// The reference's DigitsNet.
#[derive(Module, Debug)]
pub struct DigitsNet {
    /// Linear(n_features, 128).
    pub fc1: Linear,
    /// LayerNorm(128).
    pub norm1: LayerNorm,
    /// GELU (exact).
    pub act1: Gelu,
    /// Dropout(0.1).
    pub drop: Dropout,
    /// Linear(128, 64).
    pub fc2: Linear,
    /// BatchNorm1d(64).
    pub bn: BatchNorm,
    /// ReLU.
    pub act2: Relu,
    /// Linear(64, n_outputs).
    pub fc3: Linear,
    /// See [`NetOptions::gelu_from_erf`].
    gelu_from_erf: bool,
    /// See [`NetOptions::torch_running_var`].
    torch_running_var: bool,
}

impl DigitsNet {
    /// A freshly initialized model (Burn's initializers: Linear's default is PyTorch's
    /// U(-1/sqrt(fan_in), 1/sqrt(fan_in)); LayerNorm and BatchNorm start at ones and zeros).
    pub fn new(n_features: usize, o: NetOptions, device: &Device) -> Self {
        Self {
            fc1: LinearConfig::new(n_features, HIDDEN).init(device),
            norm1: LayerNormConfig::new(HIDDEN)
                .with_epsilon(o.norm_eps)
                .init(device),
            act1: if o.gelu_tanh {
                Gelu::new_approximate()
            } else {
                Gelu::new()
            },
            drop: DropoutConfig::new(o.dropout).init(),
            fc2: LinearConfig::new(HIDDEN, BOTTLENECK).init(device),
            bn: BatchNormConfig::new(BOTTLENECK)
                .with_epsilon(BN_EPS)
                .with_momentum(o.bn_momentum)
                .init(device),
            act2: Relu::new(),
            fc3: LinearConfig::new(BOTTLENECK, OUTPUTS).init(device),
            gelu_from_erf: o.gelu_from_erf,
            torch_running_var: o.torch_running_var,
        }
    }

    /// Every layer's output, by the reference's layer names; the last is the logits. In training
    /// mode (an autodiff device, no `.valid()`) BatchNorm uses the batch statistics and updates its
    /// running statistics, and Dropout is active when its probability is not 0.
    pub fn layers(&self, x: Tensor<2>) -> Vec<(&'static str, Tensor<2>)> {
        let fc1 = self.fc1.forward(x);
        let norm1 = self.norm1.forward(fc1.clone());
        let act1 = if self.gelu_from_erf && !self.act1.approximate {
            gelu_erf(norm1.clone())
        } else {
            self.act1.forward(norm1.clone())
        };
        let drop = self.drop.forward(act1.clone());
        let fc2 = self.fc2.forward(drop.clone());
        let bn = self.batch_norm(fc2.clone());
        let act2 = self.act2.forward(bn.clone());
        let fc3 = self.fc3.forward(act2.clone());
        LAYERS
            .into_iter()
            .zip([fc1, norm1, act1, drop, fc2, bn, act2, fc3])
            .collect()
    }

    /// The logits `[n, 10]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.layers(x).pop().expect("the model has layers").1
    }

    /// `bn` as PyTorch's BatchNorm1d computes it.
    ///
    /// Burn fact: Burn's `BatchNorm::forward_train` updates `running_var` with the batch variance
    /// that `batch_norm_train` returns, the biased (population) one (burn-nn
    /// src/modules/norm/batch.rs:153-177, running_var at 169-171; burn-tensor
    /// src/tensor/module.rs:59-61, 69-70; burn-backend src/backend/ops/modules/base.rs:189-196).
    /// PyTorch updates it with the unbiased variance, `var * n / (n - 1)` (both normalize with the
    /// biased one). So in training mode this is Burn's `forward_train` with that one factor added:
    /// the same op (`batch_norm_train`, whose backward Burn provides), the same momentum formula.
    /// Evaluation mode is Burn's own.
    pub fn batch_norm(&self, x: Tensor<2>) -> Tensor<2> {
        let bn = &self.bn;
        // The condition Burn's BatchNorm::forward uses (batch.rs:133).
        let training = x.device().is_autodiff() && bn.training.is_enabled();
        if !training || !self.torch_running_var {
            return bn.forward(x);
        }
        let n = x.dims()[0] as f64;
        let out = batch_norm_train(x, bn.gamma.val(), bn.beta.val(), bn.epsilon);
        let device = out.output.device();
        let m = bn.momentum;
        let running_mean = bn
            .running_mean
            .value_sync()
            .to_device(&device)
            .mul_scalar(1.0 - m)
            .add(out.mean.detach().mul_scalar(m));
        let unbiased = out.variance.detach().mul_scalar(n / (n - 1.0));
        let running_var = bn
            .running_var
            .value_sync()
            .to_device(&device)
            .mul_scalar(1.0 - m)
            .add(unbiased.mul_scalar(m));
        bn.running_mean.update(running_mean.detach());
        bn.running_var.update(running_var.detach());
        out.output
    }

    /// Makes the running statistics that the last training-mode forward computed the module's
    /// values. Burn fact: `RunningState::update` only queues the new value per thread; it becomes
    /// the value at the next `value_sync()` (or `valid()`), and a visitor (burn-store's `collect`,
    /// hence `torch_params`) reads the old one (burn-core src/module/param/running.rs:68-72,
    /// 161-197).
    pub fn sync_running_stats(&self) {
        let _ = self.bn.running_mean.value_sync();
        let _ = self.bn.running_var.value_sync();
    }
}

/// Exact GELU, `x Φ(x) = x (1 + erf(x / √2)) / 2`, from tensor ops, for the ndarray backend.
///
/// Burn fact: `burn::nn::Gelu` (exact) calls the backend's `gelu`, and autodiff differentiates it
/// with the backend's `gelu_backward` (burn-autodiff src/ops/activation.rs:17-52). Flex overrides
/// both with the exact erf formulas (burn-flex src/ops/activation.rs:69-103); ndarray overrides
/// neither, and the default `gelu_backward` is the derivative of the tanh approximation, with
/// 6-digit constants (burn-backend src/backend/ops/activation.rs:98-128). So on ndarray the
/// forward is exact and the gradient is not. Composed from `erf`, whose autodiff backward is exact
/// (`2/√π exp(-x²)`, burn-autodiff src/ops/tensor.rs:4091-4115), the gradient is PyTorch's.
pub fn gelu_erf(x: Tensor<2>) -> Tensor<2> {
    let cdf = x
        .clone()
        .div_scalar(SQRT_2)
        .erf()
        .add_scalar(1.0)
        .mul_scalar(0.5);
    x * cdf
}

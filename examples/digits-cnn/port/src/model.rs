//! DigitsCnn, written as a Burn user writes it: `burn::nn` layers named like the reference's
//! attributes, so PyTorch's `state_dict()` names (`conv1.weight`, `bn1.running_var`, `fc.weight`)
//! are the module's own paths and burn-store's PyTorch adapter loads them. Burn's Conv2d weight is
//! PyTorch's `[out, in, kh, kw]` (burn-nn src/modules/conv/conv2d.rs:54), so only `fc`'s weight is
//! transposed.
//!
//! One place differs from stock Burn, the smallest change that makes the port match PyTorch:
//! BatchNorm's training-mode running variance (see [`DigitsCnn::batch_norm`]).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{
    AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, AvgPool2d, AvgPool2dConfig, MaxPool2d,
    MaxPool2dConfig,
};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::tensor::module::batch_norm_train;
use burn::tensor::{Device, Tensor};

use crate::faults::{Fault, Faults};

/// Classes.
pub const OUTPUTS: usize = 10;
/// The image: 1 channel, 8x8 pixels.
pub const IMAGE: [usize; 3] = [1, 8, 8];
/// nn.BatchNorm2d's default eps.
pub const BN_EPS: f64 = 1e-5;
/// nn.BatchNorm2d's default momentum, PyTorch's convention: running = (1 - m) running + m batch.
/// Burn's BatchNorm uses the same convention (burn-nn src/modules/norm/batch.rs:166-171).
pub const BN_MOMENTUM: f64 = 0.1;
/// The buffers of the model (PyTorch names): tensors it holds that no optimizer updates.
pub const BUFFERS: &[&str] = &["bn1.running_mean", "bn1.running_var"];

/// The reference's layer names, in forward order.
pub const LAYERS: [&str; 10] = [
    "conv1", "bn1", "act1", "pool1", "conv2", "act2", "pool2", "gap", "flatten", "fc",
];

/// The reference's DigitsCNN.
#[derive(Module, Debug)]
pub struct DigitsCnn {
    /// Conv2d(1, 16, 3, padding=1).
    pub conv1: Conv2d,
    /// BatchNorm2d(16).
    pub bn1: BatchNorm,
    /// ReLU.
    pub act1: Relu,
    /// MaxPool2d(2): Burn's strides default to the kernel size, as PyTorch's (max_pool2d.rs:18).
    pub pool1: MaxPool2d,
    /// Conv2d(16, 32, 3, padding=1).
    pub conv2: Conv2d,
    /// ReLU.
    pub act2: Relu,
    /// AvgPool2d(3, stride=1, padding=1), count_include_pad as PyTorch's default (true).
    pub pool2: AvgPool2d,
    /// AdaptiveAvgPool2d(2).
    pub gap: AdaptiveAvgPool2d,
    /// Linear(128, 10).
    pub fc: Linear,
    /// Fault flatten-nhwc.
    channels_last: bool,
    /// PyTorch's running_var update (unbiased batch variance) instead of Burn's (biased).
    torch_running_var: bool,
}

/// Every layer's output: the feature maps `[n, C, H, W]`, then the flattened features and the
/// logits `[n, values]`.
pub struct Layers {
    /// conv1 to gap, by name.
    pub maps: Vec<(&'static str, Tensor<4>)>,
    /// flatten's output.
    pub flatten: Tensor<2>,
    /// The logits.
    pub fc: Tensor<2>,
}

impl DigitsCnn {
    /// A freshly initialized model (Burn's initializers; the harness sends its own).
    pub fn new(faults: &Faults, device: &Device) -> Self {
        let same = PaddingConfig2d::Explicit(1, 1, 1, 1);
        // Burn fact: Conv2dConfig's padding defaults to PaddingConfig2d::Valid (conv2d.rs:36);
        // PyTorch's padding=1 must be spelled out.
        let conv2_padding = if faults.has(Fault::ConvValidPadding) {
            PaddingConfig2d::Valid
        } else {
            same.clone()
        };
        Self {
            conv1: Conv2dConfig::new([1, 16], [3, 3])
                .with_padding(same.clone())
                .init(device),
            bn1: BatchNormConfig::new(16)
                .with_epsilon(BN_EPS)
                .with_momentum(BN_MOMENTUM)
                .init(device),
            act1: Relu::new(),
            pool1: MaxPool2dConfig::new([2, 2]).init(),
            conv2: Conv2dConfig::new([16, 32], [3, 3])
                .with_padding(conv2_padding)
                .init(device),
            act2: Relu::new(),
            pool2: AvgPool2dConfig::new([3, 3])
                .with_strides([1, 1])
                .with_padding(same)
                .with_count_include_pad(!faults.has(Fault::AvgpoolExcludePad))
                .init(),
            gap: AdaptiveAvgPool2dConfig::new([2, 2]).init(),
            fc: LinearConfig::new(32 * 2 * 2, OUTPUTS).init(device),
            channels_last: faults.has(Fault::FlattenNhwc),
            torch_running_var: !faults.has(Fault::BnBiasedRunningVar),
        }
    }

    /// Every layer's output, by the reference's layer names. In training mode (an autodiff device,
    /// no `.valid()`) BatchNorm uses the batch statistics and updates its running statistics.
    pub fn layers(&self, x: Tensor<4>) -> Layers {
        let conv1 = self.conv1.forward(x);
        let bn1 = self.batch_norm(conv1.clone());
        let act1 = self.act1.forward(bn1.clone());
        let pool1 = self.pool1.forward(act1.clone());
        let conv2 = self.conv2.forward(pool1.clone());
        let act2 = self.act2.forward(conv2.clone());
        let pool2 = self.pool2.forward(act2.clone());
        let gap = self.gap.forward(pool2.clone());
        let maps = if self.channels_last {
            // A TensorFlow habit: channels last, then flatten.
            gap.clone().permute([0, 2, 3, 1])
        } else {
            gap.clone()
        };
        let flatten: Tensor<2> = maps.flatten(1, 3);
        let fc = self.fc.forward(flatten.clone());
        Layers {
            maps: LAYERS
                .into_iter()
                .zip([conv1, bn1, act1, pool1, conv2, act2, pool2, gap])
                .collect(),
            flatten,
            fc,
        }
    }

    /// The logits `[n, 10]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.layers(x).fc
    }

    /// `bn1` as PyTorch's BatchNorm2d computes it.
    ///
    /// Burn fact: Burn's `BatchNorm::forward_train` updates `running_var` with the biased batch
    /// variance that `batch_norm_train` returns (burn-nn src/modules/norm/batch.rs:153-177); PyTorch
    /// with the unbiased one, `var * m / (m - 1)`, where a channel's statistics run over
    /// `m = n * H * W` values. So in training mode this is Burn's `forward_train` with that one
    /// factor added. Evaluation mode is Burn's own.
    pub fn batch_norm(&self, x: Tensor<4>) -> Tensor<4> {
        let bn = &self.bn1;
        // The condition Burn's BatchNorm::forward uses (batch.rs:133).
        let training = x.device().is_autodiff() && bn.training.is_enabled();
        if !training || !self.torch_running_var {
            return bn.forward(x);
        }
        let [n, _, h, w] = x.dims();
        let m = (n * h * w) as f64;
        let out = batch_norm_train(x, bn.gamma.val(), bn.beta.val(), bn.epsilon);
        let device = out.output.device();
        let k = bn.momentum;
        let running_mean = bn
            .running_mean
            .value_sync()
            .to_device(&device)
            .mul_scalar(1.0 - k)
            .add(out.mean.detach().mul_scalar(k));
        let unbiased = out.variance.detach().mul_scalar(m / (m - 1.0));
        let running_var = bn
            .running_var
            .value_sync()
            .to_device(&device)
            .mul_scalar(1.0 - k)
            .add(unbiased.mul_scalar(k));
        bn.running_mean.update(running_mean.detach());
        bn.running_var.update(running_var.detach());
        out.output
    }

    /// Makes the running statistics that the last training-mode forward computed the module's
    /// values (Burn's `RunningState::update` only queues them: burn-core
    /// src/module/param/running.rs:161-197).
    pub fn sync_running_stats(&self) {
        let _ = self.bn1.running_mean.value_sync();
        let _ = self.bn1.running_var.value_sync();
    }
}

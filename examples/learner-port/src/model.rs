//! The classifier: three Linear layers with ReLU between them, returning logits; the loss applies the
//! sigmoid.

use burn::config::Config;
use burn::module::Module;
use burn::nn::loss::BinaryCrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Int, Tensor};
use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};

use crate::bugs::{self, Bug};
use crate::data::RowBatch;

/// The model's sizes.
#[derive(Config, Debug)]
pub struct ModelConfig {
    /// Input features.
    pub n_features: usize,
    /// Width of the first hidden layer.
    #[config(default = 64)]
    pub hidden1: usize,
    /// Width of the second hidden layer.
    #[config(default = 32)]
    pub hidden2: usize,
}

/// The binary classifier.
#[derive(Module, Debug)]
pub struct Model {
    input_layer: Linear,
    hidden_layer1: Linear,
    output_layer: Linear,
    activation: Relu,
}

impl ModelConfig {
    /// A freshly initialized model.
    pub fn init(&self, device: &Device) -> Model {
        Model {
            input_layer: LinearConfig::new(self.n_features, self.hidden1).init(device),
            hidden_layer1: LinearConfig::new(self.hidden1, self.hidden2).init(device),
            output_layer: LinearConfig::new(self.hidden2, 1).init(device),
            activation: Relu::new(),
        }
    }
}

impl Model {
    /// Logits, `[batch, 1]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = self.activation.forward(self.input_layer.forward(x));
        let x = self.activation.forward(self.hidden_layer1.forward(x));
        self.output_layer.forward(x)
    }

    /// The loss and the outputs the Learner's metrics read.
    pub fn forward_classification(&self, batch: RowBatch) -> ClassificationOutput {
        let logits = self.forward(batch.features);
        let loss = loss(logits.clone(), batch.labels.clone());
        ClassificationOutput::new(loss, logits, batch.labels)
    }
}

/// PyTorch's BCELoss on the sigmoid of `logits` (`[batch, 1]`) against 0/1 `targets`.
///
/// Burn's BinaryCrossEntropyLoss on probabilities gives PyTorch's value, but its gradient is NaN
/// where a float32 sigmoid reaches 0 or 1 (the clamped logs' backward); so the value is Burn's and
/// the gradient is PyTorch's, (p - y) / max(p (1 - p), 1e-12) / N, attached through sum(p * c).
pub fn loss(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let n = targets.dims()[0];
    let logits = logits.reshape([n]);
    if bugs::on(Bug::WithLogits) {
        let device = logits.device();
        return BinaryCrossEntropyLossConfig::new()
            .with_logits(true)
            .init(&device)
            .forward(logits, targets);
    }
    let p = sigmoid(logits);
    let y = targets.float();
    let (pi, yi) = (p.clone().inner(), y.inner());
    let value = ((yi.clone() - 1.0) * pi.clone().neg().log1p().clamp_min(-100.0)
        - yi.clone() * pi.clone().log().clamp_min(-100.0))
    .mean();
    if !p.is_autodiff() {
        return value;
    }
    let coef = (pi.clone() - yi)
        .div((pi.clone().neg() + 1.0).mul(pi).clamp_min(1e-12))
        .div_scalar(n as f32);
    let attached = (p * coef.autodiff()).sum();
    // The value of `value`, the gradient of `attached`.
    attached.clone() - attached.detach() + value.autodiff()
}

impl TrainStep for Model {
    type Input = RowBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: RowBatch) -> TrainOutput<ClassificationOutput> {
        let item = self.forward_classification(batch);
        TrainOutput::new(self, item.loss.backward(), item)
    }
}

impl InferenceStep for Model {
    type Input = RowBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: RowBatch) -> ClassificationOutput {
        self.forward_classification(batch)
    }
}

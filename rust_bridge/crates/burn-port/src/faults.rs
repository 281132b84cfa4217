//! The fault switch: each fault is a real way a PyTorch-to-Burn port goes wrong, reproduced in the
//! port exactly as it happens in Burn code. Off by default; selected by name at run time. The
//! harness never reads this switch to diagnose: it only sees the port's numbers.

use burn_diff::error::{input, Result};

/// A real way a PyTorch-to-Burn port goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// CSV features parsed into f32.
    F32Parse,
    /// The port's own shuffle instead of sklearn's split.
    UnseededSplit,
    /// Scaler fitted on the training rows only.
    ScalerTrainOnly,
    /// Scaler statistics accumulated in f32.
    ScalerF32,
    /// Sample (n-1) standard deviation.
    SampleStd,
    /// PyTorch weights reshaped, not transposed.
    WeightsReshaped,
    /// The second ReLU left out.
    MissingRelu,
    /// BCE without the log clamp (Burn 0.16).
    UnclampedBce,
    /// Burn's own BCE: NaN gradient at p in {0, 1}.
    BurnStockBce,
    /// Logits from forward and BCE with logits.
    LogitsBce,
    /// Burn's default Adam epsilon 1e-5.
    AdamEps,
    /// Gradient clipping by norm 1.0.
    GradClip,
    /// Learning rate 1e-4.
    Lr1e4,
    /// The optimizer re-created every step.
    AdamStateReset,
    /// Adam built with AMSGrad.
    Amsgrad,
    /// The learning rate divided by 10 every 5 epochs.
    LrStepDecay,
    /// Epoch loss weighted by batch size.
    WeightedEpochLoss,
    /// Accuracy by argmax over a [B, 1] output.
    ArgmaxAccuracy,
    /// `transform` indexes a vector it never filled: a panic.
    TransformPanics,
    /// The second Linear layer built without a bias.
    NoBias,
    /// Sigmoid written by hand as 1 / (1 + exp(-z)).
    SigmoidByHand,
    /// Label smoothing 0.1 in the loss.
    LabelSmoothing,
    /// Two feature columns read in each other's place.
    ColumnsSwapped,
    /// Accuracy at a decision threshold of 0.7.
    Threshold07,
    /// The training loop shuffles with its own generator, ignoring the order it is given.
    OwnShuffle,
}

/// What the catalogue says of a fault.
pub struct FaultInfo {
    /// The name `--fault` takes.
    pub name: &'static str,
    /// The stage that must catch it first.
    pub stage: &'static str,
    /// What the port does wrong.
    pub description: &'static str,
    /// What fixes it, in Burn 0.22 code.
    pub fix: &'static str,
    /// What the harness must report: "fail" (a divergence, exit 1) or "error" (the port could not
    /// answer, exit 2).
    pub outcome: &'static str,
    /// The cause the harness's diagnosis must name at that stage (its id, as in the JSON report's
    /// `diagnosis`); empty where no replay of the reference can reproduce the fault (another random
    /// generator) or the port cannot answer.
    pub cause: &'static str,
}

/// Faults that make up the port of the original report, all at once.
pub const USER_PORT: &[Fault] = &[
    Fault::UnseededSplit,
    Fault::ScalerTrainOnly,
    Fault::SampleStd,
    Fault::UnclampedBce,
    Fault::AdamEps,
    Fault::GradClip,
    Fault::Lr1e4,
    Fault::ArgmaxAccuracy,
    Fault::WeightedEpochLoss,
];

/// Every fault, in catalogue order.
pub const ALL: &[Fault] = &[
    Fault::AdamEps,
    Fault::GradClip,
    Fault::Lr1e4,
    Fault::F32Parse,
    Fault::UnseededSplit,
    Fault::ScalerTrainOnly,
    Fault::ScalerF32,
    Fault::SampleStd,
    Fault::WeightsReshaped,
    Fault::MissingRelu,
    Fault::UnclampedBce,
    Fault::BurnStockBce,
    Fault::LogitsBce,
    Fault::AdamStateReset,
    Fault::Amsgrad,
    Fault::LrStepDecay,
    Fault::WeightedEpochLoss,
    Fault::ArgmaxAccuracy,
    Fault::TransformPanics,
    Fault::NoBias,
    Fault::SigmoidByHand,
    Fault::LabelSmoothing,
    Fault::ColumnsSwapped,
    Fault::Threshold07,
    Fault::OwnShuffle,
];

impl Fault {
    /// The catalogue entry.
    pub fn info(self) -> FaultInfo {
        let (name, stage, description, fix) = match self {
            Fault::F32Parse => (
                "f32-parse",
                "data",
                "CSV features deserialized straight into f32 fields instead of f64",
                "parse numbers as f64 (as pandas does) and convert to f32 only after scaling",
            ),
            Fault::UnseededSplit => (
                "unseeded-split",
                "split",
                "rows shuffled by the port's own generator, first 80 % used for training",
                "reproduce sklearn's split: numpy RandomState(42).permutation(n), test = first ceil(0.2 n) rows",
            ),
            Fault::ScalerTrainOnly => (
                "scaler-train-only",
                "config",
                "StandardScaler statistics fitted on the training rows only",
                "fit mean and std on the same rows as the reference (all rows, before the split)",
            ),
            Fault::ScalerF32 => (
                "scaler-f32",
                "scaler",
                "scaler mean and variance accumulated in f32",
                "accumulate the statistics in f64 as sklearn does",
            ),
            Fault::SampleStd => (
                "sample-std",
                "scaler",
                "std computed with n-1 (sample std) instead of n",
                "use the population variance (ddof 0) as sklearn's StandardScaler",
            ),
            Fault::WeightsReshaped => (
                "weights-reshaped",
                "weights",
                "PyTorch [out, in] weights reshaped, not transposed, into Burn's [in, out] Linear",
                "transpose each Linear weight (or load with burn-store's PyTorchToBurnAdapter)",
            ),
            Fault::MissingRelu => (
                "missing-relu",
                "forward",
                "the ReLU after the second Linear layer is left out of forward()",
                "apply Relu after fc2 as the reference does",
            ),
            Fault::UnclampedBce => (
                "unclamped-bce",
                "loss",
                "BCE without the -100 log clamp (Burn 0.16): NaN for perfect, inf for wrong predictions",
                "clamp log(p) and log(1-p) at -100, as torch's BCELoss (Burn >= 0.17 does for the value)",
            ),
            Fault::BurnStockBce => (
                "burn-stock-bce",
                "loss",
                "Burn's own BinaryCrossEntropyLoss on sigmoid outputs: NaN gradient at p exactly 0 or 1",
                "use a BCE whose backward divides by max(p(1-p), 1e-12), or train on logits consistently",
            ),
            Fault::LogitsBce => (
                "logits-bce",
                "backward",
                "the model returns logits and training uses Burn's BCE with logits",
                "keep sigmoid + clamped BCE as the reference, or change the reference to BCEWithLogitsLoss too",
            ),
            Fault::AdamEps => (
                "adam-eps",
                "config",
                "Burn's default Adam epsilon 1e-5 (PyTorch uses 1e-8)",
                "AdamConfig::new().with_epsilon(1e-8)",
            ),
            Fault::GradClip => (
                "grad-clip",
                "config",
                "gradient clipping by norm 1.0, per parameter tensor (Burn's GradientClippingConfig::Norm)",
                "remove .with_grad_clipping(...): the reference does not clip",
            ),
            Fault::Lr1e4 => (
                "lr-1e-4",
                "config",
                "learning rate 1e-4 instead of the reference's 1e-3",
                "pass lr 1e-3 to optimizer.step",
            ),
            Fault::AdamStateReset => (
                "adam-state-reset",
                "optimizer",
                "the optimizer is re-created every step, so Adam's moments and step count never accumulate",
                "create the optimizer once, before the training loop, and keep it",
            ),
            Fault::Amsgrad => (
                "adam-amsgrad",
                "train",
                "Adam built with with_amsgrad(true): the largest second moment so far in the denominator \
                 (torch.optim.Adam's amsgrad is False)",
                "leave amsgrad off, AdamConfig's default, as the reference's Adam",
            ),
            Fault::LrStepDecay => (
                "lr-step-decay",
                "train",
                "the learning rate divided by 10 every 5 epochs (a step decay the reference script does not have)",
                "pass the reference's constant learning rate to optimizer.step in every epoch",
            ),
            Fault::WeightedEpochLoss => (
                "weighted-epoch-loss",
                "train",
                "epoch loss weighted by batch size instead of the unweighted mean of batch losses",
                "report the plain mean of the per-batch losses, as the reference script does",
            ),
            Fault::ArgmaxAccuracy => (
                "argmax-accuracy",
                "metrics",
                "accuracy by argmax over the [B, 1] output (burn-train's AccuracyMetric): always class 0",
                "threshold the sigmoid output at 0.5 instead of taking argmax over one column",
            ),
            Fault::TransformPanics => (
                "transform-panics",
                "scaler",
                "transform divides by a per-feature vector it allocated but never filled: index out of bounds",
                "fill the divisors (one per feature) before indexing them, or index `scale` directly",
            ),
            Fault::NoBias => (
                "no-bias",
                "weights",
                "the second Linear layer built with LinearConfig::with_bias(false): the model has no fc2.bias",
                "keep the bias (LinearConfig has one by default), as nn.Linear does",
            ),
            Fault::SigmoidByHand => (
                "sigmoid-by-hand",
                "backward",
                "sigmoid written as 1 / (1 + exp(-z)): where float32 p rounds to 1 its gradient stays positive and \
                 the loss's 1 / max(p (1 - p), 1e-12) blows it up",
                "use burn::tensor::activation::sigmoid, whose backward is p (1 - p)",
            ),
            Fault::LabelSmoothing => (
                "label-smoothing",
                "loss",
                "targets smoothed to y * 0.9 + 0.05 in the loss",
                "train on the 0/1 targets as the reference does",
            ),
            Fault::ColumnsSwapped => (
                "columns-swapped",
                "data",
                "the CSV read into a struct whose fields declare feature3 and feature6 in each other's place",
                "read columns by header name, in the file's order",
            ),
            Fault::Threshold07 => (
                "threshold-0.7",
                "metrics",
                "accuracy counts p > 0.7 as class 1",
                "threshold at 0.5 as the reference does",
            ),
            Fault::OwnShuffle => (
                "own-shuffle",
                "train",
                "the training loop shuffles with its own generator and ignores the batch order it is given",
                "use the order the harness sends (TrainRequest::orders) when there is one",
            ),
        };
        let outcome = if self == Fault::TransformPanics {
            "error"
        } else {
            "fail"
        };
        FaultInfo {
            name,
            stage,
            description,
            fix,
            outcome,
            cause: self.cause(),
        }
    }

    /// The diagnosis id the harness must name for this fault (see `FaultInfo::cause`).
    fn cause(self) -> &'static str {
        match self {
            Fault::F32Parse => "data.float32_parse",
            Fault::UnseededSplit => "split.seed_ignored",
            Fault::ScalerTrainOnly => "config.scaler_fit_rows",
            Fault::ScalerF32 => "scaler.float32",
            Fault::SampleStd => "scaler.ddof1",
            Fault::WeightsReshaped => "weights.reshaped",
            Fault::MissingRelu => "forward.activation.identity",
            Fault::UnclampedBce => "loss.unclamped",
            Fault::BurnStockBce => "loss.gradient_through_clamp",
            Fault::LogitsBce => "backward.logits_loss",
            Fault::AdamEps => "config.eps",
            Fault::GradClip => "config.clip_norm",
            Fault::Lr1e4 => "config.lr",
            Fault::AdamStateReset => "adam.state_reset",
            Fault::Amsgrad => "train.amsgrad",
            Fault::LrStepDecay => "train.lr_schedule_step",
            Fault::WeightedEpochLoss => "train.epoch_loss_weighted",
            Fault::ArgmaxAccuracy => "metrics.argmax",
            Fault::TransformPanics => "",
            Fault::NoBias => "weights.no_bias",
            Fault::SigmoidByHand => "backward.sigmoid_explicit",
            Fault::LabelSmoothing => "loss.label_smoothing",
            Fault::ColumnsSwapped => "data.columns_reordered",
            Fault::Threshold07 => "metrics.threshold",
            Fault::OwnShuffle => "train.orders_ignored",
        }
    }
}

/// A set of active faults; empty for the faithful port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults(Vec<Fault>);

impl Faults {
    /// No faults: the faithful port.
    pub fn none() -> Self {
        Self(Vec::new())
    }

    /// Parses `""`, `"none"`, a fault name, `"user-port"`, or a comma-separated list of those.
    pub fn parse(spec: &str) -> Result<Self> {
        let mut out: Vec<Fault> = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "none" {
                continue;
            }
            let found: Vec<Fault> = if part == "user-port" {
                USER_PORT.to_vec()
            } else {
                match ALL.iter().find(|f| f.info().name == part) {
                    Some(f) => vec![*f],
                    None => {
                        let names: Vec<&str> = ALL.iter().map(|f| f.info().name).collect();
                        return input(format!(
                            "unknown fault '{part}'; known faults: {}, user-port",
                            names.join(", ")
                        ));
                    }
                }
            };
            for f in found {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
        Ok(Self(out))
    }

    /// Whether `f` is on.
    pub fn has(&self, f: Fault) -> bool {
        self.0.contains(&f)
    }

    /// The names of the faults that are on.
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|f| f.info().name).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_lists_and_user_port() {
        assert_eq!(Faults::parse("").unwrap(), Faults::none());
        assert!(Faults::parse("adam-eps").unwrap().has(Fault::AdamEps));
        let user = Faults::parse("user-port").unwrap();
        assert!(user.has(Fault::UnclampedBce) && user.has(Fault::ArgmaxAccuracy));
        let err = Faults::parse("adam-epz").unwrap_err().to_string();
        assert!(err.contains("unknown fault 'adam-epz'"), "{err}");
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = ALL.iter().map(|f| f.info().name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }
}

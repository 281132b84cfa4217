//! The fault switch: each fault is a realistic slip in porting the diabetes model to Burn, reproduced
//! as a small change to the faithful port. Off by default; selected by name with `--fault`. The
//! port's `effective_config` does not reflect them: they are code slips that the author's own account
//! of the configuration does not know about, so the harness must catch each at its stage.

/// A realistic way this port goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `HuberLossConfig::new(1.0)`: PyTorch's default delta, not the reference's.
    HuberDeltaDefault,
    /// `SmoothL1LossConfig` with beta = the reference's delta: Huber divided by delta.
    SmoothL1ForHuber,
    /// The targets as a `[1, n]` row against the `[n, 1]` outputs: broadcast to `[n, n]`.
    TargetBroadcast,
    /// `AdamConfig::new()` without `with_epsilon`: Burn's default 1e-5, PyTorch's 1e-8.
    AdamEpsDefault,
    /// The reported metric is the mean absolute error, not the MSE.
    MetricMae,
}

impl burn_diff::faults::Fault for Fault {
    const ALL: &'static [Self] = &[
        Fault::HuberDeltaDefault,
        Fault::SmoothL1ForHuber,
        Fault::TargetBroadcast,
        Fault::AdamEpsDefault,
        Fault::MetricMae,
    ];

    /// `(name, stage that must catch it first, the diagnosis that must name it, description)`.
    fn info(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Fault::HuberDeltaDefault => (
                "huber-delta-default",
                "loss",
                "loss.huber_delta",
                "HuberLossConfig::new(1.0), PyTorch's default delta, where the reference sets delta = 20",
            ),
            Fault::SmoothL1ForHuber => (
                "smooth-l1-for-huber",
                "loss",
                "loss.smooth_l1_beta",
                "SmoothL1LossConfig with beta 20 for HuberLoss(delta=20): the loss and its gradient divided by 20",
            ),
            Fault::TargetBroadcast => (
                "target-broadcast",
                "loss",
                "loss.broadcast",
                "targets reshaped to [1, n] against the [n, 1] outputs: the loss over every output and target pair",
            ),
            Fault::AdamEpsDefault => (
                "adam-eps-default",
                "optimizer",
                "adam.eps",
                "AdamConfig::new() without with_epsilon: Burn's default epsilon 1e-5, not PyTorch's 1e-8",
            ),
            Fault::MetricMae => (
                "metric-mae",
                "metrics",
                "metrics.mae",
                "the reported metric is the mean absolute error instead of the mean squared error",
            ),
        }
    }
}

/// The faults that are on; empty for the faithful port.
pub type Faults = burn_diff::faults::Faults<Fault>;

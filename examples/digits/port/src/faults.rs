//! The fault switch: each fault is a realistic slip in porting the digits model to Burn, reproduced
//! as a small change to the faithful port. Off by default; selected by name with `--fault`. The
//! port's `effective_config` does not reflect them: they are code slips that the author's own
//! account of the configuration does not know about, so the harness must catch each at its stage.

/// A realistic way this port goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// GELU with the tanh approximation (`Gelu::new_approximate()`).
    GeluTanh,
    /// LayerNorm epsilon 1e-3 instead of 1e-5.
    LayerNormEps,
    /// Burn's stock BatchNorm running-variance update: the biased batch variance.
    BnBiasedRunningVar,
    /// Momentum given in the Keras convention: running = 0.1 running + 0.9 batch.
    BnMomentum,
    /// Adam with L2 weight decay added to the gradient instead of decoupled AdamW.
    AdamwL2,
    /// Cross-entropy without label smoothing.
    NoLabelSmoothing,
    /// The loss's log-softmax taken over the batch dimension.
    SoftmaxDim,
    /// Evaluation with the training-mode model (no `.valid()`): dropout (and batch statistics) on.
    DropoutAtEval,
}

impl burn_diff::faults::Fault for Fault {
    const ALL: &'static [Self] = &[
        Fault::GeluTanh,
        Fault::LayerNormEps,
        Fault::BnBiasedRunningVar,
        Fault::BnMomentum,
        Fault::AdamwL2,
        Fault::NoLabelSmoothing,
        Fault::SoftmaxDim,
        Fault::DropoutAtEval,
    ];

    /// `(name, stage that must catch it first, the diagnosis that must name it, description)`.
    fn info(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Fault::GeluTanh => (
                "gelu-tanh",
                "forward",
                "forward.activation.gelu_tanh",
                "GELU with the tanh approximation (Gelu::new_approximate) instead of exact erf",
            ),
            Fault::LayerNormEps => (
                "layernorm-eps",
                "forward",
                "forward.layernorm.eps",
                "LayerNorm epsilon 1e-3 instead of PyTorch's 1e-5",
            ),
            Fault::BnBiasedRunningVar => (
                "bn-biased-running-var",
                "backward",
                "backward.batchnorm.biased_running_var",
                "BatchNorm running_var updated with the biased batch variance (Burn's stock BatchNorm) instead of the unbiased one",
            ),
            Fault::BnMomentum => (
                "bn-momentum",
                "backward",
                "backward.batchnorm.momentum_flipped",
                "BatchNorm momentum convention flipped: running = 0.1 * running + 0.9 * batch (with_momentum(0.9))",
            ),
            Fault::AdamwL2 => (
                "adamw-l2",
                "optimizer",
                "optimizer.weight_decay_coupled",
                "Adam with L2 weight decay added to the gradient (coupled) instead of decoupled AdamW",
            ),
            Fault::NoLabelSmoothing => (
                "no-label-smoothing",
                "loss",
                "loss.no_label_smoothing",
                "CrossEntropyLoss without label smoothing (PyTorch's reference uses 0.1)",
            ),
            Fault::SoftmaxDim => (
                "softmax-dim",
                "loss",
                "loss.softmax_dim",
                "the loss's log-softmax taken over the batch dimension (dim 0) instead of the classes",
            ),
            Fault::DropoutAtEval => (
                "dropout-at-eval",
                "forward",
                "forward.dropout_at_eval",
                "forward and evaluate use the training-mode model (no .valid()): dropout active, BatchNorm on batch statistics",
            ),
        }
    }
}

/// The faults that are on; empty for the faithful port.
pub type Faults = burn_diff::faults::Faults<Fault>;

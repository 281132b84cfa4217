//! The fault switch: each fault is a realistic slip in porting an image model to Burn, reproduced
//! as a small change to the faithful port. Off by default; selected by name with `--fault`. The
//! port's `effective_config` does not reflect them: they are code slips that the author's own
//! account of the configuration does not know about, so the harness must catch each at its stage.

/// A realistic way this port goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The feature maps flattened channels last (NHWC, TensorFlow's layout) before the classifier.
    FlattenNhwc,
    /// AvgPool2d without the padding in the divisor (`with_count_include_pad(false)`).
    AvgpoolExcludePad,
    /// conv2 left at Burn's default padding, `PaddingConfig2d::Valid`, where the reference pads 1.
    ConvValidPadding,
    /// Burn's stock BatchNorm running-variance update: the biased batch variance.
    BnBiasedRunningVar,
}

impl burn_diff::faults::Fault for Fault {
    const ALL: &'static [Self] = &[
        Fault::FlattenNhwc,
        Fault::AvgpoolExcludePad,
        Fault::ConvValidPadding,
        Fault::BnBiasedRunningVar,
    ];

    /// `(name, stage that must catch it first, the diagnosis that must name it, description)`.
    fn info(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Fault::FlattenNhwc => (
                "flatten-nhwc",
                "forward",
                "forward.flatten.channels_last",
                "feature maps flattened channels last (permute to NHWC, then flatten), as a TensorFlow model does, instead of PyTorch's NCHW order",
            ),
            Fault::AvgpoolExcludePad => (
                "avgpool-exclude-pad",
                "forward",
                "forward.pool.count_include_pad",
                "AvgPool2d with count_include_pad false: border averages divide by the window's real pixels, not by the kernel size",
            ),
            Fault::ConvValidPadding => (
                "conv-valid-padding",
                "forward",
                "forward.conv.padding",
                "conv2 left at Burn's default padding (PaddingConfig2d::Valid) where the reference's Conv2d pads 1; the adaptive pool hides the smaller maps",
            ),
            Fault::BnBiasedRunningVar => (
                "bn-biased-running-var",
                "backward",
                "backward.batchnorm.biased_running_var",
                "BatchNorm2d running_var updated with the biased batch variance (Burn's stock BatchNorm) instead of the unbiased one",
            ),
        }
    }
}

/// The faults that are on; empty for the faithful port.
pub type Faults = burn_diff::faults::Faults<Fault>;

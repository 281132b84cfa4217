//! The fault switch: each fault is a realistic slip in porting an image model to Burn, reproduced
//! as a small change to the faithful port. Off by default; selected by name with `--fault`. The
//! port's `effective_config` does not reflect them: they are code slips that the author's own
//! account of the configuration does not know about, so the harness must catch each at its stage.

use burn_diff::error::{input, Result};

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

/// Every fault, in catalogue order.
pub const ALL: &[Fault] = &[
    Fault::FlattenNhwc,
    Fault::AvgpoolExcludePad,
    Fault::ConvValidPadding,
    Fault::BnBiasedRunningVar,
];

impl Fault {
    /// `(name, stage that must catch it first, the diagnosis that must name it, description)`.
    pub fn info(self) -> (&'static str, &'static str, &'static str, &'static str) {
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

    /// The name `--fault` takes.
    pub fn name(self) -> &'static str {
        self.info().0
    }
}

/// The faults that are on; empty for the faithful port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults(Vec<Fault>);

impl Faults {
    /// Parses a comma-separated list of fault names (`""` and `"none"` for none).
    pub fn parse(spec: &str) -> Result<Self> {
        let mut out = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "none" {
                continue;
            }
            let Some(f) = ALL.iter().find(|f| f.name() == part) else {
                let names: Vec<&str> = ALL.iter().map(|f| f.name()).collect();
                return input(format!(
                    "unknown fault '{part}'; known faults: {}",
                    names.join(", ")
                ));
            };
            if !out.contains(f) {
                out.push(*f);
            }
        }
        Ok(Self(out))
    }

    /// Whether `f` is on.
    pub fn has(&self, f: Fault) -> bool {
        self.0.contains(&f)
    }

    /// The names of the faults that are on.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|f| f.name().to_string()).collect()
    }
}

/// The catalogue as `--list-faults` prints it: `name<TAB>stage<TAB>cause<TAB>description` per line
/// (the format `harness faults check` reads).
pub fn catalogue() -> String {
    ALL.iter()
        .map(|f| {
            let (name, stage, cause, description) = f.info();
            format!("{name}\t{stage}\t{cause}\t{description}\n")
        })
        .collect()
}

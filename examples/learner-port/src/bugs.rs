//! The port's bugs, each a slip a Burn user makes porting this classifier, switchable so the harness
//! can be shown finding each one: `--fault NAME[,NAME...]` (or `all`). Off by default: the port is
//! then the faithful one. `--list-faults` prints `name<TAB>stage<TAB>cause<TAB>description` per bug.

use std::sync::OnceLock;

/// A bug of this port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// `AdamConfig::new()` as it comes: Burn's epsilon 1e-5 where PyTorch's is 1e-8.
    Eps,
    /// `with_grad_clipping(Some(GradientClippingConfig::Norm(1.0)))`, copied from another project.
    Clip,
    /// The split shuffles with a generator seeded from the clock.
    UnseededSplit,
    /// CSV numbers deserialized as `f32`.
    F32Parse,
    /// The scaler's mean and variance accumulated in `f32`.
    F32Scaler,
    /// `BinaryCrossEntropyLossConfig::new().with_logits(true)`: BCE with logits, not PyTorch's BCELoss.
    WithLogits,
    /// burn-train's `AccuracyMetric` on the `[B, 1]` output: argmax (always class 0), in percent.
    AccuracyMetric,
}

/// `(bug, name, stage that must catch it first, the cause it must be named by, description)`.
pub const CATALOGUE: &[(Bug, &str, &str, &str, &str)] = &[
    (
        Bug::Eps,
        "adam-eps",
        "optimizer",
        "adam.eps",
        "AdamConfig::new() keeps Burn's epsilon 1e-5 (PyTorch: 1e-8)",
    ),
    (
        Bug::Clip,
        "grad-clip",
        "optimizer",
        "clip.norm_per_tensor",
        "gradient clipping by norm 1.0 per parameter tensor",
    ),
    (
        Bug::UnseededSplit,
        "unseeded-split",
        "split",
        "split.unseeded",
        "the split's shuffle is seeded from the clock",
    ),
    (
        Bug::F32Parse,
        "f32-parse",
        "data",
        "data.float32_parse",
        "CSV numbers parsed as f32",
    ),
    (
        Bug::F32Scaler,
        "f32-scaler",
        "scaler",
        "scaler.float32",
        "scaler statistics accumulated in f32",
    ),
    (
        Bug::WithLogits,
        "with-logits",
        "loss",
        "loss.with_logits",
        "Burn's BCE with logits instead of PyTorch's BCELoss on the sigmoid",
    ),
    (
        Bug::AccuracyMetric,
        "accuracy-metric",
        "metrics",
        "metrics.argmax+percent",
        "burn-train's AccuracyMetric on the [B, 1] output: argmax, in percent",
    ),
];

static ON: OnceLock<Vec<Bug>> = OnceLock::new();

/// Switches on the bugs named in `list` (comma-separated names, or `all`); once, at startup.
pub fn switch_on(list: &str) -> Result<(), String> {
    let mut on = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if name == "all" {
            on.extend(CATALOGUE.iter().map(|c| c.0));
            continue;
        }
        match CATALOGUE.iter().find(|c| c.1 == name) {
            Some(c) => on.push(c.0),
            None => return Err(format!("unknown fault '{name}' (see --list-faults)")),
        }
    }
    ON.set(on)
        .map_err(|_| "the faults are already set".to_string())
}

/// Whether `bug` is on.
pub fn on(bug: Bug) -> bool {
    ON.get().is_some_and(|v| v.contains(&bug))
}

/// The names of the bugs that are on.
pub fn names() -> Vec<String> {
    CATALOGUE
        .iter()
        .filter(|c| on(c.0))
        .map(|c| c.1.to_string())
        .collect()
}

/// The catalogue as `--list-faults` prints it.
pub fn catalogue() -> String {
    CATALOGUE
        .iter()
        .map(|(_, name, stage, cause, what)| format!("{name}\t{stage}\t{cause}\t{what}\n"))
        .collect()
}

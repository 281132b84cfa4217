//! The fault switch: each fault is a realistic slip in porting a sequence model to Burn, reproduced
//! as a small change to the faithful port. Off by default; selected by name with `--fault`. The
//! port's `effective_config` does not reflect them: they are code slips that the author's own
//! account of the configuration does not know about, so the harness must catch each at its stage.

use burn_diff::error::{input, Result};

/// A realistic way this port goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The LSTM's cell and output gates swapped: a hand-written loader that read PyTorch's stacked
    /// blocks as (input, forget, output, cell), and wrote them back the same way.
    LstmGateOrder,
    /// The LSTM built time-major (`with_batch_first(false)`, PyTorch's own default read into Burn)
    /// while it is fed `[batch, seq, features]`.
    LstmTimeMajor,
    /// The GRU with `with_reset_after(false)`: the reset gate applied before the hidden weights.
    GruResetBefore,
    /// Attention's query and key projections swapped: a hand-written loader that read `in_proj` as
    /// (key, query, value).
    AttnQkvOrder,
    /// Attention left at Burn's dropout default, 0.1 (torch's `nn.MultiheadAttention`: 0.0).
    AttnDropoutDefault,
}

/// Every fault, in catalogue order.
pub const ALL: &[Fault] = &[
    Fault::LstmGateOrder,
    Fault::LstmTimeMajor,
    Fault::GruResetBefore,
    Fault::AttnQkvOrder,
    Fault::AttnDropoutDefault,
];

impl Fault {
    /// `(name, stage that must catch it first, the diagnosis that must name it, description)`.
    pub fn info(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Fault::LstmGateOrder => (
                "lstm-gate-order",
                "forward",
                "forward.lstm.gate_order",
                "the LSTM's packed gate blocks read as (input, forget, output, cell) where PyTorch stacks (input, forget, cell, output)",
            ),
            Fault::LstmTimeMajor => (
                "lstm-time-major",
                "forward",
                "forward.lstm.batch_first",
                "the LSTM built time-major (with_batch_first(false), PyTorch's default) and fed [batch, seq, features]",
            ),
            Fault::GruResetBefore => (
                "gru-reset-before",
                "forward",
                "forward.gru.reset_after",
                "the GRU with reset_after false: the reset gate applied to the hidden state before its weights, not PyTorch's form",
            ),
            Fault::AttnQkvOrder => (
                "attn-qkv-order",
                "forward",
                "forward.attention.qkv_order",
                "attention's in_proj read as (key, query, value) where PyTorch stacks (query, key, value)",
            ),
            Fault::AttnDropoutDefault => (
                "attn-dropout-default",
                "config",
                "config.attn.dropout",
                "attention left at Burn's MultiHeadAttentionConfig dropout default, 0.1, where torch's MultiheadAttention has 0.0",
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

//! The fault switch: each fault is a realistic slip in porting a sequence model to Burn, reproduced
//! as a small change to the faithful port. Off by default; selected by name with `--fault`. The
//! port's `effective_config` does not reflect them: they are code slips that the author's own
//! account of the configuration does not know about, so the harness must catch each at its stage.

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

impl burn_diff::faults::Fault for Fault {
    const ALL: &'static [Self] = &[
        Fault::LstmGateOrder,
        Fault::LstmTimeMajor,
        Fault::GruResetBefore,
        Fault::AttnQkvOrder,
        Fault::AttnDropoutDefault,
    ];

    /// `(name, stage that must catch it first, the diagnosis that must name it, description)`.
    fn info(self) -> (&'static str, &'static str, &'static str, &'static str) {
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
}

/// The faults that are on; empty for the faithful port.
pub type Faults = burn_diff::faults::Faults<Fault>;

//! The fault switch: each fault is a realistic slip in porting a transformer to Burn, reproduced as a
//! small change to the faithful port. Off by default; selected by name with `--fault`. The port's
//! `effective_config` reads its encoder's settings from the module, so a default left in place
//! shows there; the code slips it does not know about are caught at their own stage.

/// A realistic way this port goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The encoder left at Burn's activation default, GELU (torch's TransformerEncoderLayer: ReLU).
    EncoderGeluDefault,
    /// The encoder left at Burn's dropout default, 0.1, where the reference has none.
    EncoderDropoutDefault,
    /// The first layer's query and key projections swapped: a loader that read `in_proj` as
    /// (key, query, value).
    EncoderQkvOrder,
    /// The first layer's attention written by hand without the 1/sqrt(head size) scale.
    AttnNoScale,
    /// The padding mask never given to the encoder (`TransformerEncoderInput::new(x)` without
    /// `.mask_pad(...)`): every sequence attends to its pads.
    MaskIgnored,
    /// The padding mask inverted (true at real tokens), as a Hugging Face `attention_mask` (1 = keep)
    /// passed where Burn's `mask_pad` wants true at a pad.
    MaskInverted,
    /// The encoder built with Burn's quiet softmax (`with_quiet_softmax(true)`, exp / (1 + sum exp))
    /// where torch's attention takes the softmax.
    QuietSoftmax,
}

impl burn_diff::faults::Fault for Fault {
    const ALL: &'static [Self] = &[
        Fault::EncoderGeluDefault,
        Fault::EncoderDropoutDefault,
        Fault::EncoderQkvOrder,
        Fault::AttnNoScale,
        Fault::MaskIgnored,
        Fault::MaskInverted,
        Fault::QuietSoftmax,
    ];

    /// `(name, stage that must catch it first, the diagnosis that must name it, description)`.
    fn info(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Fault::EncoderGeluDefault => (
                "encoder-gelu-default",
                "forward",
                "forward.encoder.activation",
                "the encoder left at Burn's TransformerEncoderConfig activation default, GELU, where torch's TransformerEncoderLayer applies ReLU",
            ),
            Fault::EncoderDropoutDefault => (
                "encoder-dropout-default",
                "config",
                "config.enc.layers.0.dropout",
                "the encoder left at Burn's TransformerEncoderConfig dropout default, 0.1, where the reference has 0.0",
            ),
            Fault::EncoderQkvOrder => (
                "encoder-qkv-order",
                "forward",
                "forward.attention.qkv_order",
                "the first layer's self_attn.in_proj read as (key, query, value) where PyTorch stacks (query, key, value)",
            ),
            Fault::AttnNoScale => (
                "attn-no-scale",
                "forward",
                "forward.attention.no_scale",
                "the first layer's attention written by hand without dividing the scores by sqrt(head size)",
            ),
            Fault::MaskIgnored => (
                "mask-ignored",
                "forward",
                "forward.attention.mask_ignored",
                "the padding mask never given to the encoder: every sequence attends to its pads",
            ),
            Fault::MaskInverted => (
                "mask-inverted",
                "forward",
                "forward.attention.mask_inverted",
                "the padding mask inverted (true at real tokens, a Hugging Face attention_mask passed as Burn's mask_pad)",
            ),
            Fault::QuietSoftmax => (
                "quiet-softmax",
                "forward",
                "forward.attention.quiet_softmax",
                "the encoder built with quiet_softmax on (TransformerEncoderConfig::with_quiet_softmax(true)): exp / (1 + sum exp) where torch's attention takes the softmax",
            ),
        }
    }
}

/// The faults that are on; empty for the faithful port.
pub type Faults = burn_diff::faults::Faults<Fault>;

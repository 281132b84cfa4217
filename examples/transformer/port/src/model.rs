//! TransformerNet, written as a Burn user writes it: Burn's own `TransformerEncoder`, named like the
//! reference's attributes. PyTorch's encoder layer calls its parts `self_attn` (with q, k and v
//! packed in `in_proj_weight`), `linear1`, `linear2`, `norm1`, `norm2`; Burn's calls them `mha` (four
//! Linear layers), `pwff.linear_inner`, `pwff.linear_outer`, `norm_1`, `norm_2`. `burn_diff::layout`
//! renames and splits them (`burn_diff::packed`), so the port loads the reference's `state_dict()`
//! as it is.

use burn::module::{Module, Param};
use burn::nn::activation::ActivationConfig;
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput, TransformerEncoderLayer,
};
use burn::nn::{Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Device, Int, Tensor};

use crate::faults::{Fault, Faults};

/// Token ids.
pub const VOCAB: usize = 10;
/// Embedding width (d_model).
pub const EMBED: usize = 16;
/// Attention heads.
pub const HEADS: usize = 2;
/// The feed-forward width (d_ff).
pub const FF: usize = 32;
/// Encoder layers.
pub const LAYERS: usize = 2;
/// Classes.
pub const OUTPUTS: usize = 2;
/// Tokens per sequence.
pub const LENGTH: usize = 8;
/// The padding id: shorter sequences end in it. The encoder's attention skips it (Burn's
/// `mask_pad`, true at a pad, as torch's `src_key_padding_mask`) and the pooled mean leaves it out.
pub const PAD: i64 = 0;
/// The encoder's LayerNorm epsilon: Burn's default and torch's, 1e-5. Burn's `LayerNorm` keeps it
/// private, so the port reports the value it configured.
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// The reference's TransformerNet.
#[derive(Module, Debug)]
pub struct TransformerNet {
    /// Embedding(10, 16).
    pub emb: Embedding,
    /// The learned position embedding `[1, 8, 16]`, added to every sequence.
    pub pos: Param<Tensor<3>>,
    /// TransformerEncoder(TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True), 2).
    /// Burn facts: `TransformerEncoderConfig` defaults its activation to GELU and its dropout to
    /// 0.1 (burn-nn src/modules/transformer/encoder.rs:35-66); torch's layer uses ReLU. Both are set.
    pub enc: TransformerEncoder,
    /// Linear(16, 2) on the mean over the sequence.
    pub head: Linear,
    /// Fault encoder-qkv-order.
    query_key_swapped: bool,
    /// Fault attn-no-scale.
    unscaled: bool,
    /// Fault mask-ignored.
    mask_ignored: bool,
    /// Fault mask-inverted.
    mask_inverted: bool,
}

/// Every layer's output: the embeddings and each encoder layer's `[n, T, 16]`, the logits `[n, 2]`.
pub struct Layers {
    /// emb's output.
    pub emb: Tensor<3>,
    /// Each encoder layer's output, in order.
    pub enc: Vec<Tensor<3>>,
    /// The logits.
    pub head: Tensor<2>,
}

/// The encoder as the reference configures it.
fn encoder(faults: &Faults, device: &Device) -> TransformerEncoder {
    let mut c =
        TransformerEncoderConfig::new(EMBED, FF, HEADS, LAYERS).with_layer_norm_eps(LAYER_NORM_EPS);
    if !faults.has(Fault::EncoderGeluDefault) {
        c = c.with_activation(ActivationConfig::Relu);
    }
    if !faults.has(Fault::EncoderDropoutDefault) {
        c = c.with_dropout(0.0);
    }
    if faults.has(Fault::QuietSoftmax) {
        c = c.with_quiet_softmax(true);
    }
    c.init(device)
}

/// Self-attention written by hand, as a port that does not use Burn's module writes it, but
/// without dividing the scores by sqrt(d_k) (fault attn-no-scale). Pads are masked as Burn's
/// attention masks them: their scores set to -1e4.
fn attention_unscaled(
    layer: &TransformerEncoderLayer,
    x: Tensor<3>,
    mask: Option<Tensor<2, Bool>>,
) -> Tensor<3> {
    let mha = &layer.mha;
    let [n, t, e] = x.dims();
    let (h, dk) = (mha.n_heads, mha.d_k);
    let split = |u: Tensor<3>| -> Tensor<4> { u.reshape([n, t, h, dk]).swap_dims(1, 2) };
    let q = split(mha.query.forward(x.clone()));
    let k = split(mha.key.forward(x.clone()));
    let v = split(mha.value.forward(x));
    let mut scores = q.matmul(k.swap_dims(2, 3));
    if let Some(mask) = mask {
        scores = scores.mask_fill(mask.reshape([n, 1, 1, t]), mha.min_float);
    }
    let weights = softmax(scores, 3);
    let context: Tensor<3> = weights.matmul(v).swap_dims(1, 2).reshape([n, t, e]);
    mha.output.forward(context)
}

impl TransformerNet {
    /// A freshly initialized model (Burn's initializers; the harness sends its own).
    pub fn new(faults: &Faults, device: &Device) -> Self {
        Self {
            emb: EmbeddingConfig::new(VOCAB, EMBED).init(device),
            pos: Initializer::Normal {
                mean: 0.0,
                std: 0.1,
            }
            .init([1, LENGTH, EMBED], device),
            enc: encoder(faults, device),
            head: LinearConfig::new(EMBED, OUTPUTS).init(device),
            query_key_swapped: faults.has(Fault::EncoderQkvOrder),
            unscaled: faults.has(Fault::AttnNoScale),
            mask_ignored: faults.has(Fault::MaskIgnored),
            mask_inverted: faults.has(Fault::MaskInverted),
        }
    }

    /// The padding mask the encoder gets: true at a pad. With fault mask-ignored none (every key
    /// attended, pads included); with fault mask-inverted true at every real token, as a port that
    /// passes a Hugging Face `attention_mask` (1 = keep) where Burn's `mask_pad` wants 1 = pad.
    fn mask(&self, tokens: &Tensor<2, Int>) -> Option<Tensor<2, Bool>> {
        if self.mask_ignored {
            return None;
        }
        let pad = tokens.clone().equal_elem(PAD);
        Some(if self.mask_inverted {
            pad.bool_not()
        } else {
            pad
        })
    }

    /// The mean over each sequence's real tokens `[n, E]` (pads left out, whatever the encoder's mask;
    /// a sequence of pads only, none in the data, pools to zeros as the reference's).
    fn pool(x: Tensor<3>, tokens: &Tensor<2, Int>) -> Tensor<2> {
        let [n, _, e] = x.dims();
        let keep: Tensor<3> = tokens.clone().not_equal_elem(PAD).float().unsqueeze_dim(2);
        let count: Tensor<3> = keep.clone().sum_dim(1).clamp_min(1.0);
        let sum: Tensor<3> = (x * keep).sum_dim(1);
        (sum / count).reshape([n, e])
    }

    /// One encoder layer; the first one with this port's faults.
    fn layer(&self, i: usize, x: Tensor<3>, mask: Option<Tensor<2, Bool>>) -> Tensor<3> {
        let layer = &self.enc.layers[i];
        if i == 0 && self.query_key_swapped {
            // Query and key in each other's place, as a loader that split in_proj as (key, query,
            // value) leaves them (the clone shares the parameters, so gradients go to the same ones).
            let mut swapped = layer.clone();
            std::mem::swap(&mut swapped.mha.query, &mut swapped.mha.key);
            return swapped.forward(x, mask, None);
        }
        if i == 0 && self.unscaled {
            // The post-norm layer with its attention written by hand (no dropout: the reference has none).
            let x = layer
                .norm_1
                .forward(x.clone() + attention_unscaled(layer, x, mask));
            return layer.norm_2.forward(x.clone() + layer.pwff.forward(x));
        }
        layer.forward(x, mask, None)
    }

    /// Every layer's output on token ids `[n, T]`. The encoder's layers run one by one (the loop
    /// `TransformerEncoder::forward` runs, each with the padding mask), so each one's output is
    /// reported.
    pub fn layers(&self, tokens: Tensor<2, Int>) -> Layers {
        let mask = self.mask(&tokens);
        let emb = self.emb.forward(tokens.clone());
        let mut x = emb.clone() + self.pos.val();
        let mut enc = Vec::with_capacity(self.enc.layers.len());
        for i in 0..self.enc.layers.len() {
            x = self.layer(i, x, mask.clone());
            enc.push(x.clone());
        }
        let head = self.head.forward(Self::pool(x, &tokens));
        Layers { emb, enc, head }
    }

    /// The logits `[n, 2]`.
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<2> {
        if !self.query_key_swapped && !self.unscaled && !self.mask_ignored && !self.mask_inverted {
            // Burn's own encoder forward, as the user's model calls it.
            let emb = self.emb.forward(tokens.clone()) + self.pos.val();
            let mut input = TransformerEncoderInput::new(emb);
            if let Some(mask) = self.mask(&tokens) {
                input = input.mask_pad(mask);
            }
            let x = self.enc.forward(input);
            return self.head.forward(Self::pool(x, &tokens));
        }
        self.layers(tokens).head
    }
}

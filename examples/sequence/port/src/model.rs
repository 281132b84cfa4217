//! SequenceNet, written as a Burn user writes it: `burn::nn` layers named like the reference's
//! attributes. PyTorch packs attention's query, key and value into `in_proj_weight [3E, E]`, and an
//! LSTM's four (a GRU's three) gates into `weight_ih_l0` and friends; Burn keeps one Linear per
//! projection and one `GateController` per gate, and `burn_diff::layout` splits and joins them
//! (`burn_diff::packed`), so the port loads the reference's `state_dict()` as it is.

use burn::module::Module;
use burn::nn::attention::{MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::{
    Embedding, EmbeddingConfig, Gru, GruConfig, Linear, LinearConfig, Lstm, LstmConfig,
};
use burn::tensor::{Device, Int, Tensor};

use crate::faults::{Fault, Faults};

/// Token ids.
pub const VOCAB: usize = 10;
/// Embedding width.
pub const EMBED: usize = 16;
/// Attention heads.
pub const HEADS: usize = 2;
/// LSTM hidden size.
pub const HIDDEN: usize = 32;
/// Classes.
pub const OUTPUTS: usize = 2;
/// Tokens per sequence.
pub const LENGTH: usize = 8;

/// The reference's SequenceNet.
#[derive(Module, Debug)]
pub struct SequenceNet {
    /// Embedding(10, 16).
    pub emb: Embedding,
    /// MultiheadAttention(16, 2, batch_first=True), self-attention. Burn fact:
    /// `MultiHeadAttentionConfig`'s dropout defaults to 0.1 (burn-nn src/modules/attention/mha.rs:23-25),
    /// torch's to 0.0, so it is set.
    pub attn: MultiHeadAttention,
    /// LSTM(16, 32, batch_first=True). Burn fact: `LstmConfig::batch_first` defaults to true
    /// (burn-nn src/modules/rnn/lstm/lstm_module.rs:25-28); PyTorch's `nn.LSTM` defaults to false.
    pub lstm: Lstm,
    /// GRU(32, 32, batch_first=True). Burn fact: `GruConfig::reset_after` defaults to true, the form
    /// PyTorch computes (burn-nn src/modules/rnn/gru.rs:33-35, 208-213).
    pub gru: Gru,
    /// Linear(32, 2) on the last step.
    pub head: Linear,
    /// Fault lstm-gate-order.
    gates_swapped: bool,
    /// Fault attn-qkv-order.
    query_key_swapped: bool,
}

/// Every layer's output: the embeddings, the attended values and the recurrent layers' states
/// `[n, T, width]`, the logits `[n, 2]`.
pub struct Layers {
    /// emb's output.
    pub emb: Tensor<3>,
    /// attn's output (the attended values).
    pub attn: Tensor<3>,
    /// lstm's output (every step's hidden state).
    pub lstm: Tensor<3>,
    /// gru's output (every step's hidden state).
    pub gru: Tensor<3>,
    /// The logits.
    pub head: Tensor<2>,
}

impl SequenceNet {
    /// A freshly initialized model (Burn's initializers; the harness sends its own).
    pub fn new(faults: &Faults, device: &Device) -> Self {
        Self {
            emb: EmbeddingConfig::new(VOCAB, EMBED).init(device),
            attn: if faults.has(Fault::AttnDropoutDefault) {
                MultiHeadAttentionConfig::new(EMBED, HEADS).init(device)
            } else {
                MultiHeadAttentionConfig::new(EMBED, HEADS)
                    .with_dropout(0.0)
                    .init(device)
            },
            lstm: LstmConfig::new(EMBED, HIDDEN, true)
                .with_batch_first(!faults.has(Fault::LstmTimeMajor))
                .init(device),
            gru: GruConfig::new(HIDDEN, HIDDEN, true)
                .with_reset_after(!faults.has(Fault::GruResetBefore))
                .init(device),
            head: LinearConfig::new(HIDDEN, OUTPUTS).init(device),
            gates_swapped: faults.has(Fault::LstmGateOrder),
            query_key_swapped: faults.has(Fault::AttnQkvOrder),
        }
    }

    /// Every layer's output on token ids `[n, T]`.
    pub fn layers(&self, tokens: Tensor<2, Int>) -> Layers {
        let emb = self.emb.forward(tokens);
        let attn = if self.query_key_swapped {
            // Query and key projections in each other's place, as a loader that split in_proj as
            // (key, query, value) leaves them.
            let mut swapped = self.attn.clone();
            std::mem::swap(&mut swapped.query, &mut swapped.key);
            swapped.forward(MhaInput::self_attn(emb.clone())).context
        } else {
            self.attn.forward(MhaInput::self_attn(emb.clone())).context
        };
        let lstm = if self.gates_swapped {
            // The cell and output gates' parameters in each other's place, as a loader that split
            // the blocks in the wrong order leaves them (the clone shares the parameters, so their
            // gradients go to the same tensors).
            let mut swapped = self.lstm.clone();
            std::mem::swap(&mut swapped.cell_gate, &mut swapped.output_gate);
            swapped.forward(attn.clone(), None).0
        } else {
            self.lstm.forward(attn.clone(), None).0
        };
        let gru = self.gru.forward(lstm.clone(), None);
        let [n, t, h] = gru.dims();
        let last: Tensor<2> = gru.clone().slice([0..n, t - 1..t, 0..h]).reshape([n, h]);
        let head = self.head.forward(last);
        Layers {
            emb,
            attn,
            lstm,
            gru,
            head,
        }
    }

    /// The logits `[n, 2]`.
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<2> {
        self.layers(tokens).head
    }
}

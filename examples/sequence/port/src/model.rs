//! SequenceNet, written as a Burn user writes it: `burn::nn` layers named like the reference's
//! attributes. PyTorch's `nn.LSTM` packs its four gates into `weight_ih_l0 [4H, I]` and friends;
//! Burn's `Lstm` keeps one `GateController` per gate, and `burn_diff::layout` splits and joins them
//! (`burn_diff::packed`), so the port loads the reference's `state_dict()` as it is.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, Lstm, LstmConfig};
use burn::tensor::{Device, Int, Tensor};

use crate::faults::{Fault, Faults};

/// Token ids.
pub const VOCAB: usize = 10;
/// Embedding width.
pub const EMBED: usize = 16;
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
    /// LSTM(16, 32, batch_first=True). Burn fact: `LstmConfig::batch_first` defaults to true
    /// (burn-nn src/modules/rnn/lstm/lstm_module.rs:25-28); PyTorch's `nn.LSTM` defaults to false.
    pub lstm: Lstm,
    /// Linear(32, 2) on the last step.
    pub head: Linear,
    /// Fault lstm-gate-order.
    gates_swapped: bool,
}

/// Every layer's output: the embeddings and the LSTM's states `[n, T, width]`, the logits `[n, 2]`.
pub struct Layers {
    /// emb's output.
    pub emb: Tensor<3>,
    /// lstm's output (every step's hidden state).
    pub lstm: Tensor<3>,
    /// The logits.
    pub head: Tensor<2>,
}

impl SequenceNet {
    /// A freshly initialized model (Burn's initializers; the harness sends its own).
    pub fn new(faults: &Faults, device: &Device) -> Self {
        Self {
            emb: EmbeddingConfig::new(VOCAB, EMBED).init(device),
            lstm: LstmConfig::new(EMBED, HIDDEN, true)
                .with_batch_first(!faults.has(Fault::LstmTimeMajor))
                .init(device),
            head: LinearConfig::new(HIDDEN, OUTPUTS).init(device),
            gates_swapped: faults.has(Fault::LstmGateOrder),
        }
    }

    /// Every layer's output on token ids `[n, T]`.
    pub fn layers(&self, tokens: Tensor<2, Int>) -> Layers {
        let emb = self.emb.forward(tokens);
        let lstm = if self.gates_swapped {
            // The cell and output gates' parameters in each other's place, as a loader that split
            // the blocks in the wrong order leaves them (the clone shares the parameters, so their
            // gradients go to the same tensors).
            let mut swapped = self.lstm.clone();
            std::mem::swap(&mut swapped.cell_gate, &mut swapped.output_gate);
            swapped.forward(emb.clone(), None).0
        } else {
            self.lstm.forward(emb.clone(), None).0
        };
        let [n, t, h] = lstm.dims();
        let last: Tensor<2> = lstm.clone().slice([0..n, t - 1..t, 0..h]).reshape([n, h]);
        let head = self.head.forward(last);
        Layers { emb, lstm, head }
    }

    /// The logits `[n, 2]`.
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<2> {
        self.layers(tokens).head
    }
}

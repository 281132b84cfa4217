//! The contract (`burn_diff::Port`) for the sequence model: each method is the plain Burn code for
//! one stage. Sequences arrive as the harness sends them, `[n, 8]` token ids (harness.toml's
//! `[data] sample_shape` and `sample_dtype = "int64"`, protocol 3); the port reads them with
//! `Matrix::ids` as Burn's `Int` tensors.

use std::path::Path;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};

use burn_diff::error::{input, shape, Result};
use burn_diff::layout::{burn_shapes, load_torch_params, torch_params, values};
use burn_diff::optim as state;
use burn_diff::prep::{csv, split};
use burn_diff::tensor::class_indices;
use burn_diff::{
    Activations, EffectiveConfig, Matrix, Matrix64, OptimState, Params, Port, PortInfo, Progress,
    Roundtrip, ScalerStats, SplitIndices, Table, TrainRequest, TrainTrace,
};

use crate::faults::Faults;
use crate::model::{SequenceNet, LENGTH, OUTPUTS, VOCAB};

/// torch.optim.Adam(lr=3e-3, betas=(0.9, 0.999), eps=1e-8).
pub const LR: f64 = 3e-3;
const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPS: f32 = 1e-8;
/// Rows per batch.
pub const BATCH_SIZE: usize = 32;
/// Epochs by default.
pub const EPOCHS: usize = 10;

pub use burn_diff::backend::BackendKind as Backend;

/// The optimizer: Burn's Adam configured as the reference's. Burn fact: `AdamConfig`'s epsilon
/// defaults to 1e-5 (burn-optim src/optim/adam.rs), so it is set.
pub fn optimizer() -> ModuleOptimizer {
    AdamConfig::new()
        .with_beta_1(BETA1)
        .with_beta_2(BETA2)
        .with_epsilon(EPS)
        .init()
}

/// The port: a backend and the faults that are on.
pub struct SequencePort {
    backend: Backend,
    device: Device,
    faults: Faults,
}

/// The batch as token ids `[n, 8]`: whole numbers in `0..10`, one sequence per sample.
fn tokens(m: &Matrix, device: &Device) -> Result<Tensor<2, Int>> {
    if m.dims != [LENGTH] {
        return shape(format!(
            "expected sequences of {LENGTH} tokens per sample, got shape {:?} (harness.toml: [data] sample_shape = [8])",
            m.dims
        ));
    }
    Ok(Tensor::from_data(
        TensorData::new(m.ids(VOCAB)?, [m.n, LENGTH]),
        device,
    ))
}

/// nn.CrossEntropyLoss() (mean) as Burn's `CrossEntropyLoss` on logits `[n, C]`.
fn cross_entropy(logits: Tensor<2>, y: &[i64]) -> Tensor<1> {
    let device = logits.device();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(y.to_vec(), [y.len()]), &device);
    CrossEntropyLossConfig::new()
        .init(&device)
        .forward(logits, targets)
}

/// A batch as the contract's float batch `[n, ...]`.
fn batch<const D: usize>(t: Tensor<D>) -> Result<Matrix> {
    let dims = t.dims();
    Matrix::with_shape(values(t), &dims)
}

/// Checks `n` targets against `rows` and returns them as class indices.
fn targets(y: &[f32], rows: usize) -> Result<Vec<i64>> {
    if y.len() != rows {
        return shape(format!(
            "expected {rows} targets (one per row), got {}",
            y.len()
        ));
    }
    class_indices(y, OUTPUTS)
}

impl SequencePort {
    /// The port on `backend` with `faults` on.
    pub fn new(backend: Backend, faults: Faults) -> Self {
        Self {
            backend,
            device: backend.device(),
            faults,
        }
    }

    /// The model with `params` loaded, on `device`.
    fn net(&self, params: &Params, device: &Device) -> Result<SequenceNet> {
        let mut net = SequenceNet::new(&self.faults, device);
        load_torch_params(&mut net, params)?;
        Ok(net)
    }

    /// One batch: the loss value and Burn's gradients.
    fn batch(&self, net: &SequenceNet, x: Tensor<2, Int>, y: &[i64]) -> (f32, GradientsParams) {
        let loss = cross_entropy(net.forward(x), y);
        let value = values(loss.clone())[0];
        (value, GradientsParams::from_grads(loss.backward(), net))
    }
}

impl Port for SequencePort {
    fn info(&self) -> PortInfo {
        PortInfo {
            name: "sequence-port".into(),
            backend: self.backend.name().into(),
            faults: self.faults.names(),
        }
    }

    fn load_csv(&self, path: &Path, label: &str) -> Result<Table> {
        csv::read_csv_multiclass(path, label)
    }

    fn split(&self, n: usize, test_size: f64, seed: u32) -> Result<SplitIndices> {
        split::train_test_split(n, test_size, seed)
    }

    fn fit_scaler(&self, x: &Matrix64, _train_rows: &[usize]) -> Result<ScalerStats> {
        // Token ids are not scaled: the identity, as the reference's `scaler = "none"`.
        Ok(ScalerStats {
            mean: vec![0.0; x.d],
            var: vec![1.0; x.d],
            scale: vec![1.0; x.d],
        })
    }

    fn transform(&self, x: &Matrix64, _mean: &[f64], _scale: &[f64]) -> Result<Matrix> {
        Matrix::new(x.data.iter().map(|&v| v as f32).collect(), x.n, x.d)
    }

    fn effective_config(&self) -> Result<EffectiveConfig> {
        // What the port's author configured, and what its attention layer really holds (read from
        // the module, so a default left in place shows); the other faults are slips in code this
        // account does not know about, so that each is caught at its own stage (see faults.rs).
        let attn = SequenceNet::new(&self.faults, &self.device).attn;
        let c = serde_json::json!({
            "attn.num_heads": attn.n_heads, "attn.dropout": attn.dropout.prob,
            "optimizer": "Adam", "lr": LR, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
            "weight_decay": 0.0, "clip_norm": null, "batch_size": BATCH_SIZE, "epochs": EPOCHS,
            "loss": "CrossEntropyLoss", "label_smoothing": 0.0,
            "loss_reduction": "mean", "test_size": 0.2, "split_seed": 42, "scaler_fit_rows": "none",
        });
        Ok(c.as_object().cloned().unwrap_or_default())
    }

    fn roundtrip(&self, params: &Params, _n_features: usize) -> Result<Roundtrip> {
        let net = self.net(params, &self.device)?;
        let back = torch_params(&net)?;
        // Burn's shapes for the parameters Burn keeps under PyTorch's names (the embedding, the
        // head); the packed tensors (attention's in_proj, the gate stacks) have no single Burn
        // counterpart.
        let burn = burn_shapes(&net);
        let layouts = back
            .0
            .iter()
            .filter_map(|t| burn.iter().find(|(n, _)| *n == t.name).cloned())
            .collect();
        Ok(Roundtrip {
            params: back,
            layouts,
        })
    }

    fn forward(&self, params: &Params, x: &Matrix) -> Result<Activations> {
        let net = self.net(params, &self.device)?;
        let layers = net.layers(tokens(x, &self.device)?);
        Ok(Activations(vec![
            ("emb".to_string(), batch(layers.emb)?),
            ("attn".to_string(), batch(layers.attn)?),
            ("lstm".to_string(), batch(layers.lstm)?),
            ("gru".to_string(), batch(layers.gru)?),
            ("head".to_string(), batch(layers.head)?),
        ]))
    }

    fn loss(&self, p: &[f32], y: &[f32]) -> Result<(f32, Vec<f32>)> {
        if y.is_empty() || p.is_empty() || !p.len().is_multiple_of(y.len()) {
            return input(format!(
                "outputs must be non-empty and a whole number per target; got {} outputs for {} targets",
                p.len(),
                y.len()
            ));
        }
        let (n, classes) = (y.len(), p.len() / y.len());
        let y = class_indices(y, classes)?;
        let ad = self.device.clone().autodiff();
        let logits =
            Tensor::<2>::from_data(TensorData::new(p.to_vec(), [n, classes]), &ad).require_grad();
        let loss = cross_entropy(logits.clone(), &y);
        let value = values(loss.clone())[0];
        let grad = logits
            .grad(&loss.backward())
            .map(values)
            .unwrap_or_default();
        Ok((value, grad))
    }

    fn backward(&self, params: &Params, x: &Matrix, y: &[f32]) -> Result<(f32, Params)> {
        let y = targets(y, x.n)?;
        let ad = self.device.clone().autodiff();
        let net = self.net(params, &ad)?;
        let (loss, grads) = self.batch(&net, tokens(x, &ad)?, &y);
        Ok((loss, state::gradients_to_torch(&net, &grads)?))
    }

    fn optimizer_step(
        &self,
        params: &Params,
        grads: &Params,
        state: Option<&OptimState>,
    ) -> Result<(Params, OptimState)> {
        let ad = self.device.clone().autodiff();
        let net = self.net(params, &ad)?;
        grads.check_like(params, "grads")?;
        let mut optim = match state {
            Some(s) if s.step > 0 => state::with_adam_state(optimizer, LR, &net, s)?,
            _ => optimizer(),
        };
        let g = state::gradients(&net, grads)?;
        let net = optim.step(LR, net, g);
        Ok((
            torch_params(&net)?,
            state::adam_state_to_torch(&optim, &net)?,
        ))
    }

    fn train(&self, req: TrainRequest, progress: Progress<'_>) -> Result<TrainTrace> {
        let n = req.x.n;
        if n == 0 {
            return input("no training rows");
        }
        if req.epochs == 0 {
            return input("epochs must be at least 1");
        }
        let y = targets(&req.y, n)?;
        let ad = self.device.clone().autodiff();
        // Checked once: every batch is a selection of these sequences.
        let all = tokens(&req.x, &ad)?;
        let mut net = match &req.init {
            Some(init) => self.net(init, &ad)?,
            None => {
                // Burn's own initialization, from the seeded device.
                ad.seed(req.seed);
                SequenceNet::new(&self.faults, &ad)
            }
        };
        let orders = req.batch_orders()?;
        let mut optim = optimizer();
        let mut t = TrainTrace {
            init: torch_params(&net)?,
            ..TrainTrace::default()
        };
        for order in &orders {
            let mut total = 0.0f64;
            let mut batches = 0usize;
            for idx in order.chunks(BATCH_SIZE) {
                let rows: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
                let picked = Tensor::<1, Int>::from_data(TensorData::new(rows, [idx.len()]), &ad);
                let xb = all.clone().select(0, picked);
                let yb: Vec<i64> = idx.iter().map(|&i| y[i]).collect();
                let (loss, grads) = self.batch(&net, xb, &yb);
                let record = t.step_loss.len() < req.record_steps;
                if record {
                    t.step_grads.push(state::gradients_to_torch(&net, &grads)?);
                }
                net = optim.step(LR, net, grads);
                if record {
                    t.step_params.push(torch_params(&net)?);
                }
                t.step_loss.push(loss);
                total += f64::from(loss);
                batches += 1;
            }
            let epoch_loss = total / batches as f64;
            t.epoch_loss.push(epoch_loss);
            t.epoch_params.push(torch_params(&net)?);
            progress(t.epoch_loss.len(), epoch_loss);
        }
        t.final_params = torch_params(&net)?;
        t.state = state::adam_state_to_torch(&optim, &net)?;
        t.orders = orders;
        Ok(t)
    }

    fn evaluate(&self, params: &Params, x: &Matrix, y: &[f32]) -> Result<(Vec<f32>, f64)> {
        targets(y, x.n)?;
        let net = self.net(params, &self.device)?;
        let logits = values(net.forward(tokens(x, &self.device)?));
        let acc = self.accuracy(&logits, y)?;
        Ok((logits, acc))
    }

    fn accuracy(&self, probs: &[f32], y: &[f32]) -> Result<f64> {
        if y.is_empty() || probs.is_empty() || !probs.len().is_multiple_of(y.len()) {
            return input(format!(
                "outputs must be non-empty and a whole number per target; got {} outputs for {} targets",
                probs.len(),
                y.len()
            ));
        }
        let (n, classes) = (y.len(), probs.len() / y.len());
        let y = class_indices(y, classes)?;
        let out =
            Tensor::<2>::from_data(TensorData::new(probs.to_vec(), [n, classes]), &self.device);
        let predicted = out
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .unwrap_or_default();
        let correct = predicted.iter().zip(&y).filter(|(p, t)| p == t).count();
        Ok(correct as f64 / n as f64)
    }
}

//! The contract (`burn_diff::Port`) for the digits model: each method is the plain Burn code for
//! one stage. Evaluation runs on the plain device (BatchNorm on running statistics, Dropout off);
//! training and `backward` on the autodiff device (BatchNorm on batch statistics).

use std::path::Path;

use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};

use burn_diff::error::{input, shape, Result};
use burn_diff::layout::{burn_shapes, load_torch_params, torch_params, values};
use burn_diff::optim as state;
use burn_diff::prep::{csv, scaler, split};
use burn_diff::{
    Activations, EffectiveConfig, Matrix, Matrix64, OptimState, Params, Port, PortInfo, Progress,
    Roundtrip, ScalerStats, SplitIndices, Table, TrainRequest, TrainTrace,
};

use crate::faults::{Fault, Faults};
use crate::loss::{class_indices, cross_entropy};
use crate::model::{
    DigitsNet, NetOptions, BN_EPS, BN_MOMENTUM, BUFFERS, DROP_P, NORM_EPS, OUTPUTS,
};

/// torch.optim.AdamW(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01).
pub const LR: f64 = 1e-3;
const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPS: f32 = 1e-8;
const WEIGHT_DECAY: f32 = 0.01;
/// Rows per batch.
pub const BATCH_SIZE: usize = 32;
/// Epochs by default.
pub const EPOCHS: usize = 15;

pub use burn_diff::backend::BackendKind as Backend;

/// The optimizer: Burn's AdamW configured as the reference's.
///
/// Burn fact: `AdamWConfig`'s defaults are epsilon 1e-5 and weight decay 1e-4 (burn-optim
/// src/optim/adamw.rs:19-29), so both are set. Its step is PyTorch's AdamW: the decay is decoupled
/// and multiplied by the learning rate, `p (1 - lr wd) - lr m̂ / (sqrt(v̂) + eps)` (adamw.rs:83-100,
/// 158-226), in f32 with f32 betas.
///
/// Fault adamw-l2: Burn's Adam with `WeightDecayConfig`, which adds `wd p` to the gradient before
/// the moments (burn-optim src/optim/adam.rs:75-77, decay.rs `transform`).
pub fn optimizer(faults: &Faults) -> ModuleOptimizer {
    if faults.has(Fault::AdamwL2) {
        AdamConfig::new()
            .with_beta_1(BETA1)
            .with_beta_2(BETA2)
            .with_epsilon(EPS)
            .with_weight_decay(Some(burn::optim::decay::WeightDecayConfig::new(
                WEIGHT_DECAY,
            )))
            .init()
    } else {
        AdamWConfig::new()
            .with_beta_1(BETA1)
            .with_beta_2(BETA2)
            .with_epsilon(EPS)
            .with_weight_decay(WEIGHT_DECAY)
            .init()
    }
}

/// The port: a backend and the faults that are on.
pub struct DigitsPort {
    backend: Backend,
    device: Device,
    faults: Faults,
}

fn matrix(m: &Matrix, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(m.data.clone(), [m.n, m.d]), device)
}

/// fc1's input width, naming fc1.weight when it is missing or malformed.
fn features(params: &Params) -> Result<usize> {
    let w = params.require("fc1.weight")?;
    match w.shape[..] {
        [_, d] if d > 0 => Ok(d),
        _ => shape(format!(
            "parameter 'fc1.weight' has shape {:?}; the model's is [128, n_features]",
            w.shape
        )),
    }
}

fn without_buffers(p: &Params) -> Params {
    Params(
        p.0.iter()
            .filter(|t| !BUFFERS.contains(&t.name.as_str()))
            .cloned()
            .collect(),
    )
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

/// PyTorch refuses a training-mode BatchNorm on one row ("Expected more than 1 value per channel
/// when training"); Burn would divide by zero in the unbiased variance.
fn check_train_batch(rows: usize) -> Result<()> {
    if rows < 2 {
        return input(format!(
            "a training-mode batch needs more than one row for BatchNorm, got {rows}"
        ));
    }
    Ok(())
}

impl DigitsPort {
    /// The port on `backend` with `faults` on.
    pub fn new(backend: Backend, faults: Faults) -> Self {
        Self {
            backend,
            device: backend.device(),
            faults,
        }
    }

    fn options(&self, dropout: bool) -> NetOptions {
        // Only ndarray lacks an exact GELU gradient (see model::gelu_erf).
        NetOptions::new(&self.faults, self.backend == Backend::NdArray, dropout)
    }

    /// The model with `params` loaded, on `device`.
    fn net(
        &self,
        params: &Params,
        n_features: usize,
        dropout: bool,
        device: &Device,
    ) -> Result<DigitsNet> {
        let mut net = DigitsNet::new(n_features, self.options(dropout), device);
        load_torch_params(&mut net, params)?;
        Ok(net)
    }

    /// The model for evaluation: on the plain device, so BatchNorm uses its running statistics and
    /// Dropout is the identity (Burn switches both on `device.is_autodiff()` and the layer's
    /// training flag: batch.rs:133, dropout.rs:62). With dropout-at-eval, the training-mode model.
    fn eval_net(&self, params: &Params, n_features: usize) -> Result<DigitsNet> {
        if self.faults.has(Fault::DropoutAtEval) {
            let ad = self.device.clone().autodiff();
            return self.net(params, n_features, true, &ad);
        }
        self.net(params, n_features, true, &self.device)
    }

    /// One training-mode batch: the loss value and Burn's gradients. The running statistics are
    /// synchronized, so that `torch_params` reads the updated ones.
    fn batch(&self, net: &DigitsNet, x: Tensor<2>, y: &[i64]) -> (f32, GradientsParams) {
        let loss = cross_entropy(net.forward(x), y, &self.faults);
        let value = values(loss.clone())[0];
        let grads = GradientsParams::from_grads(loss.backward(), net);
        net.sync_running_stats();
        (value, grads)
    }
}

impl Port for DigitsPort {
    fn info(&self) -> PortInfo {
        PortInfo {
            name: "digits-port".into(),
            backend: self.backend.name().into(),
            faults: self.faults.names(),
        }
    }

    fn load_csv(&self, path: &Path, label: &str) -> Result<Table> {
        // The label is a class index (the shared CSV rules' K3, harness/csvcheck.py).
        csv::read_csv_multiclass(path, label)
    }

    fn split(&self, n: usize, test_size: f64, seed: u32) -> Result<SplitIndices> {
        split::train_test_split(n, test_size, seed)
    }

    fn fit_scaler(&self, x: &Matrix64, _train_rows: &[usize]) -> Result<ScalerStats> {
        // The reference fits its scaler on every row, before the split.
        Ok(scaler::fit(x, &(0..x.n).collect::<Vec<_>>()))
    }

    fn transform(&self, x: &Matrix64, mean: &[f64], scale: &[f64]) -> Result<Matrix> {
        scaler::transform(x, mean, scale)
    }

    fn effective_config(&self) -> Result<EffectiveConfig> {
        // What the port's author configured; the faults are slips in code this account does not
        // know about, so that each is caught at its own stage (see faults.rs).
        let c = serde_json::json!({
            "optimizer": "AdamW", "lr": LR, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
            "weight_decay": 0.01, "clip_norm": null, "batch_size": BATCH_SIZE, "epochs": EPOCHS,
            "loss": "CrossEntropyLoss", "label_smoothing": 0.1,
            "loss_reduction": "mean", "test_size": 0.2, "split_seed": 42, "scaler_fit_rows": "all",
            "drop.p": DROP_P, "norm1.eps": NORM_EPS, "bn.eps": BN_EPS, "bn.momentum": BN_MOMENTUM,
        });
        Ok(c.as_object().cloned().unwrap_or_default())
    }

    fn roundtrip(&self, params: &Params, n_features: usize) -> Result<Roundtrip> {
        let d = if n_features > 0 {
            n_features
        } else {
            features(params)?
        };
        let net = self.net(params, d, true, &self.device)?;
        let back = torch_params(&net)?;
        // Burn's shapes by PyTorch's names (the protocol's names): one traversal of the module,
        // read with and without the PyTorch adapter, so the two lists are in the same order.
        let layouts = back
            .0
            .iter()
            .zip(burn_shapes(&net))
            .map(|(t, (_, shape))| (t.name.clone(), shape))
            .collect();
        Ok(Roundtrip {
            params: back,
            layouts,
        })
    }

    fn forward(&self, params: &Params, x: &Matrix) -> Result<Activations> {
        let net = self.eval_net(params, x.d)?;
        let device = net.fc1.weight.val().device();
        let mut out = Vec::new();
        for (name, t) in net.layers(matrix(x, &device)) {
            let [n, w] = t.dims();
            out.push((name.to_string(), Matrix::new(values(t), n, w)?));
        }
        Ok(Activations(out))
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
        let loss = cross_entropy(logits.clone(), &y, &self.faults);
        let value = values(loss.clone())[0];
        let grad = logits
            .grad(&loss.backward())
            .map(values)
            .unwrap_or_default();
        Ok((value, grad))
    }

    fn backward(&self, params: &Params, x: &Matrix, y: &[f32]) -> Result<(f32, Params)> {
        let y = targets(y, x.n)?;
        check_train_batch(x.n)?;
        let ad = self.device.clone().autodiff();
        // Training mode with dropout off, as the contract asks.
        let net = self.net(params, x.d, false, &ad)?;
        let (loss, grads) = self.batch(&net, matrix(x, &ad), &y);
        let mut out = state::gradients_to_torch_except(&net, &grads, BUFFERS)?;
        let now = torch_params(&net)?;
        for b in BUFFERS {
            out.0.push(now.require(b)?.clone());
        }
        Ok((loss, out))
    }

    fn optimizer_step(
        &self,
        params: &Params,
        grads: &Params,
        state: Option<&OptimState>,
    ) -> Result<(Params, OptimState)> {
        let ad = self.device.clone().autodiff();
        let net = self.net(params, features(params)?, true, &ad)?;
        // Gradients of the trainable parameters; buffers (backward's new running statistics, if
        // the caller passes them along) are not gradients and are ignored.
        without_buffers(grads).check_like(&without_buffers(params), "grads")?;
        let make = || optimizer(&self.faults);
        let mut optim = match state {
            Some(s) if s.step > 0 => state::with_adam_state_except(make, LR, &net, s, BUFFERS)?,
            _ => make(),
        };
        let g = state::gradients_except(&net, grads, BUFFERS)?;
        let net = optim.step(LR, net, g);
        Ok((
            torch_params(&net)?,
            state::adam_state_to_torch_except(&optim, &net, BUFFERS)?,
        ))
    }

    fn train(&self, req: TrainRequest, progress: Progress<'_>) -> Result<TrainTrace> {
        let (n, d) = (req.x.n, req.x.d);
        if n == 0 {
            return input("no training rows");
        }
        if req.epochs == 0 {
            return input("epochs must be at least 1");
        }
        let y = targets(&req.y, n)?;
        if n % BATCH_SIZE == 1 {
            return input(format!(
                "{n} training rows leave a last batch of one row, which training-mode BatchNorm \
                 refuses (as PyTorch does)"
            ));
        }
        let ad = self.device.clone().autodiff();
        let mut net = match &req.init {
            Some(init) => self.net(init, d, req.dropout, &ad)?,
            None => {
                // Burn's own initialization, from the seeded device.
                ad.seed(req.seed);
                DigitsNet::new(d, self.options(req.dropout), &ad)
            }
        };
        let orders = req.batch_orders()?;
        if req.dropout {
            // Dropout masks from the seeded device, so that a run is reproducible.
            ad.seed(req.seed.wrapping_add(1));
        }
        let mut optim = optimizer(&self.faults);
        let mut t = TrainTrace {
            init: torch_params(&net)?,
            ..TrainTrace::default()
        };
        for order in &orders {
            let mut total = 0.0f64;
            let mut batches = 0usize;
            for idx in order.chunks(BATCH_SIZE) {
                let xb = Tensor::from_data(TensorData::new(req.x.rows(idx), [idx.len(), d]), &ad);
                let yb: Vec<i64> = idx.iter().map(|&i| y[i]).collect();
                let (loss, grads) = self.batch(&net, xb, &yb);
                let record = t.step_loss.len() < req.record_steps;
                if record {
                    t.step_grads
                        .push(state::gradients_to_torch_except(&net, &grads, BUFFERS)?);
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
        t.state = state::adam_state_to_torch_except(&optim, &net, BUFFERS)?;
        t.orders = orders;
        Ok(t)
    }

    fn evaluate(&self, params: &Params, x: &Matrix, y: &[f32]) -> Result<(Vec<f32>, f64)> {
        targets(y, x.n)?;
        let net = self.eval_net(params, x.d)?;
        let device = net.fc1.weight.val().device();
        let logits = values(net.forward(matrix(x, &device)));
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

//! The contract (`burn_diff::Port`) for the digits CNN: each method is the plain Burn code for one
//! stage. Evaluation runs on the plain device (BatchNorm on running statistics); training and
//! `backward` on the autodiff device (BatchNorm on batch statistics). Images arrive as the harness
//! sends them, `[n, 1, 8, 8]` (harness.toml's `[data] sample_shape`, protocol 2).

use std::path::Path;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};

use burn_diff::error::{input, shape, Result};
use burn_diff::layout::{burn_shapes, load_torch_params, torch_params, values};
use burn_diff::optim as state;
use burn_diff::prep::{csv, scaler, split};
use burn_diff::tensor::class_indices;
use burn_diff::{
    Activations, EffectiveConfig, Matrix, Matrix64, OptimState, Params, Port, PortInfo, Progress,
    Roundtrip, ScalerStats, SplitIndices, Table, TrainRequest, TrainTrace,
};

use crate::faults::Faults;
use crate::model::{DigitsCnn, BN_EPS, BN_MOMENTUM, BUFFERS, IMAGE, OUTPUTS};

/// torch.optim.Adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8).
pub const LR: f64 = 1e-3;
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
pub struct CnnPort {
    backend: Backend,
    device: Device,
    faults: Faults,
}

/// The batch as images `[n, 1, 8, 8]`; a batch of any other sample shape is refused by name.
fn images(m: &Matrix, device: &Device) -> Result<Tensor<4>> {
    if m.dims != IMAGE {
        return shape(format!(
            "expected images of shape {IMAGE:?} per sample, got {:?} (harness.toml: [data] sample_shape = [1, 8, 8])",
            m.dims
        ));
    }
    Ok(Tensor::from_data(
        TensorData::new(m.data.clone(), [m.n, IMAGE[0], IMAGE[1], IMAGE[2]]),
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

impl CnnPort {
    /// The port on `backend` with `faults` on.
    pub fn new(backend: Backend, faults: Faults) -> Self {
        Self {
            backend,
            device: backend.device(),
            faults,
        }
    }

    /// The model with `params` loaded, on `device`.
    fn net(&self, params: &Params, device: &Device) -> Result<DigitsCnn> {
        let mut net = DigitsCnn::new(&self.faults, device);
        load_torch_params(&mut net, params)?;
        Ok(net)
    }

    /// One training-mode batch: the loss value and Burn's gradients. The running statistics are
    /// synchronized, so that `torch_params` reads the updated ones.
    fn batch(&self, net: &DigitsCnn, x: Tensor<4>, y: &[i64]) -> (f32, GradientsParams) {
        let loss = cross_entropy(net.forward(x), y);
        let value = values(loss.clone())[0];
        let grads = GradientsParams::from_grads(loss.backward(), net);
        net.sync_running_stats();
        (value, grads)
    }
}

impl Port for CnnPort {
    fn info(&self) -> PortInfo {
        PortInfo {
            name: "digits-cnn-port".into(),
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
        // The reference fits its scaler on every row (each pixel a feature), before the split.
        Ok(scaler::fit(x, &(0..x.n).collect::<Vec<_>>()))
    }

    fn transform(&self, x: &Matrix64, mean: &[f64], scale: &[f64]) -> Result<Matrix> {
        scaler::transform(x, mean, scale)
    }

    fn effective_config(&self) -> Result<EffectiveConfig> {
        // What the port's author configured; the faults are slips in code this account does not
        // know about, so that each is caught at its own stage (see faults.rs).
        let c = serde_json::json!({
            "optimizer": "Adam", "lr": LR, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
            "weight_decay": 0.0, "clip_norm": null, "batch_size": BATCH_SIZE, "epochs": EPOCHS,
            "loss": "CrossEntropyLoss", "label_smoothing": 0.0,
            "loss_reduction": "mean", "test_size": 0.2, "split_seed": 42, "scaler_fit_rows": "all",
            "conv1.kernel_size": [3, 3], "conv1.stride": [1, 1], "conv1.padding": [1, 1],
            "bn1.eps": BN_EPS, "bn1.momentum": BN_MOMENTUM,
            "pool1.kernel_size": [2, 2], "pool1.stride": [2, 2], "pool1.padding": [0, 0],
            "conv2.kernel_size": [3, 3], "conv2.stride": [1, 1], "conv2.padding": [1, 1],
            "pool2.kernel_size": [3, 3], "pool2.stride": [1, 1], "pool2.padding": [1, 1],
            "pool2.count_include_pad": true,
        });
        Ok(c.as_object().cloned().unwrap_or_default())
    }

    fn roundtrip(&self, params: &Params, _n_features: usize) -> Result<Roundtrip> {
        let net = self.net(params, &self.device)?;
        let back = torch_params(&net)?;
        // Burn's shapes by PyTorch's names: one traversal, read with and without the adapter.
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
        let net = self.net(params, &self.device)?;
        let layers = net.layers(images(x, &self.device)?);
        let mut out = Vec::new();
        for (name, t) in layers.maps {
            let dims = t.dims();
            out.push((name.to_string(), Matrix::with_shape(values(t), &dims)?));
        }
        for (name, t) in [("flatten", layers.flatten), ("fc", layers.fc)] {
            let dims = t.dims();
            out.push((name.to_string(), Matrix::with_shape(values(t), &dims)?));
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
        check_train_batch(x.n)?;
        let ad = self.device.clone().autodiff();
        let net = self.net(params, &ad)?;
        let (loss, grads) = self.batch(&net, images(x, &ad)?, &y);
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
        let net = self.net(params, &ad)?;
        // Buffers (backward's new running statistics, if passed along) are not gradients.
        without_buffers(grads).check_like(&without_buffers(params), "grads")?;
        let mut optim = match state {
            Some(s) if s.step > 0 => {
                state::with_adam_state_except(optimizer, LR, &net, s, BUFFERS)?
            }
            _ => optimizer(),
        };
        let g = state::gradients_except(&net, grads, BUFFERS)?;
        let net = optim.step(LR, net, g);
        Ok((
            torch_params(&net)?,
            state::adam_state_to_torch_except(&optim, &net, BUFFERS)?,
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
        if n % BATCH_SIZE == 1 {
            return input(format!(
                "{n} training rows leave a last batch of one row, which training-mode BatchNorm \
                 refuses (as PyTorch does)"
            ));
        }
        let ad = self.device.clone().autodiff();
        // Checked once: every batch is a selection of these images.
        images(&req.x.select(&[]), &ad)?;
        let mut net = match &req.init {
            Some(init) => self.net(init, &ad)?,
            None => {
                // Burn's own initialization, from the seeded device.
                ad.seed(req.seed);
                DigitsCnn::new(&self.faults, &ad)
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
                let xb = images(&req.x.select(idx), &ad)?;
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
        let net = self.net(params, &self.device)?;
        let logits = values(net.forward(images(x, &self.device)?));
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

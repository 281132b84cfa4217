//! The contract (`burn_diff::Port`) for the diabetes model: each method is the plain Burn code for
//! one stage. The model has no dropout or normalization, so evaluation and training run the same
//! layers; training and `backward` use the autodiff device.

use std::path::Path;

use burn::nn::loss::{HuberLossConfig, Reduction, SmoothL1LossConfig};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
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
use crate::model::{DiabetesNet, HIDDEN};

/// torch.optim.Adam(lr=3e-2), PyTorch's betas and epsilon.
pub const LR: f64 = 3e-2;
const EPS: f32 = 1e-8;
/// nn.HuberLoss(delta=20.0), in the target's units.
pub const DELTA: f32 = 20.0;
/// Rows per batch.
pub const BATCH_SIZE: usize = 32;
/// Epochs by default.
pub const EPOCHS: usize = 50;

pub use burn_diff::backend::BackendKind as Backend;

/// The optimizer: Burn's Adam configured as the reference's.
///
/// Burn fact: `AdamConfig`'s default epsilon is 1e-5 (burn-optim src/optim/adam.rs), PyTorch's
/// 1e-8, so it is set; the betas' defaults (0.9, 0.999) are PyTorch's.
pub fn optimizer(faults: &Faults) -> ModuleOptimizer {
    if faults.has(Fault::AdamEpsDefault) {
        AdamConfig::new().init()
    } else {
        AdamConfig::new().with_epsilon(EPS).init()
    }
}

/// The mean loss (a one-element tensor) of predictions `[n, 1]` against targets `y` `[n]`.
///
/// Burn fact: `HuberLossConfig::new(delta)` has no default delta (burn-nn src/loss/huber.rs), where
/// PyTorch's `HuberLoss` defaults to 1.0; its formula is PyTorch's term for term. `SmoothL1Loss`
/// (burn-nn src/loss/smooth_l1.rs) is Huber divided by beta.
pub fn loss(pred: Tensor<2>, y: &[f32], faults: &Faults) -> Tensor<1> {
    let device = pred.device();
    let n = y.len();
    let shape = if faults.has(Fault::TargetBroadcast) {
        [1, n]
    } else {
        [n, 1]
    };
    let targets = Tensor::<2>::from_data(TensorData::new(y.to_vec(), shape), &device);
    if faults.has(Fault::SmoothL1ForHuber) {
        // Burn fact: SmoothL1Loss's `forward` is element-wise (no reduction argument), unlike
        // HuberLoss's; `forward_with_reduction` takes one (burn-nn src/loss/smooth_l1.rs).
        return SmoothL1LossConfig::new()
            .with_beta(DELTA)
            .init()
            .forward_with_reduction(pred, targets, Reduction::Mean);
    }
    let delta = if faults.has(Fault::HuberDeltaDefault) {
        1.0
    } else {
        DELTA
    };
    HuberLossConfig::new(delta)
        .init()
        .forward(pred, targets, Reduction::Mean)
}

/// The port: a backend and the faults that are on.
pub struct DiabetesPort {
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
        [h, d] if d > 0 && h == HIDDEN => Ok(d),
        _ => shape(format!(
            "parameter 'fc1.weight' has shape {:?}; the model's is [{HIDDEN}, n_features]",
            w.shape
        )),
    }
}

/// Checks that there is one target per row.
fn targets(y: &[f32], rows: usize) -> Result<()> {
    if y.len() != rows || rows == 0 {
        return input(format!(
            "expected {rows} targets (one per row, at least one), got {}",
            y.len()
        ));
    }
    Ok(())
}

impl DiabetesPort {
    /// The port on `backend` with `faults` on.
    pub fn new(backend: Backend, faults: Faults) -> Self {
        Self {
            backend,
            device: backend.device(),
            faults,
        }
    }

    /// The model with `params` loaded, on `device`.
    fn net(&self, params: &Params, n_features: usize, device: &Device) -> Result<DiabetesNet> {
        let mut net = DiabetesNet::new(n_features, device);
        load_torch_params(&mut net, params)?;
        Ok(net)
    }

    /// One batch: the loss value and Burn's gradients.
    fn batch(&self, net: &DiabetesNet, x: Tensor<2>, y: &[f32]) -> (f32, GradientsParams) {
        let loss = loss(net.forward(x), y, &self.faults);
        let value = values(loss.clone())[0];
        (value, GradientsParams::from_grads(loss.backward(), net))
    }
}

impl Port for DiabetesPort {
    fn info(&self) -> PortInfo {
        PortInfo {
            name: "diabetes-port".into(),
            backend: self.backend.name().into(),
            faults: self.faults.names(),
        }
    }

    fn load_csv(&self, path: &Path, label: &str) -> Result<Table> {
        // The target is any number (the shared CSV rules' K3, harness/csvcheck.py).
        csv::read_csv_regression(path, label)
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
            "optimizer": "Adam", "lr": LR, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
            "weight_decay": 0.0, "clip_norm": null, "batch_size": BATCH_SIZE, "epochs": EPOCHS,
            "loss": "HuberLoss", "delta": DELTA, "loss_reduction": "mean",
            "test_size": 0.2, "split_seed": 42, "scaler_fit_rows": "all",
        });
        Ok(c.as_object().cloned().unwrap_or_default())
    }

    fn roundtrip(&self, params: &Params, n_features: usize) -> Result<Roundtrip> {
        let d = if n_features > 0 {
            n_features
        } else {
            features(params)?
        };
        let net = self.net(params, d, &self.device)?;
        let back = torch_params(&net)?;
        // Burn's shapes by PyTorch's names: one traversal of the module, read with and without the
        // PyTorch adapter, so the two lists are in the same order.
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
        let net = self.net(params, x.d, &self.device)?;
        let mut out = Vec::new();
        for (name, t) in net.layers(matrix(x, &self.device)) {
            let [n, w] = t.dims();
            out.push((name.to_string(), Matrix::new(values(t), n, w)?));
        }
        Ok(Activations(out))
    }

    fn loss(&self, p: &[f32], y: &[f32]) -> Result<(f32, Vec<f32>)> {
        if y.is_empty() || p.len() != y.len() {
            return input(format!(
                "expected one output per target; got {} outputs for {} targets",
                p.len(),
                y.len()
            ));
        }
        let ad = self.device.clone().autodiff();
        let pred =
            Tensor::<2>::from_data(TensorData::new(p.to_vec(), [p.len(), 1]), &ad).require_grad();
        let loss = loss(pred.clone(), y, &self.faults);
        let value = values(loss.clone())[0];
        let grad = pred.grad(&loss.backward()).map(values).unwrap_or_default();
        Ok((value, grad))
    }

    fn backward(&self, params: &Params, x: &Matrix, y: &[f32]) -> Result<(f32, Params)> {
        targets(y, x.n)?;
        let ad = self.device.clone().autodiff();
        let net = self.net(params, x.d, &ad)?;
        let (loss, grads) = self.batch(&net, matrix(x, &ad), y);
        Ok((loss, state::gradients_to_torch(&net, &grads)?))
    }

    fn optimizer_step(
        &self,
        params: &Params,
        grads: &Params,
        state: Option<&OptimState>,
    ) -> Result<(Params, OptimState)> {
        let ad = self.device.clone().autodiff();
        let net = self.net(params, features(params)?, &ad)?;
        grads.check_like(params, "grads")?;
        let make = || optimizer(&self.faults);
        let mut optim = match state {
            Some(s) if s.step > 0 => state::with_adam_state(make, LR, &net, s)?,
            _ => make(),
        };
        let g = state::gradients(&net, grads)?;
        let net = optim.step(LR, net, g);
        Ok((
            torch_params(&net)?,
            state::adam_state_to_torch(&optim, &net)?,
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
        targets(&req.y, n)?;
        let ad = self.device.clone().autodiff();
        let mut net = match &req.init {
            Some(init) => self.net(init, d, &ad)?,
            None => {
                // Burn's own initialization, from the seeded device.
                ad.seed(req.seed);
                DiabetesNet::new(d, &ad)
            }
        };
        let orders = req.batch_orders()?;
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
                let yb: Vec<f32> = idx.iter().map(|&i| req.y[i]).collect();
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
        let net = self.net(params, x.d, &self.device)?;
        let pred = values(net.forward(matrix(x, &self.device)));
        let metric = self.accuracy(&pred, y)?;
        Ok((pred, metric))
    }

    /// The regression metric: the mean squared error over the rows, in f64.
    fn accuracy(&self, pred: &[f32], y: &[f32]) -> Result<f64> {
        if y.is_empty() || pred.len() != y.len() {
            return input(format!(
                "expected one prediction per target; got {} predictions for {} targets",
                pred.len(),
                y.len()
            ));
        }
        let errors = pred
            .iter()
            .zip(y)
            .map(|(&p, &t)| f64::from(p) - f64::from(t));
        let metric = if self.faults.has(Fault::MetricMae) {
            errors.map(f64::abs).sum::<f64>()
        } else {
            errors.map(|e| e * e).sum::<f64>()
        };
        Ok(metric / y.len() as f64)
    }
}

//! A user's port of the reference classifier, written the plain Burn way and tested by the harness:
//!
//! ```text
//! cargo build -p user-port
//! harness diff all --port-cmd target/debug/user-port
//! ```
//!
//! Everything the harness asks is one method of `burn_diff::Port`. Data preparation reuses the
//! library's sklearn-compatible helpers; the model, the loss, the optimizer and the training loop
//! are ordinary Burn code.

use std::path::Path;
use std::process::ExitCode;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Relu, Sigmoid};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use burn_diff::error::{input, Result};
use burn_diff::layout::{burn_shapes, load_torch_params, torch_params, values};
use burn_diff::prep::{csv, scaler, split};
use burn_diff::{
    Activations, EffectiveConfig, Matrix, Matrix64, OptimState, Params, Port, PortInfo, Progress,
    Roundtrip, ScalerStats, SplitIndices, Table, TrainRequest, TrainTrace,
};

const LR: f64 = 1e-3;
const BATCH_SIZE: usize = 32;
const EPOCHS: usize = 20;

#[derive(Module, Debug)]
struct Net {
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
    relu: Relu,
    sigmoid: Sigmoid,
}

impl Net {
    fn new(n_features: usize, device: &Device) -> Self {
        Self {
            fc1: LinearConfig::new(n_features, 64).init(device),
            fc2: LinearConfig::new(64, 32).init(device),
            fc3: LinearConfig::new(32, 1).init(device),
            relu: Relu::new(),
            sigmoid: Sigmoid::new(),
        }
    }

    fn layers(&self, x: Tensor<2>) -> Vec<(String, Tensor<2>)> {
        let z1 = self.fc1.forward(x);
        let a1 = self.relu.forward(z1.clone());
        let z2 = self.fc2.forward(a1.clone());
        let a2 = self.relu.forward(z2.clone());
        let z3 = self.fc3.forward(a2.clone());
        let p = self.sigmoid.forward(z3.clone());
        [
            ("fc1", z1),
            ("relu1", a1),
            ("fc2", z2),
            ("relu2", a2),
            ("fc3", z3),
            ("sigmoid", p),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect()
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.sigmoid.forward(
            self.fc3.forward(
                self.relu
                    .forward(self.fc2.forward(self.relu.forward(self.fc1.forward(x)))),
            ),
        )
    }
}

/// PyTorch's BCELoss. The value is Burn's clamped formula; the gradient is PyTorch's
/// (p - y) / max(p (1 - p), 1e-12) / N, attached through sum(p * c) with c detached, because the
/// autodiff of the clamped logs is NaN at p = 0 or 1, which a float32 sigmoid reaches.
fn bce(p: Tensor<1>, y: Tensor<1>) -> (f32, Tensor<1>) {
    let (pi, yi) = (p.clone().inner(), y.inner());
    let n = pi.dims()[0] as f32;
    let value = ((yi.clone() - 1.0) * pi.clone().neg().log1p().clamp_min(-100.0)
        - yi.clone() * pi.clone().log().clamp_min(-100.0))
    .mean();
    let coef = (pi.clone() - yi)
        .div((pi.clone().neg() + 1.0).mul(pi).clamp_min(1e-12))
        .div_scalar(n);
    (values(value)[0], (p * coef.autodiff()).sum())
}

fn adam() -> ModuleOptimizer {
    AdamConfig::new().with_epsilon(1e-8).init()
}

struct MyPort {
    device: Device,
}

impl MyPort {
    fn net(&self, params: &Params, n_features: usize, device: &Device) -> Result<Net> {
        let mut net = Net::new(n_features, device);
        load_torch_params(&mut net, params)?;
        Ok(net)
    }

    fn batch(
        &self,
        net: &Net,
        x: Vec<f32>,
        y: Vec<f32>,
        d: usize,
        device: &Device,
    ) -> (f32, GradientsParams) {
        let n = y.len();
        let x = Tensor::<2>::from_data(TensorData::new(x, [n, d]), device);
        let y = Tensor::<1>::from_data(TensorData::new(y, [n]), device);
        let (loss, root) = bce(net.forward(x).reshape([n]), y);
        (loss, GradientsParams::from_grads(root.backward(), net))
    }
}

fn features(params: &Params) -> usize {
    params.get("fc1.weight").map_or(0, |w| w.shape[1])
}

impl Port for MyPort {
    fn info(&self) -> PortInfo {
        PortInfo {
            name: "user-port".into(),
            backend: "flex".into(),
            faults: vec![],
        }
    }

    fn load_csv(&self, path: &Path, label: &str) -> Result<Table> {
        csv::read_csv(path, label)
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
        let c = serde_json::json!({
            "optimizer": "Adam", "loss": "BCELoss", "lr": LR, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0,
            "clip_norm": null, "batch_size": BATCH_SIZE, "epochs": EPOCHS, "threshold": 0.5,
            "test_size": 0.2, "split_seed": 42, "loss_reduction": "mean", "scaler_fit_rows": "all",
        });
        Ok(c.as_object().cloned().unwrap_or_default())
    }

    fn roundtrip(&self, params: &Params, n_features: usize) -> Result<Roundtrip> {
        let net = self.net(params, n_features, &self.device)?;
        Ok(Roundtrip {
            params: torch_params(&net)?,
            layouts: burn_shapes(&net),
        })
    }

    fn forward(&self, params: &Params, x: &Matrix) -> Result<Activations> {
        let net = self.net(params, x.d, &self.device)?;
        let xt = Tensor::<2>::from_data(TensorData::new(x.data.clone(), [x.n, x.d]), &self.device);
        let mut out = Vec::new();
        for (name, t) in net.layers(xt) {
            let [n, w] = t.dims();
            out.push((name, Matrix::new(values(t), n, w)?));
        }
        Ok(Activations(out))
    }

    fn loss(&self, p: &[f32], y: &[f32]) -> Result<(f32, Vec<f32>)> {
        if p.len() != y.len() || p.is_empty() {
            return input("predictions and targets must be non-empty and of one length");
        }
        let ad = self.device.clone().autodiff();
        let pt = Tensor::<1>::from_data(TensorData::new(p.to_vec(), [p.len()]), &ad).require_grad();
        let yt = Tensor::<1>::from_data(TensorData::new(y.to_vec(), [y.len()]), &ad);
        let (value, root) = bce(pt.clone(), yt);
        let grad = pt.grad(&root.backward()).map(values).unwrap_or_default();
        Ok((value, grad))
    }

    fn backward(&self, params: &Params, x: &Matrix, y: &[f32]) -> Result<(f32, Params)> {
        let ad = self.device.clone().autodiff();
        let net = self.net(params, x.d, &ad)?;
        let (loss, grads) = self.batch(&net, x.data.clone(), y.to_vec(), x.d, &ad);
        Ok((loss, burn_diff::optim::gradients_to_torch(&net, &grads)?))
    }

    fn optimizer_step(
        &self,
        params: &Params,
        grads: &Params,
        state: Option<&OptimState>,
    ) -> Result<(Params, OptimState)> {
        let ad = self.device.clone().autodiff();
        let net = self.net(params, features(params), &ad)?;
        let mut optim = match state {
            Some(s) => burn_diff::optim::with_adam_state(adam, LR, &net, s)?,
            None => adam(),
        };
        let g = burn_diff::optim::gradients(&net, grads)?;
        let net = optim.step(LR, net, g);
        Ok((
            torch_params(&net)?,
            burn_diff::optim::adam_state_to_torch(&optim, &net)?,
        ))
    }

    fn train(&self, req: TrainRequest, progress: Progress<'_>) -> Result<TrainTrace> {
        let ad = self.device.clone().autodiff();
        let d = req.x.d;
        let mut net = Net::new(d, &ad);
        if let Some(init) = &req.init {
            load_torch_params(&mut net, init)?;
        }
        let orders = req
            .orders
            .clone()
            .unwrap_or_else(|| vec![(0..req.x.n).collect(); req.epochs]);
        let mut optim = adam();
        let mut t = TrainTrace {
            init: torch_params(&net)?,
            ..TrainTrace::default()
        };
        for order in &orders {
            let mut total = 0.0f64;
            let mut batches = 0;
            for idx in order.chunks(BATCH_SIZE) {
                let y = idx.iter().map(|&i| req.y[i]).collect();
                let (loss, grads) = self.batch(&net, req.x.rows(idx), y, d, &ad);
                if t.step_loss.len() < req.record_steps {
                    t.step_grads
                        .push(burn_diff::optim::gradients_to_torch(&net, &grads)?);
                }
                net = optim.step(LR, net, grads);
                if t.step_loss.len() < req.record_steps {
                    t.step_params.push(torch_params(&net)?);
                }
                t.step_loss.push(loss);
                total += f64::from(loss);
                batches += 1;
            }
            t.epoch_loss.push(total / batches as f64);
            t.epoch_params.push(torch_params(&net)?);
            progress(t.epoch_loss.len(), total / batches as f64);
        }
        t.final_params = torch_params(&net)?;
        t.state = burn_diff::optim::adam_state_to_torch(&optim, &net)?;
        t.orders = orders;
        Ok(t)
    }

    fn evaluate(&self, params: &Params, x: &Matrix, y: &[f32]) -> Result<(Vec<f32>, f64)> {
        let net = self.net(params, x.d, &self.device)?;
        let xt = Tensor::<2>::from_data(TensorData::new(x.data.clone(), [x.n, x.d]), &self.device);
        let probs = values(net.forward(xt));
        let acc = self.accuracy(&probs, y)?;
        Ok((probs, acc))
    }

    fn accuracy(&self, probs: &[f32], y: &[f32]) -> Result<f64> {
        let correct = probs
            .iter()
            .zip(y)
            .filter(|(p, t)| f32::from(**p > 0.5) == **t)
            .count();
        Ok(correct as f64 / probs.len().max(1) as f64)
    }
}

fn main() -> ExitCode {
    burn_diff::serve(MyPort {
        device: Device::flex(),
    })
}

//! The port's pipeline operations on Burn tensors: forward, loss, backward, one optimizer step,
//! the training loop and evaluation. A plain loop you can read top to bottom, as in Burn's
//! custom-training-loop example, with every intermediate the harness compares made visible.

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};

use crate::adam::{self, AdamState};
use crate::config::TrainConfig;
use crate::error::{input, shape, Result};
use crate::faults::{Fault, Faults};
use crate::loss::{bce_on_logits, bce_on_probabilities};
use crate::model::{layer_dims, to_vec, Classifier, NamedTensor, TorchParams, PARAM_NAMES};
use crate::mt19937::Mt19937;

/// A row-major [n, d] float32 matrix.
pub struct Matrix {
    pub data: Vec<f32>,
    pub n: usize,
    pub d: usize,
}

impl Matrix {
    pub fn new(data: Vec<f32>, n: usize, d: usize) -> Result<Self> {
        if data.len() != n * d {
            return shape(format!(
                "matrix data has {} values, expected {n} x {d}",
                data.len()
            ));
        }
        Ok(Self { data, n, d })
    }

    fn tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(self.data.clone(), [self.n, self.d]), device)
    }

    fn rows(&self, idx: &[usize]) -> Vec<f32> {
        let mut out = Vec::with_capacity(idx.len() * self.d);
        for &r in idx {
            out.extend_from_slice(&self.data[r * self.d..(r + 1) * self.d]);
        }
        out
    }
}

fn vector<B: Backend>(v: Vec<f32>, device: &B::Device) -> Tensor<B, 1> {
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), device)
}

/// Every layer's output on `x`, as flat row-major vectors with their width.
pub struct ForwardOut {
    pub layers: Vec<(&'static str, Vec<f32>, usize)>,
}

pub fn forward<B: Backend>(
    params: &TorchParams,
    x: &Matrix,
    faults: &Faults,
    device: &B::Device,
) -> Result<ForwardOut> {
    params.validate(x.d)?;
    let model = Classifier::<B>::from_torch(params, faults, device);
    let act = model.forward(x.tensor(device), faults);
    let probabilities = if faults.has(Fault::LogitsBce) {
        burn::tensor::activation::sigmoid(act.output)
    } else {
        act.output
    };
    let w = |t: &Tensor<B, 2>| t.dims()[1];
    let layers = vec![
        ("fc1", w(&act.z1), act.z1),
        ("relu1", w(&act.a1), act.a1),
        ("fc2", w(&act.z2), act.z2),
        ("relu2", w(&act.a2), act.a2),
        ("fc3", w(&act.logits), act.logits),
        ("sigmoid", w(&probabilities), probabilities),
    ]
    .into_iter()
    .map(|(name, width, t)| (name, to_vec(t), width))
    .collect();
    Ok(ForwardOut { layers })
}

/// Loss value and d loss / d p for probabilities `p` and 0/1 targets `y`.
pub fn loss_and_grad<B: AutodiffBackend>(
    p: Vec<f32>,
    y: Vec<f32>,
    faults: &Faults,
    device: &B::Device,
) -> Result<(f32, Vec<f32>)> {
    if p.len() != y.len() || p.is_empty() {
        return shape(format!(
            "predictions and targets must be non-empty and of one length; got {} and {}",
            p.len(),
            y.len()
        ));
    }
    let pt = vector::<B>(p, device).require_grad();
    let loss = bce_on_probabilities::<B>(pt.clone(), vector(y, device), faults);
    let grads = loss.backward_root.backward();
    let g = pt.grad(&grads).map(to_vec).unwrap_or_default();
    Ok((to_vec(loss.value)[0], g))
}

/// Flattened Burn-layout parameters (weights [in, out]) in `PARAM_NAMES` order.
type Flat<B> = Vec<Tensor<B, 1>>;

fn flatten_model<B: Backend>(model: &Classifier<B>) -> Flat<B> {
    let mut out = Vec::with_capacity(6);
    for l in [&model.fc1, &model.fc2, &model.fc3] {
        out.push(l.weight.val().flatten(0, 1));
        out.push(
            l.bias
                .as_ref()
                .map(|b| b.val())
                .expect("layers have a bias"),
        );
    }
    out
}

fn model_from_flat<B: AutodiffBackend>(flat: &Flat<B::InnerBackend>, d: usize) -> Classifier<B> {
    let dims = layer_dims(d);
    let w =
        |i: usize| Tensor::<B, 2>::from_inner(flat[2 * i].clone().reshape([dims[i].0, dims[i].1]));
    let b = |i: usize| Tensor::<B, 1>::from_inner(flat[2 * i + 1].clone());
    Classifier::from_burn(&[w(0), w(1), w(2)], &[b(0), b(1), b(2)])
}

/// Burn-layout flat tensors back to PyTorch's layout.
fn flat_to_torch<B: Backend>(flat: &Flat<B>, d: usize) -> TorchParams {
    let dims = layer_dims(d);
    let mut out = Vec::with_capacity(6);
    for (i, &(d_in, d_out)) in dims.iter().enumerate() {
        let w = flat[2 * i].clone().reshape([d_in, d_out]).transpose();
        out.push(NamedTensor {
            name: PARAM_NAMES[2 * i].into(),
            shape: vec![d_out, d_in],
            data: to_vec(w),
        });
        out.push(NamedTensor {
            name: PARAM_NAMES[2 * i + 1].into(),
            shape: vec![d_out],
            data: to_vec(flat[2 * i + 1].clone()),
        });
    }
    TorchParams(out)
}

/// Forward, loss and backward for one batch: the loss value and per-parameter gradients
/// (Burn layout, flattened).
fn loss_and_grads<B: AutodiffBackend>(
    flat: &Flat<B::InnerBackend>,
    x: Vec<f32>,
    y: Vec<f32>,
    d: usize,
    faults: &Faults,
    device: &B::Device,
) -> (f32, Flat<B::InnerBackend>) {
    let n = y.len();
    let model = model_from_flat::<B>(flat, d);
    let xb = Tensor::<B, 2>::from_data(TensorData::new(x, [n, d]), device);
    let yb = vector::<B::InnerBackend>(y, device);
    let act = model.forward(xb, faults);
    let loss = if faults.has(Fault::LogitsBce) {
        bce_on_logits::<B>(act.logits.reshape([n]), yb)
    } else {
        bce_on_probabilities::<B>(act.output.reshape([n]), yb, faults)
    };
    let grads = loss.backward_root.backward();
    let mut g = Vec::with_capacity(6);
    for l in [&model.fc1, &model.fc2, &model.fc3] {
        let w = l.weight.val();
        let gw = w
            .grad(&grads)
            .map(|t| t.flatten(0, 1))
            .unwrap_or_else(|| Tensor::zeros([w.dims()[0] * w.dims()[1]], device));
        g.push(gw);
        let b = l.bias.as_ref().expect("layers have a bias").val();
        let gb = b
            .grad(&grads)
            .unwrap_or_else(|| Tensor::zeros([b.dims()[0]], device));
        g.push(gb);
    }
    (to_vec(loss.value)[0], g)
}

/// Loss and per-parameter gradients (PyTorch layout) for one batch with the given parameters.
pub fn backward<B: AutodiffBackend>(
    params: &TorchParams,
    x: &Matrix,
    y: &[f32],
    faults: &Faults,
    device: &B::Device,
) -> Result<(f32, TorchParams)> {
    params.validate(x.d)?;
    check_targets(y, x.n)?;
    let model = Classifier::<B::InnerBackend>::from_torch(params, faults, device);
    let flat = flatten_model(&model);
    let (loss, grads) = loss_and_grads::<B>(&flat, x.data.clone(), y.to_vec(), x.d, faults, device);
    Ok((loss, flat_to_torch(&grads, x.d)))
}

fn check_targets(y: &[f32], n: usize) -> Result<()> {
    if y.len() != n {
        return shape(format!(
            "expected {n} targets (one per row), got {}",
            y.len()
        ));
    }
    if let Some(bad) = y.iter().find(|v| **v != 0.0 && **v != 1.0) {
        return input(format!("targets must be 0 or 1, found {bad}"));
    }
    Ok(())
}

/// Adam state in PyTorch's layout: step count and first and second moments.
pub struct TorchAdamState {
    pub step: u64,
    pub m: TorchParams,
    pub v: TorchParams,
}

fn torch_flat<B: Backend>(p: &TorchParams, device: &B::Device) -> Flat<B> {
    p.0.iter()
        .map(|t| vector::<B>(t.data.clone(), device))
        .collect()
}

fn flat_like(template: &TorchParams, flat: Flat<impl Backend>) -> TorchParams {
    TorchParams(
        template
            .0
            .iter()
            .zip(flat)
            .map(|(t, f)| NamedTensor {
                name: t.name.clone(),
                shape: t.shape.clone(),
                data: to_vec(f),
            })
            .collect(),
    )
}

/// One optimizer step from the given parameters, gradients and state (all in PyTorch's layout;
/// Adam is elementwise, so the layout does not change the arithmetic).
pub fn optimizer_step<B: Backend>(
    params: &TorchParams,
    grads: &TorchParams,
    state: Option<&TorchAdamState>,
    n_features: usize,
    faults: &Faults,
    device: &B::Device,
) -> Result<(TorchParams, TorchAdamState)> {
    params.validate(n_features)?;
    grads.validate(n_features)?;
    let cfg = TrainConfig::effective(faults);
    let p = torch_flat::<B>(params, device);
    let st = match state {
        Some(s) => {
            s.m.validate(n_features)?;
            s.v.validate(n_features)?;
            AdamState {
                step: s.step,
                m: torch_flat(&s.m, device),
                v: torch_flat(&s.v, device),
            }
        }
        None => AdamState::zeros(&p),
    };
    let g = adam::clip(torch_flat::<B>(grads, device), &cfg);
    let (new_p, new_state) = adam::step(p, g, st, &cfg, faults);
    Ok((
        flat_like(params, new_p),
        TorchAdamState {
            step: new_state.step,
            m: flat_like(params, new_state.m),
            v: flat_like(params, new_state.v),
        },
    ))
}

pub struct TrainRequest {
    pub x: Matrix,
    pub y: Vec<f32>,
    /// Initial parameters (PyTorch layout); the port initializes itself from `seed` when absent.
    pub init: Option<TorchParams>,
    /// One permutation of the training rows per epoch; the port shuffles itself when absent.
    pub orders: Option<Vec<Vec<usize>>>,
    pub epochs: usize,
    pub seed: u64,
    /// Record parameters and gradients after each of the first `record_steps` steps.
    pub record_steps: usize,
    /// Called after each epoch with (epoch, epoch loss), for progress display.
    pub on_epoch: Option<Box<dyn FnMut(usize, f64) + Send>>,
}

pub struct TrainTrace {
    pub step_loss: Vec<f32>,
    pub epoch_loss: Vec<f64>,
    pub init: TorchParams,
    pub final_params: TorchParams,
    pub epoch_params: Vec<TorchParams>,
    pub step_params: Vec<TorchParams>,
    pub step_grads: Vec<TorchParams>,
    pub orders: Vec<Vec<usize>>,
    pub final_state: TorchAdamState,
}

fn check_orders(orders: &[Vec<usize>], n: usize, epochs: usize) -> Result<()> {
    if orders.len() != epochs {
        return shape(format!(
            "expected a batch order for each of {epochs} epochs, got {}",
            orders.len()
        ));
    }
    for (e, order) in orders.iter().enumerate() {
        let mut seen = vec![false; n];
        if order.len() != n {
            return shape(format!(
                "batch order of epoch {e} has {} rows, expected {n}",
                order.len()
            ));
        }
        for &i in order {
            if i >= n || std::mem::replace(&mut seen[i], true) {
                return input(format!(
                    "batch order of epoch {e} is not a permutation of 0..{n}"
                ));
            }
        }
    }
    Ok(())
}

pub fn train<B: AutodiffBackend>(
    mut req: TrainRequest,
    faults: &Faults,
    device: &B::Device,
) -> Result<TrainTrace> {
    let cfg = TrainConfig::effective(faults);
    let (n, d) = (req.x.n, req.x.d);
    if n == 0 {
        return input("no training rows");
    }
    check_targets(&req.y, n)?;
    let init = match req.init {
        Some(p) => {
            p.validate(d)?;
            p
        }
        None => TorchParams::init(d, req.seed),
    };
    let orders = match req.orders {
        Some(o) => {
            check_orders(&o, n, req.epochs)?;
            o
        }
        None => {
            let mut rng = Mt19937::new((req.seed as u32) ^ 0x5EED_0BAD);
            (0..req.epochs).map(|_| rng.permutation(n)).collect()
        }
    };
    let mut flat = flatten_model(&Classifier::<B::InnerBackend>::from_torch(
        &init, faults, device,
    ));
    let mut state = AdamState::zeros(&flat);
    let mut trace = TrainTrace {
        step_loss: Vec::new(),
        epoch_loss: Vec::new(),
        init: init.clone(),
        final_params: init,
        epoch_params: Vec::new(),
        step_params: Vec::new(),
        step_grads: Vec::new(),
        orders: Vec::new(),
        final_state: TorchAdamState {
            step: 0,
            m: TorchParams(Vec::new()),
            v: TorchParams(Vec::new()),
        },
    };
    for order in &orders {
        let (mut sum, mut weighted) = (0.0f64, 0.0f64);
        let mut batches = 0usize;
        for idx in order.chunks(cfg.batch_size) {
            let xb = req.x.rows(idx);
            let yb: Vec<f32> = idx.iter().map(|&i| req.y[i]).collect();
            let (loss, grads) = loss_and_grads::<B>(&flat, xb, yb, d, faults, device);
            let grads = adam::clip(grads, &cfg);
            let record = trace.step_loss.len() < req.record_steps;
            if record {
                trace.step_grads.push(flat_to_torch(&grads, d));
            }
            let (p, s) = adam::step(flat, grads, state, &cfg, faults);
            flat = p;
            state = s;
            if record {
                trace.step_params.push(flat_to_torch(&flat, d));
            }
            trace.step_loss.push(loss);
            sum += f64::from(loss);
            weighted += f64::from(loss) * idx.len() as f64;
            batches += 1;
        }
        trace
            .epoch_loss
            .push(if faults.has(Fault::WeightedEpochLoss) {
                weighted / n as f64
            } else {
                sum / batches as f64
            });
        trace.epoch_params.push(flat_to_torch(&flat, d));
        if let Some(cb) = req.on_epoch.as_mut() {
            cb(
                trace.epoch_loss.len(),
                *trace.epoch_loss.last().unwrap_or(&f64::NAN),
            );
        }
    }
    trace.final_params = flat_to_torch(&flat, d);
    // Moments are elementwise: the same reshaping as the parameters puts them in PyTorch's layout.
    trace.final_state = TorchAdamState {
        step: state.step,
        m: flat_to_torch(&state.m, d),
        v: flat_to_torch(&state.v, d),
    };
    trace.orders = orders;
    Ok(trace)
}

/// Probabilities on `x` and the accuracy as the port measures it.
pub fn evaluate<B: Backend>(
    params: &TorchParams,
    x: &Matrix,
    y: &[f32],
    faults: &Faults,
    device: &B::Device,
) -> Result<(Vec<f32>, f64)> {
    params.validate(x.d)?;
    check_targets(y, x.n)?;
    let model = Classifier::<B>::from_torch(params, faults, device);
    let probs = model.predict(x.tensor(device), faults);
    let acc = accuracy(probs.clone(), y, faults);
    Ok((to_vec(probs), acc))
}

/// Accuracy of probabilities `probs` ([n, 1]) against 0/1 targets, as the port's metric computes it.
pub fn accuracy<B: Backend>(probs: Tensor<B, 2>, y: &[f32], faults: &Faults) -> f64 {
    let cfg = TrainConfig::effective(faults);
    let n = probs.dims()[0];
    let predicted: Vec<f32> = if faults.has(Fault::ArgmaxAccuracy) {
        // burn-train's AccuracyMetric: argmax over the class dimension of a [B, 1] output.
        let idx = probs.clone().argmax(1).into_data().convert::<i64>();
        idx.into_vec::<i64>()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c as f32)
            .collect()
    } else {
        to_vec(probs.clone().greater_elem(cfg.threshold).float())
    };
    let correct = predicted.iter().zip(y).filter(|(p, t)| p == t).count();
    correct as f64 / n.max(1) as f64
}

/// The port's metric on given probabilities (float32 [n]) and targets.
pub fn accuracy_of<B: Backend>(
    probs: Vec<f32>,
    y: &[f32],
    faults: &Faults,
    device: &B::Device,
) -> Result<f64> {
    check_targets(y, probs.len())?;
    let n = probs.len();
    let t = Tensor::<B, 2>::from_data(TensorData::new(probs, [n, 1]), device);
    Ok(accuracy(t, y, faults))
}

/// Burn's own shape of each parameter, by name.
pub type Layouts = Vec<(String, Vec<usize>)>;

/// Parameters through the port and back: PyTorch layout in, Burn's Linear, PyTorch layout out.
pub fn roundtrip<B: Backend>(
    params: &TorchParams,
    n_features: usize,
    faults: &Faults,
    device: &B::Device,
) -> Result<(TorchParams, Layouts)> {
    params.validate(n_features)?;
    let model = Classifier::<B>::from_torch(params, faults, device);
    Ok((model.to_torch(), model.burn_shapes()))
}

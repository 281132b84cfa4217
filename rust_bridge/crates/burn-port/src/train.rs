//! The port's pipeline operations on Burn: forward, loss, backward, one optimizer step, the
//! training loop and evaluation. The training loop is a plain loop you can read top to bottom, as
//! in Burn's custom-training-loop example: forward, loss, `backward`, `GradientsParams`,
//! `optimizer.step`.

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};

use burn_diff::error::{input, shape, Result};
use burn_diff::layout::{burn_shapes, load_torch_params, torch_params, values};
use burn_diff::{
    Activations, Matrix, OptimState, Params, Progress, Roundtrip, TrainRequest, TrainTrace,
};

use crate::config::TrainConfig;
use crate::faults::{Fault, Faults};
use crate::loss::{bce_on_logits, bce_on_probabilities};
use crate::model::{own_init, Classifier};
use crate::optim;
use burn_diff::contract::own_orders;
use burn_diff::optim as state;

fn matrix(m: &Matrix, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(m.data.clone(), [m.n, m.d]), device)
}

fn vector(v: Vec<f32>, device: &Device) -> Tensor<1> {
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), device)
}

/// The model with `params` (PyTorch layout) loaded the way a Burn user loads PyTorch weights.
/// With the weights-reshaped fault, each Linear weight's buffer is reshaped to Burn's `[in, out]`
/// instead of transposed, the classic slip of hand-written loading code.
pub fn model_from(
    params: &Params,
    n_features: usize,
    faults: &Faults,
    device: &Device,
) -> Result<Classifier> {
    let mut model = Classifier::new(n_features, device, faults);
    if faults.has(Fault::WeightsReshaped) {
        let reshaped = params
            .0
            .iter()
            .map(|t| {
                let mut t = t.clone();
                if t.shape.len() == 2 {
                    t.shape.reverse();
                }
                t
            })
            .collect();
        // Burn-layout tensors by name, applied without the adapter.
        params.check_like(&torch_params(&model)?, "params")?;
        let torch = burn_diff::layout::torch_layout(&model, &Params(reshaped))?;
        load_torch_params(&mut model, &torch)?;
        return Ok(model);
    }
    load_torch_params(&mut model, params)?;
    Ok(model)
}

/// Every layer's output on `x`, by the reference's layer names.
pub fn forward(
    params: &Params,
    x: &Matrix,
    faults: &Faults,
    device: &Device,
) -> Result<Activations> {
    let model = model_from(params, x.d, faults, device)?;
    let mut layers = model.layers(matrix(x, device), faults);
    if faults.has(Fault::LogitsBce) {
        // What the port's inference reports as probabilities.
        let (name, out) = layers.pop().expect("the model has layers");
        layers.push((name, burn::tensor::activation::sigmoid(out)));
    }
    Ok(Activations(
        layers
            .into_iter()
            .map(|(name, t)| {
                let [n, w] = t.dims();
                Matrix::new(values(t), n, w).map(|m| (name.to_string(), m))
            })
            .collect::<Result<_>>()?,
    ))
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

/// Loss value and d loss / d p for probabilities `p` and 0/1 targets `y`.
pub fn loss_and_grad(
    p: &[f32],
    y: &[f32],
    faults: &Faults,
    device: &Device,
) -> Result<(f32, Vec<f32>)> {
    if p.len() != y.len() || p.is_empty() {
        return shape(format!(
            "predictions and targets must be non-empty and of one length; got {} and {}",
            p.len(),
            y.len()
        ));
    }
    let ad = device.clone().autodiff();
    let pt = vector(p.to_vec(), &ad).require_grad();
    let loss = bce_on_probabilities(pt.clone(), vector(y.to_vec(), &ad), faults);
    let grads = loss.backward_root.backward();
    let g = pt.grad(&grads).map(values).unwrap_or_default();
    Ok((values(loss.value)[0], g))
}

/// One batch through the model: the loss value and Burn's gradients.
fn batch_loss(
    model: &Classifier,
    xb: Tensor<2>,
    yb: Tensor<1>,
    faults: &Faults,
) -> (f32, GradientsParams) {
    let n = yb.dims()[0];
    let out = model.forward(xb, faults);
    let loss = if faults.has(Fault::LogitsBce) {
        bce_on_logits(out.reshape([n]), yb)
    } else {
        bce_on_probabilities(out.reshape([n]), yb, faults)
    };
    let grads = loss.backward_root.backward();
    (
        values(loss.value)[0],
        GradientsParams::from_grads(grads, model),
    )
}

/// Loss and per-parameter gradients (PyTorch layout) for one batch with the given parameters.
pub fn backward(
    params: &Params,
    x: &Matrix,
    y: &[f32],
    faults: &Faults,
    device: &Device,
) -> Result<(f32, Params)> {
    check_targets(y, x.n)?;
    let ad = device.clone().autodiff();
    let model = model_from(params, x.d, faults, &ad)?;
    let (loss, grads) = batch_loss(&model, matrix(x, &ad), vector(y.to_vec(), &ad), faults);
    Ok((loss, state::gradients_to_torch(&model, &grads)?))
}

/// One step of Burn's Adam from the given parameters, gradients and state (all PyTorch layout).
pub fn optimizer_step(
    params: &Params,
    grads: &Params,
    state: Option<&OptimState>,
    faults: &Faults,
    device: &Device,
) -> Result<(Params, OptimState)> {
    let cfg = TrainConfig::effective(faults);
    let n_features = params
        .require("fc1.weight")?
        .shape
        .get(1)
        .copied()
        .unwrap_or(0);
    let ad = device.clone().autodiff();
    let model = model_from(params, n_features, &Faults::none(), &ad)?;
    grads.check_like(params, "grads")?;
    let mut adam = match state {
        Some(s) if s.step > 0 => state::with_adam_state(|| optim::adam(&cfg), cfg.lr, &model, s)?,
        _ => optim::adam(&cfg),
    };
    let g = state::gradients(&model, grads)?;
    let model = optim::step(&mut adam, &cfg, 0, model, g, faults);
    Ok((
        torch_params(&model)?,
        state::adam_state_to_torch(&adam, &model)?,
    ))
}

/// The training loop.
pub fn train(
    req: TrainRequest,
    faults: &Faults,
    device: &Device,
    progress: Progress<'_>,
) -> Result<TrainTrace> {
    let cfg = TrainConfig::effective(faults);
    let (n, d) = (req.x.n, req.x.d);
    if n == 0 {
        return input("no training rows");
    }
    if req.epochs == 0 {
        return input("epochs must be at least 1");
    }
    check_targets(&req.y, n)?;
    let init = req
        .init
        .clone()
        .unwrap_or_else(|| own_init(d, req.seed, faults));
    let orders = if faults.has(Fault::OwnShuffle) {
        own_orders(n, req.epochs, req.seed)
    } else {
        req.batch_orders()?
    };
    let device = device.clone().autodiff();
    let mut model = model_from(&init, d, faults, &device)?;
    let mut adam = optim::adam(&cfg);
    let mut trace = TrainTrace {
        init: torch_params(&model)?,
        ..TrainTrace::default()
    };
    for (epoch, order) in orders.iter().enumerate() {
        let (mut sum, mut weighted, mut batches) = (0.0f64, 0.0f64, 0usize);
        for idx in order.chunks(cfg.batch_size) {
            let xb = Tensor::from_data(TensorData::new(req.x.rows(idx), [idx.len(), d]), &device);
            let yb = vector(idx.iter().map(|&i| req.y[i]).collect(), &device);
            let (loss, grads) = batch_loss(&model, xb, yb, faults);
            let record = trace.step_loss.len() < req.record_steps;
            if record {
                trace
                    .step_grads
                    .push(state::gradients_to_torch(&model, &grads)?);
            }
            model = optim::step(&mut adam, &cfg, epoch, model, grads, faults);
            if record {
                trace.step_params.push(torch_params(&model)?);
            }
            trace.step_loss.push(loss);
            sum += f64::from(loss);
            weighted += f64::from(loss) * idx.len() as f64;
            batches += 1;
        }
        let epoch_loss = if faults.has(Fault::WeightedEpochLoss) {
            weighted / n as f64
        } else {
            sum / batches as f64
        };
        trace.epoch_loss.push(epoch_loss);
        trace.epoch_params.push(torch_params(&model)?);
        progress(trace.epoch_loss.len(), epoch_loss);
    }
    trace.final_params = torch_params(&model)?;
    trace.state = state::adam_state_to_torch(&adam, &model)?;
    trace.orders = orders;
    Ok(trace)
}

/// Probabilities on `x` and the accuracy as the port measures it.
pub fn evaluate(
    params: &Params,
    x: &Matrix,
    y: &[f32],
    faults: &Faults,
    device: &Device,
) -> Result<(Vec<f32>, f64)> {
    check_targets(y, x.n)?;
    let model = model_from(params, x.d, faults, device)?;
    let probs = model.predict(matrix(x, device), faults);
    let acc = accuracy(probs.clone(), y, faults);
    Ok((values(probs), acc))
}

/// Accuracy of probabilities `probs` (`[n, 1]`) against 0/1 targets, as the port's metric computes it.
pub fn accuracy(probs: Tensor<2>, y: &[f32], faults: &Faults) -> f64 {
    let cfg = TrainConfig::effective(faults);
    let n = probs.dims()[0];
    let predicted: Vec<f32> = if faults.has(Fault::ArgmaxAccuracy) {
        // burn-train's AccuracyMetric: argmax over the class dimension of a [B, 1] output.
        probs
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c as f32)
            .collect()
    } else {
        let threshold = if faults.has(Fault::Threshold07) {
            0.7
        } else {
            cfg.threshold
        };
        values(probs.greater_elem(threshold).float())
    };
    let correct = predicted.iter().zip(y).filter(|(p, t)| p == t).count();
    correct as f64 / n.max(1) as f64
}

/// The port's metric on given probabilities (float32 `[n]`) and targets.
pub fn accuracy_of(probs: &[f32], y: &[f32], faults: &Faults, device: &Device) -> Result<f64> {
    check_targets(y, probs.len())?;
    let n = probs.len();
    let t = Tensor::<2>::from_data(TensorData::new(probs.to_vec(), [n, 1]), device);
    Ok(accuracy(t, y, faults))
}

/// Parameters through the port and back: PyTorch layout in, Burn's Linear, PyTorch layout out.
pub fn roundtrip(
    params: &Params,
    n_features: usize,
    faults: &Faults,
    device: &Device,
) -> Result<Roundtrip> {
    let model = model_from(params, n_features, faults, device)?;
    Ok(Roundtrip {
        params: torch_params(&model)?,
        layouts: burn_shapes(&model),
    })
}

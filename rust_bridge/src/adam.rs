//! Adam with PyTorch's CPU single-tensor semantics (torch/optim/adam.py, `_single_tensor_adam`):
//!   m = lerp(m, g, 1-beta1); v = v*beta2 + (1-beta2)*g*g;
//!   bc1 = 1-beta1^t, bc2 = 1-beta2^t (f64); denom = sqrt(v)/sqrt(bc2) + eps;
//!   p = p + (-lr/bc1) * m / denom.
//! Burn's own Adam differs in epsilon (1e-5) and in computing the bias corrections in f32; the
//! state is explicit here so the harness can feed the reference's state into one step.

use burn::grad_clipping::GradientClipping;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::config::TrainConfig;
use crate::faults::{Fault, Faults};

#[derive(Clone)]
pub struct AdamState<B: Backend> {
    /// Steps taken so far (PyTorch's `step`).
    pub step: u64,
    pub m: Vec<Tensor<B, 1>>,
    pub v: Vec<Tensor<B, 1>>,
}

impl<B: Backend> AdamState<B> {
    pub fn zeros(params: &[Tensor<B, 1>]) -> Self {
        Self {
            step: 0,
            m: params.iter().map(Tensor::zeros_like).collect(),
            v: params.iter().map(Tensor::zeros_like).collect(),
        }
    }
}

/// Burn's gradient clipping, applied to each parameter tensor separately as Burn's optimizers do.
pub fn clip<B: Backend>(grads: Vec<Tensor<B, 1>>, cfg: &TrainConfig) -> Vec<Tensor<B, 1>> {
    match cfg.clip_norm {
        Some(max_norm) => {
            let clipping = GradientClipping::Norm(max_norm);
            grads
                .into_iter()
                .map(|g| clipping.clip_gradient(g))
                .collect()
        }
        None => grads,
    }
}

/// One Adam step over flattened parameters; returns the new parameters and state.
pub fn step<B: Backend>(
    params: Vec<Tensor<B, 1>>,
    grads: Vec<Tensor<B, 1>>,
    state: AdamState<B>,
    cfg: &TrainConfig,
    faults: &Faults,
) -> (Vec<Tensor<B, 1>>, AdamState<B>) {
    let state = if faults.has(Fault::AdamStateReset) {
        AdamState::zeros(&params)
    } else {
        state
    };
    let t = state.step + 1;
    let bc1 = 1.0 - cfg.beta1.powf(t as f64);
    let bc2 = 1.0 - cfg.beta2.powf(t as f64);
    let neg_step_size = (-(cfg.lr / bc1)) as f32;
    let bc2_sqrt = bc2.sqrt() as f32;
    let w1 = (1.0 - cfg.beta1) as f32;
    let b2 = cfg.beta2 as f32;
    let w2 = (1.0 - cfg.beta2) as f32;
    let eps = cfg.eps as f32;
    let mut new_p = Vec::with_capacity(params.len());
    let mut new_m = Vec::with_capacity(params.len());
    let mut new_v = Vec::with_capacity(params.len());
    for ((p, g), (m, v)) in params
        .into_iter()
        .zip(grads)
        .zip(state.m.into_iter().zip(state.v))
    {
        let m = m.clone() + (g.clone() - m).mul_scalar(w1);
        let v = v.mul_scalar(b2) + g.clone().mul_scalar(w2).mul(g);
        let denom = v.clone().sqrt().div_scalar(bc2_sqrt).add_scalar(eps);
        new_p.push(p + m.clone().mul_scalar(neg_step_size).div(denom));
        new_m.push(m);
        new_v.push(v);
    }
    (
        new_p,
        AdamState {
            step: t,
            m: new_m,
            v: new_v,
        },
    )
}

//! The port's optimizer: Burn's own Adam, configured as the reference's, through Burn's
//! `ModuleOptimizer`. Its state crosses the contract with `burn_diff::optim`.

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::store::ModuleSnapshot;

use crate::config::TrainConfig;
use crate::faults::{Fault, Faults};

/// The optimizer as the port creates it: `AdamConfig::new().with_epsilon(1e-8)`, plus whatever the
/// active faults change (Burn's default epsilon, gradient clipping, AMSGrad).
pub fn adam(cfg: &TrainConfig) -> ModuleOptimizer {
    let mut c = AdamConfig::new()
        .with_beta_1(cfg.beta1 as f32)
        .with_beta_2(cfg.beta2 as f32)
        .with_epsilon(cfg.eps as f32)
        .with_amsgrad(cfg.amsgrad);
    if let Some(max_norm) = cfg.clip_norm {
        c = c.with_grad_clipping(Some(GradientClippingConfig::Norm(max_norm)));
    }
    c.init()
}

/// The step the port takes: Burn's `ModuleOptimizer::step` with the learning rate of `epoch`
/// (from 0; `lr`). With the adam-state-reset fault the port re-creates its optimizer before every
/// step, as a training loop that builds the optimizer inside the loop does.
pub fn step<M: ModuleSnapshot + Clone>(
    optim: &mut ModuleOptimizer,
    cfg: &TrainConfig,
    epoch: usize,
    model: M,
    grads: GradientsParams,
    faults: &Faults,
) -> M {
    if faults.has(Fault::AdamStateReset) {
        *optim = adam(cfg);
    }
    optim.step(lr(cfg, epoch, faults), model, grads)
}

/// The learning rate of `epoch` (from 0): the configured one, or with the lr-step-decay fault divided
/// by 10 every 5 epochs, as a loop that computes `lr * 0.1^(epoch / 5)` does.
pub fn lr(cfg: &TrainConfig, epoch: usize, faults: &Faults) -> f64 {
    if faults.has(Fault::LrStepDecay) {
        cfg.lr * 0.1f64.powi((epoch / 5) as i32)
    } else {
        cfg.lr
    }
}

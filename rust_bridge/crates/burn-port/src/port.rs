//! The classifier port on the harness's contract: each method is one stage's question, answered by
//! the modules of this crate.

use std::path::Path;

use serde_json::json;

use burn_diff::error::{shape, Result};
use burn_diff::{
    Activations, EffectiveConfig, Matrix, Matrix64, OptimState, Params, Port, PortInfo, Progress,
    Roundtrip, ScalerStats, SplitIndices, Table, TrainRequest, TrainTrace,
};

use crate::config::{descriptive, TrainConfig};
use crate::data;
use crate::faults::{Fault, Faults};
use crate::scaler;
use crate::split;
use crate::train;
use burn_diff::backend::BackendKind;

/// The Burn port of the reference classifier, on one backend, with a set of faults switched on.
#[derive(Debug, Clone)]
pub struct ClassifierPort {
    /// The backend computations run on.
    pub backend: BackendKind,
    /// Deliberate faults (none for the faithful port).
    pub faults: Faults,
    /// Epochs the port is configured for (the user's TrainingConfig).
    pub epochs: usize,
}

impl ClassifierPort {
    /// A port; `fault` is a fault name, a comma-separated list, `user-port` or empty.
    pub fn new(backend: &str, fault: &str, epochs: usize) -> Result<Self> {
        Ok(Self {
            backend: BackendKind::parse(backend)?,
            faults: Faults::parse(fault)?,
            epochs,
        })
    }
}

impl Port for ClassifierPort {
    fn info(&self) -> PortInfo {
        PortInfo {
            name: "burn-port".into(),
            backend: self.backend.name().into(),
            faults: self.faults.names().into_iter().map(String::from).collect(),
        }
    }

    fn load_csv(&self, path: &Path, label: &str) -> Result<Table> {
        data::load_csv(path, label, &self.faults)
    }

    fn split(&self, n: usize, test_size: f64, seed: u32) -> Result<SplitIndices> {
        split::train_test_split(n, test_size, seed, &self.faults)
    }

    fn fit_scaler(&self, x: &Matrix64, train_rows: &[usize]) -> Result<ScalerStats> {
        if let Some(bad) = train_rows.iter().find(|&&i| i >= x.n) {
            return shape(format!(
                "train_rows: index {bad} out of range for {} rows",
                x.n
            ));
        }
        Ok(scaler::fit(x, train_rows, &self.faults))
    }

    fn transform(&self, x: &Matrix64, mean: &[f64], scale: &[f64]) -> Result<Matrix> {
        if self.faults.has(Fault::TransformPanics) {
            return Ok(scaler::transform_unfilled(x, mean, scale));
        }
        burn_diff::prep::scaler::transform(x, mean, scale)
    }

    fn effective_config(&self) -> Result<EffectiveConfig> {
        let mut c = TrainConfig::effective(&self.faults);
        c.epochs = self.epochs;
        let mut out = json!({
            "lr": c.lr,
            "beta1": c.beta1,
            "beta2": c.beta2,
            "eps": c.eps,
            "weight_decay": c.weight_decay,
            "clip_norm": c.clip_norm.map(f64::from),
            "batch_size": c.batch_size,
            "epochs": c.epochs,
            "threshold": f64::from(c.threshold),
            "test_size": c.test_size,
            "split_seed": c.split_seed,
        });
        for (k, v) in descriptive(&self.faults) {
            out[k] = json!(v);
        }
        Ok(out.as_object().cloned().unwrap_or_default())
    }

    fn roundtrip(&self, params: &Params, n_features: usize) -> Result<Roundtrip> {
        train::roundtrip(params, n_features, &self.faults, &self.backend.device())
    }

    fn forward(&self, params: &Params, x: &Matrix) -> Result<Activations> {
        train::forward(params, x, &self.faults, &self.backend.device())
    }

    fn loss(&self, p: &[f32], y: &[f32]) -> Result<(f32, Vec<f32>)> {
        train::loss_and_grad(p, y, &self.faults, &self.backend.device())
    }

    fn backward(&self, params: &Params, x: &Matrix, y: &[f32]) -> Result<(f32, Params)> {
        train::backward(params, x, y, &self.faults, &self.backend.device())
    }

    fn optimizer_step(
        &self,
        params: &Params,
        grads: &Params,
        state: Option<&OptimState>,
    ) -> Result<(Params, OptimState)> {
        train::optimizer_step(params, grads, state, &self.faults, &self.backend.device())
    }

    fn train(&self, req: TrainRequest, progress: Progress<'_>) -> Result<TrainTrace> {
        train::train(req, &self.faults, &self.backend.device(), progress)
    }

    fn evaluate(&self, params: &Params, x: &Matrix, y: &[f32]) -> Result<(Vec<f32>, f64)> {
        train::evaluate(params, x, y, &self.faults, &self.backend.device())
    }

    fn accuracy(&self, probs: &[f32], y: &[f32]) -> Result<f64> {
        train::accuracy_of(probs, y, &self.faults, &self.backend.device())
    }
}

//! The port contract: what the harness asks of a port, stage by stage. Implement [`Port`] for your
//! port, then hand it to [`crate::serve`] (subprocess transport) or wrap it in an extension
//! (in-process transport). Every value is in PyTorch's layout and naming; converting to Burn's is
//! the port's business (see [`crate::layout`]).

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{PortError, Result};
use crate::tensor::{Matrix, Matrix64, Params};

/// Who the port is: reported by `hello` and shown in reports.
#[derive(Debug, Clone, PartialEq)]
pub struct PortInfo {
    /// A name for the port (a crate name, say).
    pub name: String,
    /// The Burn backend it runs on (`flex`, `ndarray`, ...).
    pub backend: String,
    /// Deliberate faults switched on, if the port has such a switch; empty otherwise.
    pub faults: Vec<String>,
}

/// A CSV file as the port parsed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Feature column names, in file order, without the label.
    pub feature_names: Vec<String>,
    /// How each feature column was parsed (`float64`, `bool`, ...).
    pub dtypes: Vec<String>,
    /// The label column's name.
    pub label_name: String,
    /// Features, `[rows, features]`.
    pub features: Matrix64,
    /// Labels, one per row.
    pub labels: Vec<f32>,
}

/// Row indices of a train/test split.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitIndices {
    /// Training rows, in the order the port uses them.
    pub train: Vec<usize>,
    /// Test rows.
    pub test: Vec<usize>,
}

/// A fitted standard scaler.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalerStats {
    /// Per-feature mean.
    pub mean: Vec<f64>,
    /// Per-feature variance.
    pub var: Vec<f64>,
    /// Per-feature divisor used by `transform`.
    pub scale: Vec<f64>,
}

/// The port's whole data preparation.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// Feature names.
    pub feature_names: Vec<String>,
    /// The split.
    pub split: SplitIndices,
    /// The fitted scaler.
    pub scaler: ScalerStats,
    /// Scaled training rows, in split order.
    pub x_train: Matrix,
    /// Training labels.
    pub y_train: Vec<f32>,
    /// Scaled test rows.
    pub x_test: Matrix,
    /// Test labels.
    pub y_test: Vec<f32>,
}

/// Hyperparameters the port really uses, by the reference's names (`lr`, `eps`, ...).
pub type EffectiveConfig = Map<String, Value>;

/// Parameters loaded into the port's model and read back, with the port's own shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct Roundtrip {
    /// The parameters read back, in PyTorch's layout.
    pub params: Params,
    /// Each parameter's shape as the port's model stores it (Burn's layout).
    pub layouts: Vec<(String, Vec<usize>)>,
}

/// Every layer's output, by layer name, in forward order.
#[derive(Debug, Clone, PartialEq)]
pub struct Activations(pub Vec<(String, Matrix)>);

/// Optimizer state in PyTorch's naming: the step count and one named group per slot
/// (`exp_avg`, `exp_avg_sq` for Adam).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OptimState {
    /// Steps taken so far (torch's `step`).
    pub step: u64,
    /// Named slots, each holding one tensor per parameter.
    pub slots: Vec<(String, Params)>,
}

impl OptimState {
    /// The slot called `name`.
    pub fn slot(&self, name: &str) -> Result<&Params> {
        self.slots
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p)
            .ok_or_else(|| PortError::Shape(format!("optimizer state has no slot '{name}'")))
    }
}

/// A training run the harness controls: data, initialization and batch order.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainRequest {
    /// Training features, `[n, d]`.
    pub x: Matrix,
    /// Training labels.
    pub y: Vec<f32>,
    /// Initial parameters; the port initializes itself when absent.
    pub init: Option<Params>,
    /// One permutation of the training rows per epoch; the port shuffles itself when absent.
    pub orders: Option<Vec<Vec<usize>>>,
    /// Epochs to train.
    pub epochs: usize,
    /// Seed for the port's own initialization and shuffling.
    pub seed: u64,
    /// Record parameters and gradients after each of the first `record_steps` steps.
    pub record_steps: usize,
    /// Whether the model's dropout layers are active. The harness's lockstep runs (its own init and
    /// batch order, compared step by step) ask for `false`, since no two frameworks draw the same
    /// masks; its free end-to-end runs ask for `true`. A model without dropout ignores it.
    pub dropout: bool,
}

impl TrainRequest {
    /// The batch order of every epoch: the harness's, checked to be one permutation of the `n`
    /// training rows per epoch, or, when it sent none, the port's own shuffle from `seed`.
    pub fn batch_orders(&self) -> Result<Vec<Vec<usize>>> {
        let (n, epochs) = (self.x.n, self.epochs);
        let Some(orders) = &self.orders else {
            return Ok(own_orders(n, epochs, self.seed));
        };
        if orders.len() != epochs {
            return crate::error::shape(format!(
                "expected a batch order for each of {epochs} epochs, got {}",
                orders.len()
            ));
        }
        for (e, order) in orders.iter().enumerate() {
            if order.len() != n {
                return crate::error::shape(format!(
                    "batch order of epoch {e} has {} rows, expected {n}",
                    order.len()
                ));
            }
            let mut seen = vec![false; n];
            for &i in order {
                if i >= n || std::mem::replace(&mut seen[i], true) {
                    return crate::error::input(format!(
                        "batch order of epoch {e} is not a permutation of 0..{n}"
                    ));
                }
            }
        }
        Ok(orders.clone())
    }
}

/// A port's own batch order: one Mersenne-Twister permutation of `0..n` per epoch, from `seed`.
pub fn own_orders(n: usize, epochs: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = crate::prep::mt19937::Mt19937::new((seed as u32) ^ 0x5EED_0BAD);
    (0..epochs).map(|_| rng.permutation(n)).collect()
}

/// What a training run did, step by step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrainTrace {
    /// Loss of every step.
    pub step_loss: Vec<f32>,
    /// The epoch loss as the port reports it.
    pub epoch_loss: Vec<f64>,
    /// The parameters training started from.
    pub init: Params,
    /// The parameters after the last step.
    pub final_params: Params,
    /// Parameters after each epoch.
    pub epoch_params: Vec<Params>,
    /// Parameters after each recorded step.
    pub step_params: Vec<Params>,
    /// Gradients of each recorded step, as the optimizer received them.
    pub step_grads: Vec<Params>,
    /// The batch order of each epoch.
    pub orders: Vec<Vec<usize>>,
    /// The optimizer state after the last step.
    pub state: OptimState,
}

/// Progress callback of [`Port::train`]: `(epoch, epoch loss)` after each epoch, from 1.
pub type Progress<'a> = &'a mut (dyn FnMut(usize, f64) + Send);

/// A port of the reference, as the harness drives it. Each method is one stage's question; the
/// harness feeds it the reference's inputs (teacher forcing), so each answer can be compared alone.
///
/// Only [`Port::info`], [`Port::roundtrip`] and [`Port::forward`] are required: every other method
/// defaults to [`PortError::Unsupported`], and the harness reports the stages that need it as SKIP
/// ("not implemented by the port"), or FAIL where the user required them (`--require`). An
/// inference-only port (weights, forward, the metric) is a first-class use.
// The defaults answer `unsupported` without reading their arguments.
#[allow(unused_variables)]
pub trait Port: Send + Sync {
    /// Name, backend and switched-on faults.
    fn info(&self) -> PortInfo;

    /// Parses the CSV file at `path`, with `label` as the label column.
    fn load_csv(&self, path: &Path, label: &str) -> Result<Table> {
        unsupported("load_csv")
    }

    /// Splits `n` rows into train and test rows.
    fn split(&self, n: usize, test_size: f64, seed: u32) -> Result<SplitIndices> {
        unsupported("split")
    }

    /// Fits the scaler to `x` (raw features of every row); `train_rows` are the training rows, for
    /// ports that fit on those only.
    fn fit_scaler(&self, x: &Matrix64, train_rows: &[usize]) -> Result<ScalerStats> {
        unsupported("fit_scaler")
    }

    /// Scales every row of `x` with `mean` and `scale`, to float32.
    fn transform(&self, x: &Matrix64, mean: &[f64], scale: &[f64]) -> Result<Matrix> {
        unsupported("transform")
    }

    /// The port's whole preparation: load, split, fit, transform. The default composes the above.
    fn prepare(&self, path: &Path, label: &str, test_size: f64, seed: u32) -> Result<Prepared> {
        let table = self.load_csv(path, label)?;
        let split = self.split(table.features.n, test_size, seed)?;
        let scaler = self.fit_scaler(&table.features, &split.train)?;
        let pick = |rows: &[usize]| -> Result<(Matrix, Vec<f32>)> {
            let x = Matrix64::new(table.features.rows(rows), rows.len(), table.features.d)?;
            let y = rows.iter().map(|&i| table.labels[i]).collect();
            Ok((self.transform(&x, &scaler.mean, &scaler.scale)?, y))
        };
        let (x_train, y_train) = pick(&split.train)?;
        let (x_test, y_test) = pick(&split.test)?;
        Ok(Prepared {
            feature_names: table.feature_names,
            split,
            scaler,
            x_train,
            y_train,
            x_test,
            y_test,
        })
    }

    /// The hyperparameters the port really uses.
    fn effective_config(&self) -> Result<EffectiveConfig> {
        unsupported("effective_config")
    }

    /// Loads `params` into the port's model and reads them back.
    fn roundtrip(&self, params: &Params, n_features: usize) -> Result<Roundtrip>;

    /// Every layer's output on `x` with `params` (parameters and buffers), in evaluation mode, by the
    /// reference's layer names (its leaf modules' qualified names, or the names its `layers()` gives).
    fn forward(&self, params: &Params, x: &Matrix) -> Result<Activations>;

    /// The loss on the model's outputs `p` (row-major `[n, outputs]`, `outputs = p.len() / y.len()`:
    /// probabilities for the classifier, logits for a multiclass model) against targets `y` (labels,
    /// or class indices as floats), and its gradient with respect to `p`, in the same layout. A
    /// classifier whose loss takes logits (`[port] loss_input = "logits"` in harness.toml) gets
    /// logits here.
    fn loss(&self, p: &[f32], y: &[f32]) -> Result<(f32, Vec<f32>)> {
        unsupported("loss")
    }

    /// Loss and gradients of every trainable parameter for one batch, in training mode with dropout
    /// off. A model with buffers that a training-mode forward updates (BatchNorm's running
    /// statistics) returns their new values too, under the buffers' own names.
    fn backward(&self, params: &Params, x: &Matrix, y: &[f32]) -> Result<(f32, Params)> {
        unsupported("backward")
    }

    /// One optimizer step from `params` with `grads`, starting from `state` (a fresh optimizer when
    /// `None`). Returns the new parameters and state.
    fn optimizer_step(
        &self,
        params: &Params,
        grads: &Params,
        state: Option<&OptimState>,
    ) -> Result<(Params, OptimState)> {
        unsupported("optimizer_step")
    }

    /// Trains as the port's training loop does, with the harness's initialization and order.
    fn train(&self, req: TrainRequest, progress: Progress<'_>) -> Result<TrainTrace> {
        unsupported("train")
    }

    /// Predictions on `x` (row-major `[n, outputs]`, evaluation mode) and the port's metric against `y`.
    fn evaluate(&self, params: &Params, x: &Matrix, y: &[f32]) -> Result<(Vec<f32>, f64)> {
        unsupported("evaluate")
    }

    /// The port's metric on given predictions.
    fn accuracy(&self, probs: &[f32], y: &[f32]) -> Result<f64> {
        unsupported("accuracy")
    }
}

/// The default answer of a [`Port`] method the port does not implement.
pub(crate) fn unsupported<T>(method: &str) -> Result<T> {
    Err(PortError::Unsupported(format!(
        "{method} is not implemented by this port"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(orders: Option<Vec<Vec<usize>>>) -> TrainRequest {
        TrainRequest {
            x: Matrix::new(vec![0.0; 8], 4, 2).unwrap(),
            y: vec![0.0; 4],
            init: None,
            orders,
            epochs: 2,
            seed: 7,
            record_steps: 0,
            dropout: false,
        }
    }

    #[test]
    fn batch_orders_are_the_harness_s_checked_or_the_port_s_own() {
        let given = vec![vec![3, 2, 1, 0], vec![0, 1, 2, 3]];
        assert_eq!(request(Some(given.clone())).batch_orders().unwrap(), given);
        let own = request(None).batch_orders().unwrap();
        assert_eq!(own, own_orders(4, 2, 7));
        for o in &own {
            let mut sorted = o.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![0, 1, 2, 3]);
        }
        let e = request(Some(vec![vec![0, 1, 2, 3]]))
            .batch_orders()
            .unwrap_err();
        assert!(e.to_string().contains("for each of 2 epochs, got 1"), "{e}");
        let e = request(Some(vec![vec![0, 1, 2, 2], vec![0, 1, 2, 3]]))
            .batch_orders()
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("epoch 0 is not a permutation of 0..4"),
            "{e}"
        );
        let e = request(Some(vec![vec![0, 1, 2], vec![0, 1, 2, 3]]))
            .batch_orders()
            .unwrap_err();
        assert!(
            e.to_string().contains("epoch 0 has 3 rows, expected 4"),
            "{e}"
        );
    }
}

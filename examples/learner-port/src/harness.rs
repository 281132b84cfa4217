//! The glue: everything this port has only because the harness tests it. The model, data, loss,
//! optimizer and training code are the port's own; burn-diff's `LearnerPort` drives them the way the
//! Learner does, with the harness's initial weights and batch order.

use std::path::Path;

use burn::tensor::Device;
use burn::train::ClassificationOutput;
use burn_diff::learner::{LearnerPort, Lockstep, Prep};
use burn_diff::{Matrix, Matrix64, PortError, PortInfo, Result, ScalerStats, SplitIndices, Table};

use crate::data::{self, Row, RowBatcher, Scaler};
use crate::model::{self, ModelConfig};
use crate::training;

/// The port's data preparation, in the contract's types.
struct Data;

impl Prep for Data {
    fn load_csv(&self, path: &Path, label: &str) -> Result<Table> {
        let t = data::read_csv(path, label).map_err(PortError::Input)?;
        Ok(Table {
            features: Matrix64::new(t.rows.concat(), t.rows.len(), t.names.len())?,
            feature_names: t.names,
            dtypes: t.dtypes,
            label_name: label.into(),
            labels: t.labels,
        })
    }
    fn split(&self, n: usize, test_size: f64, seed: u32) -> Result<SplitIndices> {
        let (train, test) = data::split(n, test_size, seed).map_err(PortError::Input)?;
        Ok(SplitIndices { train, test })
    }
    fn fit_scaler(&self, x: &Matrix64, _train_rows: &[usize]) -> Result<ScalerStats> {
        let s = Scaler::fit(&x.data.chunks(x.d).map(<[f64]>::to_vec).collect::<Vec<_>>());
        Ok(ScalerStats {
            mean: s.mean,
            var: s.var,
            scale: s.scale,
        })
    }
    fn transform(&self, x: &Matrix64, mean: &[f64], scale: &[f64]) -> Result<Matrix> {
        let s = Scaler {
            mean: mean.to_vec(),
            var: Vec::new(),
            scale: scale.to_vec(),
        };
        Matrix::new(
            x.data.chunks(x.d).flat_map(|r| s.transform(r)).collect(),
            x.n,
            x.d,
        )
    }
}

/// Serves the port to the harness over stdin and stdout.
pub fn serve() -> std::process::ExitCode {
    let config = training::config();
    let (optimizer, lr) = (config.optimizer.clone(), config.learning_rate);
    burn_diff::serve(LearnerPort {
        info: PortInfo {
            name: "learner-port".into(),
            backend: "flex".into(),
            faults: crate::bugs::names(),
        },
        device: Device::flex(),
        lockstep: Lockstep {
            model: Box::new(|d, device| ModelConfig::new(d).init(device)),
            item: Box::new(|x, y| Row {
                features: x.to_vec(),
                label: y as i64,
            }),
            batcher: RowBatcher,
            optimizer: Box::new(move || optimizer.init()),
            lr: Box::new(move || lr.into()),
            batch_size: config.batch_size,
            loss: Box::new(|out: &ClassificationOutput| out.loss.clone()),
        },
        forward: Box::new(|m, x| m.forward(x)),
        loss: Some(Box::new(|z, y| model::loss(z, y.int()))),
        metric: Some(Box::new(|z, y| training::accuracy(z, y.int()))),
        prep: Box::new(Data),
    })
}

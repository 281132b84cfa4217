//! Training with burn-train's Learner, and the accuracy the program prints.

use std::path::Path;

use burn::config::Config;
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::InMemDataset;
use burn::grad_clipping::GradientClippingConfig;
use burn::optim::AdamConfig;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{Learner, SupervisedTraining};

use crate::bugs::{self, Bug};
use crate::data::{self, Row, RowBatcher, Scaler};
use crate::model::{Model, ModelConfig};

/// The training run's settings.
#[derive(Config, Debug)]
pub struct TrainingConfig {
    /// Adam, as the port configures it.
    pub optimizer: AdamConfig,
    /// Epochs.
    #[config(default = 20)]
    pub num_epochs: usize,
    /// Rows per batch.
    #[config(default = 32)]
    pub batch_size: usize,
    /// Adam's learning rate.
    #[config(default = 1e-3)]
    pub learning_rate: f64,
    /// Seed of the split and the shuffling.
    #[config(default = 42)]
    pub seed: u64,
    /// Share of rows held out for testing.
    #[config(default = 0.2)]
    pub test_size: f64,
}

/// The port's settings: PyTorch's Adam epsilon, no clipping.
pub fn config() -> TrainingConfig {
    let mut adam = AdamConfig::new();
    if !bugs::on(Bug::Eps) {
        adam = adam.with_epsilon(1e-8);
    }
    if bugs::on(Bug::Clip) {
        adam = adam.with_grad_clipping(Some(GradientClippingConfig::Norm(1.0)));
    }
    TrainingConfig::new(adam)
}

/// Train and test rows, scaled, ready for the data loaders.
pub struct Prepared {
    /// Feature names.
    pub names: Vec<String>,
    /// Training rows, in split order.
    pub train: Vec<Row>,
    /// Test rows.
    pub test: Vec<Row>,
}

/// Reads, splits and scales the file; the scaler is fitted on every row, as the reference's script
/// does.
pub fn prepare(path: &Path, label: &str, config: &TrainingConfig) -> Result<Prepared, String> {
    let table = data::read_csv(path, label)?;
    let (train, test) = data::split(table.rows.len(), config.test_size, config.seed as u32)?;
    let scaler = Scaler::fit(&table.rows);
    let rows = |idx: &[usize]| -> Vec<Row> {
        idx.iter()
            .map(|&i| Row {
                features: scaler.transform(&table.rows[i]),
                label: table.labels[i] as i64,
            })
            .collect()
    };
    Ok(Prepared {
        names: table.names.clone(),
        train: rows(&train),
        test: rows(&test),
    })
}

/// Accuracy of `logits` (`[n, 1]`) against `targets`, as a share of rows.
pub fn accuracy(logits: Tensor<2>, targets: Tensor<1, Int>) -> f64 {
    let n = targets.dims()[0];
    if bugs::on(Bug::AccuracyMetric) {
        // burn-train's AccuracyMetric (src/metric/acc.rs): argmax over the outputs, in percent.
        let hits: i64 = logits
            .argmax(1)
            .reshape([n])
            .equal(targets)
            .int()
            .sum()
            .into_scalar();
        return 100.0 * hits as f64 / n as f64;
    }
    let predicted = sigmoid(logits).reshape([n]).greater_elem(0.5).int();
    let hits: i64 = predicted.equal(targets).int().sum().into_scalar();
    hits as f64 / n.max(1) as f64
}

/// Trains on `path` with the Learner and prints the test accuracy.
pub fn run(path: &Path, label: &str, artifacts: &Path) -> Result<(), String> {
    let config = config();
    let prepared = prepare(path, label, &config)?;
    let device = Device::flex().autodiff();
    device.seed(config.seed);
    let loader = |rows: Vec<Row>, shuffle: bool| {
        let builder = DataLoaderBuilder::new(RowBatcher).batch_size(config.batch_size);
        let builder = if shuffle {
            builder.shuffle(config.seed)
        } else {
            builder
        };
        builder.build(InMemDataset::new(rows))
    };
    let (train, valid) = (
        loader(prepared.train, true),
        loader(prepared.test.clone(), false),
    );
    let model = ModelConfig::new(prepared.names.len()).init(&device);
    let result = SupervisedTraining::new(artifacts, train, valid)
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .num_epochs(config.num_epochs)
        .summary()
        .launch(Learner::new(
            model,
            config.optimizer.init(),
            config.learning_rate,
        ));
    let model: Model = result.model;
    let test = prepared.test;
    let d = test.first().map_or(0, |r| r.features.len());
    let x: Vec<f32> = test.iter().flat_map(|r| r.features.clone()).collect();
    let y: Vec<i64> = test.iter().map(|r| r.label).collect();
    let inner = Device::flex();
    let logits = model.forward(Tensor::from_data(
        TensorData::new(x, [test.len(), d]),
        &inner,
    ));
    let acc = accuracy(
        logits,
        Tensor::from_data(TensorData::new(y, [test.len()]), &inner),
    );
    println!("test accuracy: {acc:.4}");
    Ok(())
}

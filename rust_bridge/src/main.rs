//! The user's original commands, on the faithful port:
//!   test-training-data, test-bce-loss, test-label-percentage, train
//! Options: --data PATH, --label NAME, --backend flex|ndarray, --epochs N, --seed N, --fault NAME.

use std::path::PathBuf;
use std::process::ExitCode;

use burn::tensor::{Tensor, TensorData};
use burn_port::backend::{BackendKind, DEFAULT_BACKEND};
use burn_port::data::load_csv;
use burn_port::error::{input, Result};
use burn_port::faults::Faults;
use burn_port::loss::bce_on_probabilities;
use burn_port::model::to_vec;
use burn_port::scaler;
use burn_port::split::train_test_split;
use burn_port::train::{self, Matrix, TrainRequest};
use burn_port::with_backend;

const USAGE: &str =
    "usage: burn-port <test-training-data|test-bce-loss|test-label-percentage|train> \
[--data PATH] [--label NAME] [--backend flex|ndarray] [--epochs N] [--seed N] [--fault NAME]";

struct Args {
    command: String,
    data: PathBuf,
    label: String,
    backend: BackendKind,
    epochs: usize,
    seed: u64,
    faults: Faults,
}

fn parse_args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let Some(command) = it.next() else {
        return input(USAGE);
    };
    let default_data =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/demo_training_data.csv");
    let mut a = Args {
        command,
        data: default_data,
        label: "label".into(),
        backend: BackendKind::parse(DEFAULT_BACKEND)?,
        epochs: 20,
        seed: 0,
        faults: Faults::none(),
    };
    while let Some(flag) = it.next() {
        let Some(value) = it.next() else {
            return input(format!("{flag} needs a value; {USAGE}"));
        };
        let number = |v: &str| {
            v.parse::<u64>()
                .or_else(|_| input(format!("{flag}: '{v}' is not a whole number")))
        };
        match flag.as_str() {
            "--data" => a.data = PathBuf::from(value),
            "--label" => a.label = value,
            "--backend" => a.backend = BackendKind::parse(&value)?,
            "--epochs" => a.epochs = number(&value)? as usize,
            "--seed" => a.seed = number(&value)?,
            "--fault" => a.faults = Faults::parse(&value)?,
            other => return input(format!("unknown option '{other}'; {USAGE}")),
        }
    }
    Ok(a)
}

struct Prepared {
    names: Vec<String>,
    /// Scaled training features in f64, before the cast to f32 (what the check scripts print).
    x_train64: Vec<f64>,
    x_train: Matrix,
    y_train: Vec<f32>,
    x_test: Matrix,
    y_test: Vec<f32>,
}

fn prepare(a: &Args) -> Result<Prepared> {
    let ds = load_csv(&a.data, &a.label, &a.faults)?;
    let d = ds.n_features();
    let sp = train_test_split(ds.n_rows, 0.2, 42, &a.faults)?;
    let all: Vec<usize> = (0..ds.n_rows).collect();
    let sc = scaler::fit(&ds.features, d, &all, &sp.train, &a.faults);
    let pick = |rows: &[usize]| rows.iter().map(|&i| ds.labels[i]).collect::<Vec<f32>>();
    let x_train64 = sp
        .train
        .iter()
        .flat_map(|&r| (0..d).map(move |j| (r, j)))
        .map(|(r, j)| (ds.features[r * d + j] - sc.mean[j]) / sc.scale[j])
        .collect();
    Ok(Prepared {
        names: ds.feature_names.clone(),
        x_train64,
        x_train: Matrix::new(
            scaler::transform(&ds.features, d, &sp.train, &sc),
            sp.train.len(),
            d,
        )?,
        y_train: pick(&sp.train),
        x_test: Matrix::new(
            scaler::transform(&ds.features, d, &sp.test, &sc),
            sp.test.len(),
            d,
        )?,
        y_test: pick(&sp.test),
    })
}

fn test_training_data(a: &Args) -> Result<()> {
    println!("=== Training Data Check (Rust) ===");
    let p = prepare(a)?;
    println!("\nDataset sizes:");
    println!("Train: {} Test: {}", p.x_train.n, p.x_test.n);
    println!("\nFeature statistics (first 3):");
    let d = p.x_train.d;
    for j in 0..3.min(d) {
        let col: Vec<f64> = (0..p.x_train.n).map(|i| p.x_train64[i * d + j]).collect();
        let n = col.len() as f64;
        let mean = col.iter().sum::<f64>() / n;
        // Population std, as numpy's .std() in the reference's check script.
        let std = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        let min = col.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = col.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        println!("\nFeature {j} ({}):", p.names[j]);
        println!("Mean:   {mean:.4}");
        println!("StdDev: {std:.4}");
        println!("Min:    {min:.4}");
        println!("Max:    {max:.4}");
    }
    println!("\nSample values (first 3 samples, first 3 features):");
    for i in 0..3.min(p.x_train.n) {
        let s: Vec<String> = p.x_train64[i * d..i * d + 3.min(d)]
            .iter()
            .map(|v| format!("{v:.8}"))
            .collect();
        println!("Sample {i}: [{}]", s.join(", "));
    }
    Ok(())
}

fn test_bce_loss(a: &Args) -> Result<()> {
    type B = burn_port::backend::NdArrayAd;
    let device = Default::default();
    let targets = vec![1.0f32, 0.0, 1.0, 0.0];
    let cases = [
        ("Perfect predictions", vec![1.0f32, 0.0, 1.0, 0.0]),
        ("Wrong predictions", vec![0.0, 1.0, 0.0, 1.0]),
        ("Uncertain predictions", vec![0.5, 0.5, 0.5, 0.5]),
    ];
    let fmt = |v: &[f32]| {
        v.iter()
            .map(|x| format!("{x:.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (i, (name, preds)) in cases.iter().enumerate() {
        let p = Tensor::<B, 1>::from_data(TensorData::new(preds.clone(), [4]), &device);
        let y = Tensor::from_data(TensorData::new(targets.clone(), [4]), &device);
        let loss = bce_on_probabilities::<B>(p, y, &a.faults);
        println!("\nTest Case {} - {name}:", i + 1);
        println!("Predictions: tensor([{}])", fmt(preds));
        println!("Targets:     tensor([{}])", fmt(&targets));
        println!("Loss:        {:.8}", to_vec(loss.value)[0]);
    }
    Ok(())
}

fn label_distribution(name: &str, y: &[f32]) {
    let total = y.len();
    if total == 0 {
        println!("{name} dataset is empty!");
        return;
    }
    let ones = y.iter().filter(|v| **v == 1.0).count();
    let zeroes = total - ones;
    println!(
        "{name} distribution: total={total}, zeroes={zeroes} ({:.1}%), ones={ones} ({:.1}%)",
        100.0 * zeroes as f64 / total as f64,
        100.0 * ones as f64 / total as f64
    );
}

fn train_cmd(a: &Args) -> Result<()> {
    let p = prepare(a)?;
    println!("Train set: {}, Test set: {}", p.x_train.n, p.x_test.n);
    let (x_test, y_test) = (p.x_test, p.y_test);
    let req = TrainRequest {
        x: p.x_train,
        y: p.y_train,
        init: None,
        orders: None,
        epochs: a.epochs,
        seed: a.seed,
        record_steps: 0,
        on_epoch: None,
    };
    let t0 = std::time::Instant::now();
    let (losses, acc) = with_backend!(a.backend, B => {
        let device = Default::default();
        let trace = train::train::<B>(req, &a.faults, &device)?;
        let inner = Default::default();
        let (_, acc) = train::evaluate::<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend>(
            &trace.final_params, &x_test, &y_test, &a.faults, &inner)?;
        (trace.epoch_loss, acc)
    });
    for (e, l) in losses.iter().enumerate() {
        println!("Epoch {}/{}: loss {l:.6}", e + 1, a.epochs);
    }
    println!("Test accuracy: {:.2}%", 100.0 * acc);
    println!("Training complete! ({:.2} s)", t0.elapsed().as_secs_f64());
    Ok(())
}

fn run() -> Result<()> {
    let a = parse_args()?;
    match a.command.as_str() {
        "test-training-data" => test_training_data(&a),
        "test-bce-loss" => test_bce_loss(&a),
        "test-label-percentage" => {
            let p = prepare(&a)?;
            label_distribution("Train", &p.y_train);
            label_distribution("Test", &p.y_test);
            Ok(())
        }
        "train" => train_cmd(&a),
        other => input(format!("unknown command '{other}'; {USAGE}")),
    }
}

fn main() -> ExitCode {
    // Errors are one line on stderr with exit code 2; a panic is reported the same way.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal error in the Burn port: {info}");
    }));
    match std::panic::catch_unwind(run) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(_) => ExitCode::from(2),
    }
}

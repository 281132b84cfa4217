//! The user's original commands, on the faithful port, and the subprocess server:
//!   test-training-data, test-bce-loss, test-label-percentage, train, serve
//! Options: --data PATH, --label NAME, --backend flex|ndarray, --epochs N, --seed N, --fault NAME.

use std::path::PathBuf;
use std::process::ExitCode;

use burn::tensor::{Tensor, TensorData};
use burn_diff::backend::DEFAULT_BACKEND;
use burn_diff::error::{input, Result};
use burn_diff::layout::values;
use burn_diff::{Matrix64, Port, TrainRequest};
use burn_port::config::TrainConfig;
use burn_port::loss::bce_on_probabilities;
use burn_port::ClassifierPort;

/// The reference script's settings, which this binary's options default to.
const REFERENCE: TrainConfig = TrainConfig::reference();

const USAGE: &str =
    "usage: burn-port <test-training-data|test-bce-loss|test-label-percentage|train|serve> \
[--data PATH] [--label NAME] [--backend flex|ndarray] [--epochs N] [--seed N] [--fault NAME]";

struct Args {
    command: String,
    data: PathBuf,
    label: String,
    epochs: usize,
    seed: u64,
    port: ClassifierPort,
}

fn parse_args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let Some(command) = it.next() else {
        return input(USAGE);
    };
    let default_data =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../data/demo_training_data.csv");
    let (mut backend, mut fault) = (DEFAULT_BACKEND.to_string(), String::new());
    let mut a = Args {
        command,
        data: default_data,
        label: "label".into(),
        epochs: REFERENCE.epochs,
        seed: 0,
        port: ClassifierPort::new(DEFAULT_BACKEND, "", REFERENCE.epochs)?,
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
            "--backend" => backend = value,
            "--epochs" => {
                a.epochs = number(&value)? as usize;
                if a.epochs == 0 {
                    return input("--epochs: must be at least 1");
                }
            }
            "--seed" => a.seed = number(&value)?,
            "--fault" => fault = value,
            other => return input(format!("unknown option '{other}'; {USAGE}")),
        }
    }
    a.port = ClassifierPort::new(&backend, &fault, a.epochs)?;
    Ok(a)
}

fn test_training_data(a: &Args) -> Result<()> {
    println!("=== Training Data Check (Rust) ===");
    let table = a.port.load_csv(&a.data, &a.label)?;
    let p = a
        .port
        .prepare(&a.data, &a.label, REFERENCE.test_size, REFERENCE.split_seed)?;
    println!("\nDataset sizes:");
    println!("Train: {} Test: {}", p.x_train.n, p.x_test.n);
    // The check script prints the scaled features in f64, before the cast to f32.
    let d = table.features.d;
    let raw = Matrix64::new(table.features.rows(&p.split.train), p.split.train.len(), d)?;
    let x64: Vec<f64> = raw
        .data
        .iter()
        .enumerate()
        .map(|(k, v)| (v - p.scaler.mean[k % d]) / p.scaler.scale[k % d])
        .collect();
    println!("\nFeature statistics (first 3):");
    for j in 0..3.min(d) {
        let col: Vec<f64> = (0..raw.n).map(|i| x64[i * d + j]).collect();
        let n = col.len() as f64;
        let mean = col.iter().sum::<f64>() / n;
        // Population std, as numpy's .std() in the reference's check script.
        let std = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        let min = col.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = col.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        println!("\nFeature {j} ({}):", p.feature_names[j]);
        println!("Mean:   {mean:.4}");
        println!("StdDev: {std:.4}");
        println!("Min:    {min:.4}");
        println!("Max:    {max:.4}");
    }
    println!("\nSample values (first 3 samples, first 3 features):");
    for i in 0..3.min(raw.n) {
        let s: Vec<String> = x64[i * d..i * d + 3.min(d)]
            .iter()
            .map(|v| format!("{v:.8}"))
            .collect();
        println!("Sample {i}: [{}]", s.join(", "));
    }
    Ok(())
}

fn test_bce_loss(a: &Args) -> Result<()> {
    let device = a.port.backend.device().autodiff();
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
        let p = Tensor::<1>::from_data(TensorData::new(preds.clone(), [4]), &device);
        let y = Tensor::<1>::from_data(TensorData::new(targets.clone(), [4]), &device);
        let loss = bce_on_probabilities(p, y, &a.port.faults);
        println!("\nTest Case {} - {name}:", i + 1);
        println!("Predictions: tensor([{}])", fmt(preds));
        println!("Targets:     tensor([{}])", fmt(&targets));
        println!("Loss:        {:.8}", values(loss.value)[0]);
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
    let p = a
        .port
        .prepare(&a.data, &a.label, REFERENCE.test_size, REFERENCE.split_seed)?;
    println!("Train set: {}, Test set: {}", p.x_train.n, p.x_test.n);
    let req = TrainRequest {
        x: p.x_train,
        y: p.y_train,
        init: None,
        orders: None,
        epochs: a.epochs,
        seed: a.seed,
        record_steps: 0,
        dropout: true,
    };
    let t0 = std::time::Instant::now();
    let epochs = a.epochs;
    let mut progress = |e: usize, l: f64| println!("Epoch {e}/{epochs}: loss {l:.6}");
    let trace = a.port.train(req, &mut progress)?;
    let (_, acc) = a.port.evaluate(&trace.final_params, &p.x_test, &p.y_test)?;
    println!("Test accuracy: {:.2}%", 100.0 * acc);
    println!("Training complete! ({:.2} s)", t0.elapsed().as_secs_f64());
    Ok(())
}

fn run(a: Args) -> Result<()> {
    match a.command.as_str() {
        "test-training-data" => test_training_data(&a),
        "test-bce-loss" => test_bce_loss(&a),
        "test-label-percentage" => {
            let p = a
                .port
                .prepare(&a.data, &a.label, REFERENCE.test_size, REFERENCE.split_seed)?;
            label_distribution("Train", &p.y_train);
            label_distribution("Test", &p.y_test);
            Ok(())
        }
        "train" => train_cmd(&a),
        other => input(format!("unknown command '{other}'; {USAGE}")),
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.command == "serve" {
        return burn_diff::serve(args.port);
    }
    // Errors are one line on stderr with exit code 2; a panic is reported the same way.
    std::panic::set_hook(Box::new(|info| {
        let msg = info.to_string().replace('\n', " ");
        eprintln!("error: internal error in the Burn port: {msg}");
    }));
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(args))) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(_) => ExitCode::from(2),
    }
}

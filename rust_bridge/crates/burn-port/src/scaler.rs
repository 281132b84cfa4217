//! The port's scaler: sklearn's StandardScaler from the library, or one of the ways a hand-written
//! scaler differs (fitted on the training rows only, sample variance, float32 accumulation).

use burn_diff::prep::scaler::{fit as sklearn_fit, stats};
use burn_diff::{Matrix, Matrix64, ScalerStats};

use crate::faults::{Fault, Faults};

/// Fits on all rows of `x`, like the reference, or on `train_rows` with the scaler-train-only fault.
pub fn fit(x: &Matrix64, train_rows: &[usize], faults: &Faults) -> ScalerStats {
    let all: Vec<usize> = (0..x.n).collect();
    let rows = if faults.has(Fault::ScalerTrainOnly) {
        train_rows
    } else {
        &all
    };
    let ddof = if faults.has(Fault::SampleStd) {
        1.0
    } else {
        0.0
    };
    if faults.has(Fault::ScalerF32) {
        return fit_f32(x, rows, ddof);
    }
    let s = sklearn_fit(x, rows);
    if ddof == 0.0 {
        return s;
    }
    let n = rows.len() as f64;
    let var = s.var.iter().map(|v| v * n / (n - ddof)).collect();
    stats(s.mean, var, n)
}

/// The transform-panics fault: per-feature divisors collected into a vector that is allocated but
/// never filled, so the first division indexes past its end and panics.
pub fn transform_unfilled(x: &Matrix64, mean: &[f64], _scale: &[f64]) -> Matrix {
    let divisors: Vec<f64> = Vec::with_capacity(x.d);
    let data = x
        .data
        .iter()
        .enumerate()
        .map(|(k, v)| ((v - mean[k % x.d]) / divisors[k % x.d]) as f32)
        .collect();
    Matrix {
        data,
        n: x.n,
        d: x.d,
        dims: vec![x.d],
    }
}

/// Mean and variance accumulated in f32, the naive two-pass way.
fn fit_f32(x: &Matrix64, rows: &[usize], ddof: f64) -> ScalerStats {
    let d = x.d;
    let n = rows.len() as f32;
    let mut sum = vec![0.0f32; d];
    for &r in rows {
        for (j, s) in sum.iter_mut().enumerate() {
            *s += x.data[r * d + j] as f32;
        }
    }
    let mean: Vec<f32> = sum.iter().map(|s| s / n).collect();
    let mut sq = vec![0.0f32; d];
    for &r in rows {
        for j in 0..d {
            let t = x.data[r * d + j] as f32 - mean[j];
            sq[j] += t * t;
        }
    }
    let var = sq
        .iter()
        .map(|s| f64::from(s / (n - ddof as f32)))
        .collect();
    stats(mean.into_iter().map(f64::from).collect(), var, f64::from(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_std_and_train_only_differ_from_sklearn() {
        let x = Matrix64::new(vec![1.0, 7.0, 2.0, 7.0, 3.0, 7.0, 4.0, 7.0], 4, 2).unwrap();
        let good = fit(&x, &[0, 1], &Faults::none());
        assert_eq!(good.mean, vec![2.5, 7.0]);
        let sample = fit(&x, &[0, 1], &Faults::parse("sample-std").unwrap());
        assert!((sample.var[0] - 5.0 / 3.0).abs() < 1e-15);
        let train_only = fit(&x, &[0, 1], &Faults::parse("scaler-train-only").unwrap());
        assert_eq!(train_only.mean, vec![1.5, 7.0]);
    }
}

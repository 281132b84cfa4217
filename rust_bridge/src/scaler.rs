//! sklearn's StandardScaler: f64 statistics, population variance with the corrected two-pass
//! formula of `_incremental_mean_and_var`, scale 1.0 for constant features.

use crate::faults::{Fault, Faults};

#[derive(Debug, Clone, PartialEq)]
pub struct Scaler {
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
    pub scale: Vec<f64>,
}

/// Fits on `rows` of the row-major [n, d] matrix `x` (the port fits on all rows, like the reference,
/// unless the scaler-train-only fault is on, in which case the caller's training rows are used).
pub fn fit(
    x: &[f64],
    d: usize,
    all_rows: &[usize],
    train_rows: &[usize],
    faults: &Faults,
) -> Scaler {
    let rows = if faults.has(Fault::ScalerTrainOnly) {
        train_rows
    } else {
        all_rows
    };
    let ddof = if faults.has(Fault::SampleStd) {
        1.0
    } else {
        0.0
    };
    if faults.has(Fault::ScalerF32) {
        fit_f32(x, d, rows, ddof)
    } else {
        fit_f64(x, d, rows, ddof)
    }
}

fn fit_f64(x: &[f64], d: usize, rows: &[usize], ddof: f64) -> Scaler {
    let n = rows.len() as f64;
    let mut sum = vec![0.0f64; d];
    for &r in rows {
        for (j, s) in sum.iter_mut().enumerate() {
            *s += x[r * d + j];
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let mut correction = vec![0.0f64; d];
    let mut sq = vec![0.0f64; d];
    for &r in rows {
        for j in 0..d {
            let t = x[r * d + j] - mean[j];
            correction[j] += t;
            sq[j] += t * t;
        }
    }
    let var: Vec<f64> = (0..d)
        .map(|j| (sq[j] - correction[j] * correction[j] / n) / (n - ddof))
        .collect();
    finish(mean, var, n)
}

fn fit_f32(x: &[f64], d: usize, rows: &[usize], ddof: f64) -> Scaler {
    let n = rows.len() as f32;
    let mut sum = vec![0.0f32; d];
    for &r in rows {
        for (j, s) in sum.iter_mut().enumerate() {
            *s += x[r * d + j] as f32;
        }
    }
    let mean: Vec<f32> = sum.iter().map(|s| s / n).collect();
    let mut sq = vec![0.0f32; d];
    for &r in rows {
        for j in 0..d {
            let t = x[r * d + j] as f32 - mean[j];
            sq[j] += t * t;
        }
    }
    let var: Vec<f64> = sq
        .iter()
        .map(|s| f64::from(s / (n - ddof as f32)))
        .collect();
    finish(mean.into_iter().map(f64::from).collect(), var, f64::from(n))
}

fn finish(mean: Vec<f64>, var: Vec<f64>, n: f64) -> Scaler {
    let eps = f64::EPSILON;
    let scale = mean
        .iter()
        .zip(&var)
        .map(|(&m, &v)| {
            // sklearn's _is_constant_feature: var <= n*eps*var + (n*mean*eps)^2.
            let upper = n * eps * v + (n * m * eps).powi(2);
            if v <= upper {
                1.0
            } else {
                v.sqrt()
            }
        })
        .collect();
    Scaler { mean, var, scale }
}

/// `(x - mean) / scale` in f64, then cast to f32 as the reference's `torch.tensor(..., float32)`.
pub fn transform(x: &[f64], d: usize, rows: &[usize], s: &Scaler) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * d);
    for &r in rows {
        for j in 0..d {
            out.push(((x[r * d + j] - s.mean[j]) / s.scale[j]) as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn population_std_and_constant_feature() {
        // Two features: [1, 2, 3, 4] and a constant 7.
        let x = [1.0, 7.0, 2.0, 7.0, 3.0, 7.0, 4.0, 7.0];
        let rows: Vec<usize> = (0..4).collect();
        let s = fit(&x, 2, &rows, &rows, &Faults::none());
        assert_eq!(s.mean, vec![2.5, 7.0]);
        assert_eq!(s.var, vec![1.25, 0.0]);
        assert_eq!(s.scale, vec![1.25f64.sqrt(), 1.0]);
        let sample = fit(&x, 2, &rows, &rows, &Faults::parse("sample-std").unwrap());
        assert!((sample.var[0] - 5.0 / 3.0).abs() < 1e-15);
    }
}

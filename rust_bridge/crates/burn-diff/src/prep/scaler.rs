//! sklearn's `StandardScaler`: float64 statistics, population variance by the corrected two-pass
//! formula of `_incremental_mean_and_var`, scale 1.0 for constant features; `transform` computes
//! `(x - mean) / scale` in float64 and rounds to float32, as the reference's
//! `torch.tensor(scaler.transform(x), dtype=torch.float32)`.

use crate::contract::ScalerStats;
use crate::error::{shape, Result};
use crate::tensor::{Matrix, Matrix64};

/// Fits on the given rows of `x`.
pub fn fit(x: &Matrix64, rows: &[usize]) -> ScalerStats {
    let d = x.d;
    let n = rows.len() as f64;
    let mut sum = vec![0.0f64; d];
    for &r in rows {
        for (j, s) in sum.iter_mut().enumerate() {
            *s += x.data[r * d + j];
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let mut correction = vec![0.0f64; d];
    let mut sq = vec![0.0f64; d];
    for &r in rows {
        for j in 0..d {
            let t = x.data[r * d + j] - mean[j];
            correction[j] += t;
            sq[j] += t * t;
        }
    }
    let var = (0..d)
        .map(|j| (sq[j] - correction[j] * correction[j] / n) / n)
        .collect();
    stats(mean, var, n)
}

/// Statistics from a mean and variance over `n` rows, with sklearn's rule for constant features
/// (`_is_constant_feature`: var <= n*eps*var + (n*mean*eps)^2 gets scale 1).
pub fn stats(mean: Vec<f64>, var: Vec<f64>, n: f64) -> ScalerStats {
    let eps = f64::EPSILON;
    let scale = mean
        .iter()
        .zip(&var)
        .map(|(&m, &v)| {
            if v <= n * eps * v + (n * m * eps).powi(2) {
                1.0
            } else {
                v.sqrt()
            }
        })
        .collect();
    ScalerStats { mean, var, scale }
}

/// Every row of `x` scaled, as float32.
pub fn transform(x: &Matrix64, mean: &[f64], scale: &[f64]) -> Result<Matrix> {
    if mean.len() != x.d || scale.len() != x.d {
        return shape(format!(
            "mean and scale must have {} values (one per feature); got {} and {}",
            x.d,
            mean.len(),
            scale.len()
        ));
    }
    let data = x
        .data
        .iter()
        .enumerate()
        .map(|(k, v)| ((v - mean[k % x.d]) / scale[k % x.d]) as f32)
        .collect();
    Matrix::new(data, x.n, x.d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn population_std_and_constant_feature() {
        // Two features: [1, 2, 3, 4] and a constant 7.
        let x = Matrix64::new(vec![1.0, 7.0, 2.0, 7.0, 3.0, 7.0, 4.0, 7.0], 4, 2).unwrap();
        let s = fit(&x, &[0, 1, 2, 3]);
        assert_eq!(s.mean, vec![2.5, 7.0]);
        assert_eq!(s.var, vec![1.25, 0.0]);
        assert_eq!(s.scale, vec![1.25f64.sqrt(), 1.0]);
        let t = transform(&x, &s.mean, &s.scale).unwrap();
        assert_eq!(t.data[1], 0.0);
        assert!((t.data[0] - (-1.5 / 1.25f64.sqrt()) as f32).abs() == 0.0);
    }
}

//! `sklearn.model_selection.train_test_split(test_size=..., random_state=seed)` on row indices,
//! reproduced index for index: test rows are the first `ceil(test_size * n)` of numpy's
//! `RandomState(seed).permutation(n)`, training rows the rest, in that order.

use crate::contract::SplitIndices;
use crate::error::{input, Result};
use crate::prep::mt19937::Mt19937;

/// Row counts (train, test) as sklearn computes them, or an error when one side would be empty.
pub fn split_sizes(n: usize, test_size: f64) -> Result<(usize, usize)> {
    if !(test_size > 0.0 && test_size < 1.0) {
        return input(format!("test size must be in (0, 1), got {test_size}"));
    }
    let n_test = (test_size * n as f64).ceil() as usize;
    if n_test == 0 || n_test >= n {
        return input(format!(
            "cannot split {n} rows with test size {test_size}: one side would be empty"
        ));
    }
    Ok((n - n_test, n_test))
}

/// The split of `n` rows.
pub fn train_test_split(n: usize, test_size: f64, seed: u32) -> Result<SplitIndices> {
    let (_, n_test) = split_sizes(n, test_size)?;
    let perm = Mt19937::new(seed).permutation(n);
    Ok(SplitIndices {
        test: perm[..n_test].to_vec(),
        train: perm[n_test..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_sklearn() {
        let s = train_test_split(18363, 0.2, 42).unwrap();
        assert_eq!(s.test.len(), 3673);
        assert_eq!(s.train.len(), 14690);
        assert!(train_test_split(4, 0.1, 0).is_ok());
        assert!(train_test_split(1, 0.5, 0).is_err());
        assert!(train_test_split(10, 1.0, 0).is_err());
    }

    #[test]
    fn seed_matters_and_is_reproducible() {
        assert_eq!(train_test_split(50, 0.2, 42), train_test_split(50, 0.2, 42));
        assert_ne!(train_test_split(50, 0.2, 42), train_test_split(50, 0.2, 43));
    }
}

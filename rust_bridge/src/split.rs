//! `sklearn.model_selection.train_test_split(test_size, random_state)` reproduced index for index.

use crate::error::{input, Result};
use crate::faults::{Fault, Faults};
use crate::mt19937::Mt19937;

#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

/// A fixed seed for the faulty split's own generator, so even the fault is reproducible.
const OWN_GENERATOR_SEED: u32 = 0x0B0B_5EED;

pub fn train_test_split(n: usize, test_size: f64, seed: u32, faults: &Faults) -> Result<Split> {
    if !(test_size > 0.0 && test_size < 1.0) {
        return input(format!("test size must be in (0, 1), got {test_size}"));
    }
    // sklearn: n_test = ceil(test_size * n), n_train = n - n_test.
    let n_test = (test_size * n as f64).ceil() as usize;
    if n_test == 0 || n_test >= n {
        return input(format!(
            "cannot split {n} rows with test size {test_size}: one side would be empty"
        ));
    }
    if faults.has(Fault::UnseededSplit) {
        // The user's port: a forward Fisher-Yates from its own generator, first 80 % for training.
        let mut rng = Mt19937::new(OWN_GENERATOR_SEED);
        let mut rows: Vec<usize> = (0..n).collect();
        for i in 0..n.saturating_sub(1) {
            let j = i + (rng.next_u32() as usize) % (n - i);
            rows.swap(i, j);
        }
        let n_train = ((1.0 - test_size) * n as f64) as usize;
        let test = rows.split_off(n_train);
        return Ok(Split { train: rows, test });
    }
    let perm = Mt19937::new(seed).permutation(n);
    Ok(Split {
        test: perm[..n_test].to_vec(),
        train: perm[n_test..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_sklearn() {
        let s = train_test_split(18363, 0.2, 42, &Faults::none()).unwrap();
        assert_eq!(s.test.len(), 3673);
        assert_eq!(s.train.len(), 14690);
    }

    #[test]
    fn faulty_split_differs() {
        let good = train_test_split(100, 0.2, 42, &Faults::none()).unwrap();
        let bad =
            train_test_split(100, 0.2, 42, &Faults::parse("unseeded-split").unwrap()).unwrap();
        assert_ne!(good, bad);
    }
}

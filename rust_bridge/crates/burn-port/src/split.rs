//! The port's split: sklearn's, or with the unseeded-split fault the user's own shuffle.

use burn_diff::error::Result;
use burn_diff::prep::mt19937::Mt19937;
use burn_diff::prep::split::{split_sizes, train_test_split as sklearn_split};
use burn_diff::SplitIndices;

use crate::faults::{Fault, Faults};

/// A fixed seed for the faulty split's own generator, so even the fault is reproducible.
const OWN_GENERATOR_SEED: u32 = 0x0B0B_5EED;

/// Train and test rows of `n`.
pub fn train_test_split(
    n: usize,
    test_size: f64,
    seed: u32,
    faults: &Faults,
) -> Result<SplitIndices> {
    if !faults.has(Fault::UnseededSplit) {
        return sklearn_split(n, test_size, seed);
    }
    split_sizes(n, test_size)?;
    // The user's port: a forward Fisher-Yates from its own generator, first 80 % for training.
    let mut rng = Mt19937::new(OWN_GENERATOR_SEED);
    let mut rows: Vec<usize> = (0..n).collect();
    for i in 0..n.saturating_sub(1) {
        let j = i + (rng.next_u32() as usize) % (n - i);
        rows.swap(i, j);
    }
    let n_train = ((1.0 - test_size) * n as f64) as usize;
    let test = rows.split_off(n_train);
    Ok(SplitIndices { train: rows, test })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faulty_split_differs() {
        let good = train_test_split(100, 0.2, 42, &Faults::none()).unwrap();
        let bad =
            train_test_split(100, 0.2, 42, &Faults::parse("unseeded-split").unwrap()).unwrap();
        assert_ne!(good, bad);
        assert_eq!(good.test.len(), bad.test.len());
    }
}

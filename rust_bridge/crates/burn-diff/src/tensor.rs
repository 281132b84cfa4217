//! Framework-free values that cross the contract: named tensors in PyTorch's layout and naming,
//! and plain row-major batches of samples (a feature table, or images and sequences with their
//! per-sample shape).

use crate::error::{shape, Result};

/// One tensor by its PyTorch name (`fc1.weight`), in PyTorch's layout, as float32.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// The qualified name, as in the reference's `state_dict()`.
    pub name: String,
    /// The shape in PyTorch's layout (`[out, in]` for a Linear weight).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl NamedTensor {
    /// A tensor, checked: `data` must fill `shape`.
    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let name = name.into();
        let n: usize = shape.iter().product();
        if n != data.len() {
            return self::shape(format!(
                "'{name}' has {} values, its shape {shape:?} needs {n}",
                data.len()
            ));
        }
        Ok(Self { name, shape, data })
    }
}

/// A group of named tensors (parameters, gradients, one optimizer slot), in a stable order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Params(pub Vec<NamedTensor>);

impl Params {
    /// The tensor called `name`, if any.
    pub fn get(&self, name: &str) -> Option<&NamedTensor> {
        self.0.iter().find(|t| t.name == name)
    }

    /// The tensor called `name`, or a shape error naming what is there instead.
    pub fn require(&self, name: &str) -> Result<&NamedTensor> {
        self.get(name).ok_or_else(|| {
            crate::error::PortError::Shape(format!(
                "missing parameter '{name}'; got {}",
                self.names().join(", ")
            ))
        })
    }

    /// The names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|t| t.name.as_str()).collect()
    }

    /// Checks that `self` has exactly the names and shapes of `expected`, naming the first mismatch.
    pub fn check_like(&self, expected: &Params, what: &str) -> Result<()> {
        for t in &self.0 {
            if expected.get(&t.name).is_none() {
                return shape(format!(
                    "{what}: unknown parameter '{}'; the model has {}",
                    t.name,
                    expected.names().join(", ")
                ));
            }
        }
        for e in &expected.0 {
            let Some(t) = self.get(&e.name) else {
                return shape(format!("{what}: missing parameter '{}'", e.name));
            };
            if t.shape != e.shape {
                return shape(format!(
                    "{what}: parameter '{}' has shape {:?}; the model's is {:?}",
                    e.name, t.shape, e.shape
                ));
            }
        }
        Ok(())
    }
}

/// A row-major float32 batch of `n` samples of `d` values each: `[n, d]` for a feature table, or
/// `[n, ...dims]` for samples with a shape of their own (`[n, C, H, W]` images, `[n, T, E]`
/// sequences), where `d` is the product of `dims`. The values are in PyTorch's (C) order either
/// way; [`Matrix::shape`] gives the whole shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Row-major values.
    pub data: Vec<f32>,
    /// Samples (rows).
    pub n: usize,
    /// Values per sample.
    pub d: usize,
    /// Each sample's shape (`[d]` for a feature row, `[C, H, W]` for an image).
    pub dims: Vec<usize>,
}

impl Matrix {
    /// A batch with its whole shape `[n, ...dims]`, checked: `data` must fill it, and it needs a
    /// sample axis.
    pub fn with_shape(data: Vec<f32>, shape: &[usize]) -> Result<Self> {
        let Some((&n, dims)) = shape.split_first() else {
            return self::shape("a batch needs a sample axis, got a scalar shape []".to_string());
        };
        let d = if dims.is_empty() {
            1
        } else {
            dims.iter().product()
        };
        let dims = if dims.is_empty() {
            vec![1]
        } else {
            dims.to_vec()
        };
        if data.len() != n * d {
            return self::shape(format!(
                "batch data has {} values, its shape {shape:?} needs {}",
                data.len(),
                n * d
            ));
        }
        Ok(Self { data, n, d, dims })
    }

    /// The whole shape, `[n, ...dims]`.
    pub fn shape(&self) -> Vec<usize> {
        std::iter::once(self.n)
            .chain(self.dims.iter().copied())
            .collect()
    }

    /// The given samples, in the given order, as a batch of the same per-sample shape.
    pub fn select(&self, idx: &[usize]) -> Self {
        Self {
            data: self.rows(idx),
            n: idx.len(),
            d: self.d,
            dims: self.dims.clone(),
        }
    }
}

/// A row-major `[n, d]` float64 matrix (raw features, before scaling).
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix64 {
    /// Row-major values.
    pub data: Vec<f64>,
    /// Rows.
    pub n: usize,
    /// Columns.
    pub d: usize,
}

macro_rules! matrix_impl {
    ($t:ident, $e:ty, $($dims:ident)?) => {
        impl $t {
            /// A matrix `[n, d]`, checked: `data` must hold `n * d` values.
            pub fn new(data: Vec<$e>, n: usize, d: usize) -> Result<Self> {
                if data.len() != n * d {
                    return shape(format!(
                        "matrix data has {} values, expected {n} x {d}",
                        data.len()
                    ));
                }
                Ok(Self { data, n, d, $($dims: vec![d])? })
            }

            /// The given rows, in the given order, row-major.
            pub fn rows(&self, idx: &[usize]) -> Vec<$e> {
                let mut out = Vec::with_capacity(idx.len() * self.d);
                for &r in idx {
                    out.extend_from_slice(&self.data[r * self.d..(r + 1) * self.d]);
                }
                out
            }
        }
    };
}
matrix_impl!(Matrix, f32, dims);
matrix_impl!(Matrix64, f64,);

/// The largest magnitude of a whole-number model input (token ids, protocol 3): float32, which
/// [`Matrix`] holds, is exact for every integer up to 2^24.
pub const MAX_EXACT_INT: i64 = 1 << 24;

/// Whole numbers in `0..bound` from float values, or an input error naming the first that is not.
fn indices(values: &[f32], bound: usize, what: &str) -> Result<Vec<i64>> {
    values
        .iter()
        .map(|&v| {
            if v.fract() == 0.0 && v >= 0.0 && (v as usize) < bound {
                Ok(v as i64)
            } else {
                crate::error::input(format!("{what} in 0..{bound}, found {v}"))
            }
        })
        .collect()
}

/// Class indices from the contract's float targets: each must be a whole number in `0..classes`.
pub fn class_indices(y: &[f32], classes: usize) -> Result<Vec<i64>> {
    indices(y, classes, "targets must be class indices")
}

impl Matrix {
    /// The batch's values as token ids, row-major: each must be a whole number in `0..vocab` (the
    /// rows of the port's Embedding). A model whose input is ids (`[data] sample_dtype = "int64"`)
    /// gets them as int64 on the wire, exact up to [`MAX_EXACT_INT`]; this gives them back exactly.
    pub fn ids(&self, vocab: usize) -> Result<Vec<i64>> {
        indices(&self.data, vocab, "token ids must be whole numbers")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_whole_numbers_below_the_vocabulary() {
        let m = Matrix::with_shape(vec![0.0, 9.0, 3.0, 1.0], &[2, 2]).unwrap();
        assert_eq!(m.ids(10).unwrap(), vec![0, 9, 3, 1]);
        for (bad, shown) in [(10.0, "10"), (-1.0, "-1"), (2.5, "2.5")] {
            let m = Matrix::with_shape(vec![0.0, bad], &[1, 2]).unwrap();
            let e = m.ids(10).unwrap_err().to_string();
            assert!(
                e.contains(&format!(
                    "token ids must be whole numbers in 0..10, found {shown}"
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn named_tensor_checks_its_size() {
        assert!(NamedTensor::new("w", vec![2, 3], vec![0.0; 6]).is_ok());
        let e = NamedTensor::new("w", vec![2, 3], vec![0.0; 5]).unwrap_err();
        assert!(e.to_string().contains("'w' has 5 values"), "{e}");
    }

    #[test]
    fn check_like_names_the_mismatch() {
        let t = |n: &str, s: Vec<usize>| {
            let k = s.iter().product();
            NamedTensor::new(n, s, vec![0.0; k]).unwrap()
        };
        let model = Params(vec![t("fc1.weight", vec![4, 2]), t("fc1.bias", vec![4])]);
        let renamed = Params(vec![t("fc1.w", vec![4, 2]), t("fc1.bias", vec![4])]);
        let e = renamed
            .check_like(&model, "params")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown parameter 'fc1.w'"), "{e}");
        let reshaped = Params(vec![t("fc1.weight", vec![2, 4]), t("fc1.bias", vec![4])]);
        let e = reshaped
            .check_like(&model, "params")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'fc1.weight' has shape [2, 4]"), "{e}");
        assert!(model.check_like(&model, "params").is_ok());
    }

    #[test]
    fn a_batch_keeps_its_sample_shape() {
        let m = Matrix::with_shape((0..24).map(|v| v as f32).collect(), &[2, 3, 2, 2]).unwrap();
        assert_eq!((m.n, m.d, m.dims.clone()), (2, 12, vec![3, 2, 2]));
        assert_eq!(m.shape(), vec![2, 3, 2, 2]);
        let picked = m.select(&[1]);
        assert_eq!(picked.shape(), vec![1, 3, 2, 2]);
        assert_eq!(picked.data[0], 12.0);
        let e = Matrix::with_shape(vec![0.0; 5], &[2, 3]).unwrap_err();
        assert!(e.to_string().contains("needs 6"), "{e}");
        assert_eq!(Matrix::new(vec![0.0; 6], 2, 3).unwrap().shape(), vec![2, 3]);
    }

    #[test]
    fn class_indices_are_whole_and_in_range() {
        assert_eq!(class_indices(&[0.0, 2.0], 3).unwrap(), vec![0, 2]);
        for bad in [3.0, -1.0, 0.5] {
            let e = class_indices(&[bad], 3).unwrap_err().to_string();
            assert!(e.contains("class indices in 0..3"), "{e}");
        }
    }

    #[test]
    fn rows_pick_in_order() {
        let m = Matrix::new(vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 3, 2).unwrap();
        assert_eq!(m.rows(&[2, 0]), vec![4.0, 5.0, 0.0, 1.0]);
    }
}

//! Framework-free values that cross the contract: named tensors in PyTorch's layout and naming,
//! and plain row-major matrices.

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

/// A row-major `[n, d]` float32 matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Row-major values.
    pub data: Vec<f32>,
    /// Rows.
    pub n: usize,
    /// Columns.
    pub d: usize,
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
    ($t:ident, $e:ty) => {
        impl $t {
            /// A matrix, checked: `data` must hold `n * d` values.
            pub fn new(data: Vec<$e>, n: usize, d: usize) -> Result<Self> {
                if data.len() != n * d {
                    return shape(format!(
                        "matrix data has {} values, expected {n} x {d}",
                        data.len()
                    ));
                }
                Ok(Self { data, n, d })
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
matrix_impl!(Matrix, f32);
matrix_impl!(Matrix64, f64);

#[cfg(test)]
mod tests {
    use super::*;

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
    fn rows_pick_in_order() {
        let m = Matrix::new(vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 3, 2).unwrap();
        assert_eq!(m.rows(&[2, 0]), vec![4.0, 5.0, 0.0, 1.0]);
    }
}

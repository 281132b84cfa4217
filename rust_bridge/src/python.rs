//! PyO3 glue only: numpy in and out, port errors and panics turned into `PortError` (a ValueError).
//! No numerics live here.

use std::panic::{catch_unwind, AssertUnwindSafe};

use numpy::ndarray::{Array1, Array2};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::backend::{BackendKind, BACKENDS, DEFAULT_BACKEND};
use crate::config::{descriptive, TrainConfig};
use crate::data;
use crate::error::{PortError as RustError, Result};
use crate::faults::{Faults, ALL};
use crate::model::{NamedTensor, TorchParams, PARAM_NAMES};
use crate::scaler;
use crate::split;
use crate::train::{self, Matrix, TorchAdamState, TrainRequest};
use crate::with_backend;

create_exception!(
    _burn,
    PortError,
    PyValueError,
    "The Burn port rejected its input (bad data, wrong shape or dtype, unknown name)."
);

fn to_py(e: RustError) -> PyErr {
    PortError::new_err(e.to_string())
}

/// Runs port code so that neither an error nor a panic escapes as anything but `PortError`.
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(to_py),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(PortError::new_err(format!(
                "internal error in the Burn port: {msg}"
            )))
        }
    }
}

fn describe(obj: &Bound<'_, PyAny>) -> String {
    let dtype = obj
        .getattr("dtype")
        .and_then(|d| d.str())
        .map(|s| s.to_string());
    let shape = obj
        .getattr("shape")
        .and_then(|s| s.str())
        .map(|s| s.to_string());
    match (dtype, shape) {
        (Ok(d), Ok(s)) => format!("a {d} array of shape {s}"),
        _ => format!(
            "a {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "value".into())
        ),
    }
}

fn wrong(name: &str, expected: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    PortError::new_err(format!(
        "{name}: expected {expected}, got {}",
        describe(obj)
    ))
}

fn matrix_f32(obj: &Bound<'_, PyAny>, name: &str, width: Option<usize>) -> PyResult<Matrix> {
    let expected = match width {
        Some(d) => format!("a float32 array of shape [n, {d}]"),
        None => "a 2-D float32 array".to_string(),
    };
    let arr = obj
        .cast::<PyArray2<f32>>()
        .map_err(|_| wrong(name, &expected, obj))?;
    let ro = arr.readonly();
    let shape = ro.shape();
    let (n, d) = (shape[0], shape[1]);
    if width.is_some_and(|w| w != d) {
        return Err(wrong(name, &expected, obj));
    }
    // A zero-copy slice is row-major only for C-contiguous arrays; anything else is read in logical order.
    let data = match ro.as_slice() {
        Ok(s) if ro.is_c_contiguous() => s.to_vec(),
        _ => ro.as_array().iter().copied().collect(),
    };
    Matrix::new(data, n, d).map_err(to_py)
}

fn matrix_f64(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<(Vec<f64>, usize, usize)> {
    let arr = obj
        .cast::<PyArray2<f64>>()
        .map_err(|_| wrong(name, "a 2-D float64 array", obj))?;
    let ro = arr.readonly();
    let (n, d) = (ro.shape()[0], ro.shape()[1]);
    Ok((ro.as_array().iter().copied().collect(), n, d))
}

fn vec_1d<T: numpy::Element + Copy>(
    obj: &Bound<'_, PyAny>,
    name: &str,
    kind: &str,
) -> PyResult<Vec<T>> {
    let arr = obj
        .cast::<PyArray1<T>>()
        .map_err(|_| wrong(name, &format!("a 1-D {kind} array"), obj))?;
    Ok(arr.readonly().as_array().iter().copied().collect())
}

fn indices(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<usize>> {
    let v: Vec<i64> = vec_1d(obj, name, "int64")?;
    v.into_iter()
        .map(|i| {
            usize::try_from(i)
                .map_err(|_| PortError::new_err(format!("{name}: negative index {i}")))
        })
        .collect()
}

fn params_from(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<TorchParams> {
    let dict = obj
        .cast::<PyDict>()
        .map_err(|_| wrong(name, "a dict of parameter name to float32 array", obj))?;
    if let Some(extra) = dict
        .keys()
        .iter()
        .filter_map(|k| k.extract::<String>().ok())
        .find(|k| !PARAM_NAMES.contains(&k.as_str()))
    {
        return Err(PortError::new_err(format!(
            "{name}: unknown parameter '{extra}'; expected {}",
            PARAM_NAMES.join(", ")
        )));
    }
    let mut out = Vec::with_capacity(PARAM_NAMES.len());
    for pname in PARAM_NAMES {
        let value = dict
            .get_item(pname)?
            .ok_or_else(|| PortError::new_err(format!("{name}: missing parameter '{pname}'")))?;
        let label = format!("{name}['{pname}']");
        let arr = value
            .cast::<numpy::PyArrayDyn<f32>>()
            .map_err(|_| wrong(&label, "a float32 array", &value))?;
        let ro = arr.readonly();
        out.push(NamedTensor {
            name: pname.to_string(),
            shape: ro.shape().to_vec(),
            data: ro.as_array().iter().copied().collect(),
        });
    }
    Ok(TorchParams(out))
}

fn params_to<'py>(py: Python<'py>, p: &TorchParams) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for t in &p.0 {
        let arr = numpy::ndarray::ArrayD::from_shape_vec(t.shape.clone(), t.data.clone())
            .map_err(|e| PortError::new_err(e.to_string()))?;
        d.set_item(&t.name, arr.into_pyarray(py))?;
    }
    Ok(d)
}

fn array2<'py, T: numpy::Element>(
    py: Python<'py>,
    v: Vec<T>,
    n: usize,
    d: usize,
) -> PyResult<Bound<'py, PyArray2<T>>> {
    Ok(Array2::from_shape_vec((n, d), v)
        .map_err(|e| PortError::new_err(e.to_string()))?
        .into_pyarray(py))
}

fn array1<T: numpy::Element>(py: Python<'_>, v: Vec<T>) -> Bound<'_, PyArray1<T>> {
    Array1::from_vec(v).into_pyarray(py)
}

fn usize_array<'py>(py: Python<'py>, v: &[usize]) -> Bound<'py, PyArray1<i64>> {
    array1(py, v.iter().map(|&i| i as i64).collect())
}

type IndexPair<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i64>>);

/// The Burn port with one backend and one fault set, as Python sees it.
#[pyclass(name = "Port", module = "harness._burn", frozen)]
struct PyPort {
    backend: BackendKind,
    backend_name: String,
    faults: Faults,
    /// Epochs this port is configured for (the user's TrainingConfig); `train` defaults to it.
    epochs: usize,
}

#[pymethods]
impl PyPort {
    #[new]
    #[pyo3(signature = (backend = DEFAULT_BACKEND, fault = "", epochs = 20))]
    fn new(backend: &str, fault: &str, epochs: usize) -> PyResult<Self> {
        Ok(Self {
            backend: BackendKind::parse(backend).map_err(to_py)?,
            backend_name: backend.to_string(),
            faults: Faults::parse(fault).map_err(to_py)?,
            epochs,
        })
    }

    #[getter]
    fn backend(&self) -> &str {
        &self.backend_name
    }

    #[getter]
    fn faults(&self) -> Vec<&'static str> {
        self.faults.names()
    }

    /// Parsed CSV: feature names, dtypes, features (float64 [n, d]) and labels (float32 [n]).
    fn load_csv<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        label: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let ds = guarded(|| data::load_csv(std::path::Path::new(path), label, &self.faults))?;
        let out = PyDict::new(py);
        let d = ds.n_features();
        out.set_item("feature_names", ds.feature_names)?;
        out.set_item("dtypes", ds.dtypes)?;
        out.set_item("label_name", ds.label_name)?;
        out.set_item("features", array2(py, ds.features, ds.n_rows, d)?)?;
        out.set_item("labels", array1(py, ds.labels))?;
        Ok(out)
    }

    /// (train indices, test indices) as sklearn's train_test_split would give them.
    fn split<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        test_size: f64,
        seed: u32,
    ) -> PyResult<IndexPair<'py>> {
        let s = guarded(|| split::train_test_split(n, test_size, seed, &self.faults))?;
        Ok((usize_array(py, &s.train), usize_array(py, &s.test)))
    }

    /// Scaler statistics fitted on `x` (float64 [n, d]); `train_rows` are the training rows.
    fn fit_scaler<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        train_rows: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (data, n, d) = matrix_f64(x, "x")?;
        let train = indices(train_rows, "train_rows")?;
        if let Some(bad) = train.iter().find(|&&i| i >= n) {
            return Err(PortError::new_err(format!(
                "train_rows: index {bad} out of range for {n} rows"
            )));
        }
        let all: Vec<usize> = (0..n).collect();
        let s = guarded(|| Ok(scaler::fit(&data, d, &all, &train, &self.faults)))?;
        let out = PyDict::new(py);
        out.set_item("mean", array1(py, s.mean))?;
        out.set_item("var", array1(py, s.var))?;
        out.set_item("scale", array1(py, s.scale))?;
        Ok(out)
    }

    /// `(x - mean) / scale` in f64, rounded to f32, for every row of `x` (float64 [n, d]).
    fn transform<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        mean: &Bound<'py, PyAny>,
        scale: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (data, n, d) = matrix_f64(x, "x")?;
        let mean: Vec<f64> = vec_1d(mean, "mean", "float64")?;
        let scale: Vec<f64> = vec_1d(scale, "scale", "float64")?;
        if mean.len() != d || scale.len() != d {
            return Err(PortError::new_err(format!(
                "mean and scale must have {d} values (one per feature); got {} and {}",
                mean.len(),
                scale.len()
            )));
        }
        let rows: Vec<usize> = (0..n).collect();
        let s = scaler::Scaler {
            mean,
            var: Vec::new(),
            scale,
        };
        array2(py, scaler::transform(&data, d, &rows, &s), n, d)
    }

    /// The port's whole preparation: load, split, scale. Arrays in the split's row order.
    #[pyo3(signature = (path, label = "label", test_size = 0.2, seed = 42))]
    fn prepare<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        label: &str,
        test_size: f64,
        seed: u32,
    ) -> PyResult<Bound<'py, PyDict>> {
        let faults = &self.faults;
        let (ds, sp, sc, xtr, xte) = guarded(|| {
            let ds = data::load_csv(std::path::Path::new(path), label, faults)?;
            let d = ds.n_features();
            let sp = split::train_test_split(ds.n_rows, test_size, seed, faults)?;
            let all: Vec<usize> = (0..ds.n_rows).collect();
            let sc = scaler::fit(&ds.features, d, &all, &sp.train, faults);
            let xtr = scaler::transform(&ds.features, d, &sp.train, &sc);
            let xte = scaler::transform(&ds.features, d, &sp.test, &sc);
            Ok((ds, sp, sc, xtr, xte))
        })?;
        let d = ds.n_features();
        let pick = |rows: &[usize]| rows.iter().map(|&i| ds.labels[i]).collect::<Vec<f32>>();
        let out = PyDict::new(py);
        out.set_item("feature_names", ds.feature_names.clone())?;
        out.set_item("train_idx", usize_array(py, &sp.train))?;
        out.set_item("test_idx", usize_array(py, &sp.test))?;
        out.set_item("mean", array1(py, sc.mean))?;
        out.set_item("scale", array1(py, sc.scale))?;
        out.set_item("x_train", array2(py, xtr, sp.train.len(), d)?)?;
        out.set_item("y_train", array1(py, pick(&sp.train)))?;
        out.set_item("x_test", array2(py, xte, sp.test.len(), d)?)?;
        out.set_item("y_test", array1(py, pick(&sp.test)))?;
        Ok(out)
    }

    /// The hyperparameters this port really uses.
    fn effective_config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let mut c = TrainConfig::effective(&self.faults);
        c.epochs = self.epochs;
        let out = PyDict::new(py);
        out.set_item("lr", c.lr)?;
        out.set_item("beta1", c.beta1)?;
        out.set_item("beta2", c.beta2)?;
        out.set_item("eps", c.eps)?;
        out.set_item("weight_decay", c.weight_decay)?;
        out.set_item("clip_norm", c.clip_norm.map(f64::from))?;
        out.set_item("batch_size", c.batch_size)?;
        out.set_item("epochs", c.epochs)?;
        out.set_item("threshold", f64::from(c.threshold))?;
        out.set_item("test_size", c.test_size)?;
        out.set_item("split_seed", c.split_seed)?;
        for (k, v) in descriptive(&self.faults) {
            out.set_item(k, v)?;
        }
        Ok(out)
    }

    /// Parameters loaded into Burn's Linear layers and read back: (params, Burn layouts).
    fn roundtrip<'py>(
        &self,
        py: Python<'py>,
        params: &Bound<'py, PyAny>,
        n_features: usize,
    ) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>)> {
        let p = params_from(params, "params")?;
        let (back, layouts) = guarded(
            || with_backend!(self.backend, B => train::roundtrip::<B>(&p, n_features, &self.faults, &Default::default())),
        )?;
        let l = PyDict::new(py);
        for (name, shape) in layouts {
            l.set_item(name, shape)?;
        }
        Ok((params_to(py, &back)?, l))
    }

    /// Every layer's output: fc1, relu1, fc2, relu2, fc3 (logits), sigmoid (probabilities).
    fn forward<'py>(
        &self,
        py: Python<'py>,
        params: &Bound<'py, PyAny>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let p = params_from(params, "params")?;
        let x = matrix_f32(x, "x", p.0.first().and_then(|t| t.shape.get(1).copied()))?;
        let n = x.n;
        let out = guarded(
            || with_backend!(self.backend, B => train::forward::<B>(&p, &x, &self.faults, &Default::default())),
        )?;
        let d = PyDict::new(py);
        for (name, values, width) in out.layers {
            d.set_item(name, array2(py, values, n, width)?)?;
        }
        Ok(d)
    }

    /// (loss value, d loss / d p) for probabilities `p` and targets `y` (float32 [n]).
    fn loss<'py>(
        &self,
        py: Python<'py>,
        p: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
    ) -> PyResult<(f32, Bound<'py, PyArray1<f32>>)> {
        let p: Vec<f32> = vec_1d(p, "p", "float32")?;
        let y: Vec<f32> = vec_1d(y, "y", "float32")?;
        let (v, g) = guarded(
            || with_backend!(self.backend, B => train::loss_and_grad::<B>(p, y, &self.faults, &Default::default())),
        )?;
        Ok((v, array1(py, g)))
    }

    /// (loss, gradients by parameter name) for one batch.
    fn backward<'py>(
        &self,
        py: Python<'py>,
        params: &Bound<'py, PyAny>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
    ) -> PyResult<(f32, Bound<'py, PyDict>)> {
        let p = params_from(params, "params")?;
        let x = matrix_f32(x, "x", p.0.first().and_then(|t| t.shape.get(1).copied()))?;
        let y: Vec<f32> = vec_1d(y, "y", "float32")?;
        let (loss, g) = guarded(
            || with_backend!(self.backend, B => train::backward::<B>(&p, &x, &y, &self.faults, &Default::default())),
        )?;
        Ok((loss, params_to(py, &g)?))
    }

    /// One Adam step: (new params, new state). `state` is None or {"step", "exp_avg", "exp_avg_sq"}.
    #[pyo3(signature = (params, grads, state = None))]
    fn optimizer_step<'py>(
        &self,
        py: Python<'py>,
        params: &Bound<'py, PyAny>,
        grads: &Bound<'py, PyAny>,
        state: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>)> {
        let p = params_from(params, "params")?;
        let g = params_from(grads, "grads")?;
        let n_features =
            p.0.first()
                .and_then(|t| t.shape.get(1).copied())
                .unwrap_or(0);
        let st = match state {
            Some(s) if !s.is_none() => {
                let s = s
                    .cast::<PyDict>()
                    .map_err(|_| wrong("state", "a dict", s))?;
                let get = |k: &str| {
                    s.get_item(k)?
                        .ok_or_else(|| PortError::new_err(format!("state: missing '{k}'")))
                };
                Some(TorchAdamState {
                    step: get("step")?.extract::<u64>()?,
                    m: params_from(&get("exp_avg")?, "state['exp_avg']")?,
                    v: params_from(&get("exp_avg_sq")?, "state['exp_avg_sq']")?,
                })
            }
            _ => None,
        };
        let (np, ns) = guarded(|| {
            with_backend!(self.backend, B => train::optimizer_step::<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend>(
                &p, &g, st.as_ref(), n_features, &self.faults, &Default::default()))
        })?;
        Ok((params_to(py, &np)?, state_to(py, &ns)?))
    }

    /// Trains from `params` (or the port's own init) in `orders` (or its own shuffling).
    #[pyo3(signature = (x, y, params = None, orders = None, epochs = None, seed = 0, record_steps = 0, on_epoch = None))]
    #[allow(clippy::too_many_arguments)]
    fn train<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        params: Option<&Bound<'py, PyAny>>,
        orders: Option<&Bound<'py, PyAny>>,
        epochs: Option<usize>,
        seed: u64,
        record_steps: usize,
        on_epoch: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let x = matrix_f32(x, "x", None)?;
        let y: Vec<f32> = vec_1d(y, "y", "float32")?;
        let init = match params {
            Some(p) if !p.is_none() => Some(params_from(p, "params")?),
            _ => None,
        };
        let orders = match orders {
            Some(o) if !o.is_none() => {
                let arr = o
                    .cast::<PyArray2<i64>>()
                    .map_err(|_| wrong("orders", "an int64 array of shape [epochs, n]", o))?;
                let ro = arr.readonly();
                let a = ro.as_array();
                let mut rows = Vec::with_capacity(a.nrows());
                for row in a.rows() {
                    let mut r = Vec::with_capacity(row.len());
                    for &i in row {
                        r.push(usize::try_from(i).map_err(|_| {
                            PortError::new_err(format!("orders: negative index {i}"))
                        })?);
                    }
                    rows.push(r);
                }
                Some(rows)
            }
            _ => None,
        };
        // Progress only: a failing callback is ignored rather than aborting training.
        let on_epoch = on_epoch.map(|cb| {
            Box::new(move |epoch: usize, loss: f64| {
                Python::attach(|py| {
                    let _ = cb.call1(py, (epoch, loss));
                });
            }) as Box<dyn FnMut(usize, f64) + Send>
        });
        let epochs = epochs.unwrap_or(self.epochs);
        let req = TrainRequest {
            x,
            y,
            init,
            orders,
            epochs,
            seed,
            record_steps,
            on_epoch,
        };
        let backend = self.backend;
        let faults = self.faults.clone();
        let t = py.detach(move || guarded(|| with_backend!(backend, B => train::train::<B>(req, &faults, &Default::default()))))?;
        let out = PyDict::new(py);
        out.set_item("step_loss", array1(py, t.step_loss))?;
        out.set_item("epoch_loss", array1(py, t.epoch_loss))?;
        out.set_item("init", params_to(py, &t.init)?)?;
        out.set_item("final", params_to(py, &t.final_params)?)?;
        let list = |ps: &[TorchParams]| -> PyResult<Bound<'py, PyList>> {
            let l = PyList::empty(py);
            for p in ps {
                l.append(params_to(py, p)?)?;
            }
            Ok(l)
        };
        out.set_item("epoch_params", list(&t.epoch_params)?)?;
        out.set_item("step_params", list(&t.step_params)?)?;
        out.set_item("step_grads", list(&t.step_grads)?)?;
        let n = t.orders.first().map_or(0, Vec::len);
        let flat: Vec<i64> = t.orders.iter().flatten().map(|&i| i as i64).collect();
        out.set_item("orders", array2(py, flat, t.orders.len(), n)?)?;
        out.set_item("state", state_to(py, &t.final_state)?)?;
        Ok(out)
    }

    /// Accuracy as the port's metric computes it from given probabilities (float32 [n]).
    fn accuracy(&self, probs: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>) -> PyResult<f64> {
        let p: Vec<f32> = vec_1d(probs, "probs", "float32")?;
        let y: Vec<f32> = vec_1d(y, "y", "float32")?;
        guarded(|| {
            with_backend!(self.backend, B => train::accuracy_of::<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend>(
                p, &y, &self.faults, &Default::default()))
        })
    }

    /// (probabilities, accuracy as the port measures it) on `x`, `y`.
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        params: &Bound<'py, PyAny>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyArray1<f32>>, f64)> {
        let p = params_from(params, "params")?;
        let x = matrix_f32(x, "x", p.0.first().and_then(|t| t.shape.get(1).copied()))?;
        let y: Vec<f32> = vec_1d(y, "y", "float32")?;
        let (probs, acc) = guarded(|| {
            with_backend!(self.backend, B => train::evaluate::<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend>(
                &p, &x, &y, &self.faults, &Default::default()))
        })?;
        Ok((array1(py, probs), acc))
    }
}

fn state_to<'py>(py: Python<'py>, s: &TorchAdamState) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("step", s.step)?;
    d.set_item("exp_avg", params_to(py, &s.m)?)?;
    d.set_item("exp_avg_sq", params_to(py, &s.v)?)?;
    Ok(d)
}

/// The fault catalogue: name, stage, description, fix.
#[pyfunction]
fn faults(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let l = PyList::empty(py);
    for f in ALL {
        let i = f.info();
        let d = PyDict::new(py);
        d.set_item("name", i.name)?;
        d.set_item("stage", i.stage)?;
        d.set_item("description", i.description)?;
        d.set_item("fix", i.fix)?;
        l.append(d)?;
    }
    Ok(l)
}

#[pyfunction]
fn backends() -> Vec<&'static str> {
    BACKENDS.to_vec()
}

#[pyfunction]
fn user_port_faults() -> Vec<&'static str> {
    crate::faults::USER_PORT
        .iter()
        .map(|f| f.info().name)
        .collect()
}

#[pymodule]
#[pyo3(name = "_burn")]
fn burn_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Panics are caught and reported as PortError; keep the default hook from printing them too.
    std::panic::set_hook(Box::new(|_| {}));
    m.add_class::<PyPort>()?;
    m.add_function(wrap_pyfunction!(faults, m)?)?;
    m.add_function(wrap_pyfunction!(backends, m)?)?;
    m.add_function(wrap_pyfunction!(user_port_faults, m)?)?;
    m.add("PortError", m.py().get_type::<PortError>())?;
    m.add("DEFAULT_BACKEND", DEFAULT_BACKEND)?;
    Ok(())
}

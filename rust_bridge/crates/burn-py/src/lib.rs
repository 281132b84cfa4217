//! The in-process transport: PyO3 glue over `burn_diff::Port`, nothing else. numpy arrays in and
//! out; every call runs under `catch_panic`, and each error kind of the contract is raised as the
//! harness's own exception class for it (`harness/errors.py`), as polars maps its error kinds.
#![warn(missing_docs)]

use std::path::Path;

use burn_diff::backend::DEFAULT_BACKEND;
use burn_diff::error::{catch_panic, PortError as RustError, Result};
use burn_diff::{
    Matrix, Matrix64, NamedTensor, OptimState, Params, Port, TrainRequest, TrainTrace,
};
use burn_port::config::TrainConfig;
use burn_port::faults::{ALL, USER_PORT};
use burn_port::ClassifierPort;
use numpy::ndarray::{Array1, Array2, ArrayD};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyType};
use pyo3::PyErrArguments;

/// An exception of the harness's class for an error kind: `harness/errors.py` declares the hierarchy
/// once (PortInputError, PortShapeError, PortStructureError, PortPanic, PortUnsupported, all
/// `PortFailure`s), and the extension raises those classes themselves, as the subprocess transport does.
fn kind_err<A>(kind: &str, args: A) -> PyErr
where
    A: PyErrArguments + Send + Sync + 'static,
{
    Python::attach(|py| {
        match py
            .import("harness.errors")
            .and_then(|m| m.getattr(kind))
            .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from))
        {
            Ok(class) => PyErr::from_type(class, args),
            Err(e) => e,
        }
    })
}

fn input_err(msg: impl Into<String>) -> PyErr {
    kind_err("PortInputError", msg.into())
}

fn shape_err(msg: impl Into<String>) -> PyErr {
    kind_err("PortShapeError", msg.into())
}

fn to_py(e: RustError) -> PyErr {
    let msg = e.message().to_string();
    match e {
        RustError::Input(_) => input_err(msg),
        RustError::Shape(_) => shape_err(msg),
        RustError::Panic(_) => kind_err("PortPanic", msg),
        RustError::Unsupported(_) => kind_err("PortUnsupported", msg),
        // PortStructureError(message, parameters): the model's own parameters, name -> shape.
        RustError::Structure(_, params) => kind_err("PortStructureError", (msg, params)),
    }
}

fn guarded<T>(f: impl FnOnce() -> Result<T>) -> PyResult<T> {
    catch_panic(f).map_err(to_py)
}

fn describe(obj: &Bound<'_, PyAny>) -> String {
    let attr = |a: &str| obj.getattr(a).and_then(|d| d.str()).map(|s| s.to_string());
    match (attr("dtype"), attr("shape")) {
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
    shape_err(format!(
        "{name}: expected {expected}, got {}",
        describe(obj)
    ))
}

fn matrix_f32(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Matrix> {
    let arr = obj
        .cast::<PyArray2<f32>>()
        .map_err(|_| wrong(name, "a 2-D float32 array", obj))?;
    let ro = arr.readonly();
    let (n, d) = (ro.shape()[0], ro.shape()[1]);
    // Logical (row-major) order whatever the memory layout.
    Matrix::new(ro.as_array().iter().copied().collect(), n, d).map_err(to_py)
}

fn matrix_f64(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Matrix64> {
    let arr = obj
        .cast::<PyArray2<f64>>()
        .map_err(|_| wrong(name, "a 2-D float64 array", obj))?;
    let ro = arr.readonly();
    let (n, d) = (ro.shape()[0], ro.shape()[1]);
    Matrix64::new(ro.as_array().iter().copied().collect(), n, d).map_err(to_py)
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

fn index(i: i64, name: &str) -> PyResult<usize> {
    usize::try_from(i).map_err(|_| input_err(format!("{name}: negative index {i}")))
}

fn indices(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<usize>> {
    vec_1d::<i64>(obj, name, "int64")?
        .into_iter()
        .map(|i| index(i, name))
        .collect()
}

/// A dict of name to float32 array, in the dict's order.
fn params_from(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Params> {
    let dict = obj
        .cast::<PyDict>()
        .map_err(|_| wrong(name, "a dict of parameter name to float32 array", obj))?;
    let mut out = Vec::with_capacity(dict.len());
    for (k, v) in dict.iter() {
        let key: String = k
            .extract()
            .map_err(|_| input_err(format!("{name}: keys must be strings")))?;
        let label = format!("{name}['{key}']");
        let arr = v
            .cast::<PyArrayDyn<f32>>()
            .map_err(|_| wrong(&label, "a float32 array", &v))?;
        let ro = arr.readonly();
        out.push(NamedTensor {
            name: key,
            shape: ro.shape().to_vec(),
            data: ro.as_array().iter().copied().collect(),
        });
    }
    Ok(Params(out))
}

fn params_to<'py>(py: Python<'py>, p: &Params) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for t in &p.0 {
        let arr = ArrayD::from_shape_vec(t.shape.clone(), t.data.clone())
            .map_err(|e| shape_err(e.to_string()))?;
        d.set_item(&t.name, arr.into_pyarray(py))?;
    }
    Ok(d)
}

fn state_from(obj: &Bound<'_, PyAny>) -> PyResult<Option<OptimState>> {
    if obj.is_none() {
        return Ok(None);
    }
    let s = obj
        .cast::<PyDict>()
        .map_err(|_| wrong("state", "a dict", obj))?;
    let step: u64 = match s.get_item("step")? {
        Some(v) => v
            .extract()
            .map_err(|_| input_err("state['step'] must be a whole number >= 0"))?,
        None => return Err(shape_err("state: missing 'step'")),
    };
    let mut slots = Vec::new();
    for (k, v) in s.iter() {
        let key: String = k.extract()?;
        if key != "step" {
            slots.push((key.clone(), params_from(&v, &format!("state['{key}']"))?));
        }
    }
    Ok(Some(OptimState { step, slots }))
}

fn state_to<'py>(py: Python<'py>, s: &OptimState) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("step", s.step)?;
    for (slot, p) in &s.slots {
        d.set_item(slot, params_to(py, p)?)?;
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
        .map_err(|e| shape_err(e.to_string()))?
        .into_pyarray(py))
}

fn array1<T: numpy::Element>(py: Python<'_>, v: Vec<T>) -> Bound<'_, PyArray1<T>> {
    Array1::from_vec(v).into_pyarray(py)
}

fn usize_array<'py>(py: Python<'py>, v: &[usize]) -> Bound<'py, PyArray1<i64>> {
    array1(py, v.iter().map(|&i| i as i64).collect())
}

fn trace_to<'py>(py: Python<'py>, t: TrainTrace) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("step_loss", array1(py, t.step_loss))?;
    out.set_item("epoch_loss", array1(py, t.epoch_loss))?;
    out.set_item("init", params_to(py, &t.init)?)?;
    out.set_item("final", params_to(py, &t.final_params)?)?;
    let list = |ps: &[Params]| -> PyResult<Bound<'py, PyList>> {
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
    out.set_item("state", state_to(py, &t.state)?)?;
    Ok(out)
}

/// Train and test row indices.
type IndexPair<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i64>>);

/// The Burn port with one backend and one fault set, as Python sees it.
#[pyclass(name = "Port", module = "harness._burn", frozen)]
struct PyPort {
    port: ClassifierPort,
    backend_name: String,
}

#[pymethods]
impl PyPort {
    #[new]
    /// `epochs`: the port's own (its `TrainConfig::reference()`) when not given.
    #[pyo3(signature = (backend = DEFAULT_BACKEND, fault = "", epochs = None))]
    fn new(backend: &str, fault: &str, epochs: Option<usize>) -> PyResult<Self> {
        let epochs = epochs.unwrap_or(TrainConfig::reference().epochs);
        Ok(Self {
            port: ClassifierPort::new(backend, fault, epochs).map_err(to_py)?,
            backend_name: backend.to_string(),
        })
    }

    #[getter]
    fn backend(&self) -> &str {
        &self.backend_name
    }

    #[getter]
    fn faults(&self) -> Vec<String> {
        self.port.info().faults
    }

    /// Parsed CSV: feature names, dtypes, features (float64 [n, d]) and labels (float32 [n]).
    fn load_csv<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        label: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let t = guarded(|| self.port.load_csv(Path::new(path), label))?;
        let out = PyDict::new(py);
        out.set_item("feature_names", t.feature_names)?;
        out.set_item("dtypes", t.dtypes)?;
        out.set_item("label_name", t.label_name)?;
        out.set_item(
            "features",
            array2(py, t.features.data, t.features.n, t.features.d)?,
        )?;
        out.set_item("labels", array1(py, t.labels))?;
        Ok(out)
    }

    /// (train indices, test indices).
    fn split<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        test_size: f64,
        seed: u32,
    ) -> PyResult<IndexPair<'py>> {
        let s = guarded(|| self.port.split(n, test_size, seed))?;
        Ok((usize_array(py, &s.train), usize_array(py, &s.test)))
    }

    /// Scaler statistics fitted on `x` (float64 [n, d]); `train_rows` are the training rows.
    fn fit_scaler<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        train_rows: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let x = matrix_f64(x, "x")?;
        let train = indices(train_rows, "train_rows")?;
        let s = guarded(|| self.port.fit_scaler(&x, &train))?;
        let out = PyDict::new(py);
        out.set_item("mean", array1(py, s.mean))?;
        out.set_item("var", array1(py, s.var))?;
        out.set_item("scale", array1(py, s.scale))?;
        Ok(out)
    }

    /// `(x - mean) / scale` for every row of `x` (float64 [n, d]), as float32.
    fn transform<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        mean: &Bound<'py, PyAny>,
        scale: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let x = matrix_f64(x, "x")?;
        let mean: Vec<f64> = vec_1d(mean, "mean", "float64")?;
        let scale: Vec<f64> = vec_1d(scale, "scale", "float64")?;
        let m = guarded(|| self.port.transform(&x, &mean, &scale))?;
        array2(py, m.data, m.n, m.d)
    }

    /// The port's whole preparation: load, split, scale. Arrays in the split's row order.
    fn prepare<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        label: &str,
        test_size: f64,
        seed: u32,
    ) -> PyResult<Bound<'py, PyDict>> {
        let r = guarded(|| self.port.prepare(Path::new(path), label, test_size, seed))?;
        let out = PyDict::new(py);
        out.set_item("feature_names", r.feature_names)?;
        out.set_item("train_idx", usize_array(py, &r.split.train))?;
        out.set_item("test_idx", usize_array(py, &r.split.test))?;
        out.set_item("mean", array1(py, r.scaler.mean))?;
        out.set_item("scale", array1(py, r.scaler.scale))?;
        out.set_item(
            "x_train",
            array2(py, r.x_train.data, r.x_train.n, r.x_train.d)?,
        )?;
        out.set_item("y_train", array1(py, r.y_train))?;
        out.set_item("x_test", array2(py, r.x_test.data, r.x_test.n, r.x_test.d)?)?;
        out.set_item("y_test", array1(py, r.y_test))?;
        Ok(out)
    }

    /// The hyperparameters this port really uses, as a JSON object string.
    fn effective_config_json(&self) -> PyResult<String> {
        let c = guarded(|| self.port.effective_config())?;
        Ok(serde_json::Value::Object(c).to_string())
    }

    /// Parameters loaded into Burn's modules and read back: (params, Burn layouts).
    fn roundtrip<'py>(
        &self,
        py: Python<'py>,
        params: &Bound<'py, PyAny>,
        n_features: usize,
    ) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>)> {
        let p = params_from(params, "params")?;
        let r = guarded(|| self.port.roundtrip(&p, n_features))?;
        let l = PyDict::new(py);
        for (name, shape) in r.layouts {
            l.set_item(name, shape)?;
        }
        Ok((params_to(py, &r.params)?, l))
    }

    /// Every layer's output, by layer name, in forward order.
    fn forward<'py>(
        &self,
        py: Python<'py>,
        params: &Bound<'py, PyAny>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let p = params_from(params, "params")?;
        let x = matrix_f32(x, "x")?;
        let acts = guarded(|| self.port.forward(&p, &x))?;
        let d = PyDict::new(py);
        for (name, m) in acts.0 {
            d.set_item(name, array2(py, m.data, m.n, m.d)?)?;
        }
        Ok(d)
    }

    /// (loss value, d loss / d p) for predictions `p` and targets `y` (float32 [n]).
    fn loss<'py>(
        &self,
        py: Python<'py>,
        p: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
    ) -> PyResult<(f32, Bound<'py, PyArray1<f32>>)> {
        let p: Vec<f32> = vec_1d(p, "p", "float32")?;
        let y: Vec<f32> = vec_1d(y, "y", "float32")?;
        let (v, g) = guarded(|| self.port.loss(&p, &y))?;
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
        let x = matrix_f32(x, "x")?;
        let y: Vec<f32> = vec_1d(y, "y", "float32")?;
        let (loss, g) = guarded(|| self.port.backward(&p, &x, &y))?;
        Ok((loss, params_to(py, &g)?))
    }

    /// One optimizer step: (new params, new state). `state` is None or {"step", slot: {name: array}}.
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
        let st = match state {
            Some(s) => state_from(s)?,
            None => None,
        };
        let (np, ns) = guarded(|| self.port.optimizer_step(&p, &g, st.as_ref()))?;
        Ok((params_to(py, &np)?, state_to(py, &ns)?))
    }

    /// Trains from `params` (or the port's own init) in `orders` (or its own shuffling).
    #[pyo3(signature = (x, y, params = None, orders = None, epochs = None, seed = 0, record_steps = 0, on_epoch = None, dropout = false))]
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
        dropout: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let x = matrix_f32(x, "x")?;
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
                let rows = ro
                    .as_array()
                    .rows()
                    .into_iter()
                    .map(|row| {
                        row.iter()
                            .map(|&i| index(i, "orders"))
                            .collect::<PyResult<Vec<_>>>()
                    })
                    .collect::<PyResult<Vec<_>>>()?;
                Some(rows)
            }
            _ => None,
        };
        let req = TrainRequest {
            x,
            y,
            init,
            orders,
            epochs: epochs.unwrap_or(self.port.epochs),
            seed,
            record_steps,
            dropout,
        };
        let port = &self.port;
        let trace = py.detach(move || {
            // Progress only: a failing callback is ignored rather than aborting training.
            let mut progress = |epoch: usize, loss: f64| {
                if let Some(cb) = &on_epoch {
                    Python::attach(|py| {
                        let _ = cb.call1(py, (epoch, loss));
                    });
                }
            };
            guarded(|| port.train(req, &mut progress))
        })?;
        trace_to(py, trace)
    }

    /// Accuracy as the port's metric computes it from given probabilities (float32 [n]).
    fn accuracy(&self, probs: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>) -> PyResult<f64> {
        let p: Vec<f32> = vec_1d(probs, "probs", "float32")?;
        let y: Vec<f32> = vec_1d(y, "y", "float32")?;
        guarded(|| self.port.accuracy(&p, &y))
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
        let x = matrix_f32(x, "x")?;
        let y: Vec<f32> = vec_1d(y, "y", "float32")?;
        let (probs, acc) = guarded(|| self.port.evaluate(&p, &x, &y))?;
        Ok((array1(py, probs), acc))
    }
}

/// The fault catalogue: name, stage, description, fix, outcome and the cause the diagnosis must name.
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
        d.set_item("outcome", i.outcome)?;
        d.set_item("cause", i.cause)?;
        l.append(d)?;
    }
    Ok(l)
}

/// The backends this build has.
#[pyfunction]
fn backends() -> Vec<&'static str> {
    burn_diff::backend::backends()
}

/// The faults of the original report, all at once.
#[pyfunction]
fn user_port_faults() -> Vec<&'static str> {
    USER_PORT.iter().map(|f| f.info().name).collect()
}

#[pymodule]
#[pyo3(name = "_burn")]
fn burn_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Panics are caught and raised as PortPanic; keep the default hook from printing them too.
    std::panic::set_hook(Box::new(|_| {}));
    m.add_class::<PyPort>()?;
    m.add_function(wrap_pyfunction!(faults, m)?)?;
    m.add_function(wrap_pyfunction!(backends, m)?)?;
    m.add_function(wrap_pyfunction!(user_port_faults, m)?)?;
    m.add("DEFAULT_BACKEND", DEFAULT_BACKEND)?;
    // The methods `serve` answers: the one list, for Python code that speaks for a Rust port.
    m.add("METHODS", burn_diff::serve::METHODS.to_vec())?;
    Ok(())
}

//! The in-process transport: PyO3 glue over `burn_diff::Port`, nothing else. One method, `call`,
//! takes the frame the subprocess transport would send (method, JSON arguments, safetensors
//! payload) and answers through `burn_diff::call`, the dispatch `serve` uses: both transports
//! decode the same frames in the same Python code (`harness/transport/wire.py`). Every call runs
//! under `catch_panic`, and each error kind of the contract is raised as the harness's own
//! exception class for it (`harness/errors.py`), as polars maps its error kinds.
#![warn(missing_docs)]

use burn_diff::backend::DEFAULT_BACKEND;
use burn_diff::error::{catch_panic, PortError as RustError};
use burn_diff::protocol::{Payload, PROTOCOL_VERSION};
use burn_diff::Port;
use burn_port::config::TrainConfig;
use burn_port::faults::{ALL, USER_PORT};
use burn_port::ClassifierPort;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyType};
use pyo3::PyErrArguments;
use serde_json::Value;

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

fn to_py(e: RustError) -> PyErr {
    let msg = e.message().to_string();
    match e {
        RustError::Input(_) => kind_err("PortInputError", msg),
        RustError::Shape(_) => kind_err("PortShapeError", msg),
        RustError::Panic(_) => kind_err("PortPanic", msg),
        RustError::Unsupported(_) => kind_err("PortUnsupported", msg),
        // PortStructureError(message, parameters): the model's own parameters, name -> shape.
        RustError::Structure(_, params) => kind_err("PortStructureError", (msg, params)),
    }
}

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

    /// Answers one request as `burn_diff::serve` would: `method`, its arguments as a JSON object and
    /// its tensors as a safetensors buffer, to (the result object as JSON, the result tensors as a
    /// safetensors buffer). `on_progress(epoch, loss)` hears each finished epoch of a `train`; a
    /// failing callback is ignored, as progress must never abort training. The GIL is released while
    /// the port works.
    #[pyo3(signature = (method, args, payload, on_progress = None))]
    fn call<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        args: &str,
        payload: &[u8],
        on_progress: Option<Py<PyAny>>,
    ) -> PyResult<(String, Bound<'py, PyBytes>)> {
        let args = match serde_json::from_str::<Value>(args) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(kind_err(
                    "PortInputError",
                    format!("'{method}': the arguments must be a JSON object, got {args:?}"),
                ))
            }
        };
        let payload = Payload::from_bytes(payload).map_err(|e| {
            kind_err(
                "PortInputError",
                format!("'{method}': a payload that is not safetensors ({e})"),
            )
        })?;
        let port = &self.port;
        let (result, out) = py
            .detach(move || {
                let mut progress = |epoch: usize, loss: f64| {
                    if let Some(cb) = &on_progress {
                        Python::attach(|py| {
                            let _ = cb.call1(py, (epoch, loss));
                        });
                    }
                };
                catch_panic(|| burn_diff::call(port, method, &args, &payload, &mut progress))
                    .and_then(|(result, out)| {
                        let bytes = out.to_bytes().map_err(|e| {
                            RustError::Shape(format!(
                                "'{method}': cannot encode the answer's tensors ({e})"
                            ))
                        })?;
                        Ok((result, bytes))
                    })
            })
            .map_err(to_py)?;
        Ok((result.to_string(), PyBytes::new(py, &out)))
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
    m.add("PROTOCOL", PROTOCOL_VERSION)?;
    Ok(())
}

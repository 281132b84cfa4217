//! The subprocess transport's server: `fn main() { burn_diff::serve(MyPort::new()) }` makes a port
//! the harness can drive with `--port-cmd`. One request at a time, answered in order; a failing or
//! panicking method answers with its error kind and the server stays up.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use serde_json::{json, Map, Value};

use crate::contract::{OptimState, Port, TrainRequest, TrainTrace};
use crate::error::{catch_panic, input, PortError, Result};
use crate::protocol::{read_frame, write_frame, Payload, PROTOCOL_VERSION};
use crate::tensor::Params;

/// The methods every server answers (`docs/protocol.md`).
pub const METHODS: &[&str] = &[
    "hello",
    "load_csv",
    "split",
    "fit_scaler",
    "transform",
    "prepare",
    "effective_config",
    "roundtrip",
    "forward",
    "loss",
    "backward",
    "optimizer_step",
    "train",
    "evaluate",
    "accuracy",
    "shutdown",
];

/// The protocol's own channel. Everything the port's code prints to standard output would corrupt
/// the frames, so the server keeps the real standard output for itself and points file
/// descriptor 1 at standard error: a stray `println!` in a port lands in the harness's log.
fn protocol_output() -> io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::fd::FromRawFd;
        // SAFETY: plain descriptor duplication on the process's own standard streams.
        unsafe {
            let fd = libc::dup(1);
            if fd < 0 || libc::dup2(2, 1) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(File::from_raw_fd(fd))
        }
    }
    #[cfg(not(unix))]
    {
        Err(io::Error::other(
            "the subprocess transport needs a unix system",
        ))
    }
}

fn args_of(header: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    header
        .get("args")
        .and_then(Value::as_object)
        .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

fn arg_str<'a>(args: &'a Map<String, Value>, key: &str) -> Result<&'a str> {
    args.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| PortError::Input(format!("argument '{key}' must be a string")))
}

fn arg_u64(args: &Map<String, Value>, key: &str) -> Result<u64> {
    args.get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| PortError::Input(format!("argument '{key}' must be a whole number >= 0")))
}

fn arg_f64(args: &Map<String, Value>, key: &str) -> Result<f64> {
    args.get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| PortError::Input(format!("argument '{key}' must be a number")))
}

fn state_in(p: &Payload, step: u64) -> Result<Option<OptimState>> {
    if step == 0 {
        return Ok(None);
    }
    let mut slots: Vec<(String, Params)> = Vec::new();
    for name in p.0.keys() {
        if let Some(rest) = name.strip_prefix("state/") {
            if let Some((slot, _)) = rest.split_once('/') {
                if !slots.iter().any(|(s, _)| s == slot) {
                    slots.push((slot.to_string(), p.params(&format!("state/{slot}"))?));
                }
            }
        }
    }
    Ok(Some(OptimState { step, slots }))
}

fn state_out(out: &mut Payload, s: &OptimState) {
    for (slot, params) in &s.slots {
        out.put_params(&format!("state/{slot}"), params);
    }
}

fn trace_out(t: &TrainTrace) -> (Value, Payload) {
    let mut out = Payload::default();
    out.put_f32("step_loss", vec![t.step_loss.len()], &t.step_loss);
    out.put_f64("epoch_loss", vec![t.epoch_loss.len()], &t.epoch_loss);
    out.put_params("init", &t.init);
    out.put_params("final", &t.final_params);
    for (e, p) in t.epoch_params.iter().enumerate() {
        out.put_params(&format!("epoch_params/{e}"), p);
    }
    for (k, p) in t.step_params.iter().enumerate() {
        out.put_params(&format!("step_params/{k}"), p);
    }
    for (k, p) in t.step_grads.iter().enumerate() {
        out.put_params(&format!("step_grads/{k}"), p);
    }
    let n = t.orders.first().map_or(0, Vec::len);
    let flat: Vec<i64> = t.orders.iter().flatten().map(|&i| i as i64).collect();
    out.put_i64("orders", vec![t.orders.len(), n], &flat);
    state_out(&mut out, &t.state);
    (
        json!({"state_step": t.state.step, "epochs": t.epoch_params.len(), "recorded": t.step_params.len()}),
        out,
    )
}

/// A float for a header: JSON has no NaN or infinity, so those travel as the strings the protocol
/// names ("NaN", "Infinity", "-Infinity"); a diverging loss must not arrive as null.
fn float(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v.is_infinite() {
        json!(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(v)
    }
}

fn as_i64(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&i| i as i64).collect()
}

/// Answers one request, whichever transport carried it: `method` with its JSON `args` and its
/// tensors `p` gives (the result object, the result tensors). `progress` hears each finished epoch
/// of a `train`. `serve` answers each frame with it, and the in-process extension each call (crate
/// `burn-py`), so both transports decode the same frames: a new method is one arm here.
/// Panics are the caller's to catch ([`catch_panic`]).
pub fn call(
    port: &dyn Port,
    method: &str,
    args: &Map<String, Value>,
    p: &Payload,
    progress: &mut (dyn FnMut(usize, f64) + Send),
) -> Result<(Value, Payload)> {
    let mut out = Payload::default();
    let result = match method {
        "hello" => {
            let info = port.info();
            json!({
                "protocol": PROTOCOL_VERSION,
                "name": info.name,
                "backend": info.backend,
                "faults": info.faults,
                "methods": METHODS,
            })
        }
        "load_csv" => {
            let t = port.load_csv(Path::new(arg_str(args, "path")?), arg_str(args, "label")?)?;
            out.put_f64(
                "features",
                vec![t.features.n, t.features.d],
                &t.features.data,
            );
            out.put_f32("labels", vec![t.labels.len()], &t.labels);
            json!({"feature_names": t.feature_names, "dtypes": t.dtypes, "label_name": t.label_name})
        }
        "split" => {
            let seed = u32::try_from(arg_u64(args, "seed")?)
                .or_else(|_| input("argument 'seed' must fit in 32 bits"))?;
            let s = port.split(
                arg_u64(args, "n")? as usize,
                arg_f64(args, "test_size")?,
                seed,
            )?;
            out.put_i64("train", vec![s.train.len()], &as_i64(&s.train));
            out.put_i64("test", vec![s.test.len()], &as_i64(&s.test));
            json!({})
        }
        "fit_scaler" => {
            let s = port.fit_scaler(&p.matrix64("x")?, &p.indices("train_rows")?)?;
            out.put_f64("mean", vec![s.mean.len()], &s.mean);
            out.put_f64("var", vec![s.var.len()], &s.var);
            out.put_f64("scale", vec![s.scale.len()], &s.scale);
            json!({})
        }
        "transform" => {
            let x = port.transform(&p.matrix64("x")?, &p.vec_f64("mean")?, &p.vec_f64("scale")?)?;
            out.put_matrix("x", &x);
            json!({})
        }
        "prepare" => {
            let seed = u32::try_from(arg_u64(args, "seed")?)
                .or_else(|_| input("argument 'seed' must fit in 32 bits"))?;
            let r = port.prepare(
                Path::new(arg_str(args, "path")?),
                arg_str(args, "label")?,
                arg_f64(args, "test_size")?,
                seed,
            )?;
            out.put_i64(
                "train_idx",
                vec![r.split.train.len()],
                &as_i64(&r.split.train),
            );
            out.put_i64("test_idx", vec![r.split.test.len()], &as_i64(&r.split.test));
            out.put_f64("mean", vec![r.scaler.mean.len()], &r.scaler.mean);
            out.put_f64("scale", vec![r.scaler.scale.len()], &r.scaler.scale);
            out.put_matrix("x_train", &r.x_train);
            out.put_f32("y_train", vec![r.y_train.len()], &r.y_train);
            out.put_matrix("x_test", &r.x_test);
            out.put_f32("y_test", vec![r.y_test.len()], &r.y_test);
            json!({"feature_names": r.feature_names})
        }
        "effective_config" => json!({"config": port.effective_config()?}),
        "roundtrip" => {
            let r = port.roundtrip(&p.params("params")?, arg_u64(args, "n_features")? as usize)?;
            out.put_params("params", &r.params);
            let layouts: Map<String, Value> =
                r.layouts.into_iter().map(|(k, s)| (k, json!(s))).collect();
            json!({"layouts": layouts})
        }
        "forward" => {
            let acts = port.forward(&p.params("params")?, &p.matrix("x")?)?;
            let mut names = Vec::new();
            for (name, m) in &acts.0 {
                out.put_matrix(format!("act/{name}"), m);
                names.push(name.clone());
            }
            json!({"layers": names})
        }
        "loss" => {
            let (v, g) = port.loss(&p.vec_f32("p")?, &p.vec_f32("y")?)?;
            out.put_f32("grad", vec![g.len()], &g);
            json!({"loss": float(f64::from(v))})
        }
        "backward" => {
            let (v, g) = port.backward(&p.params("params")?, &p.matrix("x")?, &p.vec_f32("y")?)?;
            out.put_params("grads", &g);
            json!({"loss": float(f64::from(v))})
        }
        "optimizer_step" => {
            let state = state_in(p, arg_u64(args, "state_step").unwrap_or(0))?;
            let (params, s) =
                port.optimizer_step(&p.params("params")?, &p.params("grads")?, state.as_ref())?;
            out.put_params("params", &params);
            state_out(&mut out, &s);
            json!({"state_step": s.step})
        }
        "train" => {
            let flag = |k: &str| args.get(k).and_then(Value::as_bool).unwrap_or(false);
            let orders = if flag("has_orders") {
                let (s, v) = p.i64s("orders")?;
                let n = s.get(1).copied().unwrap_or(0);
                let rows: Result<Vec<Vec<usize>>> = v
                    .chunks(n.max(1))
                    .map(|c| {
                        c.iter()
                            .map(|&i| {
                                usize::try_from(i)
                                    .or_else(|_| input(format!("orders: negative index {i}")))
                            })
                            .collect()
                    })
                    .collect();
                Some(rows?)
            } else {
                None
            };
            let req = TrainRequest {
                x: p.matrix("x")?,
                y: p.vec_f32("y")?,
                init: if flag("has_init") {
                    Some(p.params("init")?)
                } else {
                    None
                },
                orders,
                epochs: arg_u64(args, "epochs")? as usize,
                seed: arg_u64(args, "seed")?,
                record_steps: arg_u64(args, "record_steps").unwrap_or(0) as usize,
                dropout: flag("dropout"),
            };
            let t = port.train(req, progress)?;
            let (h, tensors) = trace_out(&t);
            out = tensors;
            h
        }
        "evaluate" => {
            let (probs, acc) =
                port.evaluate(&p.params("params")?, &p.matrix("x")?, &p.vec_f32("y")?)?;
            out.put_f32("probs", vec![probs.len()], &probs);
            json!({"accuracy": float(acc)})
        }
        "accuracy" => {
            json!({"accuracy": float(port.accuracy(&p.vec_f32("probs")?, &p.vec_f32("y")?)?)})
        }
        other => {
            return Err(PortError::Unsupported(format!(
                "unknown method '{other}'; this port speaks protocol {PROTOCOL_VERSION}"
            )))
        }
    };
    Ok((result, out))
}

/// An error answer's `error` object: kind and message, and for a structure error the model's own
/// parameters (`docs/protocol.md`).
fn error_json(e: &PortError) -> Value {
    let mut err = json!({"kind": e.kind(), "message": e.message()});
    if let PortError::Structure(_, params) = e {
        err["parameters"] = params
            .iter()
            .map(|(name, shape)| json!({"name": name, "shape": shape}))
            .collect();
    }
    err
}

/// Serves `port` on standard input and output until `shutdown` or the end of input. Returns the
/// process's exit code: 0 after a clean end, 2 when the input was not a frame.
pub fn serve<P: Port>(port: P) -> ExitCode {
    // A panic is answered as an error frame; one line on stderr says where, for the port's author.
    std::panic::set_hook(Box::new(|info| {
        let msg = info.to_string().replace('\n', " ");
        eprintln!("port panicked: {msg}");
    }));
    let out = match protocol_output() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot set up the protocol channel: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = BufWriter::new(out);
    let mut input = BufReader::new(io::stdin().lock());
    loop {
        let (header, payload) = match read_frame(&mut input) {
            Ok(Some(f)) => f,
            Ok(None) => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: the harness sent something that is not a frame: {e}");
                return ExitCode::from(2);
            }
        };
        let id = header.get("id").cloned().unwrap_or(Value::Null);
        let method = header
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if method == "shutdown" {
            let _ = write_frame(
                &mut out,
                &json!({"id": id, "ok": true, "result": {}}),
                &Payload::default(),
            );
            return ExitCode::SUCCESS;
        }
        let args = args_of(&header).clone();
        let answer = {
            // Progress frames go out as they happen; `out` is only borrowed for the call.
            let out_ref = &mut out;
            let id_ref = &id;
            let mut progress = |epoch: usize, loss: f64| {
                let frame =
                    json!({"id": id_ref, "event": "progress", "epoch": epoch, "loss": float(loss)});
                // Progress is best effort: a broken pipe shows up on the final answer.
                let _ = write_frame(out_ref, &frame, &Payload::default());
            };
            catch_panic(|| call(&port, &method, &args, &payload, &mut progress))
        };
        let (header, payload) = match answer {
            Ok((result, tensors)) => (json!({"id": id, "ok": true, "result": result}), tensors),
            Err(e) => (
                json!({"id": id, "ok": false, "error": error_json(&e)}),
                Payload::default(),
            ),
        };
        if let Err(e) = write_frame(&mut out, &header, &payload) {
            eprintln!("error: cannot answer the harness: {e}");
            return ExitCode::from(2);
        }
        let _ = io::stderr().flush();
    }
}

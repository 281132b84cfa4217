//! Burn's optimizer state and gradients in PyTorch's terms. The state goes in and out through
//! Burn's optimizer record (burnpack bytes), the way a Burn user saves and resumes an optimizer:
//! nothing here re-implements an optimizer's arithmetic. Gradients become `GradientsParams`
//! keyed by the module's parameter ids.
//!
//! Burn names each parameter's state `{param_id}.momentum.moment_1` / `moment_2` with the step
//! count in the scalar `{param_id}.momentum.time` (burn-optim/src/optim/adam.rs,
//! `AdaptiveMomentumState`); PyTorch calls them `exp_avg`, `exp_avg_sq` and `step`. Burn's AdamW
//! records the same state under the same names.
//!
//! A model with buffers (tensors no optimizer updates: BatchNorm's running statistics, which
//! Burn's module visitors see like parameters) uses the `_except` variants, which take the
//! buffers' PyTorch names: gradients and optimizer slots then cover the trainable parameters only.

use std::collections::{BTreeMap, BTreeSet};

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::store::burn_pack::{self, Reader, Scalar, Writer};
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot};
use burn::tensor::{Tensor, TensorData};

use crate::contract::OptimState;
use crate::error::{shape, PortError, Result};
use crate::layout::{burn_layout, to_burn, torch_layout, torch_params, unpack, values};
use crate::tensor::{NamedTensor, Params};

/// PyTorch's names of Adam's slots and Burn's field names for them.
const SLOTS: [(&str, &str); 2] = [("exp_avg", "moment_1"), ("exp_avg_sq", "moment_2")];

/// Parameter id to name, from the model's own paths.
pub fn param_names<M: ModuleSnapshot>(model: &M) -> BTreeMap<u64, String> {
    model
        .collect(None, None, true)
        .into_iter()
        .filter_map(|t| t.param_id.map(|id| (id, t.name.clone())))
        .collect()
}

fn name_to_id<M: ModuleSnapshot>(model: &M) -> BTreeMap<String, u64> {
    param_names(model)
        .into_iter()
        .map(|(id, n)| (n, id))
        .collect()
}

/// Gradients (PyTorch layout, by name) as Burn's `GradientsParams` for `model`.
pub fn gradients<M: ModuleSnapshot + Clone>(model: &M, grads: &Params) -> Result<GradientsParams> {
    gradients_except(model, grads, &[])
}

/// [`gradients`] for a model with buffers: tensors the model holds and no optimizer updates, named
/// by their PyTorch names in `buffers` (BatchNorm's `running_mean` and `running_var`: Burn keeps
/// them as `RunningState`, which module visitors see like parameters, burn-core
/// src/module/param/running.rs). `grads` must hold every other tensor of the model; a buffer it
/// holds is ignored. No gradient is registered for a buffer, so `ModuleOptimizer::step` leaves it
/// as it is.
pub fn gradients_except<M: ModuleSnapshot + Clone>(
    model: &M,
    grads: &Params,
    buffers: &[&str],
) -> Result<GradientsParams> {
    let skip = buffer_ids(model, buffers)?;
    let burn = burn_layout(model, &fill_torch_buffers(model, grads, buffers)?)?;
    let ids = name_to_id(model);
    let device = first_device(model);
    let mut out = GradientsParams::new();
    for t in &burn.0 {
        let id = ids[&t.name];
        if skip.contains(&id) {
            continue;
        }
        // Every parameter rank burn-nn's layers have: 1 (biases, norms), 2 (Linear, Embedding, the
        // recurrent gates), 3 (Conv1d), 4 (Conv2d), 5 (Conv3d).
        match t.shape.len() {
            1 => out.register::<1>(id.into(), to_burn(t, &device)?),
            2 => out.register::<2>(id.into(), to_burn(t, &device)?),
            3 => out.register::<3>(id.into(), to_burn(t, &device)?),
            4 => out.register::<4>(id.into(), to_burn(t, &device)?),
            5 => out.register::<5>(id.into(), to_burn(t, &device)?),
            r => {
                return shape(format!(
                    "'{}': rank {r} parameters are not supported",
                    t.name
                ))
            }
        }
    }
    Ok(out)
}

/// The ids of the model's tensors named (PyTorch names) in `buffers`; a name the model does not
/// have is a [`PortError::Shape`].
fn buffer_ids<M: ModuleSnapshot>(model: &M, buffers: &[&str]) -> Result<BTreeSet<u64>> {
    if buffers.is_empty() {
        return Ok(BTreeSet::new());
    }
    let torch: BTreeMap<String, u64> = model
        .collect(None, Some(Box::new(BurnToPyTorchAdapter)), true)
        .into_iter()
        .filter_map(|t| t.param_id.map(|id| (t.name.clone(), id)))
        .collect();
    buffers
        .iter()
        .map(|b| {
            torch
                .get(*b)
                .copied()
                .ok_or_else(|| PortError::Shape(format!("the model has no buffer '{b}'")))
        })
        .collect()
}

/// `params` (PyTorch layout) without the named buffers, then with the model's own value of each:
/// what the layout conversions, which need every tensor of the model, accept.
///
/// The own value, not zeros or a placeholder: the conversions load into `model.clone()`, and a
/// clone shares its `RunningState` values with the original (an `Arc<Mutex<_>>`, burn-core
/// src/module/param/running.rs:42-47), so whatever a buffer is given is written into the model's
/// own running statistics.
fn fill_torch_buffers<M: ModuleSnapshot>(
    model: &M,
    params: &Params,
    buffers: &[&str],
) -> Result<Params> {
    if buffers.is_empty() {
        return Ok(params.clone());
    }
    let own = torch_params(model)?;
    let mut out: Vec<NamedTensor> = params
        .0
        .iter()
        .filter(|t| !buffers.contains(&t.name.as_str()))
        .cloned()
        .collect();
    for b in buffers {
        out.push(own.require(b)?.clone());
    }
    Ok(Params(out))
}

/// `params` without the named buffers.
fn drop_buffers(params: Params, buffers: &[&str]) -> Params {
    Params(
        params
            .0
            .into_iter()
            .filter(|t| !buffers.contains(&t.name.as_str()))
            .collect(),
    )
}

/// Burn's gradients of `model` in PyTorch's layout, by name.
pub fn gradients_to_torch<M: ModuleSnapshot + Clone>(
    model: &M,
    grads: &GradientsParams,
) -> Result<Params> {
    gradients_to_torch_except(model, grads, &[])
}

/// [`gradients_to_torch`] for a model with buffers (see [`gradients_except`]): the trainable
/// parameters' gradients only, without the buffers' entries.
pub fn gradients_to_torch_except<M: ModuleSnapshot + Clone>(
    model: &M,
    grads: &GradientsParams,
    buffers: &[&str],
) -> Result<Params> {
    let skip = buffer_ids(model, buffers)?;
    let mut burn = Vec::new();
    for snapshot in model.collect(None, None, true) {
        let Some(id) = snapshot.param_id else {
            continue;
        };
        if skip.contains(&id) {
            // The buffer's own value stands in for the layout conversion (see
            // `fill_torch_buffers`), then goes.
            burn.push(unpack(snapshot)?);
            continue;
        }
        let dims = snapshot.shape.to_vec();
        let values = match dims.len() {
            1 => grads.get::<1>(id.into()).map(values),
            2 => grads.get::<2>(id.into()).map(values),
            3 => grads.get::<3>(id.into()).map(values),
            4 => grads.get::<4>(id.into()).map(values),
            5 => grads.get::<5>(id.into()).map(values),
            r => {
                return shape(format!(
                    "'{}': rank {r} parameters are not supported",
                    snapshot.name
                ))
            }
        };
        // A parameter the loss does not reach has no gradient: PyTorch reports zeros.
        let n = dims.iter().product();
        burn.push(NamedTensor::new(
            snapshot.name.clone(),
            dims,
            values.unwrap_or_else(|| vec![0.0; n]),
        )?);
    }
    Ok(drop_buffers(torch_layout(model, &Params(burn))?, buffers))
}

fn first_device<M: Module>(model: &M) -> burn::tensor::Device {
    model.devices().into_iter().next().unwrap_or_default()
}

fn record_error(e: impl std::fmt::Debug) -> PortError {
    PortError::Shape(format!("cannot read Burn's optimizer record: {e:?}"))
}

/// The optimizer's state in PyTorch's naming and layout. `None` before the first step.
pub fn adam_state_to_torch<M: ModuleSnapshot + Clone>(
    optim: &ModuleOptimizer,
    model: &M,
) -> Result<OptimState> {
    adam_state_to_torch_except(optim, model, &[])
}

/// [`adam_state_to_torch`] for a model with buffers (see [`gradients_except`]): the slots hold the
/// trainable parameters only. Works for Burn's `AdamW` too: its state is the same
/// `AdaptiveMomentumState` under the same field name, `momentum` (burn-optim
/// src/optim/adamw.rs, `AdamWState`).
pub fn adam_state_to_torch_except<M: ModuleSnapshot + Clone>(
    optim: &ModuleOptimizer,
    model: &M,
    buffers: &[&str],
) -> Result<OptimState> {
    let skip = buffer_ids(model, buffers)?;
    let bytes = optim.into_bytes().map_err(record_error)?;
    let reader = Reader::from_bytes(bytes).map_err(record_error)?;
    let names = param_names(model);
    let mut step = 0u64;
    for (key, value) in reader.scalars() {
        if key.ends_with(".momentum.time") {
            step = step.max(scalar_u64(value));
        }
    }
    let mut slots: Vec<(String, Vec<NamedTensor>)> = SLOTS
        .iter()
        .map(|(t, _)| (t.to_string(), Vec::new()))
        .collect();
    for t in reader.into_tensors().map_err(record_error)? {
        let (name, dtype, shp, _, bytes) = t.into_parts().map_err(record_error)?;
        let Some((id, field)) = name.split_once('.') else {
            continue;
        };
        let Some(pname) = id.parse::<u64>().ok().and_then(|i| names.get(&i)) else {
            continue;
        };
        let Some(k) = SLOTS
            .iter()
            .position(|(_, f)| field == format!("momentum.{f}"))
        else {
            continue;
        };
        let dims = shp.to_vec();
        let data = TensorData::from_bytes(bytes, shp, dtype)
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(record_error)?;
        slots[k]
            .1
            .push(NamedTensor::new(pname.clone(), dims, data)?);
    }
    let mut out = Vec::new();
    for (slot, mut burn) in slots {
        // A buffer has no state; its own value stands in for the layout conversion (see
        // `fill_torch_buffers`), then goes.
        if !skip.is_empty() {
            for t in model.collect(None, None, true) {
                if t.param_id.is_some_and(|id| skip.contains(&id))
                    && !burn.iter().any(|b| b.name == t.name)
                {
                    burn.push(unpack(t)?);
                }
            }
        }
        // A parameter the loss never reached has no state in Burn (PyTorch has none either): its
        // moments are the zeros a fresh optimizer holds, so the harness compares them rather than
        // failing on a missing tensor.
        for t in model.collect(None, None, true) {
            if t.param_id.is_some_and(|id| !skip.contains(&id))
                && !burn.iter().any(|b| b.name == t.name)
            {
                let dims = t.shape.to_vec();
                let n = dims.iter().product();
                burn.push(NamedTensor::new(t.name.clone(), dims, vec![0.0; n])?);
            }
        }
        let torch = torch_layout(model, &Params(burn))?;
        out.push((slot, drop_buffers(torch, buffers)));
    }
    Ok(OptimState { step, slots: out })
}

fn scalar_u64(s: &Scalar) -> u64 {
    match *s {
        Scalar::UInt(v) => v,
        Scalar::Int(v) => v.max(0) as u64,
        Scalar::Float(v) => v as u64,
        Scalar::Bool(v) => v as u64,
    }
}

/// Zero gradients for every parameter of `model` but the skipped ones (buffers): one step with them
/// gives an optimizer whose record has an entry for each parameter, the template that `with_state`
/// fills in.
struct ZeroGrads<'a>(&'a mut GradientsParams, &'a BTreeSet<u64>);

impl ModuleMapper for ZeroGrads<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if !self.1.contains(&param.id.val()) {
            let v = param.val();
            self.0.register::<D>(param.id, v.zeros_like().inner());
        }
        param
    }
}

/// An Adam optimizer holding the reference's state: Burn's record of a template step, with the
/// moments and step count replaced by the reference's, loaded back with `load_record`.
/// `make` builds the optimizer as the port configures it; `lr` is any learning rate (the template
/// step's update is discarded).
pub fn with_adam_state<M: ModuleSnapshot + Clone>(
    make: impl Fn() -> ModuleOptimizer,
    lr: f64,
    model: &M,
    state: &OptimState,
) -> Result<ModuleOptimizer> {
    with_adam_state_except(make, lr, model, state, &[])
}

/// [`with_adam_state`] for a model with buffers (see [`gradients_except`]): `state`'s slots hold
/// the trainable parameters only, and the optimizer gets no state for a buffer. Works for Burn's
/// `AdamW` too (see [`adam_state_to_torch_except`]).
pub fn with_adam_state_except<M: ModuleSnapshot + Clone>(
    make: impl Fn() -> ModuleOptimizer,
    lr: f64,
    model: &M,
    state: &OptimState,
    buffers: &[&str],
) -> Result<ModuleOptimizer> {
    let skip = buffer_ids(model, buffers)?;
    let mut template = make();
    let mut zero = GradientsParams::new();
    let _ = model.clone().map(&mut ZeroGrads(&mut zero, &skip));
    let _ = template.step(lr, model.clone(), zero);
    let reader =
        Reader::from_bytes(template.into_bytes().map_err(record_error)?).map_err(record_error)?;
    let names = param_names(model);
    let mut burn_slots = BTreeMap::new();
    for (slot, field) in SLOTS {
        let torch = state.slot(slot)?;
        let expected = drop_buffers(torch_params(model)?, buffers);
        torch.check_like(&expected, &format!("state['{slot}']"))?;
        for t in burn_layout(model, &fill_torch_buffers(model, torch, buffers)?)?.0 {
            burn_slots.insert((t.name.clone(), format!("momentum.{field}")), t);
        }
    }
    let scalars = reader.scalars().clone();
    let metadata = reader.metadata().clone();
    let mut tensors = Vec::new();
    for t in reader.into_tensors().map_err(record_error)? {
        let (name, dtype, shp, pid, bytes) = t.into_parts().map_err(record_error)?;
        let replaced = name.split_once('.').and_then(|(id, field)| {
            let pname = names.get(&id.parse::<u64>().ok()?)?;
            burn_slots.get(&(pname.clone(), field.to_string()))
        });
        let tensor = match replaced {
            Some(t) => {
                let (b, s, d) = TensorData::new(t.data.clone(), t.shape.clone()).into_parts();
                burn_pack::Tensor::new(name, d, s, pid, b)
            }
            None => burn_pack::Tensor::new(name, dtype, shp, pid, bytes),
        };
        tensors.push(tensor);
    }
    let mut writer = Writer::new(tensors);
    for (key, value) in &scalars {
        let value = if key.ends_with(".momentum.time") {
            match value {
                Scalar::Int(_) => Scalar::Int(state.step as i64),
                _ => Scalar::UInt(state.step),
            }
        } else {
            *value
        };
        writer = writer.with_scalar(key, value);
    }
    for (key, value) in &metadata {
        writer = writer.with_metadata(key, value);
    }
    let bytes = writer.into_bytes().map_err(record_error)?;
    make().from_bytes(bytes).map_err(record_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{load_torch_params, torch_params};
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::AdamConfig;
    use burn::tensor::Device;

    #[derive(Module, Debug)]
    struct Tiny {
        fc: Linear,
    }

    fn tensor(name: &str, shape: Vec<usize>, start: f32) -> NamedTensor {
        let n = shape.iter().product::<usize>();
        NamedTensor::new(
            name,
            shape,
            (0..n).map(|i| start + 0.1 * i as f32).collect(),
        )
        .unwrap()
    }

    fn tiny() -> Tiny {
        let device = Device::flex().autodiff();
        let mut m = Tiny {
            fc: LinearConfig::new(3, 2).init(&device),
        };
        let p = Params(vec![
            tensor("fc.weight", vec![2, 3], 0.5),
            tensor("fc.bias", vec![2], -0.2),
        ]);
        load_torch_params(&mut m, &p).unwrap();
        m
    }

    fn adam() -> ModuleOptimizer {
        AdamConfig::new().with_epsilon(1e-8).init()
    }

    #[test]
    fn state_goes_in_and_comes_out_unchanged() {
        let model = tiny();
        let slot = |s: f32| {
            Params(vec![
                tensor("fc.weight", vec![2, 3], s),
                tensor("fc.bias", vec![2], s),
            ])
        };
        let state = OptimState {
            step: 5,
            slots: vec![
                ("exp_avg".into(), slot(0.01)),
                ("exp_avg_sq".into(), slot(0.02)),
            ],
        };
        let optim = with_adam_state(adam, 1e-3, &model, &state).unwrap();
        let back = adam_state_to_torch(&optim, &model).unwrap();
        assert_eq!(back.step, 5);
        assert_eq!(
            back.slot("exp_avg").unwrap(),
            state.slot("exp_avg").unwrap()
        );
        assert_eq!(
            back.slot("exp_avg_sq").unwrap(),
            state.slot("exp_avg_sq").unwrap()
        );
    }

    #[test]
    fn a_parameter_the_loss_never_reached_has_zero_moments() {
        // Only the weight gets a gradient (a forward that drops the bias): Burn keeps no state for
        // the bias, and the state comes out with zeros there instead of failing.
        let model = tiny();
        let mut optim = adam();
        let mut grads = GradientsParams::new();
        let w = model.fc.weight.clone();
        grads.register::<2>(w.id, w.val().ones_like().inner());
        let model = optim.step(1e-3, model, grads);
        let state = adam_state_to_torch(&optim, &model).unwrap();
        assert_eq!(state.step, 1);
        let m = state.slot("exp_avg").unwrap();
        assert_eq!(m.get("fc.bias").unwrap().data, vec![0.0; 2]);
        // Negative control: the weight's first moment is (1 - beta1) x its gradient.
        assert!(m
            .get("fc.weight")
            .unwrap()
            .data
            .iter()
            .all(|v| (v - 0.1).abs() < 1e-6));
    }

    #[test]
    fn a_step_from_injected_state_is_torch_adam() {
        // One Burn Adam step from step 5 against PyTorch's formula in f64.
        let model = tiny();
        let m0 = 0.01f64;
        let v0 = 0.02f64;
        let slot = |s: f32| {
            Params(vec![
                NamedTensor::new("fc.weight", vec![2, 3], vec![s; 6]).unwrap(),
                NamedTensor::new("fc.bias", vec![2], vec![s; 2]).unwrap(),
            ])
        };
        let state = OptimState {
            step: 5,
            slots: vec![
                ("exp_avg".into(), slot(m0 as f32)),
                ("exp_avg_sq".into(), slot(v0 as f32)),
            ],
        };
        let mut optim = with_adam_state(adam, 1e-3, &model, &state).unwrap();
        let g = 0.3f64;
        let grads = Params(vec![
            NamedTensor::new("fc.weight", vec![2, 3], vec![g as f32; 6]).unwrap(),
            NamedTensor::new("fc.bias", vec![2], vec![g as f32; 2]).unwrap(),
        ]);
        let before = torch_params(&model).unwrap();
        let after = optim.step(1e-3, model.clone(), gradients(&model, &grads).unwrap());
        let after = torch_params(&after).unwrap();
        let m = 0.9 * m0 + 0.1 * g;
        let v = 0.999 * v0 + 0.001 * g * g;
        let t = 6;
        let update =
            1e-3 / (1.0 - 0.9f64.powi(t)) * m / (v.sqrt() / (1.0 - 0.999f64.powi(t)).sqrt() + 1e-8);
        for (b, a) in before.0.iter().zip(&after.0) {
            for (x0, x1) in b.data.iter().zip(&a.data) {
                // new - old in f32 carries up to an ULP of |p| < 1 (6e-8): the optimizer stage's rule.
                let got = f64::from(x0 - x1);
                assert!(
                    (got - update).abs() < 1.2e-7 + 1e-5 * update.abs(),
                    "{got} vs {update}"
                );
            }
        }
        let s = adam_state_to_torch(&optim, &model).unwrap();
        assert_eq!(s.step, 6);
        assert!((f64::from(s.slot("exp_avg").unwrap().0[0].data[0]) - m).abs() < 1e-7);
    }

    #[test]
    fn gradients_cross_in_torch_layout() {
        let model = tiny();
        let grads = Params(vec![
            tensor("fc.weight", vec![2, 3], 1.0),
            tensor("fc.bias", vec![2], 2.0),
        ]);
        let burn = gradients(&model, &grads).unwrap();
        assert_eq!(gradients_to_torch(&model, &burn).unwrap(), grads);
    }
}

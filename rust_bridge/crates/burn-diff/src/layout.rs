//! PyTorch's layout and naming to Burn's and back, in one place. Parameters cross the contract as
//! the reference's `state_dict()` has them; a Burn module takes them through burn-store's
//! `PyTorchToBurnAdapter` (which transposes Linear weights from `[out, in]` to Burn's `[in, out]`
//! and renames normalization parameters) and gives them back through `BurnToPyTorchAdapter`.
//! This is how a Burn user loads PyTorch weights, so a port that passes the weights stage here
//! loads a real checkpoint the same way. Tensors PyTorch packs (an LSTM's or GRU's gate stacks,
//! attention's `in_proj_weight`) are split for Burn's modules and joined back in [`crate::packed`].

use burn::store::burn_pack;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter};
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{shape, PortError, Result};
use crate::tensor::{NamedTensor, Params};

fn pack(t: &NamedTensor) -> burn_pack::Tensor {
    let (bytes, shape, dtype) = TensorData::new(t.data.clone(), t.shape.clone()).into_parts();
    burn_pack::Tensor::new(t.name.clone(), dtype, shape, None, bytes)
}

pub(crate) fn unpack(t: burn_pack::Tensor) -> Result<NamedTensor> {
    let (name, dtype, shape, _, bytes) = t
        .into_parts()
        .map_err(|e| PortError::Shape(format!("cannot read a tensor of the model: {e}")))?;
    let dims = shape.to_vec();
    let data = TensorData::from_bytes(bytes, shape, dtype)
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| PortError::Shape(format!("'{name}': {e:?}")))?;
    NamedTensor::new(name, dims, data)
}

/// Loads PyTorch-layout `params` into `model`, by name. Every parameter of the model must be
/// given, with its shape, and nothing else: a tensor of the wrong shape is a [`PortError::Shape`]
/// naming it; a name one side has and the other lacks (a bias the model does not have, a model
/// with its own names) is a [`PortError::Structure`] carrying the model's own parameters, which
/// the harness reports as a divergence of the port (its weights stage), not as a broken run.
pub fn load_torch_params<M: ModuleSnapshot>(model: &mut M, params: &Params) -> Result<()> {
    let own: Vec<String> = model
        .collect(None, Some(Box::new(BurnToPyTorchAdapter)), true)
        .into_iter()
        .map(|t| t.name.clone())
        .collect();
    let params = crate::packed::unpack(params, &own)?;
    let tensors = params.0.iter().map(pack).collect();
    let r = model.apply(tensors, None, Some(Box::new(PyTorchToBurnAdapter)), true);
    if let Some(e) = r.errors.first() {
        return shape(format!(
            "cannot load the parameters into the port's model: {e}"
        ));
    }
    let missing: Vec<&str> = r.missing.iter().map(|(p, _)| p.as_str()).collect();
    if missing.is_empty() && r.unused.is_empty() {
        return Ok(());
    }
    let mut parts = Vec::new();
    if !r.unused.is_empty() {
        parts.push(format!(
            "the port's model has no {} (the reference has)",
            quoted(&r.unused)
        ));
    }
    if !missing.is_empty() {
        parts.push(format!(
            "the reference has no {} (the port's model has)",
            quoted(&missing)
        ));
    }
    Err(PortError::Structure(
        format!("parameters differ: {}", parts.join("; ")),
        torch_shapes(model),
    ))
}

fn quoted<S: AsRef<str>>(names: &[S]) -> String {
    let shown: Vec<String> = names
        .iter()
        .take(4)
        .map(|n| format!("'{}'", n.as_ref()))
        .collect();
    let more = names.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Each parameter's PyTorch name and shape, as the model would give it to PyTorch.
pub fn torch_shapes<M: ModuleSnapshot>(model: &M) -> Vec<(String, Vec<usize>)> {
    match torch_params(model) {
        Ok(p) => p.0.into_iter().map(|t| (t.name, t.shape)).collect(),
        Err(_) => model
            .collect(None, Some(Box::new(BurnToPyTorchAdapter)), true)
            .into_iter()
            .map(|t| (t.name.clone(), t.shape.to_vec()))
            .collect(),
    }
}

/// The model's parameters in PyTorch's layout and naming (packed tensors joined).
pub fn torch_params<M: ModuleSnapshot>(model: &M) -> Result<Params> {
    model
        .collect(None, Some(Box::new(BurnToPyTorchAdapter)), true)
        .into_iter()
        .map(unpack)
        .collect::<Result<Vec<_>>>()
        .map(|p| crate::packed::pack(Params(p)))
}

/// Each parameter's shape as the model stores it (Burn's layout), by its name.
pub fn burn_shapes<M: ModuleSnapshot>(model: &M) -> Vec<(String, Vec<usize>)> {
    model
        .collect(None, None, true)
        .into_iter()
        .map(|t| (t.name.clone(), t.shape.to_vec()))
        .collect()
}

/// A named tensor as a Burn tensor of rank `D`, same layout (for elementwise state and gradients).
pub fn to_burn<const D: usize>(t: &NamedTensor, device: &Device) -> Result<Tensor<D>> {
    if t.shape.len() != D {
        return shape(format!(
            "'{}' has rank {}, expected {D}",
            t.name,
            t.shape.len()
        ));
    }
    Ok(Tensor::from_data(
        TensorData::new(t.data.clone(), t.shape.clone()),
        device,
    ))
}

/// A Burn tensor's values as float32, row-major.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("float tensors convert to f32")
}

/// Tensors shaped like the model's parameters (gradients, optimizer moments) given in PyTorch's
/// layout, converted to the layout the model stores them in: loaded into a copy of the model
/// through the PyTorch adapter and read back as Burn holds them. Every parameter must be given.
pub fn burn_layout<M: ModuleSnapshot + Clone>(model: &M, torch: &Params) -> Result<Params> {
    let mut copy = model.clone();
    load_torch_params(&mut copy, torch)?;
    copy.collect(None, None, true)
        .into_iter()
        .map(unpack)
        .collect::<Result<Vec<_>>>()
        .map(Params)
}

/// The inverse of [`burn_layout`]: tensors in the model's own layout, by its names, to PyTorch's.
pub fn torch_layout<M: ModuleSnapshot + Clone>(model: &M, burn: &Params) -> Result<Params> {
    let mut copy = model.clone();
    let r = copy.apply(burn.0.iter().map(pack).collect(), None, None, true);
    if let Some(e) = r.errors.first() {
        return shape(format!("cannot convert to PyTorch's layout: {e}"));
    }
    if let Some((path, _)) = r.missing.first() {
        return shape(format!("missing tensor for '{path}'"));
    }
    torch_params(&copy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};

    #[derive(Module, Debug)]
    struct Tiny {
        fc: Linear,
    }

    fn params(names: &[(&str, Vec<usize>)]) -> Params {
        Params(
            names
                .iter()
                .map(|(n, s)| {
                    let k = s.iter().product::<usize>();
                    NamedTensor::new(*n, s.clone(), (0..k).map(|i| i as f32).collect()).unwrap()
                })
                .collect(),
        )
    }

    #[test]
    fn linear_weights_are_transposed_on_the_way_in_and_back() {
        let device = Device::flex();
        let mut m = Tiny {
            fc: LinearConfig::new(3, 2).init(&device),
        };
        let p = params(&[("fc.weight", vec![2, 3]), ("fc.bias", vec![2])]);
        load_torch_params(&mut m, &p).unwrap();
        assert_eq!(m.fc.weight.val().dims(), [3, 2]);
        // PyTorch's w[o][i] is Burn's w[i][o].
        assert_eq!(values(m.fc.weight.val())[..2], [0.0, 3.0]);
        let back = torch_params(&m).unwrap();
        assert_eq!(back.get("fc.weight"), p.get("fc.weight"));
        assert_eq!(
            burn_shapes(&m),
            vec![
                ("fc.weight".to_string(), vec![3, 2]),
                ("fc.bias".to_string(), vec![2])
            ]
        );
    }

    #[test]
    fn structure_mismatches_name_the_parameter() {
        let device = Device::flex();
        let mut m = Tiny {
            fc: LinearConfig::new(3, 2).init(&device),
        };
        let renamed = params(&[("fc.w", vec![2, 3]), ("fc.bias", vec![2])]);
        let e = load_torch_params(&mut m, &renamed).unwrap_err().to_string();
        assert!(e.contains("fc.w") || e.contains("fc.weight"), "{e}");
        let reshaped = params(&[("fc.weight", vec![2, 4]), ("fc.bias", vec![2])]);
        let e = load_torch_params(&mut m, &reshaped)
            .unwrap_err()
            .to_string();
        assert!(e.contains("fc.weight"), "{e}");
        let missing = params(&[("fc.weight", vec![2, 3])]);
        let e = load_torch_params(&mut m, &missing).unwrap_err();
        assert!(
            e.to_string()
                .contains("the reference has no 'fc.bias' (the port's model has)"),
            "{e}"
        );
        // The model's own parameters travel with the error, in PyTorch's names and shapes.
        assert_eq!(e.kind(), "structure");
        assert_eq!(
            e.parameters(),
            [
                ("fc.weight".to_string(), vec![2, 3]),
                ("fc.bias".to_string(), vec![2])
            ]
        );
        let extra = params(&[
            ("fc.weight", vec![2, 3]),
            ("fc.bias", vec![2]),
            ("fc2.bias", vec![2]),
        ]);
        let e = load_torch_params(&mut m, &extra).unwrap_err();
        assert_eq!(
            e.to_string(),
            "parameters differ: the port's model has no 'fc2.bias' (the reference has)"
        );
    }
}

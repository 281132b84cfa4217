//! PyTorch modules that pack several of Burn's parameters into one tensor, split and joined in one
//! place. [`crate::layout`] applies this on the way in ([`unpack`]: before burn-store's PyTorch
//! adapter) and on the way out ([`pack`]: after it), so a port's LSTM, GRU or attention layer
//! takes the reference's `state_dict()` names, and gives its parameters, gradients and optimizer
//! state back under them.
//!
//! - `nn.LSTM`: `weight_ih_l0 [4H, I]`, `weight_hh_l0 [4H, H]`, `bias_ih_l0`, `bias_hh_l0 [4H]`,
//!   gates stacked (input, forget, cell, output); Burn's `Lstm` has one `GateController` per gate
//!   (`input_gate`, `forget_gate`, `cell_gate`, `output_gate`), each an `input_transform` and a
//!   `hidden_transform` Linear (burn-nn src/modules/rnn/lstm/lstm_module.rs:69-79,
//!   src/modules/rnn/gate_controller.rs:17-22).
//! - `nn.GRU`: the same four names, `[3H, ...]`, gates stacked (reset, update, new); Burn's `Gru` has
//!   `reset_gate`, `update_gate`, `new_gate` (burn-nn src/modules/rnn/gru.rs:60-66). With
//!   `reset_after` (Burn's default, PyTorch's only form) the new gate's hidden bias sits inside the
//!   reset product in both (gru.rs:208-213, 247-274).
//! - `nn.MultiheadAttention`: `in_proj_weight [3E, E]` and `in_proj_bias [3E]` stacked (query, key,
//!   value), and `out_proj`; Burn's `MultiHeadAttention` has four Linear layers `query`, `key`,
//!   `value`, `output` (burn-nn src/modules/attention/mha.rs).
//! - `nn.TransformerEncoderLayer`: its sub-modules `self_attn`, `linear1`, `linear2`, `norm1`,
//!   `norm2` are Burn's `mha`, `pwff.linear_inner`, `pwff.linear_outer`, `norm_1`, `norm_2`
//!   (burn-nn src/modules/transformer/encoder.rs, pwff.rs); renamed first, then `mha` unpacked as
//!   attention. The norms pair by name, which is right for PyTorch's default post-norm layer. With
//!   `norm_first`, Burn applies `norm_2` before attention and `norm_1` before the feed-forward
//!   (encoder.rs, `TransformerEncoderLayer::forward`), where PyTorch applies `norm1` and `norm2`:
//!   a pre-norm port must pair them crosswise itself.
//!
//! Every tensor here is in PyTorch's layout (`[out, in]` weights): the blocks are rows of the
//! packed tensor, so splitting and joining are row slices; burn-store's adapter then transposes each
//! Linear weight as it does any other.

use std::collections::HashSet;

use crate::error::{shape, Result};
use crate::tensor::{NamedTensor, Params};

/// One packed PyTorch tensor and the tensors it holds, by leaf name, in its block order.
struct Entry {
    torch: &'static str,
    parts: &'static [&'static str],
}

/// A PyTorch module whose parameters Burn keeps unpacked.
struct Kind {
    entries: &'static [Entry],
}

const LSTM: Kind = Kind {
    entries: &[
        Entry {
            torch: "weight_ih_l0",
            parts: &[
                "input_gate.input_transform.weight",
                "forget_gate.input_transform.weight",
                "cell_gate.input_transform.weight",
                "output_gate.input_transform.weight",
            ],
        },
        Entry {
            torch: "weight_hh_l0",
            parts: &[
                "input_gate.hidden_transform.weight",
                "forget_gate.hidden_transform.weight",
                "cell_gate.hidden_transform.weight",
                "output_gate.hidden_transform.weight",
            ],
        },
        Entry {
            torch: "bias_ih_l0",
            parts: &[
                "input_gate.input_transform.bias",
                "forget_gate.input_transform.bias",
                "cell_gate.input_transform.bias",
                "output_gate.input_transform.bias",
            ],
        },
        Entry {
            torch: "bias_hh_l0",
            parts: &[
                "input_gate.hidden_transform.bias",
                "forget_gate.hidden_transform.bias",
                "cell_gate.hidden_transform.bias",
                "output_gate.hidden_transform.bias",
            ],
        },
    ],
};

const GRU: Kind = Kind {
    entries: &[
        Entry {
            torch: "weight_ih_l0",
            parts: &[
                "reset_gate.input_transform.weight",
                "update_gate.input_transform.weight",
                "new_gate.input_transform.weight",
            ],
        },
        Entry {
            torch: "weight_hh_l0",
            parts: &[
                "reset_gate.hidden_transform.weight",
                "update_gate.hidden_transform.weight",
                "new_gate.hidden_transform.weight",
            ],
        },
        Entry {
            torch: "bias_ih_l0",
            parts: &[
                "reset_gate.input_transform.bias",
                "update_gate.input_transform.bias",
                "new_gate.input_transform.bias",
            ],
        },
        Entry {
            torch: "bias_hh_l0",
            parts: &[
                "reset_gate.hidden_transform.bias",
                "update_gate.hidden_transform.bias",
                "new_gate.hidden_transform.bias",
            ],
        },
    ],
};

const MHA: Kind = Kind {
    entries: &[
        Entry {
            torch: "in_proj_weight",
            parts: &["query.weight", "key.weight", "value.weight"],
        },
        Entry {
            torch: "in_proj_bias",
            parts: &["query.bias", "key.bias", "value.bias"],
        },
        Entry {
            torch: "out_proj.weight",
            parts: &["output.weight"],
        },
        Entry {
            torch: "out_proj.bias",
            parts: &["output.bias"],
        },
    ],
};

const KINDS: [&Kind; 3] = [&LSTM, &GRU, &MHA];

/// A PyTorch `nn.TransformerEncoderLayer`'s sub-modules and Burn's `TransformerEncoderLayer`'s, in
/// pairs `(torch, burn)`.
const ENCODER_LAYER: [(&str, &str); 5] = [
    ("self_attn", "mha"),
    ("linear1", "pwff.linear_inner"),
    ("linear2", "pwff.linear_outer"),
    ("norm1", "norm_1"),
    ("norm2", "norm_2"),
];

/// The prefixes under which `names` (Burn's, in PyTorch's layout) hold a Burn encoder layer: its
/// feed-forward, its two norms and its attention's query.
fn encoder_layers(names: &[String]) -> Vec<String> {
    let all: HashSet<&str> = names.iter().map(String::as_str).collect();
    names
        .iter()
        .filter_map(|n| n.strip_suffix("pwff.linear_inner.weight"))
        .map(|p| p.strip_suffix('.').unwrap_or(p).to_string())
        .filter(|p| {
            [
                "pwff.linear_outer.weight",
                "norm_1.weight",
                "norm_2.weight",
                "mha.query.weight",
            ]
            .iter()
            .all(|leaf| all.contains(join(p, leaf).as_str()))
        })
        .collect()
}

/// `name` with the sub-module `from` of the layer at `prefix` renamed `to`; None when it is not
/// under that sub-module.
fn renamed(name: &str, prefix: &str, from: &str, to: &str) -> Option<String> {
    let head = join(prefix, from);
    let rest = name.strip_prefix(head.as_str())?.strip_prefix('.')?;
    Some(format!("{}.{rest}", join(prefix, to)))
}

/// `params` with every encoder layer's sub-modules renamed, torch's to Burn's (`to_burn`) or back.
fn rename_encoder_layers(mut params: Params, layers: &[String], to_burn: bool) -> Params {
    for t in &mut params.0 {
        let new = layers.iter().find_map(|p| {
            ENCODER_LAYER.iter().find_map(|&(torch, burn)| {
                let (from, to) = if to_burn {
                    (torch, burn)
                } else {
                    (burn, torch)
                };
                renamed(&t.name, p, from, to)
            })
        });
        if let Some(n) = new {
            t.name = n;
        }
    }
    params
}

fn join(prefix: &str, leaf: &str) -> String {
    if prefix.is_empty() {
        leaf.to_string()
    } else {
        format!("{prefix}.{leaf}")
    }
}

/// The prefixes under which `names` hold every tensor of `kind`'s first entry (its weights): the
/// modules of that kind, by their qualified names.
fn modules_of<'a>(kind: &Kind, names: &'a [String]) -> Vec<&'a str> {
    let first = &kind.entries[0];
    let all: HashSet<&str> = names.iter().map(String::as_str).collect();
    names
        .iter()
        .filter_map(|n| n.strip_suffix(first.parts[0]))
        .map(|p| p.strip_suffix('.').unwrap_or(p))
        .filter(|p| {
            first
                .parts
                .iter()
                .all(|leaf| all.contains(join(p, leaf).as_str()))
        })
        .collect()
}

/// `params` with each packed tensor of a module the model has unpacked (`model` holds the model's
/// own parameter names, in PyTorch's layout): `lstm.weight_ih_l0` becomes
/// `lstm.input_gate.input_transform.weight` and its three siblings when the model has those. A
/// packed tensor whose rows do not split evenly is a shape error naming it.
pub fn unpack(params: &Params, model: &[String]) -> Result<Params> {
    let encoders = encoder_layers(model);
    let renamed;
    let params = if encoders.is_empty() {
        params
    } else {
        renamed = rename_encoder_layers(params.clone(), &encoders, true);
        &renamed
    };
    // The model's modules of each kind, found once: this runs on every load of parameters.
    let modules: Vec<(&Kind, Vec<&str>)> =
        KINDS.iter().map(|k| (*k, modules_of(k, model))).collect();
    let mut out = Vec::with_capacity(params.0.len());
    'tensor: for t in &params.0 {
        for (kind, prefixes) in &modules {
            for &prefix in prefixes {
                for e in kind.entries {
                    if t.name != join(prefix, e.torch) {
                        continue;
                    }
                    let k = e.parts.len();
                    let rows = t.shape.first().copied().unwrap_or(0);
                    if rows % k != 0 || t.shape.is_empty() {
                        return shape(format!(
                            "'{}' has shape {:?}; it packs {k} blocks of rows",
                            t.name, t.shape
                        ));
                    }
                    let size = t.data.len() / k;
                    let mut dims = t.shape.clone();
                    dims[0] = rows / k;
                    for (i, leaf) in e.parts.iter().enumerate() {
                        out.push(NamedTensor::new(
                            join(prefix, leaf),
                            dims.clone(),
                            t.data[i * size..(i + 1) * size].to_vec(),
                        )?);
                    }
                    continue 'tensor;
                }
            }
        }
        out.push(t.clone());
    }
    Ok(Params(out))
}

/// The model's parameters (PyTorch layout, Burn's names) with each module of a packed kind joined
/// into PyTorch's tensors, each at the place of its first block: the inverse of [`unpack`].
pub fn pack(params: Params) -> Params {
    let names: Vec<String> = params.0.iter().map(|t| t.name.clone()).collect();
    let encoders = encoder_layers(&names);
    let packed = pack_kinds(params, &names);
    if encoders.is_empty() {
        packed
    } else {
        rename_encoder_layers(packed, &encoders, false)
    }
}

fn pack_kinds(params: Params, names: &[String]) -> Params {
    // Block name -> (packed name, block index, block count).
    let mut member: Vec<(String, String, usize, usize)> = Vec::new();
    for kind in KINDS {
        for prefix in modules_of(kind, names) {
            for e in kind.entries {
                let parts: Vec<String> = e.parts.iter().map(|l| join(prefix, l)).collect();
                if parts.iter().all(|p| names.contains(p)) {
                    for (i, p) in parts.into_iter().enumerate() {
                        member.push((p, join(prefix, e.torch), i, e.parts.len()));
                    }
                }
            }
        }
    }
    if member.is_empty() {
        return params;
    }
    let by_name = |n: &str| params.0.iter().find(|t| t.name == n);
    let mut out = Vec::with_capacity(params.0.len());
    for t in &params.0 {
        let Some((_, packed, index, count)) = member.iter().find(|m| m.0 == t.name) else {
            out.push(t.clone());
            continue;
        };
        if *index != 0 {
            continue; // joined at its first block
        }
        let blocks: Vec<&NamedTensor> = (0..*count)
            .filter_map(|i| {
                member
                    .iter()
                    .find(|m| m.1 == *packed && m.2 == i)
                    .and_then(|m| by_name(&m.0))
            })
            .collect();
        let mut dims = t.shape.clone();
        if let Some(d0) = dims.first_mut() {
            *d0 = blocks.iter().map(|b| b.shape[0]).sum();
        }
        let data = blocks.iter().flat_map(|b| b.data.iter().copied()).collect();
        out.push(NamedTensor {
            name: packed.clone(),
            shape: dims,
            data,
        });
    }
    Params(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, shape: Vec<usize>, start: f32) -> NamedTensor {
        let n = shape.iter().product::<usize>();
        NamedTensor::new(name, shape, (0..n).map(|i| start + i as f32).collect()).unwrap()
    }

    fn burn_lstm_names(prefix: &str) -> Vec<String> {
        LSTM.entries
            .iter()
            .flat_map(|e| e.parts.iter().map(|l| join(prefix, l)))
            .chain(["head.weight".to_string()])
            .collect()
    }

    #[test]
    fn an_lstm_splits_by_gate_in_torch_order_and_joins_back_exactly() {
        let torch = Params(vec![
            t("rnn.weight_ih_l0", vec![8, 3], 0.0),
            t("rnn.weight_hh_l0", vec![8, 2], 100.0),
            t("rnn.bias_ih_l0", vec![8], 200.0),
            t("rnn.bias_hh_l0", vec![8], 300.0),
            t("head.weight", vec![1, 2], 400.0),
        ]);
        let split = unpack(&torch, &burn_lstm_names("rnn")).unwrap();
        assert_eq!(split.0.len(), 17);
        // Rows 4-5 of weight_ih are the cell gate's (i, f, g, o).
        let g = split.get("rnn.cell_gate.input_transform.weight").unwrap();
        assert_eq!((g.shape.clone(), g.data[0]), (vec![2, 3], 12.0));
        let f = split.get("rnn.forget_gate.hidden_transform.bias").unwrap();
        assert_eq!(f.data, vec![302.0, 303.0]);
        assert_eq!(pack(split), torch);
    }

    #[test]
    fn a_gru_is_reset_update_new_and_attention_is_query_key_value() {
        let names: Vec<String> = GRU
            .entries
            .iter()
            .flat_map(|e| e.parts.iter().map(|l| join("gru", l)))
            .collect();
        let torch = Params(vec![
            t("gru.weight_ih_l0", vec![6, 2], 0.0),
            t("gru.weight_hh_l0", vec![6, 2], 50.0),
            t("gru.bias_ih_l0", vec![6], 90.0),
            t("gru.bias_hh_l0", vec![6], 95.0),
        ]);
        let split = unpack(&torch, &names).unwrap();
        assert_eq!(
            split
                .get("gru.update_gate.input_transform.weight")
                .unwrap()
                .data[0],
            4.0
        );
        assert_eq!(pack(split), torch);

        let names: Vec<String> = MHA
            .entries
            .iter()
            .flat_map(|e| e.parts.iter().map(|l| join("attn", l)))
            .collect();
        let torch = Params(vec![
            t("attn.in_proj_weight", vec![12, 4], 0.0),
            t("attn.in_proj_bias", vec![12], 100.0),
            t("attn.out_proj.weight", vec![4, 4], 200.0),
            t("attn.out_proj.bias", vec![4], 300.0),
        ]);
        let split = unpack(&torch, &names).unwrap();
        assert_eq!(split.get("attn.value.bias").unwrap().data[0], 108.0);
        assert_eq!(split.get("attn.output.weight").unwrap().data[0], 200.0);
        assert_eq!(pack(split), torch);
    }

    #[test]
    fn an_encoder_layer_takes_torch_names_and_its_attention_unpacks() {
        let burn: Vec<String> = [
            "mha.query.weight",
            "mha.query.bias",
            "mha.key.weight",
            "mha.key.bias",
            "mha.value.weight",
            "mha.value.bias",
            "mha.output.weight",
            "mha.output.bias",
            "pwff.linear_inner.weight",
            "pwff.linear_inner.bias",
            "pwff.linear_outer.weight",
            "pwff.linear_outer.bias",
            "norm_1.weight",
            "norm_1.bias",
            "norm_2.weight",
            "norm_2.bias",
        ]
        .iter()
        .map(|l| join("enc.layers.0", l))
        .chain(["head.weight".to_string()])
        .collect();
        let torch = Params(vec![
            t("enc.layers.0.self_attn.in_proj_weight", vec![12, 4], 0.0),
            t("enc.layers.0.self_attn.in_proj_bias", vec![12], 100.0),
            t("enc.layers.0.self_attn.out_proj.weight", vec![4, 4], 200.0),
            t("enc.layers.0.self_attn.out_proj.bias", vec![4], 300.0),
            t("enc.layers.0.linear1.weight", vec![8, 4], 400.0),
            t("enc.layers.0.linear1.bias", vec![8], 500.0),
            t("enc.layers.0.linear2.weight", vec![4, 8], 600.0),
            t("enc.layers.0.linear2.bias", vec![4], 700.0),
            t("enc.layers.0.norm1.weight", vec![4], 800.0),
            t("enc.layers.0.norm1.bias", vec![4], 810.0),
            t("enc.layers.0.norm2.weight", vec![4], 820.0),
            t("enc.layers.0.norm2.bias", vec![4], 830.0),
            t("head.weight", vec![2, 4], 900.0),
        ]);
        let split = unpack(&torch, &burn).unwrap();
        let mut got: Vec<&str> = split.0.iter().map(|t| t.name.as_str()).collect();
        let mut want: Vec<&str> = burn.iter().map(String::as_str).collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(
            split.get("enc.layers.0.mha.key.weight").unwrap().data[0],
            16.0
        );
        assert_eq!(
            split
                .get("enc.layers.0.pwff.linear_outer.bias")
                .unwrap()
                .data,
            vec![700.0, 701.0, 702.0, 703.0]
        );
        assert_eq!(
            split.get("enc.layers.0.norm_2.weight").unwrap().data[0],
            820.0
        );
        // Back in Burn's order, under torch's names and packing.
        let mut back = pack(split).0;
        let mut want = torch.0.clone();
        back.sort_by(|a, b| a.name.cmp(&b.name));
        want.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(back, want);
        // A model whose sub-modules only look alike keeps its names.
        let lone = vec!["blk.pwff.linear_inner.weight".to_string()];
        let p = Params(vec![t("blk.linear1.weight", vec![2, 2], 0.0)]);
        assert_eq!(unpack(&p, &lone).unwrap(), p);
    }

    #[test]
    fn names_of_other_models_pass_untouched_and_a_bad_pack_is_named() {
        let plain = Params(vec![
            t("fc.weight", vec![2, 3], 0.0),
            t("weight_ih_l0", vec![4, 1], 0.0),
        ]);
        let names = vec!["fc.weight".to_string(), "weight_ih_l0".to_string()];
        assert_eq!(unpack(&plain, &names).unwrap(), plain);
        assert_eq!(pack(plain.clone()), plain);
        let bad = Params(vec![t("rnn.weight_ih_l0", vec![7, 3], 0.0)]);
        let e = unpack(&bad, &burn_lstm_names("rnn"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'rnn.weight_ih_l0' has shape [7, 3]; it packs 4 blocks"),
            "{e}"
        );
    }
}

//! burn-diff's packed-layout conversions (src/packed.rs) against PyTorch itself: PyTorch's `nn.LSTM`,
//! `nn.GRU`, `nn.MultiheadAttention` and `nn.TransformerEncoder` parameters
//! (tests/fixtures/packed.safetensors, written by make_packed.py) load into Burn's `Lstm`, `Gru`,
//! `MultiHeadAttention` and `TransformerEncoder`, which then give torch's outputs on torch's input,
//! and come back out of them exactly as torch had them.

use std::collections::BTreeMap;

use burn::module::Module;
use burn::nn::activation::ActivationConfig;
use burn::nn::attention::{MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{Gru, GruConfig, Lstm, LstmConfig};
use burn::tensor::{Bool, Device, Tensor, TensorData};
use burn_diff::layout::{load_torch_params, torch_params, values};
use burn_diff::{NamedTensor, Params};
use safetensors::SafeTensors;

#[derive(Module, Debug)]
struct Packed {
    lstm: Lstm,
    gru: Gru,
    attn: MultiHeadAttention,
    enc: TransformerEncoder,
}

/// torch's `TransformerEncoder(TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True), 2)`.
/// Burn facts: the activation defaults to GELU and the dropout to 0.1 (burn-nn
/// src/modules/transformer/encoder.rs), PyTorch's to ReLU and 0.1.
fn encoder(activation: ActivationConfig, device: &Device) -> TransformerEncoder {
    TransformerEncoderConfig::new(8, 16, 2, 2)
        .with_dropout(0.0)
        .with_activation(activation)
        .init(device)
}

type Fixture = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

fn fixture() -> Fixture {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/packed.safetensors"
    ))
    .expect("the fixture");
    let st = SafeTensors::deserialize(&bytes).expect("a safetensors file");
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect();
            (name, (view.shape().to_vec(), data))
        })
        .collect()
}

fn tensor3(t: &(Vec<usize>, Vec<f32>), device: &Device) -> Tensor<3> {
    let s = &t.0;
    Tensor::from_data(TensorData::new(t.1.clone(), [s[0], s[1], s[2]]), device)
}

/// The largest |got - want|.
fn worst(got: &[f32], want: &[f32]) -> f32 {
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0f32, f32::max)
}

/// The fixture's module parameters whose names start with `prefix` ("" for all of them).
fn params_of(f: &Fixture, prefix: &str) -> Params {
    Params(
        f.iter()
            .filter(|(k, _)| k.contains('.') && k.starts_with(prefix))
            .map(|(k, (s, v))| NamedTensor::new(k.clone(), s.clone(), v.clone()).unwrap())
            .collect(),
    )
}

fn close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: sizes");
    let worst = worst(got, want);
    // float32 rounding over five steps of a recurrence, an attention's softmax or two encoder layers'
    // LayerNorms (measured on flex, AVX-512: 3.6e-8 LSTM, 6.0e-8 GRU, 6.0e-8 attention, 7.2e-7
    // encoder); a misplaced block is off by 1e-2 or more.
    assert!(worst <= 1e-5, "{what}: off by {worst}");
}

#[test]
fn torch_s_packed_parameters_drive_burn_s_modules_and_come_back_exactly() {
    let device = Device::flex();
    let f = fixture();
    let params = params_of(&f, "");
    let mut m = Packed {
        lstm: LstmConfig::new(3, 4, true).init(&device),
        gru: GruConfig::new(3, 4, true).init(&device),
        attn: MultiHeadAttentionConfig::new(8, 2)
            .with_dropout(0.0)
            .init(&device),
        enc: encoder(ActivationConfig::Relu, &device),
    };
    load_torch_params(&mut m, &params).unwrap();

    let x = tensor3(&f["x_rnn"], &device);
    close(
        &values(m.lstm.forward(x.clone(), None).0),
        &f["lstm_out"].1,
        "lstm",
    );
    close(&values(m.gru.forward(x, None)), &f["gru_out"].1, "gru");
    let xa = tensor3(&f["x_attn"], &device);
    let out = m.attn.forward(MhaInput::self_attn(xa)).context;
    close(&values(out), &f["attn_out"].1, "attention");
    let enc = m
        .enc
        .forward(TransformerEncoderInput::new(tensor3(&f["x_attn"], &device)));
    close(&values(enc), &f["enc_out"].1, "encoder");

    let back = torch_params(&m).unwrap();
    let mut names = back.names();
    names.sort_unstable();
    let mut want = params.names();
    want.sort_unstable();
    assert_eq!(names, want);
    for t in &params.0 {
        assert_eq!(back.get(&t.name), Some(t), "{} round trip", t.name);
    }
}

#[test]
fn gates_in_another_order_give_other_numbers() {
    // Control: the test above can fail. The same LSTM with its forget and cell blocks swapped is
    // another model.
    let device = Device::flex();
    let f = fixture();
    let swap = |(s, v): &(Vec<usize>, Vec<f32>)| {
        let block = v.len() / 4;
        let mut w = v.clone();
        w[block..2 * block].copy_from_slice(&v[2 * block..3 * block]);
        w[2 * block..3 * block].copy_from_slice(&v[block..2 * block]);
        (s.clone(), w)
    };
    let params = Params(
        f.iter()
            .filter(|(k, _)| k.starts_with("lstm."))
            .map(|(k, t)| {
                let (s, v) = swap(t);
                NamedTensor::new(k.clone(), s, v).unwrap()
            })
            .collect(),
    );
    #[derive(Module, Debug)]
    struct One {
        lstm: Lstm,
    }
    let mut m = One {
        lstm: LstmConfig::new(3, 4, true).init(&device),
    };
    load_torch_params(&mut m, &params).unwrap();
    let out = values(m.lstm.forward(tensor3(&f["x_rnn"], &device), None).0);
    let worst = worst(&out, &f["lstm_out"].1);
    assert!(worst > 1e-2, "swapped gates still match ({worst})");
}

#[test]
fn burn_s_default_encoder_activation_gives_other_numbers() {
    // Control for the encoder: the same parameters in Burn's default encoder (GELU) are another
    // model, so the comparison above can fail.
    let device = Device::flex();
    let f = fixture();
    let params = params_of(&f, "enc.");
    #[derive(Module, Debug)]
    struct One {
        enc: TransformerEncoder,
    }
    let mut m = One {
        enc: encoder(ActivationConfig::Gelu, &device),
    };
    load_torch_params(&mut m, &params).unwrap();
    let out = values(
        m.enc
            .forward(TransformerEncoderInput::new(tensor3(&f["x_attn"], &device))),
    );
    let worst = worst(&out, &f["enc_out"].1);
    assert!(worst > 1e-3, "GELU still matches ReLU ({worst})");
}

#[test]
fn masked_keys_agree_with_torch_unless_a_whole_row_is_masked() {
    // Burn fills masked scores with -1e4 (MultiHeadAttentionConfig::min_float), torch with -inf.
    // After the softmax both are exactly 0 where a row keeps an unmasked key; on a row with every key
    // masked torch's attention gives a zero context (its output is out_proj's bias) and Burn's an even
    // average of the values.
    let device = Device::flex();
    let f = fixture();
    let params = params_of(&f, "attn.");
    #[derive(Module, Debug)]
    struct One {
        attn: MultiHeadAttention,
    }
    let mut m = One {
        attn: MultiHeadAttentionConfig::new(8, 2)
            .with_dropout(0.0)
            .init(&device),
    };
    load_torch_params(&mut m, &params).unwrap();
    let mut pad = vec![false, false, false, true, true];
    pad.extend([true; 5]);
    let mask = Tensor::<2, Bool>::from_data(TensorData::new(pad, [2, 5]), &device);
    let x = tensor3(&f["x_attn"], &device);
    let out = values(
        m.attn
            .forward(MhaInput::self_attn(x).mask_pad(mask))
            .context,
    );
    let want = &f["attn_masked_out"].1;
    let half = out.len() / 2;
    close(&out[..half], &want[..half], "the partly masked sequence");
    let worst = worst(&out[half..], &want[half..]);
    assert!(
        worst > 1e-2,
        "a fully masked row agrees with torch ({worst})"
    );
}

//! The wire format of the subprocess transport (`docs/protocol.md`): frames of a JSON header and a
//! safetensors payload. Both the server here and the harness's client follow that page.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use safetensors::tensor::{Dtype, SafeTensors, View};
use serde_json::Value;

use crate::error::{input, shape, PortError, Result};
use crate::tensor::{Matrix, Matrix64, NamedTensor, Params, MAX_EXACT_INT};

/// The protocol version this crate speaks. 2: model inputs and activations carry each sample's
/// shape (`[n, C, H, W]`, `[n, T, E]`), not only `[n, d]`. 3: a model input may be int64 (token
/// ids, `[n, T]`).
pub const PROTOCOL_VERSION: u64 = 3;
/// Every frame starts with these bytes.
pub const MAGIC: &[u8; 4] = b"BDIF";
const MAX_HEADER: u32 = 64 << 20;
const MAX_PAYLOAD: u64 = 16 << 30;

/// One tensor of a payload: dtype, shape and little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &RawTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// The tensors of one frame, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Payload(pub BTreeMap<String, RawTensor>);

macro_rules! typed {
    ($put:ident, $get:ident, $t:ty, $dt:expr, $n:literal) => {
        /// Adds a tensor of this element type.
        pub fn $put(&mut self, name: impl Into<String>, shape: Vec<usize>, values: &[$t]) {
            let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.0.insert(
                name.into(),
                RawTensor {
                    dtype: $dt,
                    shape,
                    data,
                },
            );
        }

        /// The tensor `name` as this element type: (shape, values).
        pub fn $get(&self, name: &str) -> Result<(Vec<usize>, Vec<$t>)> {
            let t = self.raw(name)?;
            if t.dtype != $dt {
                return shape(format!(
                    "tensor '{name}' is {:?}, expected {:?}",
                    t.dtype, $dt
                ));
            }
            let values = t
                .data
                .chunks_exact($n)
                .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size")))
                .collect();
            Ok((t.shape.clone(), values))
        }
    };
}

impl Payload {
    typed!(put_f32, f32s, f32, Dtype::F32, 4);
    typed!(put_f64, f64s, f64, Dtype::F64, 8);
    typed!(put_i64, i64s, i64, Dtype::I64, 8);

    fn raw(&self, name: &str) -> Result<&RawTensor> {
        self.0
            .get(name)
            .ok_or_else(|| PortError::Shape(format!("the request has no tensor '{name}'")))
    }

    /// Whether a tensor called `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// A 1-D float32 tensor.
    pub fn vec_f32(&self, name: &str) -> Result<Vec<f32>> {
        let (s, v) = self.f32s(name)?;
        if s.len() != 1 {
            return shape(format!("'{name}' must be 1-D, got shape {s:?}"));
        }
        Ok(v)
    }

    /// A 1-D float64 tensor.
    pub fn vec_f64(&self, name: &str) -> Result<Vec<f64>> {
        let (s, v) = self.f64s(name)?;
        if s.len() != 1 {
            return shape(format!("'{name}' must be 1-D, got shape {s:?}"));
        }
        Ok(v)
    }

    /// A 1-D tensor of non-negative int64 indices.
    pub fn indices(&self, name: &str) -> Result<Vec<usize>> {
        let (_, v) = self.i64s(name)?;
        v.into_iter()
            .map(|i| usize::try_from(i).or_else(|_| input(format!("'{name}': negative index {i}"))))
            .collect()
    }

    /// A batch: `[n, d]`, or `[n, ...dims]` for samples with a shape of their own; float32, or int64
    /// ids (protocol 3), each at most [`MAX_EXACT_INT`] in magnitude so that the batch's float32
    /// values hold it exactly ([`Matrix::ids`] gives them back).
    pub fn matrix(&self, name: &str) -> Result<Matrix> {
        let (s, v) = if self.raw(name)?.dtype == Dtype::I64 {
            let (s, ids) = self.i64s(name)?;
            if let Some(i) = ids.iter().find(|i| i.unsigned_abs() > MAX_EXACT_INT as u64) {
                return input(format!(
                    "'{name}' holds the integer {i}, beyond 2^24 = {MAX_EXACT_INT}, which a float32 batch cannot hold exactly"
                ));
            }
            (s, ids.into_iter().map(|i| i as f32).collect())
        } else {
            self.f32s(name)?
        };
        if s.len() < 2 {
            return shape(format!(
                "'{name}' must be a batch ([n, d] or [n, ...]), got shape {s:?}"
            ));
        }
        Matrix::with_shape(v, &s)
    }

    /// A 2-D float64 tensor.
    pub fn matrix64(&self, name: &str) -> Result<Matrix64> {
        let (s, v) = self.f64s(name)?;
        match s[..] {
            [n, d] => Matrix64::new(v, n, d),
            _ => shape(format!("'{name}' must be 2-D, got shape {s:?}")),
        }
    }

    /// Adds a float32 batch, with its whole shape.
    pub fn put_matrix(&mut self, name: impl Into<String>, m: &Matrix) {
        self.put_f32(name, m.shape(), &m.data);
    }

    /// Adds every tensor of `params` under `prefix/`.
    pub fn put_params(&mut self, prefix: &str, params: &Params) {
        for t in &params.0 {
            self.put_f32(format!("{prefix}/{}", t.name), t.shape.clone(), &t.data);
        }
    }

    /// The group of float32 tensors under `prefix/`, in name order.
    pub fn params(&self, prefix: &str) -> Result<Params> {
        let head = format!("{prefix}/");
        let mut out = Vec::new();
        for name in self.0.keys() {
            if let Some(rest) = name.strip_prefix(&head) {
                if rest.contains('/') {
                    continue;
                }
                let (s, v) = self.f32s(name)?;
                out.push(NamedTensor::new(rest, s, v)?);
            }
        }
        Ok(Params(out))
    }

    /// Serializes to a safetensors buffer (empty when there are no tensors).
    pub fn to_bytes(&self) -> io::Result<Vec<u8>> {
        if self.0.is_empty() {
            return Ok(Vec::new());
        }
        safetensors::serialize(self.0.iter().map(|(k, v)| (k.as_str(), v)), None)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }

    /// Parses a safetensors buffer.
    pub fn from_bytes(bytes: &[u8]) -> io::Result<Self> {
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let mut out = BTreeMap::new();
        for (name, view) in st.tensors() {
            out.insert(
                name,
                RawTensor {
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    data: view.data().to_vec(),
                },
            );
        }
        Ok(Self(out))
    }
}

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, header: &Value, payload: &Payload) -> io::Result<()> {
    let h = serde_json::to_vec(header)?;
    let p = payload.to_bytes()?;
    w.write_all(MAGIC)?;
    w.write_all(&(h.len() as u32).to_le_bytes())?;
    w.write_all(&h)?;
    w.write_all(&(p.len() as u64).to_le_bytes())?;
    w.write_all(&p)?;
    w.flush()
}

/// Reads one frame; `Ok(None)` at a clean end of input.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(Value, Payload)>> {
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let k = r.read(&mut magic[got..])?;
        if k == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        got += k;
    }
    if &magic != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not a frame: starts with {:?}",
                String::from_utf8_lossy(&magic)
            ),
        ));
    }
    let mut n4 = [0u8; 4];
    r.read_exact(&mut n4)?;
    let hn = u32::from_le_bytes(n4);
    if hn > MAX_HEADER {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "header too long",
        ));
    }
    let mut h = vec![0u8; hn as usize];
    r.read_exact(&mut h)?;
    let header: Value = serde_json::from_slice(&h)?;
    let mut n8 = [0u8; 8];
    r.read_exact(&mut n8)?;
    let pn = u64::from_le_bytes(n8);
    if pn > MAX_PAYLOAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "payload too long",
        ));
    }
    let mut p = vec![0u8; pn as usize];
    r.read_exact(&mut p)?;
    Ok(Some((header, Payload::from_bytes(&p)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut p = Payload::default();
        p.put_f32("params/fc1.weight", vec![2, 2], &[1.0, 2.0, 3.0, 4.0]);
        p.put_f32("state/exp_avg/fc1.weight", vec![2, 2], &[0.5; 4]);
        p.put_i64("orders", vec![1, 3], &[2, 0, 1]);
        p.put_f64("mean", vec![2], &[0.25, -1e300]);
        let header = serde_json::json!({"id": 3, "method": "forward", "args": {}});
        let mut buf = Vec::new();
        write_frame(&mut buf, &header, &p).unwrap();
        let (h, q) = read_frame(&mut buf.as_slice()).unwrap().unwrap();
        assert_eq!(h, header);
        assert_eq!(q, p);
        let params = q.params("params").unwrap();
        assert_eq!(params.names(), vec!["fc1.weight"]);
        assert_eq!(q.params("state/exp_avg").unwrap().0[0].data, vec![0.5; 4]);
        assert_eq!(q.indices("orders").unwrap(), vec![2, 0, 1]);
        assert_eq!(q.vec_f64("mean").unwrap(), vec![0.25, -1e300]);
    }

    #[test]
    fn a_batch_travels_with_its_sample_shape() {
        let images =
            Matrix::with_shape((0..16).map(|v| v as f32).collect(), &[2, 1, 2, 4]).unwrap();
        let mut p = Payload::default();
        p.put_matrix("x", &images);
        p.put_matrix("rows", &Matrix::new(vec![0.0; 6], 2, 3).unwrap());
        p.put_f32("flat", vec![3], &[0.0; 3]);
        let mut buf = Vec::new();
        write_frame(&mut buf, &serde_json::json!({}), &p).unwrap();
        let (_, back) = read_frame(&mut buf.as_slice()).unwrap().unwrap();
        let x = back.matrix("x").unwrap();
        assert_eq!((x.shape(), x.d), (vec![2, 1, 2, 4], 8));
        assert_eq!(x, images);
        assert_eq!(back.matrix("rows").unwrap().shape(), vec![2, 3]);
        let e = back.matrix("flat").unwrap_err().to_string();
        assert!(e.contains("must be a batch"), "{e}");
    }

    #[test]
    fn an_int64_batch_is_read_exactly_up_to_2_pow_24() {
        let mut p = Payload::default();
        p.put_i64("x", vec![2, 2], &[MAX_EXACT_INT, -MAX_EXACT_INT, 0, 7]);
        p.put_i64("far", vec![1, 2], &[3, MAX_EXACT_INT + 1]);
        p.put_i64("least", vec![1, 1], &[i64::MIN]);
        let x = p.matrix("x").unwrap();
        assert_eq!(x.shape(), vec![2, 2]);
        assert_eq!(x.data, vec![16777216.0, -16777216.0, 0.0, 7.0]);
        assert_eq!(x.select(&[1]).ids(10).unwrap(), vec![0, 7]);
        let e = p.matrix("far").unwrap_err();
        assert!(matches!(e, PortError::Input(_)), "{e}");
        assert!(
            e.to_string()
                .contains("holds the integer 16777217, beyond 2^24"),
            "{e}"
        );
        assert!(matches!(p.matrix("least"), Err(PortError::Input(_))));
    }

    #[test]
    fn garbage_and_eof_are_told_apart() {
        assert!(read_frame(&mut &b""[..]).unwrap().is_none());
        let e = read_frame(&mut &b"hello world\n"[..]).unwrap_err();
        assert!(e.to_string().contains("not a frame"), "{e}");
        let e = read_frame(&mut &b"BD"[..]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn dtype_mismatch_is_a_shape_error() {
        let mut p = Payload::default();
        p.put_f64("x", vec![1, 1], &[1.0]);
        assert!(matches!(p.matrix("x"), Err(PortError::Shape(_))));
    }
}

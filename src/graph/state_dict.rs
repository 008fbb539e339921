//! PyTorch `state_dict`s stored as safetensors: opening a file (memory-mapped: a tensor's bytes
//! are read when a model asks for it, once), descending into sub-modules by key prefix
//! ([`StateDict::sub`], candle's `pp`), and reading conv and batch-norm parameters by their
//! PyTorch key names with the shape checks and error messages a user needs ("tensor
//! 'convs.1.0.weight': expected (C_out, 16, 3, 3), found (8, 16, 1, 1)").
//!
//! Only the safetensors format is read, never pickle. Floating tensors of any width (f16, bf16,
//! f32, f64) are converted to f32; integer tensors are refused, except `num_batches_tracked`,
//! which eval mode does not use and which is never read.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use safetensors::tensor::{Metadata, SafeTensors};
use safetensors::Dtype;

use crate::error::{Error, Result};
use crate::ops::{BatchNorm, ConvWeights};

/// PyTorch's `BatchNorm2d` default `eps`; the state_dict does not store it.
pub const BATCHNORM_EPS: f64 = 1e-5;

/// The parsed file: bytes plus the header that indexes them. Shared by every [`StateDict`] view.
struct SafetensorsFile {
    /// How the file is named in messages (its path).
    name: String,
    bytes: Bytes,
    /// Byte offset of the data section (8-byte length + JSON header).
    data_start: usize,
    header: Metadata,
}

/// A file's bytes: mapped from disk, or in memory (a state_dict made by the program).
enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(map) => map,
            Bytes::Owned(bytes) => bytes,
        }
    }
}

/// A view of a safetensors state_dict under a key prefix (`""` for the whole file,
/// `"classifier."` for the head of a whole DeepLabV3 model). Cloning or taking a sub-view is
/// cheap: the file is parsed once and shared.
#[derive(Clone)]
pub struct StateDict {
    file: Arc<SafetensorsFile>,
    prefix: String,
    /// Length of the prefix the view was opened with (`--prefix`): module paths
    /// ([`StateDict::path`]) are relative to it.
    root: usize,
}

/// A tensor read from the file, converted to f32, with its PyTorch shape.
#[derive(Clone, Debug, PartialEq)]
pub struct HostArray {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Formats a shape the way PyTorch prints `tuple(t.shape)`: `(256, 2048, 3, 3)`, `(8,)`.
pub(crate) fn shape_text(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Turns a module prefix as a user writes it ("classifier" or "classifier.") into the form that
/// precedes a key ("classifier.").
fn normalize_prefix(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('.') {
        prefix.to_string()
    } else {
        format!("{prefix}.")
    }
}

/// Why a file that does not parse as safetensors is probably something else.
pub(crate) fn guess_format(bytes: &[u8]) -> &'static str {
    match bytes {
        [] => "the file is empty",
        [b'P', b'K', 3, 4, ..] => {
            "it is a zip archive, as written by torch.save (a PyTorch checkpoint); convert it \
             with `python scripts/export_safetensors.py --input CHECKPOINT.pt OUT.safetensors`"
        }
        [0x80, 2..=5, ..] => {
            "it is a Python pickle (a legacy torch.save checkpoint?); atrous never reads pickle: \
             convert it with `python scripts/export_safetensors.py --input CHECKPOINT.pt \
             OUT.safetensors`"
        }
        _ if bytes.len() < 8 => "it is shorter than the 8-byte header length of a safetensors file",
        _ => "it is not a safetensors file, or it is truncated or corrupt",
    }
}

impl StateDict {
    /// Maps and parses a safetensors file; `prefix` selects a sub-module (a trailing `.` is
    /// added when missing). The file must not change while the view is alive (the bytes are
    /// mapped, not copied, as safetensors' own loaders do).
    pub fn open(path: impl AsRef<Path>, prefix: &str) -> Result<Self> {
        let path = path.as_ref();
        let fail = |e: std::io::Error| Error::file(path.display(), e);
        let file = std::fs::File::open(path).map_err(fail)?;
        let bytes = if file.metadata().map_err(fail)?.len() == 0 {
            // Mapping an empty file fails on some systems; it is refused below as empty.
            Bytes::Owned(Vec::new())
        } else {
            // SAFETY: the map is read-only and lives inside the view; the file changing under
            // it is outside this program's control, as for any reader of safetensors files.
            Bytes::Mapped(unsafe { memmap2::Mmap::map(&file) }.map_err(fail)?)
        };
        Self::parse(&path.display().to_string(), bytes, prefix)
    }

    /// Parses an in-memory safetensors file; `name` stands for it in messages.
    pub fn from_bytes(name: &str, bytes: Vec<u8>, prefix: &str) -> Result<Self> {
        Self::parse(name, Bytes::Owned(bytes), prefix)
    }

    /// A state_dict of f32 `tensors` (key, shape, values) made in memory (random weights for
    /// benchmarks and tests); `name` stands for it in messages.
    pub fn from_tensors(name: &str, tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Result<Self> {
        let views = tensors
            .iter()
            .map(|(key, shape, data)| {
                let view = safetensors::tensor::TensorView::new(
                    Dtype::F32,
                    shape.clone(),
                    bytemuck::cast_slice(data),
                )
                .map_err(|e| Error::invalid(format!("tensor '{key}'"), e.to_string()))?;
                Ok((key.clone(), view))
            })
            .collect::<Result<Vec<_>>>()?;
        let bytes =
            safetensors::serialize(views, None).map_err(|e| Error::invalid(name, e.to_string()))?;
        Self::from_bytes(name, bytes, "")
    }

    fn parse(name: &str, bytes: Bytes, prefix: &str) -> Result<Self> {
        let (header_len, header) = SafeTensors::read_metadata(&bytes).map_err(|e| {
            Error::file(
                name,
                format!(
                    "cannot read it as safetensors ({e}): {}",
                    guess_format(&bytes)
                ),
            )
        })?;
        let prefix = normalize_prefix(prefix);
        Ok(StateDict {
            file: Arc::new(SafetensorsFile {
                name: name.to_string(),
                data_start: 8 + header_len,
                bytes,
                header,
            }),
            root: prefix.len(),
            prefix,
        })
    }

    /// The view of the sub-module `prefix` of this one (`"0."` for the ASPP inside a
    /// DeepLabHead).
    pub fn sub(&self, prefix: &str) -> StateDict {
        StateDict {
            file: self.file.clone(),
            prefix: format!("{}{}", self.prefix, normalize_prefix(prefix)),
            root: self.root,
        }
    }

    /// The module path of `key` in this view, relative to the view the file was opened with
    /// (without `--prefix`): `classifier.0.convs.1` for `convs.1` under `classifier.0.`.
    pub fn path(&self, key: &str) -> String {
        format!("{}{key}", &self.prefix[self.root..])
    }

    /// The file's name (its path) as used in messages.
    pub fn file_name(&self) -> &str {
        &self.file.name
    }

    /// The key prefix of this view ("" for the whole file).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The string metadata of the file (`__metadata__`), if any.
    pub fn metadata(&self) -> Option<&HashMap<String, String>> {
        self.file.header.metadata().as_ref()
    }

    /// The full key of `key` in the file, prefix included.
    pub fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Every key in the view, without the prefix, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .file
            .header
            .offset_keys()
            .into_iter()
            .filter_map(|k| k.strip_prefix(&self.prefix).map(str::to_string))
            .collect();
        keys.sort();
        keys
    }

    /// Every key in the file, whatever the view's prefix.
    pub(crate) fn keys_everywhere(&self) -> Vec<String> {
        self.file.header.offset_keys()
    }

    /// The dtype and shape of tensor `key`, if present.
    pub fn info(&self, key: &str) -> Option<(Dtype, &[usize])> {
        let info = self.file.header.info(&self.full_key(key))?;
        Some((info.dtype, &info.shape))
    }

    pub fn contains(&self, key: &str) -> bool {
        self.file.header.info(&self.full_key(key)).is_some()
    }

    /// How many consecutive children `<list>.0.`, `<list>.1.`, ... of an `nn.ModuleList` or
    /// `nn.Sequential` named `list` have at least one tensor in the file.
    pub fn count_children(&self, list: &str) -> usize {
        let start = format!("{}{list}.", self.prefix);
        let present: BTreeSet<usize> = self
            .file
            .header
            .offset_keys()
            .iter()
            .filter_map(|k| k.strip_prefix(&start)?.split('.').next()?.parse().ok())
            .collect();
        (0..).take_while(|i| present.contains(i)).count()
    }

    /// Reads tensor `key` (relative to the prefix) as f32.
    pub fn tensor(&self, key: &str) -> Result<HostArray> {
        let full = self.full_key(key);
        let info = self
            .file
            .header
            .info(&full)
            .ok_or_else(|| self.missing(key))?;
        let (start, end) = info.data_offsets;
        // read_metadata checked that the offsets are in the file and consistent with the shape.
        let raw = &self.file.bytes[self.file.data_start + start..self.file.data_start + end];
        let data = decode(raw, info.dtype).ok_or_else(|| {
            Error::file(
                &self.file.name,
                format!(
                    "tensor '{full}': expected a floating dtype (F32, or F16, BF16, F64 converted \
                     to f32), found {:?}",
                    info.dtype
                ),
            )
        })?;
        Ok(HostArray {
            shape: info.shape.clone(),
            data,
        })
    }

    /// Reads tensor `key` and checks its shape against `expected` (`None` matches any size);
    /// `role` says what the tensor is for in the message ("ASPP branch 1 (3x3, dilation 12)").
    pub fn tensor_with_shape(
        &self,
        key: &str,
        role: &str,
        expected: &[Option<usize>],
    ) -> Result<HostArray> {
        let array = self.tensor(key)?;
        let matches = array.shape.len() == expected.len()
            && array
                .shape
                .iter()
                .zip(expected)
                .all(|(&d, e)| e.is_none_or(|e| e == d));
        if !matches {
            return Err(self.shape_error(key, role, expected, &array.shape));
        }
        Ok(array)
    }

    fn shape_error(
        &self,
        key: &str,
        role: &str,
        expected: &[Option<usize>],
        found: &[usize],
    ) -> Error {
        let expected_text = match expected {
            [one] => format!("({},)", one.map_or("C".to_string(), |v| v.to_string())),
            _ => {
                let names = ["C_out", "C_in", "k", "k"];
                format!(
                    "({})",
                    expected
                        .iter()
                        .zip(names)
                        .map(|(e, name)| e.map_or(name.to_string(), |v| v.to_string()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        };
        Error::shape(
            format!(
                "{}: tensor '{}' ({role})",
                self.file.name,
                self.full_key(key)
            ),
            format!("shape {expected_text}"),
            shape_text(found),
        )
    }

    /// Reads conv `module` (`<module>.weight`, and `<module>.bias` when `bias`) of a square
    /// `kernel_size` kernel. `in_channels` is checked when known.
    pub fn conv(
        &self,
        module: &str,
        role: &str,
        kernel_size: usize,
        in_channels: Option<usize>,
        bias: bool,
    ) -> Result<ConvWeights> {
        let weight_key = format!("{module}.weight");
        let weight = self.tensor_with_shape(
            &weight_key,
            role,
            &[None, in_channels, Some(kernel_size), Some(kernel_size)],
        )?;
        let &[out_channels, in_channels, kh, kw] = &weight.shape[..] else {
            return Err(self.shape_error(&weight_key, role, &[None; 4], &weight.shape));
        };
        let bias = if bias {
            let key = format!("{module}.bias");
            Some(
                self.tensor_with_shape(&key, role, &[Some(out_channels)])?
                    .data,
            )
        } else {
            None
        };
        ConvWeights::new(
            &self.full_key(module),
            [out_channels, in_channels, kh, kw],
            weight.data,
            bias,
        )
    }

    /// Reads the eval-mode parameters of `BatchNorm2d` `module` with `channels` channels
    /// (`num_batches_tracked` is not needed and not read).
    pub fn batchnorm(&self, module: &str, role: &str, channels: usize) -> Result<BatchNorm> {
        let read = |field: &str| -> Result<Vec<f32>> {
            Ok(self
                .tensor_with_shape(&format!("{module}.{field}"), role, &[Some(channels)])?
                .data)
        };
        Ok(BatchNorm {
            gamma: read("weight")?,
            beta: read("bias")?,
            running_mean: read("running_mean")?,
            running_var: read("running_var")?,
            eps: BATCHNORM_EPS,
        })
    }

    /// Reads `Conv2d` `conv` (with its bias when the file has one; torchvision's have none)
    /// followed by `BatchNorm2d` `bn` and folds the batch norm into the conv (in f64).
    pub fn conv_bn(
        &self,
        conv: &str,
        bn: &str,
        role: &str,
        kernel_size: usize,
        in_channels: Option<usize>,
    ) -> Result<ConvWeights> {
        let has_bias = self.contains(&format!("{conv}.bias"));
        let weights = self.conv(conv, role, kernel_size, in_channels, has_bias)?;
        let batchnorm = self.batchnorm(bn, role, weights.out_channels)?;
        weights.fold_batchnorm(&batchnorm)
    }

    /// The error for a missing `key`, with a hint when the prefix matches nothing.
    pub fn missing(&self, key: &str) -> Error {
        let mut message = format!("missing tensor '{}'", self.full_key(key));
        if let Some(hint) = self.prefix_hint() {
            message += &hint;
        }
        Error::file(&self.file.name, message)
    }

    /// "; no key starts with the prefix ..." when the view's prefix selects nothing.
    pub(crate) fn prefix_hint(&self) -> Option<String> {
        let all = self.file.header.offset_keys();
        if self.prefix.is_empty() || all.iter().any(|k| k.starts_with(&self.prefix)) {
            return None;
        }
        let mut top: Vec<&str> = all
            .iter()
            .map(|k| k.split('.').next().unwrap_or(k))
            .collect();
        top.sort();
        top.dedup();
        Some(format!(
            "; no key starts with the prefix '{}' (top-level names in the file: {})",
            self.prefix,
            top.join(", ")
        ))
    }
}

/// Little-endian `raw` of `dtype` as f32, or `None` for a non-floating dtype.
fn decode(raw: &[u8], dtype: Dtype) -> Option<Vec<f32>> {
    fn words<const N: usize>(raw: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
        raw.chunks_exact(N)
            .map(|c| c.try_into().expect("chunks_exact yields N bytes"))
    }
    Some(match dtype {
        Dtype::F32 => words::<4>(raw).map(f32::from_le_bytes).collect(),
        Dtype::F64 => words::<8>(raw)
            .map(|b| f64::from_le_bytes(b) as f32)
            .collect(),
        Dtype::F16 => words::<2>(raw)
            .map(|b| f16_to_f32(u16::from_le_bytes(b)))
            .collect(),
        // bfloat16 is the top half of an f32.
        Dtype::BF16 => words::<2>(raw)
            .map(|b| f32::from_bits((u16::from_le_bytes(b) as u32) << 16))
            .collect(),
        _ => return None,
    })
}

/// IEEE 754 binary16 to f32 (exact: every f16 value is an f32 value).
fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = ((bits >> 10) & 0x1f) as i32;
    let mantissa = (bits & 0x3ff) as f32;
    match exponent {
        0 => sign * mantissa * 2f32.powi(-24),
        0x1f if mantissa == 0.0 => sign * f32::INFINITY,
        0x1f => f32::NAN,
        _ => sign * (1.0 + mantissa / 1024.0) * 2f32.powi(exponent - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_is_exact_on_normals_subnormals_and_specials() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8000), 0.0);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn bf16_and_f64_decode_to_the_nearest_f32() {
        let bf16 = [0x80u8, 0x3f, 0x40, 0xc0]; // 1.0, -3.0
        assert_eq!(decode(&bf16, Dtype::BF16).unwrap(), vec![1.0, -3.0]);
        let f64s: Vec<u8> = [0.1f64, -2.5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(decode(&f64s, Dtype::F64).unwrap(), vec![0.1f32, -2.5]);
        assert!(decode(&[0; 8], Dtype::I64).is_none());
    }

    #[test]
    fn prefixes_get_their_dot() {
        assert_eq!(normalize_prefix(""), "");
        assert_eq!(normalize_prefix("classifier"), "classifier.");
        assert_eq!(normalize_prefix("classifier."), "classifier.");
    }
}

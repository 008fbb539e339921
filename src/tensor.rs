//! NCHW f32 tensors that own a GPU storage buffer.
//!
//! Layout: element (n, c, h, w) of a tensor of shape (N, C, H, W) lives at
//! `((n * C + c) * H + h) * W + w`, as in a contiguous PyTorch tensor.

use crate::context::Context;
use crate::error::{Error, Result, Shape};

/// A rank-4 f32 tensor in GPU memory, at the start of its buffer. Tensors made by `from_slice`
/// and `empty` own their buffer; a plan's tensors share the buffers the memory planner assigned
/// (wgpu reference-counts buffers: the memory lives until the last handle and the submitted
/// work that uses it are gone). Cloning a tensor shares its buffer.
#[derive(Clone)]
pub struct Tensor {
    pub(crate) buffer: wgpu::Buffer,
    shape: [usize; 4],
    name: String,
}

/// Checks that every dimension is non-zero and the element count fits the index math (u32).
pub fn check_shape(what: &str, shape: [usize; 4]) -> Result<usize> {
    if shape.contains(&0) {
        return Err(Error::shape(
            what,
            "every dimension of (N, C, H, W) >= 1",
            Shape(shape),
        ));
    }
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= u32::MAX as usize)
        .ok_or_else(|| {
            Error::shape(what, format!("at most {} elements", u32::MAX), Shape(shape))
        })?;
    Ok(count)
}

impl Tensor {
    /// Uploads `data` (NCHW, contiguous) as a tensor of `shape`. `name` appears in errors.
    pub fn from_slice(ctx: &Context, name: &str, shape: [usize; 4], data: &[f32]) -> Result<Self> {
        let count = check_shape(name, shape)?;
        if data.len() != count {
            return Err(Error::shape(
                name,
                format!("{count} values for shape {}", Shape(shape)),
                format!("{} values", data.len()),
            ));
        }
        let buffer = ctx.upload(name, data)?;
        Ok(Tensor {
            buffer,
            shape,
            name: name.to_string(),
        })
    }

    /// An uninitialised tensor of `shape` for a kernel to write. (wgpu zero-fills new buffers.)
    pub fn empty(ctx: &Context, name: &str, shape: [usize; 4]) -> Result<Self> {
        let count = check_shape(name, shape)?;
        let buffer = ctx.storage_buffer(name, count as u64 * 4)?;
        Ok(Tensor {
            buffer,
            shape,
            name: name.to_string(),
        })
    }

    /// A tensor of `shape` at the start of `buffer` (a buffer the memory planner shares between
    /// tensors whose lifetimes do not overlap; it may be larger than the tensor).
    pub(crate) fn view(name: &str, buffer: &wgpu::Buffer, shape: [usize; 4]) -> Result<Self> {
        let count = check_shape(name, shape)?;
        if count as u64 * 4 > buffer.size() {
            return Err(Error::shape(
                name,
                format!("a buffer of at least {} bytes", count * 4),
                format!("{} bytes", buffer.size()),
            ));
        }
        Ok(Tensor {
            buffer: buffer.clone(),
            shape,
            name: name.to_string(),
        })
    }

    /// Downloads the tensor (waits for all submitted work first).
    pub fn to_vec(&self, ctx: &Context) -> Result<Vec<f32>> {
        let bytes = ctx.read_buffer(&self.name, &self.buffer, self.bytes())?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn bytes(&self) -> u64 {
        self.len() as u64 * 4
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Fails with a message naming this tensor unless its shape is `expected` (`None` matches
    /// any size in that dimension).
    pub fn expect_shape(&self, expected: [Option<usize>; 4]) -> Result<()> {
        let matches = self
            .shape
            .iter()
            .zip(expected)
            .all(|(&d, e)| e.is_none_or(|e| e == d));
        if matches {
            return Ok(());
        }
        let dims = ["N", "C", "H", "W"];
        let text: Vec<String> = expected
            .iter()
            .zip(dims)
            .map(|(e, d)| e.map_or(d.to_string(), |v| v.to_string()))
            .collect();
        Err(Error::shape(
            &self.name,
            format!("shape ({})", text.join(", ")),
            Shape(self.shape),
        ))
    }
}

/// Where a kernel writes: a tensor, or a slice of its channels starting at `channel_offset`.
/// Graphs point each branch at its slice of one concat buffer so concatenation costs nothing.
#[derive(Clone, Copy)]
pub struct OutputSlice<'a> {
    pub tensor: &'a Tensor,
    pub channel_offset: usize,
}

impl<'a> From<&'a Tensor> for OutputSlice<'a> {
    fn from(tensor: &'a Tensor) -> Self {
        OutputSlice {
            tensor,
            channel_offset: 0,
        }
    }
}

impl<'a> OutputSlice<'a> {
    pub fn channels(tensor: &'a Tensor, channel_offset: usize) -> Self {
        OutputSlice {
            tensor,
            channel_offset,
        }
    }

    /// Checks that an output of `shape` fits: same N, H, W and enough channels past the offset.
    pub fn check_fits(&self, what: &str, shape: [usize; 4]) -> Result<()> {
        let [n, c, h, w] = shape;
        let [tn, tc, th, tw] = self.tensor.shape();
        if tn != n || th != h || tw != w || self.channel_offset + c > tc {
            return Err(Error::shape(
                format!("output of {what} ('{}')", self.tensor.name()),
                format!(
                    "shape (N={n}, C>={}, H={h}, W={w}) to hold {c} channels at offset {}",
                    self.channel_offset + c,
                    self.channel_offset
                ),
                Shape(self.tensor.shape()),
            ));
        }
        Ok(())
    }
}

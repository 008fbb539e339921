//! Launcher of `shaders/pack_channels.wgsl`: NCHW to the channel-packed layout of the packed
//! convolution kernels, optionally keeping every `stride`-th pixel of each axis.
//!
//! x: (N, C, H, W)  y: (N, ceil(C / P), H', W', P), zeros past C, with P = 4 (conv2d_packed) or
//! 8 (conv2d_packed8, conv1x1_packed8) and (H', W') = (ceil(H / S), ceil(W / S)) for a stride S;
//! as an NCHW tensor (N, ceil(C / P), H', P*W').

use crate::context::Context;
use crate::error::Error;
use crate::error::Result;
use crate::ops::{to_u32, WORKGROUP};
use crate::pipeline::{shader, shape_text, Cost, Launch, Shader};
use crate::tensor::Tensor;

const SHADER: Shader = shader!("pack_channels", [Uniform, ReadOnly, ReadWrite]);

// Mirrors `Params` in shaders/pack_channels.wgsl field for field (12 x u32 = 48 bytes).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PackParams {
    channels: u32,
    groups: u32,
    plane: u32,
    plane_tiles: u32,
    total: u32,
    stride: u32,
    in_plane: u32,
    in_w: u32,
    out_w: u32,
    _pad: [u32; 3],
}

/// How a kernel wants its input packed: `channels` (4 or 8) per group, keeping every
/// `stride`-th pixel of each axis (a strided 1x1 conv reads only those, so its packed copy is a
/// stride-1 GEMM's input).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Packing {
    pub channels: usize,
    pub stride: usize,
}

impl Packing {
    /// `channels` per group, every pixel.
    pub fn by(channels: usize) -> Self {
        Packing {
            channels,
            stride: 1,
        }
    }

    /// The packed shape of an NCHW `shape`, as an NCHW tensor:
    /// (N, ceil(C / channels), ceil(H / stride), channels * ceil(W / stride)). (A zero group or
    /// stride, which every launch refuses, counts as 1 here rather than divide by zero.)
    pub fn packed_shape(&self, [n, c, h, w]: [usize; 4]) -> [usize; 4] {
        let (channels, stride) = (self.channels.max(1), self.stride.max(1));
        [
            n,
            c.div_ceil(channels),
            h.div_ceil(stride),
            channels * w.div_ceil(stride),
        ]
    }

    fn check(&self) -> Result<()> {
        if self.channels != 4 && self.channels != 8 {
            return Err(Error::invalid(
                "pack_channels group",
                format!("4 or 8 channels, found {}", self.channels),
            ));
        }
        if self.stride == 0 {
            return Err(Error::invalid(
                "pack_channels stride",
                "must be >= 1, found 0",
            ));
        }
        Ok(())
    }
}

/// `8`, or `8 at stride 2`: what "packed by" is followed by in names.
impl std::fmt::Display for Packing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.stride {
            1 => write!(f, "{}", self.channels),
            s => write!(f, "{} at stride {s}", self.channels),
        }
    }
}

/// Builds the dispatch packing `input` as `packing` says into `output`, a buffer of at least
/// `packing.packed_shape(input.shape())` floats.
pub(crate) fn prepare(
    ctx: &Context,
    input: &Tensor,
    packing: Packing,
    output: &wgpu::Buffer,
) -> Result<Launch> {
    packing.check()?;
    let packed = packing.packed_shape(input.shape());
    let [n, c, h, w] = input.shape();
    let [_, groups, out_h, _] = packed;
    let out_w = w.div_ceil(packing.stride);
    let plane_tiles = (out_h * out_w).div_ceil(WORKGROUP as usize);
    let total = n * groups * plane_tiles;
    let params = PackParams {
        channels: to_u32("C", c)?,
        groups: to_u32("channel groups", groups)?,
        plane: to_u32("packed H * W", out_h * out_w)?,
        plane_tiles: to_u32("plane tiles", plane_tiles)?,
        total: to_u32("workgroups", total)?,
        stride: to_u32("stride", packing.stride)?,
        in_plane: to_u32("H * W", h * w)?,
        in_w: to_u32("W", w)?,
        out_w: to_u32("packed W", out_w)?,
        _pad: [0; 3],
    };
    Ok(Launch::new(
        ctx,
        format!("pack_channels {}", shape_text(input.shape())),
        &SHADER,
        "pack_channels",
        &[
            ("WORKGROUP", WORKGROUP as f64),
            ("PACK", packing.channels as f64),
        ],
        &params,
        &[input.buffer(), output],
        total as u64,
    )?
    .with_cost(Cost {
        // The pixels read are those kept.
        bytes: 4.0 * (n * c * out_h * out_w + packed.iter().product::<usize>()) as f64,
        shape: format!("{} -> {}", shape_text(input.shape()), shape_text(packed)),
        params: format!("pack channels by {packing}"),
        ..Cost::default()
    }))
}

/// Eager packing as `packing` says: allocates the packed tensor
/// ([`Packing::packed_shape`]), runs, returns it.
pub fn pack_channels(ctx: &Context, input: &Tensor, packing: Packing) -> Result<Tensor> {
    packing.check()?;
    let output = Tensor::empty(ctx, "packed channels", packing.packed_shape(input.shape()))?;
    let launch = prepare(ctx, input, packing, output.buffer())?;
    Launch::run_all(ctx, &[&launch])?;
    Ok(output)
}

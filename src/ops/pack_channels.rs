//! Launcher of `shaders/pack_channels.wgsl`: NCHW to the channel-packed layout of the packed
//! convolution kernels.
//!
//! x: (N, C, H, W)  y: (N, ceil(C / P), H, W, P), zeros past C, with P = 4 (conv2d_packed) or
//! 8 (conv2d_packed8, conv1x1_packed8); as an NCHW tensor (N, ceil(C / P), H, P*W).

use crate::context::Context;
use crate::error::Error;
use crate::error::Result;
use crate::ops::{to_u32, WORKGROUP};
use crate::pipeline::{shader, shape_text, Cost, Launch, Shader};
use crate::tensor::Tensor;

const SHADER: Shader = shader!("pack_channels", [Uniform, ReadOnly, ReadWrite]);

// Mirrors `Params` in shaders/pack_channels.wgsl field for field (8 x u32 = 32 bytes).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PackParams {
    channels: u32,
    groups: u32,
    plane: u32,
    plane_tiles: u32,
    total: u32,
    _pad: [u32; 3],
}

/// The packed shape of an NCHW `shape` in groups of `pack` channels, as an NCHW tensor:
/// (N, ceil(C / pack), H, pack * W).
pub fn packed_shape([n, c, h, w]: [usize; 4], pack: usize) -> [usize; 4] {
    [n, c.div_ceil(pack), h, pack * w]
}

fn check_pack(pack: usize) -> Result<()> {
    if pack == 4 || pack == 8 {
        Ok(())
    } else {
        Err(Error::invalid(
            "pack_channels group",
            format!("4 or 8 channels, found {pack}"),
        ))
    }
}

/// Builds the dispatch packing `input` in groups of `pack` (4 or 8) channels into `output`, a
/// buffer of at least `packed_shape(input.shape(), pack)` floats.
pub(crate) fn prepare(
    ctx: &Context,
    input: &Tensor,
    pack: usize,
    output: &wgpu::Buffer,
) -> Result<Launch> {
    check_pack(pack)?;
    let [n, c, h, w] = input.shape();
    let groups = c.div_ceil(pack);
    let plane_tiles = (h * w).div_ceil(WORKGROUP as usize);
    let total = n * groups * plane_tiles;
    let params = PackParams {
        channels: to_u32("C", c)?,
        groups: to_u32("channel groups", groups)?,
        plane: to_u32("H * W", h * w)?,
        plane_tiles: to_u32("plane tiles", plane_tiles)?,
        total: to_u32("workgroups", total)?,
        _pad: [0; 3],
    };
    let packed = packed_shape(input.shape(), pack);
    Ok(Launch::new(
        ctx,
        format!("pack_channels {}", shape_text(input.shape())),
        &SHADER,
        "pack_channels",
        &[("WORKGROUP", WORKGROUP as f64), ("PACK", pack as f64)],
        &params,
        &[input.buffer(), output],
        total as u64,
    )?
    .with_cost(Cost {
        bytes: 4.0 * (input.len() + packed.iter().product::<usize>()) as f64,
        shape: format!("{} -> {}", shape_text(input.shape()), shape_text(packed)),
        params: format!("pack channels by {pack}"),
        ..Cost::default()
    }))
}

/// Eager packing in groups of `pack` (4 or 8) channels: allocates the packed tensor
/// (N, ceil(C / pack), H, pack * W), runs, returns it.
pub fn pack_channels(ctx: &Context, input: &Tensor, pack: usize) -> Result<Tensor> {
    check_pack(pack)?;
    let output = Tensor::empty(ctx, "packed channels", packed_shape(input.shape(), pack))?;
    let launch = prepare(ctx, input, pack, output.buffer())?;
    Launch::run_all(ctx, &[&launch])?;
    Ok(output)
}

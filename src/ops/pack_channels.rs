//! Launcher of `shaders/pack_channels.wgsl`: NCHW to the channel-packed layout of the packed
//! convolution kernels.
//!
//! x: (N, C, H, W)  y: (N, ceil(C / 4), H, W, 4), zeros past C; as an NCHW tensor
//! (N, ceil(C / 4), H, 4W).

use crate::context::Context;
use crate::error::Result;
use crate::ops::{to_u32, WORKGROUP, WORKGROUP_CONSTANT};
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

/// The packed shape of an NCHW `shape`, as an NCHW tensor: (N, ceil(C / 4), H, 4W).
pub fn packed_shape([n, c, h, w]: [usize; 4]) -> [usize; 4] {
    [n, c.div_ceil(4), h, 4 * w]
}

/// Builds the dispatch packing `input` into `output`, a buffer of at least
/// `packed_shape(input.shape())` floats.
pub(crate) fn prepare(ctx: &Context, input: &Tensor, output: &wgpu::Buffer) -> Result<Launch> {
    let [n, c, h, w] = input.shape();
    let groups = c.div_ceil(4);
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
    let packed = packed_shape(input.shape());
    Ok(Launch::new(
        ctx,
        format!("pack_channels {}", shape_text(input.shape())),
        &SHADER,
        "pack_channels",
        &WORKGROUP_CONSTANT,
        &params,
        &[input.buffer(), output],
        total as u64,
    )?
    .with_cost(Cost {
        bytes: 4.0 * (input.len() + packed.iter().product::<usize>()) as f64,
        shape: format!("{} -> {}", shape_text(input.shape()), shape_text(packed)),
        params: "pack channels by 4".to_string(),
        ..Cost::default()
    }))
}

/// The dispatch packing `input` into a new buffer, which the launch keeps alive; the buffer is
/// returned too, for the kernel that reads it (the launch recorded first, see
/// [`Launch::after`]).
pub(crate) fn prepare_packed(
    ctx: &Context,
    input: &Tensor,
    what: &str,
) -> Result<(Launch, wgpu::Buffer)> {
    let bytes = 4 * packed_shape(input.shape()).iter().product::<usize>() as u64;
    let buffer = ctx.storage_buffer(what, bytes)?;
    let launch = prepare(ctx, input, &buffer)?.owning(buffer.clone());
    Ok((launch, buffer))
}

/// Eager packing: allocates the packed tensor (N, ceil(C / 4), H, 4W), runs, returns it.
pub fn pack_channels(ctx: &Context, input: &Tensor) -> Result<Tensor> {
    let output = Tensor::empty(ctx, "packed channels", packed_shape(input.shape()))?;
    let launch = prepare(ctx, input, output.buffer())?;
    Launch::run_all(ctx, &[&launch])?;
    Ok(output)
}

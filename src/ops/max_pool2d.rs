//! Launcher of `shaders/max_pool2d.wgsl`: max pooling with PyTorch's semantics
//! ([`PoolGeometry`]: kernel, stride, padding; padded taps never win; ceil_mode False).
//!
//! x: (N, C, H, W)  y: (N, C, H_out, W_out) with (H_out, W_out) from [`PoolGeometry::out_hw`]

use crate::context::Context;
use crate::error::Result;
use crate::ops::{to_u32, workgroups, WORKGROUP_CONSTANT};
use crate::pipeline::{shader, shape_text, Cost, Launch, Shader};
use crate::shape::PoolGeometry;
use crate::tensor::{OutputSlice, Tensor};

const SHADER: Shader = shader!("max_pool2d", [Uniform, ReadOnly, ReadWrite]);

// Mirrors `Params` in shaders/max_pool2d.wgsl field for field (12 x u32 = 48 bytes).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MaxPoolParams {
    channels: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    kernel_size: u32,
    stride: u32,
    padding: u32,
    out_c_total: u32,
    out_c_offset: u32,
    total: u32,
    _pad: u32,
}

/// The output shape for an input of `shape`.
pub fn out_shape(shape: [usize; 4], geometry: &PoolGeometry) -> Result<[usize; 4]> {
    let [n, c, h, w] = shape;
    let (out_h, out_w) = geometry.out_hw(h, w)?;
    Ok([n, c, out_h, out_w])
}

/// Builds the dispatch pooling `input` into `output` (a tensor or channel slice).
pub fn prepare(
    ctx: &Context,
    input: &Tensor,
    output: OutputSlice,
    geometry: &PoolGeometry,
) -> Result<Launch> {
    let out = out_shape(input.shape(), geometry)?;
    output.check_fits("max_pool2d", out)?;
    let [n, c, in_h, in_w] = input.shape();
    let [_, _, out_h, out_w] = out;
    let total = n * c * out_h * out_w;
    let params = MaxPoolParams {
        channels: to_u32("channels", c)?,
        in_h: to_u32("H", in_h)?,
        in_w: to_u32("W", in_w)?,
        out_h: to_u32("H_out", out_h)?,
        out_w: to_u32("W_out", out_w)?,
        kernel_size: to_u32("kernel_size", geometry.kernel_size)?,
        stride: to_u32("stride", geometry.stride)?,
        padding: to_u32("padding", geometry.padding)?,
        out_c_total: to_u32("output channels", output.tensor.shape()[1])?,
        out_c_offset: to_u32("channel offset", output.channel_offset)?,
        total: to_u32("elements", total)?,
        _pad: 0,
    };
    let k = geometry.kernel_size;
    Ok(Launch::new(
        ctx,
        format!("max_pool2d {k}x{k} stride {}", geometry.stride),
        &SHADER,
        "max_pool2d",
        &WORKGROUP_CONSTANT,
        &params,
        &[input.buffer(), output.tensor.buffer()],
        workgroups(total),
    )?
    .with_cost(Cost {
        // One comparison per tap; no multiply-adds.
        bytes: 4.0 * (input.len() + total) as f64,
        shape: format!("{} -> {}", shape_text(input.shape()), shape_text(out)),
        params: format!(
            "max pool {k}x{k} stride={} pad={}",
            geometry.stride, geometry.padding
        ),
        ..Cost::default()
    }))
}

/// `F.max_pool2d(input, kernel_size, stride, padding)`.
pub fn max_pool2d(ctx: &Context, input: &Tensor, geometry: &PoolGeometry) -> Result<Tensor> {
    let output = Tensor::empty(
        ctx,
        "max_pool2d output",
        out_shape(input.shape(), geometry)?,
    )?;
    Launch::run_all(ctx, &[&prepare(ctx, input, (&output).into(), geometry)?])?;
    Ok(output)
}

//! Launcher of `shaders/concat.wgsl`: concatenation along channels, `torch.cat(inputs, dim=1)`.
//!
//! inputs: (N, C_i, H, W) each  y: (N, sum C_i, H, W)

use crate::context::Context;
use crate::error::{Error, Result, Shape};
use crate::ops::{to_u32, workgroups, WORKGROUP_CONSTANT};
use crate::pipeline::{shader, shape_text, Cost, Launch, Shader};
use crate::tensor::{OutputSlice, Tensor};

const SHADER: Shader = shader!("concat", [Uniform, ReadOnly, ReadWrite]);

// Mirrors `Params` in shaders/concat.wgsl field for field (8 x u32 = 32 bytes).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ConcatParams {
    channels: u32,
    pixels: u32,
    out_c_total: u32,
    out_c_offset: u32,
    total: u32,
    _pad: [u32; 3],
}

/// Builds the dispatch copying `input` into its channel slice of the output.
pub fn prepare(ctx: &Context, input: &Tensor, output: OutputSlice) -> Result<Launch> {
    output.check_fits("concat", input.shape())?;
    let [_, c, h, w] = input.shape();
    let params = ConcatParams {
        channels: to_u32("channels", c)?,
        pixels: to_u32("pixels", h * w)?,
        out_c_total: to_u32("output channels", output.tensor.shape()[1])?,
        out_c_offset: to_u32("channel offset", output.channel_offset)?,
        total: to_u32("elements", input.len())?,
        _pad: [0; 3],
    };
    Ok(Launch::new(
        ctx,
        format!("concat '{}'", input.name()),
        &SHADER,
        "concat",
        &WORKGROUP_CONSTANT,
        &params,
        &[input.buffer(), output.tensor.buffer()],
        workgroups(input.len()),
    )?
    .with_cost(Cost {
        bytes: 8.0 * input.len() as f64,
        shape: format!(
            "{} -> {}",
            shape_text(input.shape()),
            shape_text(output.tensor.shape())
        ),
        params: format!("copy to channels {}..", output.channel_offset),
        ..Cost::default()
    }))
}

/// `torch.cat(inputs, dim=1)`: all inputs must share N, H and W.
pub fn concat(ctx: &Context, inputs: &[&Tensor]) -> Result<Tensor> {
    let first = inputs
        .first()
        .ok_or_else(|| Error::invalid("concat", "needs at least one input tensor, found none"))?;
    let [n, _, h, w] = first.shape();
    for input in inputs {
        let [ni, _, hi, wi] = input.shape();
        if (ni, hi, wi) != (n, h, w) {
            return Err(Error::shape(
                format!("concat input '{}'", input.name()),
                format!("N={n}, H={h}, W={w} like '{}'", first.name()),
                Shape(input.shape()),
            ));
        }
    }
    let channels = inputs.iter().map(|t| t.shape()[1]).sum();
    let output = Tensor::empty(ctx, "concat output", [n, channels, h, w])?;
    let mut launches = Vec::with_capacity(inputs.len());
    let mut offset = 0;
    for input in inputs {
        launches.push(prepare(ctx, input, OutputSlice::channels(&output, offset))?);
        offset += input.shape()[1];
    }
    Launch::run_all(ctx, &launches.iter().collect::<Vec<_>>())?;
    Ok(output)
}

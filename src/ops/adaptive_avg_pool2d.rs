//! Launcher of `shaders/adaptive_avg_pool2d.wgsl`: adaptive average pooling to any output size,
//! with PyTorch's window rule ([`adaptive_window`](crate::shape::adaptive_window)).
//!
//! x: (N, C, H, W)  y: (N, C, H_out, W_out)

use crate::context::Context;
use crate::error::{Error, Result};
use crate::ops::{to_u32, workgroups, WORKGROUP_CONSTANT};
use crate::pipeline::{shader, shape_text, Cost, Launch, Shader};
use crate::shape::adaptive_window;
use crate::tensor::Tensor;

const SHADER: Shader = shader!("adaptive_avg_pool2d", [Uniform, ReadOnly, ReadWrite]);

// Mirrors `Params` in shaders/adaptive_avg_pool2d.wgsl field for field (8 x u32 = 32 bytes).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PoolParams {
    planes: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    total: u32,
    _pad: [u32; 2],
}

/// Builds the dispatch pooling `input` into `output`, whose H and W are the target size.
pub fn prepare(ctx: &Context, input: &Tensor, output: &Tensor) -> Result<Launch> {
    let [n, c, in_h, in_w] = input.shape();
    output.expect_shape([Some(n), Some(c), None, None])?;
    let [_, _, out_h, out_w] = output.shape();
    let params = PoolParams {
        planes: to_u32("N * C", n * c)?,
        in_h: to_u32("H", in_h)?,
        in_w: to_u32("W", in_w)?,
        out_h: to_u32("H_out", out_h)?,
        out_w: to_u32("W_out", out_w)?,
        total: to_u32("elements", output.len())?,
        _pad: [0; 2],
    };
    Ok(Launch::new(
        ctx,
        format!("adaptive_avg_pool2d to {out_h}x{out_w}"),
        &SHADER,
        "adaptive_avg_pool2d",
        &WORKGROUP_CONSTANT,
        &params,
        &[input.buffer(), output.buffer()],
        workgroups(output.len()),
    )?
    .with_cost(cost(input.shape(), [out_h, out_w])))
}

/// One add per input pixel per window it falls in; bytes: the input and the output once.
pub fn cost(shape: [usize; 4], [out_h, out_w]: [usize; 2]) -> Cost {
    let [n, c, h, w] = shape;
    let span = |size: usize, out: usize| -> usize {
        (0..out)
            .map(|i| {
                let (s, e) = adaptive_window(i, size, out);
                e - s
            })
            .sum()
    };
    let flops = (n * c * span(h, out_h) * span(w, out_w)) as f64;
    Cost {
        nominal_flops: flops,
        useful_flops: flops,
        bytes: 4.0 * (n * c * (h * w + out_h * out_w)) as f64,
        shape: format!(
            "{} -> {}",
            shape_text(shape),
            shape_text([n, c, out_h, out_w])
        ),
        params: format!("adaptive avg pool to {out_h}x{out_w}"),
    }
}

/// `F.adaptive_avg_pool2d(input, output_size)`.
pub fn adaptive_avg_pool2d(
    ctx: &Context,
    input: &Tensor,
    output_size: [usize; 2],
) -> Result<Tensor> {
    if output_size.contains(&0) {
        return Err(Error::invalid(
            "adaptive_avg_pool2d output_size",
            format!("must be >= 1 in both dimensions, found {output_size:?}"),
        ));
    }
    let [n, c, _, _] = input.shape();
    let output = Tensor::empty(
        ctx,
        "adaptive_avg_pool2d output",
        [n, c, output_size[0], output_size[1]],
    )?;
    Launch::run_all(ctx, &[&prepare(ctx, input, &output)?])?;
    Ok(output)
}

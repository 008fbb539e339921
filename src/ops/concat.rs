//! Launcher of `shaders/concat.wgsl`: concatenation along channels, `torch.cat(inputs, dim=1)`.
//!
//! inputs: (N, C_i, H, W) each  y: (N, sum C_i, H, W)

use crate::context::Context;
use crate::error::{Error, Result, Shape};
use crate::ops::{to_u32, workgroups, WORKGROUP_CONSTANT};
use crate::pipeline::{shader, shape_text, Cost, Launch, Shader};
use crate::tensor::{OutputSlice, Tensor};

const SHADER: Shader = shader!("concat", [Uniform, ReadOnly, ReadWrite]);

// Mirrors `Params` in shaders/concat.wgsl field for field (8 x u32 = 32 bytes). Lengths count
// f32s for the `concat` entry point and vec4s for `concat_vec4`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ConcatParams {
    block: u32,
    out_block: u32,
    out_offset: u32,
    total: u32,
    groups: u32,
    _pad: [u32; 3],
}

/// vec4s each `concat_vec4` invocation copies (written out in the shader).
const VEC4S_PER_INVOCATION: usize = 8;

/// The kernel variants of `shaders/concat.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConcatVariant {
    /// One f32 per invocation: any shape.
    Scalar,
    /// One vec4 per invocation: needs `H * W % 4 == 0`.
    Vec4,
}

impl ConcatVariant {
    /// The variant the launcher picks for an input of `shape`: vec4 whenever it applies.
    pub fn for_shape(shape: [usize; 4]) -> ConcatVariant {
        if (shape[2] * shape[3]).is_multiple_of(4) {
            ConcatVariant::Vec4
        } else {
            ConcatVariant::Scalar
        }
    }

    /// Values per element of the kernel's view of the buffers (f32 or vec4).
    fn width(self) -> usize {
        match self {
            ConcatVariant::Scalar => 1,
            ConcatVariant::Vec4 => 4,
        }
    }

    fn entry(self) -> &'static str {
        match self {
            ConcatVariant::Scalar => "concat",
            ConcatVariant::Vec4 => "concat_vec4",
        }
    }
}

/// Builds the dispatch copying `input` into its channel slice of the output, with the variant
/// [`ConcatVariant::for_shape`] picks.
///
/// Both variants' pipelines are compiled on the first call: graphs cache a plan per input shape
/// on the promise that a plan for a new shape compiles nothing (src/graph, tested), and a new
/// H * W may switch the variant.
pub fn prepare(ctx: &Context, input: &Tensor, output: OutputSlice) -> Result<Launch> {
    for variant in [ConcatVariant::Scalar, ConcatVariant::Vec4] {
        ctx.pipeline(&SHADER, variant.entry(), &WORKGROUP_CONSTANT)?;
    }
    prepare_variant(ctx, input, output, ConcatVariant::for_shape(input.shape()))
}

/// Builds the dispatch with a given variant (tests cover each one).
pub fn prepare_variant(
    ctx: &Context,
    input: &Tensor,
    output: OutputSlice,
    variant: ConcatVariant,
) -> Result<Launch> {
    output.check_fits("concat", input.shape())?;
    let [_, c, h, w] = input.shape();
    let pixels = h * w;
    let width = variant.width();
    if pixels % width != 0 {
        return Err(Error::invalid(
            "concat variant",
            format!("{variant:?} needs H * W divisible by {width}, found {pixels}"),
        ));
    }
    // A block is one sample's channels; every length below is in units of `width` values.
    let block = c * pixels / width;
    let (groups, invocations) = match variant {
        ConcatVariant::Scalar => (block, input.len()),
        ConcatVariant::Vec4 => {
            let groups = block.div_ceil(VEC4S_PER_INVOCATION);
            (groups, input.shape()[0] * groups)
        }
    };
    let params = ConcatParams {
        block: to_u32("elements per sample", c * pixels / width)?,
        out_block: to_u32(
            "output elements per sample",
            output.tensor.shape()[1] * pixels / width,
        )?,
        out_offset: to_u32("channel offset", output.channel_offset * pixels / width)?,
        total: to_u32("invocations", invocations)?,
        groups: to_u32("invocations per sample", groups)?,
        _pad: [0; 3],
    };
    // Output indices are formed in u32 as well, and the kernel's exact-quotient correction
    // multiplies up to (N + 1) blocks; its f32 estimate needs N < 2^22.
    to_u32("output elements", output.tensor.len())?;
    to_u32("elements plus one sample", input.len() + c * pixels)?;
    let n = input.shape()[0];
    if n >= 1 << 22 {
        return Err(Error::invalid(
            "concat batch",
            format!("N must be below {}, found {n}", 1 << 22),
        ));
    }
    Ok(Launch::new(
        ctx,
        format!("concat '{}'", input.name()),
        &SHADER,
        variant.entry(),
        &WORKGROUP_CONSTANT,
        &params,
        &[input.buffer(), output.tensor.buffer()],
        workgroups(invocations),
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
    concat_with(ctx, inputs, None)
}

/// [`concat`] with a forced kernel variant (`None`: the launcher's choice per input).
pub fn concat_with(
    ctx: &Context,
    inputs: &[&Tensor],
    variant: Option<ConcatVariant>,
) -> Result<Tensor> {
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
        let slice = OutputSlice::channels(&output, offset);
        launches.push(match variant {
            Some(variant) => prepare_variant(ctx, input, slice, variant)?,
            None => prepare(ctx, input, slice)?,
        });
        offset += input.shape()[1];
    }
    Launch::run_all(ctx, &launches.iter().collect::<Vec<_>>())?;
    Ok(output)
}

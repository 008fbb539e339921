//! Launcher of `shaders/interpolate.wgsl`: bilinear interpolation to a given size with PyTorch's
//! coordinate rules for `align_corners` true and false.
//!
//! x: (N, C, H_in, W_in)  y: (N, C, H_out, W_out)

use crate::context::Context;
use crate::error::{Error, Result};
use crate::ops::{to_u32, workgroups, WORKGROUP_CONSTANT};
use crate::pipeline::{shader, shape_text, Cost, Launch, Shader};
use crate::shape::bilinear_scale;
use crate::tensor::{OutputSlice, Tensor};

const SHADER: Shader = shader!(
    "interpolate",
    prelude["bilinear"],
    [Uniform, ReadOnly, ReadWrite]
);

// Mirrors `Params` in shaders/interpolate.wgsl field for field (12 x 4 bytes = 48 bytes).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct InterpolateParams {
    channels: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    out_c_total: u32,
    out_c_offset: u32,
    align_corners: u32,
    scale_h: f32,
    scale_w: f32,
    total: u32,
    _pad: u32,
}

/// The kernel variants of `shaders/interpolate.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterpolateVariant {
    /// One output element per invocation.
    Element,
    /// One output row per invocation.
    Rows,
}

impl InterpolateVariant {
    /// The variant the launcher uses: rows for every shape. Graphs cache their plans per input
    /// shape on the promise that a new shape compiles no pipeline (src/graph, tested), so the
    /// choice may not depend on the shape; the row kernel is never slower than the element kernel
    /// on the CPU drivers this engine targets (one output element per row costs two divisions
    /// instead of four). The element kernel stays for GPUs, where neighbouring lanes writing
    /// neighbouring elements coalesce, and is tested beside it.
    pub fn for_shape(_output: [usize; 4]) -> InterpolateVariant {
        InterpolateVariant::Rows
    }

    fn entry(self) -> &'static str {
        match self {
            InterpolateVariant::Element => "interpolate",
            InterpolateVariant::Rows => "interpolate_rows",
        }
    }
}

/// Builds the dispatch resizing `input` to the H, W of `output` (a tensor or channel slice),
/// with the variant [`InterpolateVariant::for_shape`] picks.
pub fn prepare(
    ctx: &Context,
    input: &Tensor,
    output: OutputSlice,
    align_corners: bool,
) -> Result<Launch> {
    let [n, c, _, _] = input.shape();
    let [_, _, out_h, out_w] = output.tensor.shape();
    let variant = InterpolateVariant::for_shape([n, c, out_h, out_w]);
    prepare_variant(ctx, input, output, align_corners, variant)
}

/// Builds the dispatch with a given variant (tests cover each one).
pub fn prepare_variant(
    ctx: &Context,
    input: &Tensor,
    output: OutputSlice,
    align_corners: bool,
    variant: InterpolateVariant,
) -> Result<Launch> {
    let [n, c, in_h, in_w] = input.shape();
    let [_, _, out_h, out_w] = output.tensor.shape();
    output.check_fits("interpolate", [n, c, out_h, out_w])?;
    let total = n * c * out_h * out_w;
    // Output indices are formed in u32.
    to_u32("output elements", output.tensor.len())?;
    let invocations = match variant {
        InterpolateVariant::Element => total,
        InterpolateVariant::Rows => n * c * out_h,
    };
    let params = InterpolateParams {
        channels: to_u32("channels", c)?,
        in_h: to_u32("H", in_h)?,
        in_w: to_u32("W", in_w)?,
        out_h: to_u32("H_out", out_h)?,
        out_w: to_u32("W_out", out_w)?,
        out_c_total: to_u32("output channels", output.tensor.shape()[1])?,
        out_c_offset: to_u32("channel offset", output.channel_offset)?,
        align_corners: align_corners as u32,
        scale_h: bilinear_scale(in_h, out_h, align_corners),
        scale_w: bilinear_scale(in_w, out_w, align_corners),
        total: to_u32("invocations", invocations)?,
        _pad: 0,
    };
    Ok(Launch::new(
        ctx,
        format!("interpolate to {out_h}x{out_w} (align_corners={align_corners})"),
        &SHADER,
        variant.entry(),
        &WORKGROUP_CONSTANT,
        &params,
        &[input.buffer(), output.tensor.buffer()],
        workgroups(invocations),
    )?
    .with_cost(Cost {
        // Three linear blends (a multiply and an add each) per output element.
        nominal_flops: 6.0 * total as f64,
        useful_flops: 6.0 * total as f64,
        bytes: 4.0 * (input.len() + total) as f64,
        shape: format!(
            "{} -> {}",
            shape_text(input.shape()),
            shape_text([n, c, out_h, out_w])
        ),
        params: format!("bilinear align_corners={align_corners}"),
    }))
}

/// `F.interpolate(input, size, mode="bilinear", align_corners)`.
pub fn interpolate(
    ctx: &Context,
    input: &Tensor,
    size: [usize; 2],
    align_corners: bool,
) -> Result<Tensor> {
    interpolate_with(ctx, input, size, align_corners, None)
}

/// [`interpolate`] with a forced kernel variant (`None`: the launcher's choice).
pub fn interpolate_with(
    ctx: &Context,
    input: &Tensor,
    size: [usize; 2],
    align_corners: bool,
    variant: Option<InterpolateVariant>,
) -> Result<Tensor> {
    if size.contains(&0) {
        return Err(Error::invalid(
            "interpolate size",
            format!("must be >= 1 in both dimensions, found {size:?}"),
        ));
    }
    let [n, c, _, _] = input.shape();
    let output = Tensor::empty(ctx, "interpolate output", [n, c, size[0], size[1]])?;
    let launch = match variant {
        Some(variant) => prepare_variant(ctx, input, (&output).into(), align_corners, variant)?,
        None => prepare(ctx, input, (&output).into(), align_corners)?,
    };
    Launch::run_all(ctx, &[&launch])?;
    Ok(output)
}

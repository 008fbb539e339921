//! Launcher of `shaders/resize_argmax.wgsl`: the class map of segmentation logits at another
//! size, `F.interpolate(logits, size, mode="bilinear", align_corners=False).argmax(1)` in one
//! pass that never writes the resized logits.
//!
//! x: (1, C, H_in, W_in) with C <= 256  y: H_out x W_out class indices, one byte each

use crate::context::Context;
use crate::error::{Error, Result};
use crate::ops::{to_u32, workgroups, WORKGROUP_CONSTANT};
use crate::pipeline::{shader, shape_text, Cost, Launch, Shader};
use crate::shape::bilinear_scale;
use crate::tensor::Tensor;

const SHADER: Shader = shader!(
    "resize_argmax",
    prelude["bilinear"],
    [Uniform, ReadOnly, ReadWrite]
);

// Mirrors `Params` in shaders/resize_argmax.wgsl field for field (8 x 4 bytes = 32 bytes).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ResizeArgmaxParams {
    channels: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    scale_h: f32,
    scale_w: f32,
    words: u32,
}

/// The class of every pixel of `logits` (one image, at most 256 classes) resized to `size`
/// (H, W): row-major, one byte per pixel.
pub fn resize_argmax(
    ctx: &Context,
    logits: &Tensor,
    [out_h, out_w]: [usize; 2],
) -> Result<Vec<u8>> {
    let [n, c, in_h, in_w] = logits.shape();
    if n != 1 || c > 256 {
        return Err(Error::shape(
            "logits to a class map",
            "one image of at most 256 classes (1, C <= 256, H, W)",
            crate::error::Shape(logits.shape()),
        ));
    }
    if out_h == 0 || out_w == 0 {
        return Err(Error::invalid(
            "class map size",
            format!("must be >= 1 in both dimensions, found {out_h} x {out_w}"),
        ));
    }
    let pixels = out_h
        .checked_mul(out_w)
        .filter(|&p| p <= u32::MAX as usize)
        .ok_or_else(|| {
            Error::invalid("class map size", format!("{out_h} x {out_w} is too large"))
        })?;
    let words = pixels.div_ceil(4);
    let output = ctx.storage_buffer("class map", words as u64 * 4)?;
    let params = ResizeArgmaxParams {
        channels: to_u32("classes", c)?,
        in_h: to_u32("H", in_h)?,
        in_w: to_u32("W", in_w)?,
        out_h: to_u32("H_out", out_h)?,
        out_w: to_u32("W_out", out_w)?,
        scale_h: bilinear_scale(in_h, out_h, false),
        scale_w: bilinear_scale(in_w, out_w, false),
        words: to_u32("words", words)?,
    };
    let launch = Launch::new(
        ctx,
        format!("resize_argmax to {out_h}x{out_w}"),
        &SHADER,
        "resize_argmax",
        &WORKGROUP_CONSTANT,
        &params,
        &[logits.buffer(), &output],
        workgroups(words),
    )?
    .with_cost(Cost {
        // Three blends of two multiply-adds per class and pixel.
        nominal_flops: 12.0 * (c * pixels) as f64,
        useful_flops: 12.0 * (c * pixels) as f64,
        bytes: (4 * logits.len() + pixels) as f64,
        shape: format!("{} -> {out_h}x{out_w}", shape_text(logits.shape())),
        params: "bilinear resize + argmax".into(),
    });
    Launch::run_all(ctx, &[&launch])?;
    let mut bytes = ctx.read_buffer("class map", &output, words as u64 * 4)?;
    bytes.truncate(pixels);
    Ok(bytes)
}

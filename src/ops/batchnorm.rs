//! Eval-mode batch normalization: the host-side parameters (folded into a preceding conv by
//! [`ConvWeights::fold_batchnorm`](crate::ops::ConvWeights::fold_batchnorm)) and the launcher of
//! `shaders/batchnorm.wgsl` for a BN that follows no conv.
//!
//! x: (N, C, H, W)  gamma, beta, running_mean, running_var: (C,)  y: (N, C, H, W)

use crate::context::Context;
use crate::error::{Error, Result};
use crate::ops::{to_u32, workgroups, WORKGROUP_CONSTANT};
use crate::pipeline::{shader, shape_text, Cost, Launch, Shader};
use crate::tensor::{OutputSlice, Tensor};

const SHADER: Shader = shader!(
    "batchnorm",
    [Uniform, ReadOnly, ReadOnly, ReadOnly, ReadWrite]
);

/// PyTorch's `BatchNorm2d` eval-mode parameters, host side.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub running_mean: Vec<f32>,
    pub running_var: Vec<f32>,
    pub eps: f64,
}

impl BatchNorm {
    /// Checks that all four vectors have `channels` entries; `what` names the layer in errors.
    pub(crate) fn check_channels(&self, what: &str, channels: usize) -> Result<()> {
        for (field, values) in [
            ("weight (gamma)", &self.gamma),
            ("bias (beta)", &self.beta),
            ("running_mean", &self.running_mean),
            ("running_var", &self.running_var),
        ] {
            if values.len() != channels {
                return Err(Error::shape(
                    format!("{what} {field}"),
                    format!("({channels},)"),
                    format!("({},)", values.len()),
                ));
            }
        }
        if self.eps.is_nan() || self.eps < 0.0 {
            return Err(Error::invalid(
                format!("{what} eps"),
                format!("must be >= 0, found {}", self.eps),
            ));
        }
        Ok(())
    }

    pub fn channels(&self) -> usize {
        self.gamma.len()
    }

    /// Per-channel `scale = gamma / sqrt(var + eps)` and `shift = beta - mean * scale`, in f64.
    pub fn scale_shift_f64(&self) -> (Vec<f64>, Vec<f64>) {
        (0..self.gamma.len())
            .map(|c| {
                let scale = self.gamma[c] as f64 / (self.running_var[c] as f64 + self.eps).sqrt();
                (
                    scale,
                    self.beta[c] as f64 - self.running_mean[c] as f64 * scale,
                )
            })
            .unzip()
    }
}

// Mirrors `Params` in shaders/batchnorm.wgsl field for field (8 x u32 = 32 bytes).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BatchNormParams {
    channels: u32,
    pixels: u32,
    out_c_total: u32,
    out_c_offset: u32,
    relu: u32,
    total: u32,
    _pad: [u32; 2],
}

/// A standalone batch norm (optionally followed by ReLU) with its affine map on the GPU.
pub struct BatchNorm2d {
    name: String,
    channels: usize,
    relu: bool,
    scale: wgpu::Buffer,
    shift: wgpu::Buffer,
}

impl BatchNorm2d {
    pub fn new(ctx: &Context, name: &str, bn: &BatchNorm, relu: bool) -> Result<Self> {
        let channels = bn.channels();
        bn.check_channels(name, channels)?;
        if channels == 0 {
            return Err(Error::shape(
                format!("{name} weight (gamma)"),
                "at least 1 channel",
                "0",
            ));
        }
        let (scale, shift) = bn.scale_shift_f64();
        let to_f32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<_>>();
        Ok(BatchNorm2d {
            name: name.to_string(),
            channels,
            relu,
            scale: ctx.upload(&format!("{name} scale"), &to_f32(scale))?,
            shift: ctx.upload(&format!("{name} shift"), &to_f32(shift))?,
        })
    }

    pub fn prepare(&self, ctx: &Context, input: &Tensor, output: OutputSlice) -> Result<Launch> {
        input.expect_shape([None, Some(self.channels), None, None])?;
        output.check_fits(&self.name, input.shape())?;
        let [_, c, h, w] = input.shape();
        let params = BatchNormParams {
            channels: to_u32("channels", c)?,
            pixels: to_u32("pixels", h * w)?,
            out_c_total: to_u32("output channels", output.tensor.shape()[1])?,
            out_c_offset: to_u32("channel offset", output.channel_offset)?,
            relu: self.relu as u32,
            total: to_u32("elements", input.len())?,
            _pad: [0; 2],
        };
        Ok(Launch::new(
            ctx,
            self.name.clone(),
            &SHADER,
            "batchnorm",
            &WORKGROUP_CONSTANT,
            &params,
            &[
                input.buffer(),
                &self.scale,
                &self.shift,
                output.tensor.buffer(),
            ],
            workgroups(input.len()),
        )?
        .with_cost(Cost {
            nominal_flops: 2.0 * input.len() as f64,
            useful_flops: 2.0 * input.len() as f64,
            bytes: 4.0 * (2 * input.len() + 2 * c) as f64,
            shape: shape_text(input.shape()),
            params: format!("batch norm{}", if self.relu { " + relu" } else { "" }),
        }))
    }

    pub fn forward(&self, ctx: &Context, input: &Tensor) -> Result<Tensor> {
        let output = Tensor::empty(ctx, &format!("{} output", self.name), input.shape())?;
        let launch = self.prepare(ctx, input, (&output).into())?;
        Launch::run_all(ctx, &[&launch])?;
        Ok(output)
    }
}

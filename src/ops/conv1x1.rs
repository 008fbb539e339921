//! Launcher of `shaders/conv1x1.wgsl`: 1x1 convolution as a GEMM over channels.
//!
//! x: (N, C_in, H, W)  w: (C_out, C_in, 1, 1)  bias: (C_out,)  y: (N, C_out, H, W)

use crate::context::Context;
use crate::error::{Error, Result};
use crate::ops::{to_u32, workgroups, ConvWeights, WORKGROUP_CONSTANT};
use crate::pipeline::{shader, Launch, Shader};
use crate::tensor::{OutputSlice, Tensor};

const SHADER: Shader = shader!(
    "conv1x1",
    [Uniform, ReadOnly, ReadOnly, ReadOnly, ReadWrite]
);

/// Kernel variants, side by side in the shader and all tested.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Conv1x1Variant {
    /// One output element per invocation, weights in PyTorch's layout.
    Direct,
    /// 4 output channels x 4 pixels per invocation, weights packed as vec4.
    #[default]
    Tiled,
}

impl Conv1x1Variant {
    pub const ALL: [Conv1x1Variant; 2] = [Conv1x1Variant::Direct, Conv1x1Variant::Tiled];

    pub fn name(self) -> &'static str {
        match self {
            Conv1x1Variant::Direct => "conv1x1_direct",
            Conv1x1Variant::Tiled => "conv1x1_tiled",
        }
    }
}

/// Pixels per invocation in the tiled variant (`TILE_P` in the shader).
const TILE_P: usize = 4;

// Mirrors `Params` in shaders/conv1x1.wgsl field for field (12 x u32 = 48 bytes).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Conv1x1Params {
    batch: u32,
    in_channels: u32,
    pixels: u32,
    out_channels: u32,
    out_c_total: u32,
    out_c_offset: u32,
    relu: u32,
    pixel_tiles: u32,
    channel_groups: u32,
    total: u32,
    bias_stride: u32,
    _pad: u32,
}

/// A 1x1 convolution with its weights on the GPU, laid out for its variant.
pub struct Conv1x1 {
    name: String,
    in_channels: usize,
    out_channels: usize,
    relu: bool,
    variant: Conv1x1Variant,
    weight: wgpu::Buffer,
    bias: Option<wgpu::Buffer>,
}

impl Conv1x1 {
    pub fn new(
        ctx: &Context,
        name: &str,
        weights: &ConvWeights,
        relu: bool,
        variant: Conv1x1Variant,
    ) -> Result<Self> {
        if weights.kernel_size != 1 {
            return Err(Error::shape(
                format!("{name} weight"),
                "a 1x1 kernel",
                format!("{0}x{0}", weights.kernel_size),
            ));
        }
        let host = match variant {
            Conv1x1Variant::Direct => weights.padded_to_vec4(),
            Conv1x1Variant::Tiled => weights.packed_by_4(),
        };
        let weight = ctx.upload(&format!("{name} weight"), &host)?;
        let bias = match &weights.bias {
            Some(b) => Some(ctx.upload(&format!("{name} bias"), b)?),
            None => None,
        };
        Ok(Conv1x1 {
            name: name.to_string(),
            in_channels: weights.in_channels,
            out_channels: weights.out_channels,
            relu,
            variant,
            weight,
            bias,
        })
    }

    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    pub fn out_shape(&self, input: &Tensor) -> Result<[usize; 4]> {
        input.expect_shape([None, Some(self.in_channels), None, None])?;
        let [n, _, h, w] = input.shape();
        Ok([n, self.out_channels, h, w])
    }

    /// Builds the dispatch reading `input` and writing `output` (a tensor or channel slice).
    pub fn prepare(&self, ctx: &Context, input: &Tensor, output: OutputSlice) -> Result<Launch> {
        self.prepare_with_bias(ctx, input, output, None)
    }

    /// As [`Conv1x1::prepare`], but adding `bias` (N, C_out) — one bias row per image — in place
    /// of the conv's own. Graphs use it to fold a per-image constant branch into this conv.
    pub(crate) fn prepare_with_bias(
        &self,
        ctx: &Context,
        input: &Tensor,
        output: OutputSlice,
        per_image_bias: Option<&wgpu::Buffer>,
    ) -> Result<Launch> {
        let out_shape = self.out_shape(input)?;
        output.check_fits(&self.name, out_shape)?;
        let [n, _, h, w] = input.shape();
        let pixels = h * w;
        let pixel_tiles = pixels.div_ceil(TILE_P);
        let channel_groups = self.out_channels.div_ceil(4);
        let invocations = match self.variant {
            Conv1x1Variant::Direct => n * self.out_channels * pixels,
            Conv1x1Variant::Tiled => n * channel_groups * pixel_tiles,
        };
        let params = Conv1x1Params {
            batch: to_u32("batch", n)?,
            in_channels: to_u32("in_channels", self.in_channels)?,
            pixels: to_u32("pixels", pixels)?,
            out_channels: to_u32("out_channels", self.out_channels)?,
            out_c_total: to_u32("output channels", output.tensor.shape()[1])?,
            out_c_offset: to_u32("channel offset", output.channel_offset)?,
            relu: self.relu as u32,
            pixel_tiles: to_u32("tiles", pixel_tiles)?,
            channel_groups: to_u32("channel groups", channel_groups)?,
            total: to_u32("invocations", invocations)?,
            bias_stride: if per_image_bias.is_some() {
                to_u32("out_channels", self.out_channels)?
            } else {
                0
            },
            _pad: 0,
        };
        let zeros;
        let bias = match (per_image_bias, &self.bias) {
            (Some(b), _) => b,
            (None, Some(b)) => b,
            (None, None) => {
                zeros = ctx.zeros_buffer(self.out_channels as u64 * 4)?;
                &zeros
            }
        };
        Launch::new(
            ctx,
            format!("{} ({})", self.name, self.variant.name()),
            &SHADER,
            self.variant.name(),
            &WORKGROUP_CONSTANT,
            &params,
            &[input.buffer(), &self.weight, bias, output.tensor.buffer()],
            workgroups(invocations),
        )
    }

    /// Eager convolution: allocates the output, runs, returns it.
    pub fn forward(&self, ctx: &Context, input: &Tensor) -> Result<Tensor> {
        let output = Tensor::empty(
            ctx,
            &format!("{} output", self.name),
            self.out_shape(input)?,
        )?;
        let launch = self.prepare(ctx, input, (&output).into())?;
        Launch::run_all(ctx, &[&launch])?;
        Ok(output)
    }
}

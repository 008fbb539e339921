//! Launcher of `shaders/conv3x3.wgsl`: dilated 3x3 convolution, stride 1, any padding.
//!
//! x: (N, C_in, H, W)  w: (C_out, C_in, 3, 3)  bias: (C_out,)  y: (N, C_out, H_out, W_out)
//! with (H_out, W_out) from [`ConvGeometry::out_hw`].

use crate::context::Context;
use crate::error::{Error, Result};
use crate::ops::{to_u32, workgroups, ConvWeights, WORKGROUP_CONSTANT};
use crate::pipeline::{shader, Launch, Shader};
use crate::shape::ConvGeometry;
use crate::tensor::{OutputSlice, Tensor};

const SHADER: Shader = shader!(
    "conv3x3",
    [Uniform, ReadOnly, ReadOnly, ReadOnly, ReadWrite]
);

/// Kernel variants, side by side in the shader and all tested.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Conv3x3Variant {
    /// One output element per invocation, weights in PyTorch's layout. The readable baseline.
    Direct,
    /// 4 output channels x 4 pixels of a row per invocation, weights packed as vec4.
    #[default]
    Tiled,
}

impl Conv3x3Variant {
    pub const ALL: [Conv3x3Variant; 2] = [Conv3x3Variant::Direct, Conv3x3Variant::Tiled];

    pub fn name(self) -> &'static str {
        match self {
            Conv3x3Variant::Direct => "conv3x3_direct",
            Conv3x3Variant::Tiled => "conv3x3_tiled",
        }
    }
}

/// Output pixels per invocation along a row in the tiled variant (`TILE_W` in the shader).
const TILE_W: usize = 4;

// Mirrors `Params` in shaders/conv3x3.wgsl field for field (16 x u32 = 64 bytes).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Conv3x3Params {
    batch: u32,
    in_channels: u32,
    in_h: u32,
    in_w: u32,
    out_channels: u32,
    out_h: u32,
    out_w: u32,
    dilation: u32,
    pad_h: u32,
    pad_w: u32,
    out_c_total: u32,
    out_c_offset: u32,
    relu: u32,
    tiles_w: u32,
    channel_groups: u32,
    total: u32,
}

/// A 3x3 convolution with its weights on the GPU, laid out for its variant.
pub struct Conv3x3 {
    name: String,
    in_channels: usize,
    out_channels: usize,
    geometry: ConvGeometry,
    relu: bool,
    variant: Conv3x3Variant,
    weight: wgpu::Buffer,
    bias: Option<wgpu::Buffer>,
}

impl Conv3x3 {
    /// Uploads `weights` (which must hold a 3x3 kernel) for the given dilation and padding.
    pub fn new(
        ctx: &Context,
        name: &str,
        weights: &ConvWeights,
        geometry: ConvGeometry,
        relu: bool,
        variant: Conv3x3Variant,
    ) -> Result<Self> {
        if weights.kernel_size != 3 || geometry.kernel_size != 3 {
            return Err(Error::shape(
                format!("{name} weight"),
                "a 3x3 kernel",
                format!("{0}x{0}", weights.kernel_size),
            ));
        }
        if geometry.dilation == 0 {
            return Err(Error::invalid(
                format!("{name} dilation"),
                "must be >= 1, found 0",
            ));
        }
        let host = match variant {
            Conv3x3Variant::Direct => weights.padded_to_vec4(),
            Conv3x3Variant::Tiled => weights.packed_by_4(),
        };
        let weight = ctx.upload(&format!("{name} weight"), &host)?;
        let bias = match &weights.bias {
            Some(b) => Some(ctx.upload(&format!("{name} bias"), b)?),
            None => None,
        };
        Ok(Conv3x3 {
            name: name.to_string(),
            in_channels: weights.in_channels,
            out_channels: weights.out_channels,
            geometry,
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

    pub fn geometry(&self) -> ConvGeometry {
        self.geometry
    }

    /// The output shape for an input of `shape`, or an error naming the mismatch.
    pub fn out_shape(&self, input: &Tensor) -> Result<[usize; 4]> {
        input.expect_shape([None, Some(self.in_channels), None, None])?;
        let [n, _, h, w] = input.shape();
        let (out_h, out_w) = self.geometry.out_hw(h, w)?;
        Ok([n, self.out_channels, out_h, out_w])
    }

    /// Builds the dispatch reading `input` and writing `output` (a tensor or channel slice).
    pub fn prepare(&self, ctx: &Context, input: &Tensor, output: OutputSlice) -> Result<Launch> {
        let out_shape = self.out_shape(input)?;
        output.check_fits(&self.name, out_shape)?;
        let [n, _, in_h, in_w] = input.shape();
        let [_, out_c, out_h, out_w] = out_shape;
        let tiles_w = out_w.div_ceil(TILE_W);
        let channel_groups = out_c.div_ceil(4);
        let invocations = match self.variant {
            Conv3x3Variant::Direct => n * out_c * out_h * out_w,
            Conv3x3Variant::Tiled => n * channel_groups * out_h * tiles_w,
        };
        let params = Conv3x3Params {
            batch: to_u32("batch", n)?,
            in_channels: to_u32("in_channels", self.in_channels)?,
            in_h: to_u32("H", in_h)?,
            in_w: to_u32("W", in_w)?,
            out_channels: to_u32("out_channels", out_c)?,
            out_h: to_u32("H_out", out_h)?,
            out_w: to_u32("W_out", out_w)?,
            dilation: to_u32("dilation", self.geometry.dilation)?,
            pad_h: to_u32("padding", self.geometry.padding[0])?,
            pad_w: to_u32("padding", self.geometry.padding[1])?,
            out_c_total: to_u32("output channels", output.tensor.shape()[1])?,
            out_c_offset: to_u32("channel offset", output.channel_offset)?,
            relu: self.relu as u32,
            tiles_w: to_u32("tiles", tiles_w)?,
            channel_groups: to_u32("channel groups", channel_groups)?,
            total: to_u32("invocations", invocations)?,
        };
        let zeros;
        let bias = match &self.bias {
            Some(b) => b,
            None => {
                zeros = ctx.zeros_buffer(out_c as u64 * 4)?;
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

//! Launcher of the 1x1 convolution kernels (`shaders/conv1x1.wgsl`, `conv1x1_subgroup.wgsl`,
//! `conv1x1_packed8.wgsl`): 1x1 convolution as a GEMM over channels.
//!
//! x: (N, C_in, H, W)  w: (C_out, C_in, 1, 1)  bias: (C_out,)  y: (N, C_out, H, W)
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::ops::kernel_config::{ConvVariant, KernelConfig};
use crate::ops::{
    pack_channels, to_u32, workgroups, ConvWeights, RegisterTile, WORKGROUP_CONSTANT,
};
use crate::pipeline::{shader, shape_text, Cost, Launch, Shader};
use crate::tensor::{OutputSlice, Tensor};

const SHADER: Shader = shader!(
    "conv1x1",
    prelude ["register_tile", "conv1x1_params"],
    [Uniform, ReadOnly, ReadOnly, ReadOnly, ReadWrite]
);

/// The variants that need subgroup operations, in their own module so that `SHADER` compiles on
/// adapters without them.
const SUBGROUP_SHADER: Shader = shader!(
    "conv1x1_subgroup",
    prelude ["register_tile", "conv1x1_params", "subgroup_tile"],
    [Uniform, ReadOnly, ReadOnly, ReadOnly, ReadWrite]
);

/// The variant with 64-bit loads, which also needs 64-bit integers in shaders; its packed input
/// is binding 5.
const PACKED8_SHADER: Shader = shader!(
    "conv1x1_packed8",
    prelude ["register_tile", "conv1x1_params", "wide_tile"],
    [Uniform, ReadOnly, ReadOnly, ReadOnly, ReadWrite, ReadOnly]
);

/// Kernel variants, side by side and all tested.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Conv1x1Variant {
    /// One output element per invocation, weights in PyTorch's layout.
    Direct,
    /// 4 output channels x 4 pixels per invocation, weights packed as vec4.
    Tiled,
    /// Register-blocked GEMM: a [`RegisterTile`] of pixels x channels per invocation, one block
    /// of output channels per workgroup.
    Blocked,
    /// As `Blocked`, with each weight loaded by one lane and shared through subgroup
    /// broadcasts (shaders/conv1x1_subgroup.wgsl). Needs [`Context::has_subgroups`].
    Subgroup,
    /// As `Subgroup` with every load 64 bits wide, on a copy of the input packed by 8 channels
    /// (shaders/pack_channels.wgsl, run as part of the launch): vec4<u64>s of 8 input channels
    /// and of 8 weights (shaders/conv1x1_packed8.wgsl). Also needs [`Context::has_int64`].
    Packed8,
    /// The fastest variant this adapter supports, from measurements: [`Conv1x1Config::select`].
    #[default]
    Auto,
}

impl Conv1x1Variant {
    /// Every variant, `Auto` included. [`Conv1x1Variant::available`] leaves out the ones the
    /// adapter cannot run.
    pub const ALL: [Conv1x1Variant; 6] = [
        Conv1x1Variant::Direct,
        Conv1x1Variant::Tiled,
        Conv1x1Variant::Blocked,
        Conv1x1Variant::Subgroup,
        Conv1x1Variant::Packed8,
        Conv1x1Variant::Auto,
    ];

    /// The variants `ctx` can run.
    pub fn available(ctx: &Context) -> Vec<Conv1x1Variant> {
        Self::ALL
            .into_iter()
            .filter(|v| v.unsupported(ctx).is_none())
            .collect()
    }

    /// Why `ctx` cannot run the variant, if it cannot.
    pub fn unsupported(self, ctx: &Context) -> Option<&'static str> {
        let subgroups = matches!(self, Conv1x1Variant::Subgroup | Conv1x1Variant::Packed8);
        if subgroups && !ctx.has_subgroups() {
            Some("adapter has no subgroups of >= 8 invocations")
        } else if self == Conv1x1Variant::Packed8 && !ctx.has_int64() {
            Some("adapter has no 64-bit integers in shaders")
        } else {
            None
        }
    }

    /// The entry point (`conv1x1_auto` for `Auto`, which resolves to another one).
    pub fn name(self) -> &'static str {
        match self {
            Conv1x1Variant::Direct => "conv1x1_direct",
            Conv1x1Variant::Tiled => "conv1x1_tiled",
            Conv1x1Variant::Blocked => "conv1x1_blocked",
            Conv1x1Variant::Subgroup => "conv1x1_subgroup",
            Conv1x1Variant::Packed8 => "conv1x1_packed8",
            Conv1x1Variant::Auto => "conv1x1_auto",
        }
    }
}

/// This op's variants with their launch parameters (shared code: [`KernelConfig`]).
pub type Conv1x1Config = KernelConfig<Conv1x1Variant>;

impl Conv1x1Config {
    /// Default tiles, the fastest of each kernel on the ASPP shapes on lavapipe (see
    /// BENCHMARKS.md for the measurements).
    pub const BLOCKED_TILE: RegisterTile = RegisterTile::new(2, 3, 8);
    pub const SUBGROUP_TILE: RegisterTile = RegisterTile::new(6, 2, 8);
    /// packed8 takes 2, 4 or 8 vec4s of output channels.
    pub const PACKED8_TILE: RegisterTile = RegisterTile::new(4, 3, 8);
    /// The subgroup and packed8 tile for layers of at most 8 output channels.
    pub const SUBGROUP_TILE_NARROW: RegisterTile = RegisterTile::new(2, 4, 8);

    /// The configuration `Auto` resolves to on `ctx`, from measurements on lavapipe (Vulkan
    /// and GL, ASPP's 1x1s at 33x33, PSPNet's on pooled maps): where the adapter has subgroups
    /// and 64-bit integers, the packed8 kernel (1.5x the subgroup one at 33x33, 1.6-1.8x on
    /// PSPNet's pooled maps, its input packing included); with subgroups only, the subgroup
    /// kernel (3.3-3.4x the tiled one; c24p2w8 5% ahead of c16p2w8); without subgroups the
    /// tiled kernel, which the blocked one does not beat on a GEMM when every weight is a
    /// per-lane load (0.94x). Narrow layers take a narrower block. An autotuner can refine
    /// this per shape.
    pub fn select(ctx: &Context, _in_channels: usize, out_channels: usize) -> Self {
        if !ctx.has_subgroups() {
            return Conv1x1Variant::Tiled.into();
        }
        let variant = match Conv1x1Variant::Packed8.unsupported(ctx) {
            None => Conv1x1Variant::Packed8,
            Some(_) => Conv1x1Variant::Subgroup,
        };
        let tile = if out_channels <= 8 {
            Self::SUBGROUP_TILE_NARROW
        } else {
            variant.default_tile()
        };
        Conv1x1Config::new(variant, tile)
    }

    /// Every concrete configuration worth trying on `ctx`: the baselines and grids of tiles.
    pub fn candidates(ctx: &Context) -> Vec<Conv1x1Config> {
        let mut all = vec![Conv1x1Variant::Direct.into(), Conv1x1Variant::Tiled.into()];
        for (vec4s, pixels) in [(1, 2), (1, 4), (2, 2), (2, 4), (3, 2), (4, 1), (4, 2)] {
            for workgroup in [8, 16] {
                all.push(Conv1x1Config::new(
                    Conv1x1Variant::Blocked,
                    RegisterTile::new(vec4s, pixels, workgroup),
                ));
            }
        }
        if ctx.has_subgroups() {
            for (vec4s, pixels) in [
                (2, 2),
                (2, 4),
                (4, 1),
                (4, 2),
                (4, 3),
                (6, 1),
                (6, 2),
                (8, 1),
            ] {
                for workgroup in [8, 16] {
                    for variant in [Conv1x1Variant::Subgroup, Conv1x1Variant::Packed8] {
                        // packed8 spells out the broadcasts of 2, 4 and 8 vec4s only.
                        let fits = variant != Conv1x1Variant::Packed8 || vec4s != 6;
                        if fits && variant.unsupported(ctx).is_none() {
                            all.push(Conv1x1Config::new(
                                variant,
                                RegisterTile::new(vec4s, pixels, workgroup),
                            ));
                        }
                    }
                }
            }
        }
        all
    }
}

impl ConvVariant for Conv1x1Variant {
    const OP: &'static str = "conv1x1";
    const DIRECT: Self = Conv1x1Variant::Direct;
    const TILED: Self = Conv1x1Variant::Tiled;
    const BLOCKED: Self = Conv1x1Variant::Blocked;
    const SUBGROUP: Self = Conv1x1Variant::Subgroup;
    const PACKED: Option<Self> = None;
    const PACKED8: Option<Self> = Some(Conv1x1Variant::Packed8);
    const AUTO: Self = Conv1x1Variant::Auto;

    fn entry_point(self) -> &'static str {
        self.name()
    }

    fn default_tile(self) -> RegisterTile {
        match self {
            Conv1x1Variant::Subgroup => Conv1x1Config::SUBGROUP_TILE,
            Conv1x1Variant::Packed8 => Conv1x1Config::PACKED8_TILE,
            _ => Conv1x1Config::BLOCKED_TILE,
        }
    }

    fn select(ctx: &Context, in_channels: usize, out_channels: usize) -> Conv1x1Config {
        Conv1x1Config::select(ctx, in_channels, out_channels)
    }
}

/// Pixels per invocation in the tiled variant (`TILE_P` in the shader).
const TILE_P: usize = 4;

// Mirrors `Params` in shaders/conv1x1.wgsl field for field (16 x u32 = 64 bytes).
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
    block_tiles: u32,
    channel_blocks: u32,
    _pad: [u32; 3],
}

/// A 1x1 convolution with its weights on the GPU, laid out for its variant.
pub struct Conv1x1 {
    name: String,
    in_channels: usize,
    out_channels: usize,
    relu: bool,
    /// As asked for: `Auto` is resolved per input shape in `prepare` (tune cache, then the
    /// measured defaults).
    config: Conv1x1Config,
    /// Host copy of the weights, laid out anew for each configuration a shape resolves to.
    weights: ConvWeights,
    /// The weights in the layout of each configuration used so far, each uploaded once.
    layouts: Mutex<HashMap<Conv1x1Config, Arc<wgpu::Buffer>>>,
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
        Self::with_config(ctx, name, weights, relu, variant.into())
    }

    /// As [`Conv1x1::new`] with explicit launch parameters (`Auto` is resolved here, for this
    /// adapter and these channel counts).
    pub fn with_config(
        ctx: &Context,
        name: &str,
        weights: &ConvWeights,
        relu: bool,
        config: Conv1x1Config,
    ) -> Result<Self> {
        if weights.kernel_size != 1 {
            return Err(Error::shape(
                format!("{name} weight"),
                "a 1x1 kernel",
                format!("{0}x{0}", weights.kernel_size),
            ));
        }
        // A concrete configuration is checked (and its weights uploaded) now; `Auto` waits for
        // the input shape.
        if config.variant != Conv1x1Variant::Auto {
            config.resolve(ctx, weights.in_channels, weights.out_channels)?;
        }
        let bias = match &weights.bias {
            Some(b) => Some(ctx.upload(&format!("{name} bias"), b)?),
            None => None,
        };
        Ok(Conv1x1 {
            name: name.to_string(),
            in_channels: weights.in_channels,
            out_channels: weights.out_channels,
            relu,
            config,
            weights: weights.clone(),
            layouts: Mutex::new(HashMap::new()),
            bias,
        })
    }

    /// The weights laid out for `config` (resolved), uploaded on first use.
    fn layout(&self, ctx: &Context, config: Conv1x1Config) -> Result<Arc<wgpu::Buffer>> {
        let mut layouts = self.layouts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(buffer) = layouts.get(&config) {
            return Ok(buffer.clone());
        }
        let host = match config.variant {
            Conv1x1Variant::Direct => self.weights.padded_to_vec4(),
            Conv1x1Variant::Tiled => self.weights.packed_by_4(),
            Conv1x1Variant::Blocked | Conv1x1Variant::Subgroup => {
                self.weights.packed_blocked(config.tile.block_channels())
            }
            Conv1x1Variant::Packed8 => self.weights.packed_wide(config.tile.block_channels()),
            Conv1x1Variant::Auto => unreachable!("resolved configurations only"),
        };
        let buffer =
            Arc::new(ctx.upload(&format!("{} weight ({})", self.name, config.label()), &host)?);
        layouts.insert(config, buffer.clone());
        Ok(buffer)
    }

    /// The key of this layer on an input of `shape` in `atrous tune`'s cache.
    pub fn tune_key(&self, shape: [usize; 4]) -> String {
        let [n, c, h, w] = shape;
        format!("conv1x1 {n}x{c}x{h}x{w} cout={}", self.out_channels)
    }

    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// The configuration used for an input of `shape` (never `Auto`): as asked for, or for
    /// `Auto` the tuned winner for this shape on this adapter, else the measured default.
    pub fn config_for(&self, ctx: &Context, shape: [usize; 4]) -> Result<Conv1x1Config> {
        if self.config.variant != Conv1x1Variant::Auto {
            return self
                .config
                .resolve(ctx, self.in_channels, self.out_channels);
        }
        let tuned = ctx
            .tuned_config(&self.tune_key(shape))
            .and_then(|text| Conv1x1Config::parse(text).ok())
            .filter(|c| c.variant != Conv1x1Variant::Auto)
            .and_then(|c| c.resolve(ctx, self.in_channels, self.out_channels).ok());
        match tuned {
            Some(config) => Ok(config),
            None => self
                .config
                .resolve(ctx, self.in_channels, self.out_channels),
        }
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
        let config = self.config_for(ctx, input.shape())?;
        let weight = self.layout(ctx, config)?;
        output.check_fits(&self.name, out_shape)?;
        let [n, _, h, w] = input.shape();
        let pixels = h * w;
        let pixel_tiles = pixels.div_ceil(TILE_P);
        let channel_groups = self.out_channels.div_ceil(4);
        let tile = config.tile;
        let block_tiles = pixels.div_ceil(tile.tile_pixels());
        let channel_blocks = self.out_channels.div_ceil(tile.block_channels());
        // `total` counts invocations for the one-dimensional kernels and workgroups for the
        // blocked one.
        let (total, workgroup_count, constants) = match config.variant {
            Conv1x1Variant::Direct => {
                let invocations = n * self.out_channels * pixels;
                (
                    invocations,
                    workgroups(invocations),
                    WORKGROUP_CONSTANT.to_vec(),
                )
            }
            Conv1x1Variant::Tiled => {
                let invocations = n * channel_groups * pixel_tiles;
                (
                    invocations,
                    workgroups(invocations),
                    WORKGROUP_CONSTANT.to_vec(),
                )
            }
            Conv1x1Variant::Blocked | Conv1x1Variant::Subgroup | Conv1x1Variant::Packed8 => {
                let count = n * channel_blocks * block_tiles;
                (count, count as u64, tile.constants().to_vec())
            }
            Conv1x1Variant::Auto => unreachable!("resolve() replaces Auto"),
        };
        let shader = match config.variant {
            Conv1x1Variant::Subgroup => &SUBGROUP_SHADER,
            Conv1x1Variant::Packed8 => &PACKED8_SHADER,
            _ => &SHADER,
        };
        let params = Conv1x1Params {
            batch: to_u32("batch", n)?,
            // conv1x1_packed8 reads C_in rounded up to its groups of 8 (zeros past C_in).
            in_channels: to_u32(
                "in_channels",
                match config.variant {
                    Conv1x1Variant::Packed8 => self.in_channels.next_multiple_of(8),
                    _ => self.in_channels,
                },
            )?,
            pixels: to_u32("pixels", pixels)?,
            out_channels: to_u32("out_channels", self.out_channels)?,
            out_c_total: to_u32("output channels", output.tensor.shape()[1])?,
            out_c_offset: to_u32("channel offset", output.channel_offset)?,
            relu: self.relu as u32,
            pixel_tiles: to_u32("tiles", pixel_tiles)?,
            channel_groups: to_u32("channel groups", channel_groups)?,
            total: to_u32("invocations", total)?,
            bias_stride: if per_image_bias.is_some() {
                to_u32("out_channels", self.out_channels)?
            } else {
                0
            },
            block_tiles: to_u32("pixel tiles", block_tiles)?,
            channel_blocks: to_u32("channel blocks", channel_blocks)?,
            _pad: [0; 3],
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
        // The packed8 variant reads a copy of the input packed by 8 channels, made by the
        // launch's first dispatch.
        let packed = match config.variant {
            Conv1x1Variant::Packed8 => Some(pack_channels::prepare_packed(
                ctx,
                input,
                8,
                &format!("{} packed input", self.name),
            )?),
            _ => None,
        };
        let mut buffers = vec![input.buffer(), &weight, bias, output.tensor.buffer()];
        if let Some((_, x8)) = &packed {
            buffers.push(x8);
        }
        let launch = Launch::new(
            ctx,
            format!("{} ({})", self.name, config.label()),
            shader,
            config.variant.name(),
            &constants,
            &params,
            &buffers,
            workgroup_count,
        )?
        .with_cost(self.cost(input.shape(), config));
        Ok(match packed {
            Some((pack, _)) => launch.after(pack),
            None => launch,
        })
    }

    /// FLOPs and compulsory bytes for an input of `shape`.
    pub fn cost(&self, shape: [usize; 4], config: Conv1x1Config) -> Cost {
        let [n, c, h, w] = shape;
        let flops = 2.0 * (n * c * self.out_channels * h * w) as f64;
        let elements = n * c * h * w
            + self.out_channels * c
            + self.out_channels
            + n * self.out_channels * h * w;
        Cost {
            nominal_flops: flops,
            useful_flops: flops,
            bytes: 4.0 * elements as f64,
            shape: format!(
                "{} -> {}",
                shape_text(shape),
                shape_text([n, self.out_channels, h, w])
            ),
            params: format!("1x1 {}", config.label()),
        }
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

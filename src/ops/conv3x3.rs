//! Launcher of the 3x3 convolution kernels (`shaders/conv3x3.wgsl`, `conv3x3_subgroup.wgsl`,
//! `conv3x3_packed8.wgsl`): dilated 3x3 convolution, stride 1, any padding.
//!
//! x: (N, C_in, H, W)  w: (C_out, C_in, 3, 3)  bias: (C_out,)  y: (N, C_out, H_out, W_out)
//! with (H_out, W_out) from [`ConvGeometry::out_hw`].
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::ops::kernel_config::{ConvVariant, KernelConfig};
use crate::ops::{
    pack_channels, to_u32, workgroups, ConvWeights, RegisterTile, WORKGROUP_CONSTANT,
};
use crate::pipeline::{shader, shape_text, Cost, Launch, Shader};
use crate::shape::{ConvGeometry, TapRegion};
use crate::tensor::{OutputSlice, Tensor};

const SHADER: Shader = shader!(
    "conv3x3",
    prelude ["conv3x3_params", "register_tile", "pixel_runs"],
    [Uniform, ReadOnly, ReadOnly, ReadOnly, ReadWrite, ReadOnly]
);

/// The variants that need subgroup operations, in their own module so that `SHADER` compiles on
/// adapters without them.
const SUBGROUP_SHADER: Shader = shader!(
    "conv3x3_subgroup",
    prelude ["conv3x3_params", "register_tile", "subgroup_tile", "pixel_runs"],
    [Uniform, ReadOnly, ReadOnly, ReadOnly, ReadWrite, ReadOnly, ReadOnly]
);

/// The variant with 64-bit loads, which also needs 64-bit integers in shaders; same bindings.
const PACKED8_SHADER: Shader = shader!(
    "conv3x3_packed8",
    prelude ["conv3x3_params", "register_tile", "wide_tile", "pixel_runs"],
    [Uniform, ReadOnly, ReadOnly, ReadOnly, ReadWrite, ReadOnly, ReadOnly]
);

/// Kernel variants, side by side and all tested.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Conv3x3Variant {
    /// One output element per invocation, weights in PyTorch's layout. The readable baseline.
    Direct,
    /// 4 output channels x 4 pixels of a row per invocation, weights packed as vec4.
    Tiled,
    /// Register-blocked and tap-pruned: a [`RegisterTile`] of pixels x channels per invocation,
    /// one block of output channels per workgroup, taps wholly in the padding skipped.
    Blocked,
    /// As `Blocked`, with each weight loaded by one lane and shared through subgroup
    /// broadcasts (shaders/conv3x3_subgroup.wgsl). Needs [`Context::has_subgroups`].
    Subgroup,
    /// As `Subgroup`, reading a channel-packed copy of the input (shaders/pack_channels.wgsl,
    /// run as part of the launch): one vec4 load per pixel covers 4 input channels.
    Packed,
    /// As `Packed` with every load 64 bits wide: vec4<u64>s of 8 packed input channels and of
    /// 8 weights (shaders/conv3x3_packed8.wgsl), half the loads per multiply-add. Also needs
    /// [`Context::has_int64`].
    Packed8,
    /// The fastest variant this adapter supports for the layer's shape, from measurements:
    /// [`Conv3x3Config::select`].
    #[default]
    Auto,
}

impl Conv3x3Variant {
    /// Every variant, `Auto` included. [`Conv3x3Variant::available`] leaves out the ones the
    /// adapter cannot run.
    pub const ALL: [Conv3x3Variant; 7] = [
        Conv3x3Variant::Direct,
        Conv3x3Variant::Tiled,
        Conv3x3Variant::Blocked,
        Conv3x3Variant::Subgroup,
        Conv3x3Variant::Packed,
        Conv3x3Variant::Packed8,
        Conv3x3Variant::Auto,
    ];

    /// The variants `ctx` can run.
    pub fn available(ctx: &Context) -> Vec<Conv3x3Variant> {
        Self::ALL
            .into_iter()
            .filter(|v| v.unsupported(ctx).is_none())
            .collect()
    }

    /// Whether the variant's kernel uses subgroup operations.
    pub fn needs_subgroups(self) -> bool {
        matches!(
            self,
            Conv3x3Variant::Subgroup | Conv3x3Variant::Packed | Conv3x3Variant::Packed8
        )
    }

    /// Why `ctx` cannot run the variant, if it cannot.
    pub fn unsupported(self, ctx: &Context) -> Option<&'static str> {
        if self.needs_subgroups() && !ctx.has_subgroups() {
            Some("adapter has no subgroups of >= 8 invocations")
        } else if self == Conv3x3Variant::Packed8 && !ctx.has_int64() {
            Some("adapter has no 64-bit integers in shaders")
        } else {
            None
        }
    }

    /// The entry point (`conv3x3_auto` for `Auto`, which resolves to another one).
    pub fn name(self) -> &'static str {
        match self {
            Conv3x3Variant::Direct => "conv3x3_direct",
            Conv3x3Variant::Tiled => "conv3x3_tiled",
            Conv3x3Variant::Blocked => "conv3x3_blocked",
            Conv3x3Variant::Subgroup => "conv3x3_subgroup",
            Conv3x3Variant::Packed => "conv3x3_packed",
            Conv3x3Variant::Packed8 => "conv3x3_packed8",
            Conv3x3Variant::Auto => "conv3x3_auto",
        }
    }
}

/// This op's variants with their launch parameters (shared code: [`KernelConfig`]).
pub type Conv3x3Config = KernelConfig<Conv3x3Variant>;

impl Conv3x3Config {
    /// Default tiles, the fastest of each kernel on the ASPP shapes on lavapipe (see
    /// BENCHMARKS.md for the measurements).
    pub const BLOCKED_TILE: RegisterTile = RegisterTile::new(2, 3, 8);
    pub const SUBGROUP_TILE: RegisterTile = RegisterTile::new(4, 3, 8);
    /// The subgroup tile for layers of at most 8 output channels: a block of 16 would leave
    /// half the accumulators idle.
    pub const SUBGROUP_TILE_NARROW: RegisterTile = RegisterTile::new(2, 4, 8);

    /// The configuration `Auto` resolves to on `ctx`, from measurements on lavapipe (Vulkan
    /// and GL, ASPP 512->256 at 33x33): where the adapter has subgroups, the packed subgroup
    /// kernel (1.3-1.5x the subgroup one on the same input, which was 3.7-3.9x the tiled
    /// one), with 64-bit loads where it also has 64-bit integers (1.2x the 32-bit loads);
    /// the blocked one otherwise (1.9x at rate 6, 1.5x at 12, 1.0x at 18 on GL).
    /// c16p3w8 is best at every ASPP rate and within 2% of c16p4w8 on PSPNet's 60x60
    /// bottleneck; the best tile per shape is `atrous tune`'s job. Narrow layers take a
    /// narrower block.
    pub fn select(ctx: &Context, _in_channels: usize, out_channels: usize) -> Self {
        if ctx.has_subgroups() {
            let tile = if out_channels <= 8 {
                Self::SUBGROUP_TILE_NARROW
            } else {
                Self::SUBGROUP_TILE
            };
            let variant = match Conv3x3Variant::Packed8.unsupported(ctx) {
                None => Conv3x3Variant::Packed8,
                Some(_) => Conv3x3Variant::Packed,
            };
            Conv3x3Config::new(variant, tile)
        } else {
            Conv3x3Config::new(Conv3x3Variant::Blocked, Self::BLOCKED_TILE)
        }
    }

    /// Every concrete configuration worth trying on `ctx`: the baselines and grids of tiles.
    pub fn candidates(ctx: &Context) -> Vec<Conv3x3Config> {
        let mut all = vec![Conv3x3Variant::Direct.into(), Conv3x3Variant::Tiled.into()];
        for (vec4s, pixels) in [(1, 2), (1, 4), (2, 2), (2, 4), (3, 2), (4, 1), (4, 2)] {
            for workgroup in [8, 16] {
                all.push(Conv3x3Config::new(
                    Conv3x3Variant::Blocked,
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
                    for variant in [
                        Conv3x3Variant::Subgroup,
                        Conv3x3Variant::Packed,
                        Conv3x3Variant::Packed8,
                    ] {
                        // packed8 spells out the broadcasts of 2, 4 and 8 vec4s only.
                        let fits = variant != Conv3x3Variant::Packed8 || vec4s != 6;
                        if fits && variant.unsupported(ctx).is_none() {
                            all.push(Conv3x3Config::new(
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

impl ConvVariant for Conv3x3Variant {
    const OP: &'static str = "conv3x3";
    const DIRECT: Self = Conv3x3Variant::Direct;
    const TILED: Self = Conv3x3Variant::Tiled;
    const BLOCKED: Self = Conv3x3Variant::Blocked;
    const SUBGROUP: Self = Conv3x3Variant::Subgroup;
    const PACKED: Option<Self> = Some(Conv3x3Variant::Packed);
    const PACKED8: Option<Self> = Some(Conv3x3Variant::Packed8);
    const AUTO: Self = Conv3x3Variant::Auto;

    fn entry_point(self) -> &'static str {
        self.name()
    }

    fn default_tile(self) -> RegisterTile {
        match self {
            Conv3x3Variant::Subgroup | Conv3x3Variant::Packed | Conv3x3Variant::Packed8 => {
                Conv3x3Config::SUBGROUP_TILE
            }
            _ => Conv3x3Config::BLOCKED_TILE,
        }
    }

    fn select(ctx: &Context, in_channels: usize, out_channels: usize) -> Conv3x3Config {
        Conv3x3Config::select(ctx, in_channels, out_channels)
    }
}

/// The tap-pruned kernels' runs of pixels: each tap region cut into runs of `run_pixels` pixels
/// (the last one of a region shorter); entry `tile` of the shaders' `runs` table
/// (shaders/pixel_runs.wgsl): [y0, x0, w | h << 16, first pixel of the run in the region].
fn pixel_runs(regions: &[TapRegion], run_pixels: usize) -> Result<Vec<[u32; 4]>> {
    let mut runs = Vec::new();
    for r in regions {
        if r.h >= 1 << 16 || r.w >= 1 << 16 {
            return Err(Error::invalid(
                "conv3x3 output",
                format!(
                    "maps of at most 65535 x 65535 pixels, found a region of {}x{}",
                    r.h, r.w
                ),
            ));
        }
        let size = (r.w | r.h << 16) as u32;
        for start in (0..r.h * r.w).step_by(run_pixels) {
            runs.push([
                to_u32("row", r.y0)?,
                to_u32("column", r.x0)?,
                size,
                to_u32("pixel", start)?,
            ]);
        }
    }
    Ok(runs)
}

/// Output pixels per invocation along a row in the tiled variant (`TILE_W` in the shader).
const TILE_W: usize = 4;

// Mirrors `Params` in shaders/conv3x3_params.wgsl field for field (20 x u32 = 80 bytes).
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
    out_pixels: u32,
    pixel_tiles: u32,
    channel_blocks: u32,
    _pad: u32,
}

/// A 3x3 convolution with its weights on the GPU, laid out for its variant.
pub struct Conv3x3 {
    name: String,
    in_channels: usize,
    out_channels: usize,
    geometry: ConvGeometry,
    relu: bool,
    /// As asked for: `Auto` is resolved per input shape in `prepare` (tune cache, then the
    /// measured defaults).
    config: Conv3x3Config,
    /// Host copy of the weights, laid out anew for each configuration a shape resolves to.
    weights: ConvWeights,
    /// The weights in the layout of each configuration used so far, each uploaded once.
    layouts: Mutex<HashMap<Conv3x3Config, Arc<wgpu::Buffer>>>,
    bias: Option<wgpu::Buffer>,
}

impl Conv3x3 {
    /// Uploads `weights` (which must hold a 3x3 kernel) for the given dilation and padding, laid
    /// out for `variant` with its default launch parameters.
    pub fn new(
        ctx: &Context,
        name: &str,
        weights: &ConvWeights,
        geometry: ConvGeometry,
        relu: bool,
        variant: Conv3x3Variant,
    ) -> Result<Self> {
        Self::with_config(ctx, name, weights, geometry, relu, variant.into())
    }

    /// As [`Conv3x3::new`] with explicit launch parameters (`Auto` is resolved here, for this
    /// adapter and these channel counts).
    pub fn with_config(
        ctx: &Context,
        name: &str,
        weights: &ConvWeights,
        geometry: ConvGeometry,
        relu: bool,
        config: Conv3x3Config,
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
        // A concrete configuration is checked (and its weights uploaded) now; `Auto` waits for
        // the input shape.
        if config.variant != Conv3x3Variant::Auto {
            config.resolve(ctx, weights.in_channels, weights.out_channels)?;
        }
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
            config,
            weights: weights.clone(),
            layouts: Mutex::new(HashMap::new()),
            bias,
        })
    }

    /// The weights laid out for `config` (resolved), uploaded on first use.
    fn layout(&self, ctx: &Context, config: Conv3x3Config) -> Result<Arc<wgpu::Buffer>> {
        let mut layouts = self.layouts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(buffer) = layouts.get(&config) {
            return Ok(buffer.clone());
        }
        let host = match config.variant {
            Conv3x3Variant::Direct => self.weights.padded_to_vec4(),
            Conv3x3Variant::Tiled => self.weights.packed_by_4(),
            Conv3x3Variant::Blocked | Conv3x3Variant::Subgroup => {
                self.weights.packed_blocked(config.tile.block_channels())
            }
            Conv3x3Variant::Packed => self
                .weights
                .padded_in_channels(4)
                .packed_blocked(config.tile.block_channels()),
            Conv3x3Variant::Packed8 => self.weights.packed_wide(config.tile.block_channels()),
            Conv3x3Variant::Auto => unreachable!("resolved configurations only"),
        };
        let buffer =
            Arc::new(ctx.upload(&format!("{} weight ({})", self.name, config.label()), &host)?);
        layouts.insert(config, buffer.clone());
        Ok(buffer)
    }

    /// The key of this layer on an input of `shape` in `atrous tune`'s cache.
    pub fn tune_key(&self, shape: [usize; 4]) -> String {
        let [n, c, h, w] = shape;
        format!(
            "conv3x3 {n}x{c}x{h}x{w} cout={} dil={} pad={},{}",
            self.out_channels,
            self.geometry.dilation,
            self.geometry.padding[0],
            self.geometry.padding[1]
        )
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

    /// The configuration used for an input of `shape` (never `Auto`): as asked for, or for
    /// `Auto` the tuned winner for this shape on this adapter, else the measured default.
    pub fn config_for(&self, ctx: &Context, shape: [usize; 4]) -> Result<Conv3x3Config> {
        if self.config.variant != Conv3x3Variant::Auto {
            return self
                .config
                .resolve(ctx, self.in_channels, self.out_channels);
        }
        let tuned = ctx
            .tuned_config(&self.tune_key(shape))
            .and_then(|text| Conv3x3Config::parse(text).ok())
            .filter(|c| c.variant != Conv3x3Variant::Auto)
            .and_then(|c| c.resolve(ctx, self.in_channels, self.out_channels).ok());
        match tuned {
            Some(config) => Ok(config),
            None => self
                .config
                .resolve(ctx, self.in_channels, self.out_channels),
        }
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
        let config = self.config_for(ctx, input.shape())?;
        let weight = self.layout(ctx, config)?;
        output.check_fits(&self.name, out_shape)?;
        let [n, _, in_h, in_w] = input.shape();
        let [_, out_c, out_h, out_w] = out_shape;
        let tiles_w = out_w.div_ceil(TILE_W);
        let channel_groups = out_c.div_ceil(4);
        let tile = config.tile;
        let out_pixels = out_h * out_w;
        // The tap-pruned kernels (blocked, subgroup, packed) take their runs of pixels from a
        // table, one tap region at a time; direct and tiled leave it unread.
        let runs = pixel_runs(&self.geometry.tap_regions(in_h, in_w)?, tile.tile_pixels())?;
        let pixel_tiles = runs.len();
        let channel_blocks = out_c.div_ceil(tile.block_channels());
        // `total` counts invocations for the one-dimensional kernels and workgroups for the
        // blocked one, whose every decision is per workgroup.
        let (total, workgroup_count, constants) = match config.variant {
            Conv3x3Variant::Direct => {
                let invocations = n * out_c * out_pixels;
                (
                    invocations,
                    workgroups(invocations),
                    WORKGROUP_CONSTANT.to_vec(),
                )
            }
            Conv3x3Variant::Tiled => {
                let invocations = n * channel_groups * out_h * tiles_w;
                (
                    invocations,
                    workgroups(invocations),
                    WORKGROUP_CONSTANT.to_vec(),
                )
            }
            Conv3x3Variant::Blocked
            | Conv3x3Variant::Subgroup
            | Conv3x3Variant::Packed
            | Conv3x3Variant::Packed8 => {
                let count = n * channel_blocks * pixel_tiles;
                (count, count as u64, tile.constants().to_vec())
            }
            Conv3x3Variant::Auto => unreachable!("resolve() replaces Auto"),
        };
        let shader = match config.variant {
            Conv3x3Variant::Subgroup | Conv3x3Variant::Packed => &SUBGROUP_SHADER,
            Conv3x3Variant::Packed8 => &PACKED8_SHADER,
            _ => &SHADER,
        };
        let params = Conv3x3Params {
            batch: to_u32("batch", n)?,
            // conv3x3_packed8 reads C_in rounded up to its groups of 8 (zeros past C_in).
            in_channels: to_u32(
                "in_channels",
                match config.variant {
                    Conv3x3Variant::Packed8 => self.in_channels.next_multiple_of(8),
                    _ => self.in_channels,
                },
            )?,
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
            total: to_u32("invocations", total)?,
            out_pixels: to_u32("pixels", out_pixels)?,
            pixel_tiles: to_u32("pixel tiles", pixel_tiles)?,
            channel_blocks: to_u32("channel blocks", channel_blocks)?,
            _pad: 0,
        };
        let zeros;
        let bias = match &self.bias {
            Some(b) => b,
            None => {
                zeros = ctx.zeros_buffer(out_c as u64 * 4)?;
                &zeros
            }
        };
        // The packed variant reads a channel-packed copy of the input, made by the launch's
        // first dispatch; the subgroup shader's other entry point leaves that binding unread.
        let pack = match config.variant {
            Conv3x3Variant::Packed => Some(4),
            Conv3x3Variant::Packed8 => Some(8),
            _ => None,
        };
        let packed = match pack {
            Some(pack) => Some(pack_channels::prepare_packed(
                ctx,
                input,
                pack,
                &format!("{} packed input", self.name),
            )?),
            None => None,
        };
        let runs = ctx.upload(&format!("{} pixel runs", self.name), &runs)?;
        let mut buffers = vec![input.buffer(), &weight, bias, output.tensor.buffer(), &runs];
        if shader == &SUBGROUP_SHADER || shader == &PACKED8_SHADER {
            buffers.push(packed.as_ref().map_or(input.buffer(), |(_, b)| b));
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
        .with_cost(self.cost(input.shape(), config)?);
        let launch = launch.owning(runs);
        Ok(match packed {
            Some((pack, _)) => launch.after(pack),
            None => launch,
        })
    }

    /// FLOPs (all taps, and only the taps on real pixels) and compulsory bytes for an input of
    /// `shape`.
    pub fn cost(&self, shape: [usize; 4], config: Conv3x3Config) -> Result<Cost> {
        let [n, c, h, w] = shape;
        let (out_h, out_w) = self.geometry.out_hw(h, w)?;
        let pairs = (n * c * self.out_channels) as f64;
        let elements = n * c * h * w
            + self.out_channels * c * 9
            + self.out_channels
            + n * self.out_channels * out_h * out_w;
        Ok(Cost {
            nominal_flops: 2.0 * pairs * (out_h * out_w * 9) as f64,
            useful_flops: 2.0 * pairs * self.geometry.live_taps(h, w)? as f64,
            bytes: 4.0 * elements as f64,
            shape: format!(
                "{} -> {}",
                shape_text(shape),
                shape_text([n, self.out_channels, out_h, out_w])
            ),
            params: format!(
                "3x3 dil={} pad={:?} {}",
                self.geometry.dilation,
                self.geometry.padding,
                config.label()
            ),
        })
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

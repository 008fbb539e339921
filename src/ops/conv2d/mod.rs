//! The convolution op: one [`Conv2d`] for every geometry (kernel size, stride, dilation,
//! padding), launching the kernels of two families side by side (`config.rs`): the stride-1
//! 1x1 GEMMs of `shaders/conv1x1*.wgsl` and the tap-pruned k x k kernels of
//! `shaders/conv2d*.wgsl`. Every kernel ends in the same epilogue (shaders/conv_params.wgsl):
//! `relu?(conv(x) + bias + residual)`, with the bias per channel or per image.
//!
//! x: (N, C_in, H, W)  w: (C_out, C_in, k, k)  bias: (C_out,) or (N, C_out)
//! residual: (N, C_out, H_out, W_out)  y: (N, C_out, H_out, W_out)
//! with (H_out, W_out) from [`ConvGeometry::out_hw`].

pub mod config;
pub mod weights;
pub mod winograd;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use config::{ConvConfig, ConvVariant, Family, RegisterTile, Resolved};
pub use weights::ConvWeights;
pub use winograd::WinogradTile;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::ops::pack_channels::{self, Packing};
use crate::ops::{to_u32, workgroups, WORKGROUP_CONSTANT};
use crate::pipeline::{shader, shape_text, Cost, Launch, Shader};
use crate::shape::{ConvGeometry, TapRegion};
use crate::tensor::{OutputSlice, Tensor};

/// Binding 0: parameters; 1: x; 2: weights; 3: bias; 4: y; 5: pixel runs (k x k kernels);
/// 6: the channel-packed input (packed kernels); 7: the residual. Every conv shader has the
/// same layout, so one launcher binds them all; a kernel that does not read a binding gets a
/// placeholder buffer there.
macro_rules! conv_shader {
    ($name:literal, prelude [$($prelude:literal),+]) => {
        shader!(
            $name,
            prelude [$($prelude),+],
            [Uniform, ReadOnly, ReadOnly, ReadOnly, ReadWrite, ReadOnly, ReadOnly, ReadOnly]
        )
    };
}

const CONV2D: Shader = conv_shader!(
    "conv2d",
    prelude ["conv_params", "register_tile", "pixel_runs"]
);
/// The kernels that need subgroup operations, in their own module so that `CONV2D` compiles on
/// adapters without them.
const CONV2D_SUBGROUP: Shader = conv_shader!(
    "conv2d_subgroup",
    prelude ["conv_params", "register_tile", "subgroup_tile", "pixel_runs"]
);
/// The kernel with 64-bit loads, which also needs 64-bit integers in shaders.
const CONV2D_PACKED8: Shader = conv_shader!(
    "conv2d_packed8",
    prelude ["conv_params", "register_tile", "wide_tile", "pixel_runs"]
);
const CONV1X1: Shader = conv_shader!(
    "conv1x1",
    prelude ["conv_params", "register_tile", "conv1x1_tile"]
);
const CONV1X1_SUBGROUP: Shader = conv_shader!(
    "conv1x1_subgroup",
    prelude ["conv_params", "register_tile", "conv1x1_tile", "subgroup_tile"]
);
const CONV1X1_PACKED8: Shader = conv_shader!(
    "conv1x1_packed8",
    prelude ["conv_params", "register_tile", "conv1x1_tile", "wide_tile"]
);

fn shader_of(resolved: &Resolved) -> &'static Shader {
    use ConvVariant::*;
    match (resolved.family, resolved.variant) {
        (Family::Taps, Subgroup | Packed) => &CONV2D_SUBGROUP,
        (Family::Taps, Packed8) => &CONV2D_PACKED8,
        (Family::Taps, _) => &CONV2D,
        (Family::Pointwise, Subgroup) => &CONV1X1_SUBGROUP,
        (Family::Pointwise, Packed8) => &CONV1X1_PACKED8,
        (Family::Pointwise, _) => &CONV1X1,
    }
}

/// Output pixels per invocation along a row (k x k) or of the map (1x1) in the tiled variants
/// (`TILE_W`, `TILE_P` in the shaders).
const TILED_PIXELS: usize = 4;

// Mirrors `Params` in shaders/conv_params.wgsl field for field (32 x u32 = 128 bytes).
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct ConvParams {
    batch: u32,
    in_channels: u32,
    in_h: u32,
    in_w: u32,
    out_channels: u32,
    out_h: u32,
    out_w: u32,
    out_pixels: u32,
    kernel_size: u32,
    stride: u32,
    dilation: u32,
    pad_h: u32,
    pad_w: u32,
    out_c_total: u32,
    out_c_offset: u32,
    relu: u32,
    bias_stride: u32,
    has_residual: u32,
    total: u32,
    tiles: u32,
    channel_groups: u32,
    pixel_tiles: u32,
    channel_blocks: u32,
    tile_group: u32,
    w_image_stride: u32,
    first_tile: u32,
    row_tiles: u32,
    col_tiles: u32,
    chunk_tiles: u32,
    first_point: u32,
    point_count: u32,
    parts: u32,
}

/// What a conv does after the multiply-adds, in the same pass: `relu?(acc + bias + residual)`.
#[derive(Clone, Copy, Default)]
pub struct Epilogue<'a> {
    pub relu: bool,
    /// (N, C_out, 1, 1): one bias row per image in place of the conv's own bias. ASPP's pooling
    /// branch is constant over H x W and folds into its projection this way.
    pub per_image_bias: Option<&'a Tensor>,
    /// (N, C_out, H_out, W_out), added before the activation: ResNet's identity.
    pub residual: Option<&'a Tensor>,
}

impl Epilogue<'_> {
    pub fn relu(relu: bool) -> Self {
        Epilogue {
            relu,
            ..Default::default()
        }
    }
}

/// A convolution layer: host weights in PyTorch's layout, its geometry, and the weights on the
/// GPU in the layout of each kernel configuration used so far (uploaded on first use, once per
/// context). Building one needs no GPU.
pub struct Conv2d {
    name: String,
    weights: ConvWeights,
    geometry: ConvGeometry,
    /// As asked for: `Auto` is resolved per input shape (tuning table, then the measured
    /// defaults).
    config: ConvConfig,
    /// Uploads per context (by [`Context::id`]).
    gpu: Mutex<HashMap<u64, GpuWeights>>,
}

/// A layer's uploads on one context.
struct GpuWeights {
    bias: Option<Arc<wgpu::Buffer>>,
    layouts: HashMap<Resolved, Arc<Uploaded>>,
}

/// A layer's weights in one configuration's layout: one buffer, or for a Winograd GEMM the
/// points' blocks over as many buffers as the storage binding limit asks for.
struct Uploaded {
    buffers: Vec<wgpu::Buffer>,
    /// A Winograd point's weights, in the GEMM kernel's weight elements (`w_image_stride`).
    point_stride: usize,
}

/// `weights` in the layout of `resolved`'s kernel (stated at the top of each shader).
fn layout(weights: &ConvWeights, resolved: &Resolved) -> Vec<f32> {
    let block = resolved.tile.block_channels();
    match resolved.variant {
        ConvVariant::Direct => weights.padded_to_vec4(),
        ConvVariant::Tiled => weights.packed_by_4(),
        ConvVariant::Blocked | ConvVariant::Subgroup => weights.packed_blocked(block),
        ConvVariant::Packed => weights.padded_in_channels(4).packed_blocked(block),
        ConvVariant::Packed8 => weights.packed_wide(block),
        ConvVariant::Auto => unreachable!("resolved configurations only"),
    }
}

/// The length of [`layout`] for a (C_out, C_in, k, k) weight.
fn layout_len(resolved: &Resolved, cout: usize, cin: usize, k: usize) -> usize {
    let block = resolved.tile.block_channels();
    let taps = k * k;
    match resolved.variant {
        ConvVariant::Direct => (cout * cin * taps).next_multiple_of(4),
        ConvVariant::Tiled => cout.div_ceil(4) * cin * taps * 4,
        ConvVariant::Blocked | ConvVariant::Subgroup => cout.div_ceil(block) * taps * cin * block,
        ConvVariant::Packed => cout.div_ceil(block) * taps * cin.next_multiple_of(4) * block,
        ConvVariant::Packed8 => cout.div_ceil(block) * taps * cin.next_multiple_of(8) * block,
        ConvVariant::Auto => unreachable!("resolved configurations only"),
    }
}

/// How a kernel's work is split into invocations and workgroups: the fields of
/// [`ConvParams`] that say so, the workgroup count and the override constants.
struct Split {
    total: usize,
    tiles: usize,
    channel_groups: usize,
    pixel_tiles: usize,
    channel_blocks: usize,
    tile_group: usize,
    workgroups: u64,
    constants: Vec<(&'static str, f64)>,
}

impl Split {
    /// The split of `resolved`'s kernel over `n` images of `out_c` x `out_h` x `out_w`
    /// outputs; `runs`: the tap-pruned kernels' pixel runs; the input's channels and bytes and
    /// the weights' bytes size the tile groups.
    #[allow(clippy::too_many_arguments)]
    fn new(
        resolved: &Resolved,
        n: usize,
        out_c: usize,
        out_h: usize,
        out_w: usize,
        runs: Option<usize>,
        in_channels: usize,
        input_bytes: usize,
        weight_bytes: usize,
    ) -> Result<Split> {
        let taps = resolved.family == Family::Taps;
        let tile = resolved.tile;
        let out_pixels = out_h * out_w;
        let channel_groups = out_c.div_ceil(4);
        let channel_blocks = out_c.div_ceil(tile.block_channels());
        let tiles = match taps {
            true => out_w.div_ceil(TILED_PIXELS),
            false => out_pixels.div_ceil(TILED_PIXELS),
        };
        let pixel_tiles = runs.unwrap_or_else(|| out_pixels.div_ceil(tile.tile_pixels()));
        // `total` counts invocations for the one-dimensional kernels and workgroups for the
        // register-blocked ones, whose every decision is per workgroup.
        let (total, workgroup_count, constants) = match resolved.variant {
            ConvVariant::Direct => {
                let invocations = n * out_c * out_pixels;
                (
                    invocations,
                    workgroups(invocations),
                    WORKGROUP_CONSTANT.to_vec(),
                )
            }
            ConvVariant::Tiled => {
                let rows = if taps { out_h } else { 1 };
                let invocations = n * channel_groups * rows * tiles;
                (
                    invocations,
                    workgroups(invocations),
                    WORKGROUP_CONSTANT.to_vec(),
                )
            }
            _ => {
                let count = n * channel_blocks * pixel_tiles;
                (count, count as u64, tile.constants().to_vec())
            }
        };
        Ok(Split {
            total,
            tiles,
            channel_groups,
            pixel_tiles,
            channel_blocks,
            tile_group: tile_group(
                tile,
                in_channels,
                input_bytes,
                weight_bytes,
                pixel_tiles,
                channel_blocks,
            ),
            workgroups: workgroup_count,
            constants,
        })
    }

    /// `base` with the split's fields set.
    fn params(&self, base: ConvParams) -> Result<ConvParams> {
        Ok(ConvParams {
            total: to_u32("invocations", self.total)?,
            tiles: to_u32("tiles", self.tiles)?,
            channel_groups: to_u32("channel groups", self.channel_groups)?,
            pixel_tiles: to_u32("pixel tiles", self.pixel_tiles)?,
            channel_blocks: to_u32("channel blocks", self.channel_blocks)?,
            tile_group: to_u32("tile group", self.tile_group)?,
            ..base
        })
    }
}

impl Conv2d {
    /// A layer named `name` (in errors and benchmark rows) with `weights` and `geometry`, run by
    /// the `Auto` configuration.
    pub fn new(name: &str, weights: ConvWeights, geometry: ConvGeometry) -> Result<Self> {
        geometry.validate()?;
        if weights.kernel_size != geometry.kernel_size {
            return Err(Error::shape(
                format!("{name} weight"),
                format!("a {0}x{0} kernel", geometry.kernel_size),
                format!("{0}x{0}", weights.kernel_size),
            ));
        }
        Ok(Conv2d {
            name: name.to_string(),
            weights,
            geometry,
            config: ConvConfig::AUTO,
            gpu: Mutex::new(HashMap::new()),
        })
    }

    /// The same layer run by `config` (resolved for each input shape; an unsupported variant is
    /// an error when the layer is prepared).
    pub fn with_config(mut self, config: ConvConfig) -> Self {
        self.config = config;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn geometry(&self) -> ConvGeometry {
        self.geometry
    }

    pub fn weights(&self) -> &ConvWeights {
        &self.weights
    }

    pub fn in_channels(&self) -> usize {
        self.weights.in_channels
    }

    pub fn out_channels(&self) -> usize {
        self.weights.out_channels
    }

    pub fn config(&self) -> ConvConfig {
        self.config
    }

    /// The key of this layer on an input of `shape` in a tuning table (`atrous tune`'s cache):
    /// `conv3x3 1x512x33x33 cout=256 dil=6 pad=6,6`, `conv1x1 1x2048x65x65 cout=512`.
    pub fn tune_key(&self, shape: [usize; 4]) -> String {
        let [n, c, h, w] = shape;
        let g = &self.geometry;
        let kernel = g.kernel_name();
        if g.is_pointwise() {
            format!("{kernel} {n}x{c}x{h}x{w} cout={}", self.out_channels())
        } else {
            format!(
                "{kernel} {n}x{c}x{h}x{w} cout={} dil={} pad={},{}",
                self.out_channels(),
                g.dilation,
                g.padding[0],
                g.padding[1]
            )
        }
    }

    /// The configuration used for an input of `shape` on `ctx`: as asked for, or for `Auto` the
    /// tuning table's winner for this shape, else the measured default.
    pub fn config_for(&self, ctx: &Context, shape: [usize; 4]) -> Result<Resolved> {
        let (g, cin, cout) = (&self.geometry, self.in_channels(), self.out_channels());
        let [_, _, h, w] = shape;
        let out_hw = g.out_hw(h, w)?;
        if self.config.winograd.is_some() && !winograd::eligible(&self.geometry) {
            return Err(Error::invalid(
                format!("{} ({})", self.name, self.config.label(&self.geometry)),
                format!(
                    "Winograd runs 3x3 convolutions of stride 1; this layer is a {}",
                    self.geometry.kernel_name()
                ),
            ));
        }
        // A concrete variant, or a Winograd tile asked for, is taken as given (an `Auto` GEMM
        // resolves to the adapter's default 1x1 kernel): no tuning table overrides it.
        if self.config.variant != ConvVariant::Auto || self.config.winograd.is_some() {
            return self.config.resolve(ctx, g, cin, cout, out_hw);
        }
        let tuned = ctx
            .tuned_config(&self.tune_key(shape))
            .and_then(|text| ConvConfig::parse_for(text, &self.geometry).ok())
            .filter(|c| c.variant != ConvVariant::Auto)
            .filter(|c| c.winograd.is_none() || winograd::eligible(&self.geometry))
            .and_then(|c| c.resolve(ctx, g, cin, cout, out_hw).ok());
        if let Some(resolved) = tuned {
            return Ok(resolved);
        }
        // The measured default: Winograd where its predicted speed-up pays
        // (winograd::choose), else the direct kernels.
        ConvConfig {
            winograd: winograd::choose(&self.geometry, h, w, cin, cout)?,
            ..self.config
        }
        .resolve(ctx, g, cin, cout, out_hw)
    }

    /// The output shape for an input of `shape`, or an error naming the mismatch.
    pub fn out_shape(&self, shape: [usize; 4]) -> Result<[usize; 4]> {
        let [n, c, h, w] = shape;
        if c != self.in_channels() {
            return Err(Error::shape(
                format!("input of {}", self.name),
                format!("shape (N, {}, H, W)", self.in_channels()),
                crate::error::Shape(shape),
            ));
        }
        let (out_h, out_w) = self.geometry.out_hw(h, w)?;
        Ok([n, self.out_channels(), out_h, out_w])
    }

    /// The layer's weights laid out for `resolved`, and its bias, uploaded on first use.
    fn gpu_weights(
        &self,
        ctx: &Context,
        resolved: Resolved,
    ) -> Result<(Arc<Uploaded>, Option<Arc<wgpu::Buffer>>)> {
        let mut uploads = self.gpu.lock().unwrap_or_else(|p| p.into_inner());
        if let std::collections::hash_map::Entry::Vacant(e) = uploads.entry(ctx.id()) {
            let bias = match &self.weights.bias {
                Some(b) => Some(Arc::new(ctx.upload(&format!("{} bias", self.name), b)?)),
                None => None,
            };
            let layouts = HashMap::new();
            e.insert(GpuWeights { bias, layouts });
        }
        let gpu = uploads.get_mut(&ctx.id()).expect("inserted above");
        if let Some(uploaded) = gpu.layouts.get(&resolved) {
            return Ok((uploaded.clone(), gpu.bias.clone()));
        }
        let label = format!("{} weight ({})", self.name, resolved.label(&self.geometry));
        let uploaded = match resolved.winograd {
            None => Uploaded {
                buffers: vec![ctx.upload(&label, &layout(&self.weights, &resolved))?],
                point_stride: 0,
            },
            Some(tile) => {
                // One block per point of the transform and part of C_in, points_per_buffer
                // to a buffer.
                let part_channels = self.part_channels(&resolved);
                let blocks = tile.transform_weights(&self.weights, part_channels);
                let block_floats = layout_len(&resolved, self.out_channels(), part_channels, 1);
                let parts = tile.parts(self.in_channels());
                let per_buffer = winograd::points_per_buffer(
                    ctx,
                    4 * block_floats as u64,
                    blocks.len() / parts,
                    parts,
                )?;
                let mut buffers = Vec::new();
                for (i, group) in blocks.chunks(per_buffer).enumerate() {
                    let mut host = Vec::with_capacity(group.len() * block_floats);
                    for block in group {
                        host.extend(layout(block, &resolved));
                    }
                    debug_assert_eq!(host.len(), group.len() * block_floats);
                    buffers.push(ctx.upload(&format!("{label} {i}"), &host)?);
                }
                Uploaded {
                    buffers,
                    point_stride: block_floats / resolved.variant.weight_floats(),
                }
            }
        };
        let uploaded = Arc::new(uploaded);
        gpu.layouts.insert(resolved, uploaded.clone());
        Ok((uploaded, gpu.bias.clone()))
    }

    /// How the kernel that runs an input of `shape` wants it packed, when it reads a
    /// channel-packed copy (made by [`pack_channels`] before it). A Winograd GEMM reads its
    /// input transform's output instead.
    pub fn pack_for(&self, ctx: &Context, shape: [usize; 4]) -> Result<Option<Packing>> {
        Ok(self.packing(&self.config_for(ctx, shape)?))
    }

    fn packing(&self, resolved: &Resolved) -> Option<Packing> {
        let channels = match resolved.winograd {
            Some(_) => None,
            None => resolved.variant.pack(),
        }?;
        // A strided GEMM reads a copy holding only the pixels it multiplies.
        let stride = match resolved.family {
            Family::Pointwise => self.geometry.stride,
            Family::Taps => 1,
        };
        Some(Packing { channels, stride })
    }

    /// Input channels per part of C_in of a Winograd configuration's GEMM.
    fn part_channels(&self, resolved: &Resolved) -> usize {
        let pack = resolved.variant.pack().unwrap_or(1);
        match resolved.winograd {
            Some(tile) => tile.part_channels(self.in_channels(), pack),
            None => self.in_channels(),
        }
    }

    /// The Winograd tiling of an input of `shape` under `resolved`.
    fn tiling(
        &self,
        ctx: &Context,
        shape: [usize; 4],
        resolved: &Resolved,
    ) -> Result<winograd::Tiling> {
        let part_channels = self.part_channels(resolved);
        let block_bytes = 4 * layout_len(resolved, self.out_channels(), part_channels, 1);
        winograd::Tiling::new(
            ctx,
            &self.geometry,
            shape,
            self.out_channels(),
            resolved,
            block_bytes as u64,
        )
    }

    /// Bytes of the two scratch tensors the layer's kernel needs for an input of `shape` (a
    /// Winograd configuration's transformed input and product), if it needs any: the memory
    /// planner places them, [`Conv2d::prepare_with`] takes them.
    pub fn scratch_for(&self, ctx: &Context, shape: [usize; 4]) -> Result<Option<[u64; 2]>> {
        let resolved = self.config_for(ctx, shape)?;
        Ok(match resolved.winograd {
            Some(_) => Some(self.tiling(ctx, shape, &resolved)?.scratch_bytes()),
            None => None,
        })
    }

    /// Builds the dispatch reading `input` (and `packed`, its channel-packed copy, when the
    /// kernel needs one: [`Conv2d::pack_for`]) and writing `output` (a tensor or a channel
    /// slice) through `epilogue`; any scratch the kernel needs is the launch's own.
    pub fn prepare(
        &self,
        ctx: &Context,
        input: &Tensor,
        packed: Option<&Tensor>,
        output: OutputSlice,
        epilogue: &Epilogue,
    ) -> Result<Launch> {
        self.prepare_with(ctx, input, packed, None, output, epilogue)
    }

    /// [`Conv2d::prepare`] with the scratch tensors of [`Conv2d::scratch_for`] given (by a
    /// plan); without them the launch allocates its own.
    pub fn prepare_with(
        &self,
        ctx: &Context,
        input: &Tensor,
        packed: Option<&Tensor>,
        scratch: Option<[&wgpu::Buffer; 2]>,
        output: OutputSlice,
        epilogue: &Epilogue,
    ) -> Result<Launch> {
        let shape = input.shape();
        let out_shape = self.out_shape(shape)?;
        let resolved = self.config_for(ctx, shape)?;
        output.check_fits(&self.name, out_shape)?;
        let [n, _, in_h, in_w] = shape;
        let [_, out_c, out_h, out_w] = out_shape;
        let g = &self.geometry;
        let bias_stride = match epilogue.per_image_bias {
            Some(bias) => {
                bias.expect_shape([Some(n), Some(out_c), Some(1), Some(1)])?;
                out_c
            }
            None => 0,
        };
        if let Some(residual) = epilogue.residual {
            residual.expect_shape(out_shape.map(Some))?;
        }
        let base = ConvParams {
            batch: to_u32("batch", n)?,
            in_channels: to_u32("in_channels", self.in_channels())?,
            in_h: to_u32("H", in_h)?,
            in_w: to_u32("W", in_w)?,
            out_channels: to_u32("out_channels", out_c)?,
            out_h: to_u32("H_out", out_h)?,
            out_w: to_u32("W_out", out_w)?,
            out_pixels: to_u32("pixels", out_h * out_w)?,
            kernel_size: to_u32("kernel_size", g.kernel_size)?,
            stride: to_u32("stride", g.stride)?,
            dilation: to_u32("dilation", g.dilation)?,
            pad_h: to_u32("padding", g.padding[0])?,
            pad_w: to_u32("padding", g.padding[1])?,
            out_c_total: to_u32("output channels", output.tensor.shape()[1])?,
            out_c_offset: to_u32("channel offset", output.channel_offset)?,
            relu: epilogue.relu as u32,
            bias_stride: to_u32("bias stride", bias_stride)?,
            has_residual: epilogue.residual.is_some() as u32,
            ..Default::default()
        };
        let (weight, own_bias) = self.gpu_weights(ctx, resolved)?;
        let zeros = ctx.zeros_buffer((out_c * 4) as u64)?;
        let bias: &wgpu::Buffer = match (epilogue.per_image_bias, &own_bias) {
            (Some(b), _) => b.buffer(),
            (None, Some(b)) => b,
            (None, None) => &zeros,
        };
        let label = format!("{} ({})", self.name, resolved.label(g));
        let cost = self.cost(shape, &resolved, epilogue.residual.is_some())?;
        if resolved.winograd.is_some() {
            let tiling = self.tiling(ctx, shape, &resolved)?;
            // Without a plan's scratch tensors, the launch's own.
            let owned = match scratch {
                Some(_) => None,
                None => {
                    let [v, m] = tiling.scratch_bytes();
                    Some([
                        ctx.storage_buffer(&format!("{label} V"), v)?,
                        ctx.storage_buffer(&format!("{label} M"), m)?,
                    ])
                }
            };
            let scratch = match (&owned, scratch) {
                (Some([v, m]), _) => [v, m],
                (None, Some(scratch)) => scratch,
                (None, None) => unreachable!("allocated above"),
            };
            for (buffer, bytes) in scratch.iter().zip(tiling.scratch_bytes()) {
                if buffer.size() < bytes {
                    return Err(Error::invalid(
                        &self.name,
                        format!(
                            "Winograd scratch of {} bytes given, {bytes} needed (a planner error)",
                            buffer.size()
                        ),
                    ));
                }
            }
            let gemm = |range: &winograd::PointRange, v: &wgpu::Buffer| -> Result<Launch> {
                // Images are the range's (point, part of C_in) pairs, point-major: in V, part
                // s of point k is the channels s * part_channels.. of k's plane, which is image
                // k * parts + s's place when an image has part_channels; it writes M's plane
                // of (range.first + k) * parts + s (a channel offset of whole planes).
                let images = range.count * tiling.parts;
                let split = Split::new(
                    &resolved,
                    images,
                    out_c,
                    1,
                    tiling.chunk_tiles,
                    None,
                    tiling.part_channels,
                    tiling.part_channels * tiling.chunk_tiles * 4,
                    weight.point_stride * resolved.variant.weight_floats() * 4,
                )?;
                let params = ConvParams {
                    batch: to_u32("points", images)?,
                    in_channels: to_u32("in_channels", tiling.part_channels)?,
                    in_h: 1,
                    in_w: to_u32("tiles", tiling.chunk_tiles)?,
                    out_h: 1,
                    out_w: to_u32("tiles", tiling.chunk_tiles)?,
                    out_pixels: to_u32("tiles", tiling.chunk_tiles)?,
                    kernel_size: 1,
                    stride: 1,
                    dilation: 1,
                    pad_h: 0,
                    pad_w: 0,
                    out_c_total: to_u32("output channels", out_c)?,
                    out_c_offset: to_u32("point offset", range.first * tiling.parts * out_c)?,
                    relu: 0,
                    bias_stride: 0,
                    has_residual: 0,
                    w_image_stride: to_u32("point stride", weight.point_stride)?,
                    first_point: to_u32("point", range.first_in_buffer)?,
                    ..split.params(base)?
                };
                let buffers = [
                    v,
                    &weight.buffers[range.buffer],
                    &*zeros,
                    scratch[1],
                    &*zeros,
                    v,
                    &*zeros,
                ];
                Launch::new(
                    ctx,
                    format!(
                        "{label} GEMM, points {}..{}",
                        range.first,
                        range.first + range.count
                    ),
                    shader_of(&resolved),
                    resolved.variant.entry_point(Family::Pointwise),
                    &split.constants,
                    &params,
                    &buffers,
                    split.workgroups,
                )
            };
            let mut launch = winograd::launch(
                ctx, &label, &tiling, base, input, scratch, output, epilogue, bias, &zeros, &gemm,
            )?;
            for buffer in owned.into_iter().flatten() {
                launch = launch.owning(buffer);
            }
            return Ok(launch.with_cost(cost));
        }

        let taps = resolved.family == Family::Taps;
        // Only the register-blocked k x k kernels read the runs table.
        let runs = match taps && resolved.variant.is_register_blocked() {
            true => Some(pixel_runs(
                &self.geometry.tap_regions(in_h, in_w)?,
                resolved.tile.tile_pixels(),
            )?),
            false => None,
        };
        let split = Split::new(
            &resolved,
            n,
            out_c,
            out_h,
            out_w,
            runs.as_ref().map(Vec::len),
            self.in_channels(),
            // A strided GEMM streams the pixels it multiplies only.
            match taps {
                true => in_h * in_w * self.in_channels() * 4,
                false => out_h * out_w * self.in_channels() * 4,
            },
            self.weights.weight.len() * 4,
        )?;
        let params = ConvParams {
            // The packed8 kernels read C_in rounded up to their groups of 8 (zeros past C_in).
            in_channels: to_u32(
                "in_channels",
                match resolved.variant {
                    ConvVariant::Packed8 => self.in_channels().next_multiple_of(8),
                    _ => self.in_channels(),
                },
            )?,
            ..split.params(base)?
        };
        let packed = match (self.packing(&resolved), packed) {
            (Some(packing), Some(packed)) => {
                packed.expect_shape(packing.packed_shape(shape).map(Some))?;
                Some(packed)
            }
            (Some(packing), None) => {
                return Err(Error::invalid(
                    &self.name,
                    format!(
                        "kernel {} reads the input packed by {packing}; none was given",
                        resolved.label(g),
                    ),
                ))
            }
            (None, _) => None,
        };
        let runs = match &runs {
            Some(runs) => Some(ctx.upload(&format!("{} pixel runs", self.name), runs)?),
            None => None,
        };
        let buffers = [
            input.buffer(),
            &weight.buffers[0],
            bias,
            output.tensor.buffer(),
            runs.as_ref().unwrap_or(&*zeros),
            packed.map_or(input.buffer(), |p| p.buffer()),
            epilogue.residual.map_or(&*zeros, |r| r.buffer()),
        ];
        let launch = Launch::new(
            ctx,
            label,
            shader_of(&resolved),
            resolved.variant.entry_point(resolved.family),
            &split.constants,
            &params,
            &buffers,
            split.workgroups,
        )?
        .with_cost(cost);
        Ok(match runs {
            Some(runs) => launch.owning(runs),
            None => launch,
        })
    }

    /// FLOPs (all taps, and only the taps on real pixels) and compulsory bytes for an input of
    /// `shape` under `resolved`.
    pub fn cost(&self, shape: [usize; 4], resolved: &Resolved, residual: bool) -> Result<Cost> {
        let [n, c, h, w] = shape;
        let g = &self.geometry;
        let (out_h, out_w) = g.out_hw(h, w)?;
        let (k, cout) = (g.kernel_size, self.out_channels());
        let pairs = (n * c * cout) as f64;
        let output = n * cout * out_h * out_w;
        let elements =
            n * c * h * w + cout * c * k * k + cout + output + if residual { output } else { 0 };
        let params = if g.is_pointwise() {
            format!("1x1 {}", resolved.label(g))
        } else {
            let stride = match g.stride {
                1 => String::new(),
                s => format!(" stride={s}"),
            };
            format!(
                "{k}x{k}{stride} dil={} pad={:?} {}",
                g.dilation,
                g.padding,
                resolved.label(g)
            )
        };
        Ok(Cost {
            nominal_flops: 2.0 * pairs * (out_h * out_w * k * k) as f64,
            useful_flops: 2.0 * pairs * g.live_taps(h, w)? as f64,
            bytes: 4.0 * elements as f64,
            shape: format!(
                "{} -> {}",
                shape_text(shape),
                shape_text([n, cout, out_h, out_w])
            ),
            params,
        })
    }

    /// Eager convolution through `epilogue`: packs the input if the kernel needs it, allocates
    /// the output, runs, returns it.
    pub fn forward_with(
        &self,
        ctx: &Context,
        input: &Tensor,
        epilogue: &Epilogue,
    ) -> Result<Tensor> {
        let shape = input.shape();
        let output = Tensor::empty(
            ctx,
            &format!("{} output", self.name),
            self.out_shape(shape)?,
        )?;
        let packed = match self.pack_for(ctx, shape)? {
            Some(pack) => Some(pack_channels::pack_channels(ctx, input, pack)?),
            None => None,
        };
        let launch = self.prepare(ctx, input, packed.as_ref(), (&output).into(), epilogue)?;
        Launch::run_all(ctx, &[&launch])?;
        Ok(output)
    }

    /// Eager convolution with bias and an optional ReLU.
    pub fn forward(&self, ctx: &Context, input: &Tensor, relu: bool) -> Result<Tensor> {
        self.forward_with(ctx, input, &Epilogue::relu(relu))
    }
}

/// Bytes of input the pixel tiles of one group read between them, per tap: the group runs for
/// every block of output channels before the next group (`work_split` in
/// shaders/conv_params.wgsl), so its input is reused from a core's cache while the weights,
/// read contiguously, stream through once per group.
const TILE_GROUP_BYTES: usize = 512 << 10;

/// How many pixel tiles make a group: groups of [`TILE_GROUP_BYTES`] where streaming the
/// weights once per group costs less than streaming the input once per block of output
/// channels, else one group of every tile (block by block). A weight load is one per
/// workgroup (uniform) and a sequential read, an input load one per lane and a gather, so a
/// byte of weights costs about a quarter of a byte of input ([`WEIGHT_BYTE_COST`]). Measured on
/// lavapipe (2 Zen cores, 512 KiB of L2 each), groups against block by block: a 2048 -> 512
/// 1x1 at 65 x 65 (input 35 MB, weights 4 MB) 2.1x as fast, ASPP's 2048 -> 256 3x3 at 65 x 65
/// and rate 24 (weights 19 MB) 1.9x; PSPNet's 4096 -> 512 3x3 bottleneck at 60 x 60 (input
/// 59 MB, weights 75 MB, 115 groups) 0.84x. Groups of 4 MiB lose most of the gain:
/// lavapipe's per-lane loads of the input stall on misses, the weights' reads do not.
fn tile_group(
    tile: RegisterTile,
    in_channels: usize,
    input_bytes: usize,
    weight_bytes: usize,
    pixel_tiles: usize,
    channel_blocks: usize,
) -> usize {
    let per_tile = tile.tile_pixels() * in_channels * 4;
    let all = pixel_tiles.max(1);
    let group = (TILE_GROUP_BYTES / per_tile.max(1)).clamp(1, all);
    let grouped = all.div_ceil(group) as f64 * weight_bytes as f64 * WEIGHT_BYTE_COST;
    let block_major = channel_blocks as f64 * input_bytes as f64;
    if grouped < block_major {
        group
    } else {
        all
    }
}

/// What streaming a byte of weights costs against a byte of input (see [`tile_group`]).
const WEIGHT_BYTE_COST: f64 = 0.25;

/// The tap-pruned kernels' runs of pixels: each tap region cut into runs of `run_pixels` pixels
/// (the last one of a region shorter); entry `tile` of the shaders' `runs` table
/// (shaders/pixel_runs.wgsl): [y0, x0, w | h << 16, first pixel of the run in the region].
fn pixel_runs(regions: &[TapRegion], run_pixels: usize) -> Result<Vec<[u32; 4]>> {
    let mut runs = Vec::new();
    for r in regions {
        if r.h >= 1 << 16 || r.w >= 1 << 16 {
            return Err(Error::invalid(
                "conv2d output",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// The formula the Winograd tiling sizes weight buffers by is the length of the layout
    /// itself, for every variant and a few awkward channel counts.
    #[test]
    fn layout_len_is_the_layouts_length() {
        let mut rng = Rng::new(3);
        for (cout, cin, k) in [(1, 1, 1), (13, 5, 3), (21, 9, 1), (64, 17, 3), (7, 3, 7)] {
            let weights = rng.conv_weights(cout, cin, k, true);
            for variant in ConvVariant::ALL
                .into_iter()
                .filter(|&v| v != ConvVariant::Auto)
            {
                for tile in [RegisterTile::new(2, 3, 8), RegisterTile::new(4, 1, 16)] {
                    let resolved = Resolved {
                        family: Family::Taps,
                        variant,
                        tile,
                        winograd: None,
                    };
                    assert_eq!(
                        layout(&weights, &resolved).len(),
                        layout_len(&resolved, cout, cin, k),
                        "{variant:?} {tile:?} {cout}x{cin}x{k}"
                    );
                }
            }
        }
    }
}

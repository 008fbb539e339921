//! Which kernel runs a convolution: the kernel families, their variants with launch
//! parameters, the measured defaults (`Auto`) and the autotuner's candidates.
//!
//! Two families of kernel files serve [`Conv2d`](super::Conv2d):
//! - [`Family::Pointwise`]: `shaders/conv1x1*.wgsl`, the stride-1 1x1 convolutions as GEMMs
//!   over channels (input and output pixels share their flat index), and the strided 1x1s
//!   without padding in packed8, whose packed copy keeps only the pixels they read;
//! - [`Family::Taps`]: `shaders/conv2d*.wgsl`, every other geometry (any k x k, stride,
//!   dilation, padding), tap-pruned.
//!
//! A configuration is a variant (an entry point, `<family>_<variant>`) with its register tile.
//! Its label names the geometry and the variant, after ncnn's `convolution_3x3s2`:
//! `conv3x3_packed8:c16p3w8`, `conv7x7s2_packed:c16p3w8`, `conv1x1_tiled`.

use std::fmt;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::ops::conv2d::winograd::{self, WinogradTile};
use crate::shape::ConvGeometry;

/// The kernel files that serve a geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// `shaders/conv1x1*.wgsl`: stride-1 1x1 without padding, a GEMM over channels (and a
    /// strided one in packed8: [`Family::runs`]).
    Pointwise,
    /// `shaders/conv2d*.wgsl`: any k x k, stride, dilation and padding, tap-pruned.
    Taps,
}

impl Family {
    pub fn of(geometry: &ConvGeometry) -> Family {
        if geometry.is_pointwise() {
            Family::Pointwise
        } else {
            Family::Taps
        }
    }

    /// The family whose kernel runs `variant` on `geometry`: a strided 1x1 without padding
    /// runs as a GEMM where the input is packed anyway (packed8), on a copy packed at the
    /// stride (a kernel that reads the input itself would need the gather in its loads).
    pub fn runs(geometry: &ConvGeometry, variant: ConvVariant) -> Family {
        if geometry.is_strided_pointwise() && variant == ConvVariant::Packed8 {
            Family::Pointwise
        } else {
            Family::of(geometry)
        }
    }

    /// The prefix of the family's entry points.
    pub fn prefix(self) -> &'static str {
        match self {
            Family::Pointwise => "conv1x1",
            Family::Taps => "conv2d",
        }
    }
}

/// Kernel variants, side by side in both families and all tested.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConvVariant {
    /// One output element per invocation, weights in PyTorch's layout. The readable baseline.
    Direct,
    /// 4 output channels x 4 pixels per invocation, weights packed as vec4.
    Tiled,
    /// Register-blocked (and tap-pruned for k x k): a [`RegisterTile`] of pixels x channels per
    /// invocation, one block of output channels per workgroup.
    Blocked,
    /// As `Blocked`, with each weight loaded by one lane and shared through subgroup
    /// broadcasts. Needs [`Context::has_subgroups`].
    Subgroup,
    /// As `Subgroup`, reading a copy of the input packed by 4 channels
    /// (shaders/pack_channels.wgsl): one vec4 load per pixel covers 4 input channels. k x k
    /// only.
    Packed,
    /// As `Packed` with every load 64 bits wide: vec4<u64>s of 8 packed input channels and of
    /// 8 weights. Also needs [`Context::has_int64`].
    Packed8,
    /// The fastest variant this adapter supports for the layer's shape, from measurements
    /// ([`ConvConfig::select`]) or the tuning table.
    #[default]
    Auto,
}

impl ConvVariant {
    /// Every variant, `Auto` included.
    pub const ALL: [ConvVariant; 7] = [
        ConvVariant::Direct,
        ConvVariant::Tiled,
        ConvVariant::Blocked,
        ConvVariant::Subgroup,
        ConvVariant::Packed,
        ConvVariant::Packed8,
        ConvVariant::Auto,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ConvVariant::Direct => "direct",
            ConvVariant::Tiled => "tiled",
            ConvVariant::Blocked => "blocked",
            ConvVariant::Subgroup => "subgroup",
            ConvVariant::Packed => "packed",
            ConvVariant::Packed8 => "packed8",
            ConvVariant::Auto => "auto",
        }
    }

    /// Why `ctx` cannot run the variant for `family`, if it cannot.
    pub fn unsupported(self, ctx: &Context, family: Family) -> Option<&'static str> {
        if self == ConvVariant::Packed && family == Family::Pointwise {
            Some("the 1x1 GEMMs have no packed-by-4 kernel (use packed8 or subgroup)")
        } else if self.needs_subgroups() && !ctx.has_subgroups() {
            Some("adapter has no subgroups of >= 8 invocations")
        } else if self == ConvVariant::Packed8 && !ctx.has_int64() {
            Some("adapter has no 64-bit integers in shaders")
        } else {
            None
        }
    }

    pub fn needs_subgroups(self) -> bool {
        matches!(
            self,
            ConvVariant::Subgroup | ConvVariant::Packed | ConvVariant::Packed8
        )
    }

    /// Input channels per packed group when the kernel reads a channel-packed copy of its
    /// input (made by a `pack_channels` dispatch before it).
    pub fn pack(self) -> Option<usize> {
        match self {
            ConvVariant::Packed => Some(4),
            ConvVariant::Packed8 => Some(8),
            _ => None,
        }
    }

    /// Floats per element of the kernel's weight array: f32 (direct), vec4<f32>, or
    /// vec4<u64> (packed8).
    pub fn weight_floats(self) -> usize {
        match self {
            ConvVariant::Direct => 1,
            ConvVariant::Packed8 => 8,
            _ => 4,
        }
    }

    /// Whether the variant takes a [`RegisterTile`].
    pub fn is_register_blocked(self) -> bool {
        matches!(
            self,
            ConvVariant::Blocked
                | ConvVariant::Subgroup
                | ConvVariant::Packed
                | ConvVariant::Packed8
        )
    }

    /// The entry point in `family`'s shader files.
    pub fn entry_point(self, family: Family) -> &'static str {
        use ConvVariant::*;
        match (family, self) {
            (Family::Pointwise, Direct) => "conv1x1_direct",
            (Family::Pointwise, Tiled) => "conv1x1_tiled",
            (Family::Pointwise, Blocked) => "conv1x1_blocked",
            (Family::Pointwise, Subgroup) => "conv1x1_subgroup",
            (Family::Pointwise, Packed8) => "conv1x1_packed8",
            (Family::Taps, Direct) => "conv2d_direct",
            (Family::Taps, Tiled) => "conv2d_tiled",
            (Family::Taps, Blocked) => "conv2d_blocked",
            (Family::Taps, Subgroup) => "conv2d_subgroup",
            (Family::Taps, Packed) => "conv2d_packed",
            (Family::Taps, Packed8) => "conv2d_packed8",
            (_, Packed) | (_, Auto) => unreachable!("resolved and supported variants only"),
        }
    }
}

/// The register tile of a blocked convolution kernel: each invocation accumulates `pixels`
/// output pixels x `4 * vec4s` output channels, and a workgroup of `workgroup` invocations
/// shares one block of output channels. The three numbers are the kernels' `PIX`, `VEC` and
/// `WORKGROUP` override constants; an autotuner enumerates them through
/// [`ConvConfig::candidates`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RegisterTile {
    /// vec4 groups of output channels per invocation.
    pub vec4s: u32,
    /// Output pixels per invocation.
    pub pixels: u32,
    /// Invocations per workgroup, a multiple of 8 (the SIMD width of CPU rasterizers).
    pub workgroup: u32,
}

impl RegisterTile {
    pub const fn new(vec4s: u32, pixels: u32, workgroup: u32) -> Self {
        RegisterTile {
            vec4s,
            pixels,
            workgroup,
        }
    }

    /// Output channels per workgroup (and per invocation).
    pub fn block_channels(&self) -> usize {
        4 * self.vec4s as usize
    }

    /// Output pixels per workgroup.
    pub fn tile_pixels(&self) -> usize {
        (self.pixels * self.workgroup) as usize
    }

    /// `c16p2w8`: channels, pixels per invocation, workgroup.
    pub fn label(&self) -> String {
        format!("c{}p{}w{}", 4 * self.vec4s, self.pixels, self.workgroup)
    }

    /// Parses [`RegisterTile::label`]'s format (the ranges are checked by the configuration
    /// that uses the tile).
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "register tile",
                format!("expected c<channels>p<pixels>w<workgroup> like c16p1w8, found '{text}'"),
            )
        };
        let rest = text.strip_prefix('c').ok_or_else(bad)?;
        let (channels, rest) = rest.split_once('p').ok_or_else(bad)?;
        let (pixels, workgroup) = rest.split_once('w').ok_or_else(bad)?;
        // Zeros and huge values never reach a kernel's arithmetic, whatever the variant.
        let number = |t: &str| match t.parse::<u32>() {
            Ok(v) if (1..=1024).contains(&v) => Ok(v),
            _ => Err(bad()),
        };
        let channels = number(channels)?;
        if channels % 4 != 0 {
            return Err(bad());
        }
        Ok(RegisterTile::new(
            channels / 4,
            number(pixels)?,
            number(workgroup)?,
        ))
    }

    /// Checks the ranges `kernel` is written for: `vec4s` among `vec4_choices`, 1..=4 pixels, a
    /// workgroup of 8..=256 in steps of 8.
    fn validate(&self, kernel: &str, vec4_choices: &[u32]) -> Result<()> {
        if !vec4_choices.contains(&self.vec4s)
            || !(1..=4).contains(&self.pixels)
            || self.workgroup == 0
            || !self.workgroup.is_multiple_of(8)
            || self.workgroup > 256
        {
            let channels: Vec<String> = vec4_choices.iter().map(|v| (4 * v).to_string()).collect();
            return Err(Error::invalid(
                format!("{kernel} register tile {}", self.label()),
                format!(
                    "needs {} channels, 1..=4 pixels and a workgroup of 8..=256 in steps of 8",
                    channels.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// The kernels' override constants.
    pub(crate) fn constants(&self) -> [(&'static str, f64); 3] {
        [
            ("WORKGROUP", self.workgroup as f64),
            ("VEC", self.vec4s as f64),
            ("PIX", self.pixels as f64),
        ]
    }
}

/// A variant with its register tile: what an autotuner enumerates and a benchmark names.
/// `tile: None` is the family's default tile for the variant, chosen when the configuration
/// is resolved for a layer; it matters only to the register-blocked variants. With
/// `winograd`, a 3x3 of stride 1 runs as Winograd's minimal filtering (`winograd.rs`): the
/// variant and tile are then those of the GEMM in the Winograd domain, a 1x1 kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConvConfig {
    pub variant: ConvVariant,
    pub tile: Option<RegisterTile>,
    pub winograd: Option<WinogradTile>,
}

/// A configuration resolved for one layer on one adapter: never `Auto`, supported, its tile
/// chosen and checked. What a launch is built from and a weight layout is keyed by. `family`
/// is that of the kernel that runs the multiply-adds: `Pointwise` for a Winograd GEMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Resolved {
    pub family: Family,
    pub variant: ConvVariant,
    pub tile: RegisterTile,
    pub winograd: Option<WinogradTile>,
}

/// Default tiles, the fastest of each kernel on the ASPP and PSPNet shapes on lavapipe (see
/// BENCHMARKS.md for the measurements).
const BLOCKED_TILE: RegisterTile = RegisterTile::new(2, 3, 8);
const TAPS_SUBGROUP_TILE: RegisterTile = RegisterTile::new(4, 3, 8);
const POINTWISE_SUBGROUP_TILE: RegisterTile = RegisterTile::new(6, 2, 8);
const PACKED8_TILE: RegisterTile = RegisterTile::new(4, 3, 8);
/// The packed8 GEMM's tile for long GEMMs (at least [`LONG_GEMM_PIXELS`] pixels an image): 4
/// pixels per invocation stream each weight load over a third more multiply-adds; on short
/// ones the fewer workgroups leave lanes idle. Measured against c16p3w8 (BENCHMARKS.md): 1.02-
/// 1.07x on ResNet's 1x1s at 65x65, 1.04-1.10x on the 1x1s of 1280 and 2048 channels at 33x33,
/// 1.03-1.09x on the strided downsample, 1.01-1.13x as Winograd's GEMM; 0.83-0.90x on
/// PSPNet's pooled 2x2 and 6x6 maps.
const PACKED8_LONG_TILE: RegisterTile = RegisterTile::new(4, 4, 8);
const LONG_GEMM_PIXELS: usize = 256;
/// The subgroup tile for layers of at most 8 output channels: a block of 16 would leave half
/// the accumulators idle.
const NARROW_TILE: RegisterTile = RegisterTile::new(2, 4, 8);

impl ConvConfig {
    pub const AUTO: ConvConfig = ConvConfig {
        variant: ConvVariant::Auto,
        tile: None,
        winograd: None,
    };

    pub fn new(variant: ConvVariant, tile: RegisterTile) -> Self {
        ConvConfig {
            variant,
            tile: Some(tile),
            winograd: None,
        }
    }

    /// The same configuration computed in the Winograd domain with output tiles of `tile`.
    pub fn winograd(self, tile: WinogradTile) -> Self {
        ConvConfig {
            winograd: Some(tile),
            ..self
        }
    }

    fn default_tile(variant: ConvVariant, family: Family) -> RegisterTile {
        match (variant, family) {
            (ConvVariant::Subgroup, Family::Pointwise) => POINTWISE_SUBGROUP_TILE,
            (ConvVariant::Subgroup | ConvVariant::Packed, _) => TAPS_SUBGROUP_TILE,
            (ConvVariant::Packed8, _) => PACKED8_TILE,
            _ => BLOCKED_TILE,
        }
    }

    /// The configuration `Auto` resolves to on `ctx` without a tuned one, from measurements on
    /// lavapipe (Vulkan and GL):
    /// - k x k: where the adapter has subgroups, the packed subgroup kernel (1.3-1.5x the
    ///   subgroup one on the same input, which was 3.7-3.9x the tiled one), with 64-bit loads
    ///   where it also has 64-bit integers (1.2x the 32-bit loads) unless the layer has at most
    ///   4 input channels (a 3-channel stem padded to 8 would do 2.7x the work; to 4, 1.3x);
    ///   the blocked one otherwise (1.9x at rate 6, 1.5x at 12, 1.0x at 18 on GL). c16p3w8 is
    ///   best at every ASPP rate and within 2% of c16p4w8 on PSPNet's 60x60 bottleneck.
    /// - 1x1: where the adapter has subgroups and 64-bit integers, packed8 (1.5x the subgroup
    ///   kernel at 33x33, 1.6-1.8x on PSPNet's pooled maps, input packing included); with
    ///   subgroups only, the subgroup kernel (3.3-3.4x the tiled one; c24p2w8 5% ahead of
    ///   c16p2w8); without subgroups the tiled kernel, which the blocked one does not beat on a
    ///   GEMM when every weight is a per-lane load (0.94x).
    ///
    /// Narrow layers take a narrower block, long packed8 GEMMs ([`PACKED8_LONG_TILE`]) 4 pixels
    /// per invocation; `pixels`: the output pixels of an image (a Winograd GEMM's: its tiles).
    /// The best tile per shape is `atrous tune`'s job.
    pub fn select(
        ctx: &Context,
        family: Family,
        in_channels: usize,
        out_channels: usize,
        pixels: usize,
    ) -> Self {
        let variant = Self::select_variant(ctx, family, in_channels);
        ConvConfig::new(
            variant,
            Self::select_tile(variant, family, out_channels, pixels),
        )
    }

    /// [`ConvConfig::select`]'s variant for a layer of `family`'s geometry.
    fn select_variant(ctx: &Context, family: Family, in_channels: usize) -> ConvVariant {
        match (family, ctx.has_subgroups(), ctx.has_int64()) {
            (Family::Taps, false, _) => ConvVariant::Blocked,
            (Family::Pointwise, false, _) => ConvVariant::Tiled,
            (Family::Taps, true, true) if in_channels > 4 => ConvVariant::Packed8,
            (Family::Taps, true, _) => ConvVariant::Packed,
            (Family::Pointwise, true, true) => ConvVariant::Packed8,
            (Family::Pointwise, true, false) => ConvVariant::Subgroup,
        }
    }

    /// [`ConvConfig::select`]'s tile for `variant` run by `family`'s kernels.
    fn select_tile(
        variant: ConvVariant,
        family: Family,
        out_channels: usize,
        pixels: usize,
    ) -> RegisterTile {
        let long_gemm = family == Family::Pointwise && pixels >= LONG_GEMM_PIXELS;
        if variant.needs_subgroups() && out_channels <= 8 {
            NARROW_TILE
        } else if variant == ConvVariant::Packed8 && long_gemm {
            PACKED8_LONG_TILE
        } else {
            Self::default_tile(variant, family)
        }
    }

    /// Resolves `Auto` (to [`ConvConfig::select`]'s choice) and fills in the default tile,
    /// then checks that `ctx` can run the variant on `geometry` with this tile, for an output
    /// of `out_hw` pixels.
    pub fn resolve(
        self,
        ctx: &Context,
        geometry: &ConvGeometry,
        in_channels: usize,
        out_channels: usize,
        (out_h, out_w): (usize, usize),
    ) -> Result<Resolved> {
        // A Winograd GEMM is a 1x1 kernel.
        let family = match self.winograd {
            Some(_) => Family::Pointwise,
            None => Family::of(geometry),
        };
        let config = if self.variant == ConvVariant::Auto {
            let pixels = match self.winograd {
                Some(tile) => tile.tiles(out_h, out_w, geometry.dilation),
                None => out_h * out_w,
            };
            let variant = Self::select_variant(ctx, family, in_channels);
            // The tile is that of the kernel that runs the variant (a strided 1x1's packed8:
            // the GEMM's).
            let runs = match self.winograd {
                Some(_) => family,
                None => Family::runs(geometry, variant),
            };
            ConvConfig {
                variant,
                tile: Some(Self::select_tile(variant, runs, out_channels, pixels)),
                winograd: self.winograd,
            }
        } else {
            self
        };
        let variant = config.variant;
        let family = match config.winograd {
            Some(_) => family,
            None => Family::runs(geometry, variant),
        };
        // Direct and tiled have fixed tiles: whatever was given, one resolution (and one
        // weight upload) per variant.
        let tile = match config.tile {
            Some(tile) if variant.is_register_blocked() => tile,
            _ => Self::default_tile(variant, family),
        };
        let name = format!("{}_{}", family.prefix(), variant.name());
        if let Some(reason) = variant.unsupported(ctx, family) {
            // The fallback a user can ask for on this layer: a Winograd GEMM's, or the
            // geometry's (a strided 1x1's packed8 GEMM falls back to the k x k kernels).
            let fallback_family = match config.winograd {
                Some(_) => family,
                None => Family::of(geometry),
            };
            let fallback = if variant.needs_subgroups() {
                format!(" (use {}_blocked)", fallback_family.prefix())
            } else {
                String::new()
            };
            return Err(Error::invalid(
                name,
                format!("{reason} on adapter '{}'{fallback}", ctx.adapter().name),
            ));
        }
        match variant {
            ConvVariant::Blocked => tile.validate(&name, &[1, 2, 3, 4, 5, 6, 7, 8])?,
            // packed8 spells out the broadcasts of 2, 4 and 8 vec4s only.
            ConvVariant::Packed8 => tile.validate(&name, &[2, 4, 8])?,
            ConvVariant::Subgroup | ConvVariant::Packed => tile.validate(&name, &[2, 4, 6, 8])?,
            _ => {}
        }
        Ok(Resolved {
            family,
            variant,
            tile,
            winograd: config.winograd,
        })
    }

    /// Every concrete configuration worth trying for `family` on `ctx`: the baselines and grids
    /// of tiles.
    pub fn candidates(ctx: &Context, family: Family) -> Vec<ConvConfig> {
        let mut all = vec![
            ConvConfig::from(ConvVariant::Direct),
            ConvConfig::from(ConvVariant::Tiled),
        ];
        for (vec4s, pixels) in [(1, 2), (1, 4), (2, 2), (2, 4), (3, 2), (4, 1), (4, 2)] {
            for workgroup in [8, 16] {
                all.push(ConvConfig::new(
                    ConvVariant::Blocked,
                    RegisterTile::new(vec4s, pixels, workgroup),
                ));
            }
        }
        let subgroup_tiles = [
            (2, 2),
            (2, 4),
            (4, 1),
            (4, 2),
            (4, 3),
            (4, 4),
            (6, 1),
            (6, 2),
            (8, 1),
        ];
        for (vec4s, pixels) in subgroup_tiles {
            for workgroup in [8, 16] {
                for variant in [
                    ConvVariant::Subgroup,
                    ConvVariant::Packed,
                    ConvVariant::Packed8,
                ] {
                    let fits = variant != ConvVariant::Packed8 || vec4s != 6;
                    if fits && variant.unsupported(ctx, family).is_none() {
                        all.push(ConvConfig::new(
                            variant,
                            RegisterTile::new(vec4s, pixels, workgroup),
                        ));
                    }
                }
            }
        }
        all
    }

    fn with_winograd(self, winograd: Option<WinogradTile>) -> Self {
        ConvConfig { winograd, ..self }
    }

    /// [`ConvConfig::candidates`] for a layer of `geometry` reading `in_channels`, with, for a
    /// 3x3 of stride 1, Winograd in each tile its C_in allows ([`WinogradTile::allowed`]), over a few
    /// GEMMs (each register-blocked 1x1 variant the adapter runs with its default tile, and
    /// packed8 with three more).
    pub fn candidates_for(
        ctx: &Context,
        geometry: &ConvGeometry,
        in_channels: usize,
    ) -> Vec<ConvConfig> {
        let mut all = Self::candidates(ctx, Family::of(geometry));
        if winograd::eligible(geometry) {
            let gemms = [
                ConvConfig::from(ConvVariant::Blocked),
                ConvConfig::from(ConvVariant::Subgroup),
                ConvConfig::new(ConvVariant::Packed8, PACKED8_TILE),
                ConvConfig::new(ConvVariant::Packed8, RegisterTile::new(4, 2, 8)),
                ConvConfig::new(ConvVariant::Packed8, PACKED8_LONG_TILE),
                ConvConfig::new(ConvVariant::Packed8, RegisterTile::new(8, 1, 8)),
            ];
            let tiles = WinogradTile::ALL
                .into_iter()
                .filter(|&t| t.allowed(in_channels));
            for tile in tiles {
                for gemm in gemms {
                    if gemm.variant.unsupported(ctx, Family::Pointwise).is_none() {
                        all.push(gemm.winograd(tile));
                    }
                }
            }
        }
        all
    }

    /// `packed8:c16p3w8`, or the variant alone when it has no tile (or its default one);
    /// `wino4_packed8:c16p3w8` in the Winograd domain.
    fn suffix(&self) -> String {
        let gemm = match self.tile {
            Some(tile) if self.variant.is_register_blocked() => {
                format!("{}:{}", self.variant.name(), tile.label())
            }
            _ => self.variant.name().to_string(),
        };
        match self.winograd {
            Some(w) => format!("{}_{gemm}", w.name()),
            None => gemm,
        }
    }

    /// The label for a layer of `geometry`: `conv3x3_packed8:c16p3w8`.
    pub fn label(&self, geometry: &ConvGeometry) -> String {
        format!("{}_{}", geometry.kernel_name(), self.suffix())
    }

    /// Parses `[<kernel>_]<variant>[:<tile>]`: `direct`, `tiled`, `blocked`, `subgroup`,
    /// `packed`, `packed8` or `auto`, optionally with a tile as in `blocked:c16p1w8`, and
    /// optionally after a kernel name (`conv3x3_`, `conv7x7s2_`: the labels of
    /// [`ConvConfig::label`]; `conv2d_` and `conv1x1_` name the families). The kernel name,
    /// when there is one, is returned for the caller to check against its layer.
    pub fn parse_labelled(text: &str) -> Result<(Option<&str>, ConvConfig)> {
        let (kernel, rest) = match text.rsplit_once('_') {
            Some((kernel, rest)) => (Some(kernel), rest),
            None => (None, text),
        };
        // `[<kernel>_]wino<m>_<variant>`: the Winograd tile sits between the two.
        let (kernel, winograd) = match kernel {
            Some(kernel) => {
                let (head, last) = match kernel.rsplit_once('_') {
                    Some((head, last)) => (Some(head), last),
                    None => (None, kernel),
                };
                match WinogradTile::parse(last) {
                    Some(tile) => (head, Some(tile)),
                    None => (Some(kernel), None),
                }
            }
            None => (None, None),
        };
        let (variant, tile) = match rest.split_once(':') {
            Some((variant, tile)) => (variant, Some(RegisterTile::parse(tile)?)),
            None => (rest, None),
        };
        let variant = ConvVariant::ALL
            .into_iter()
            .find(|v| v.name() == variant)
            .ok_or_else(|| {
                Error::invalid(
                    "convolution kernel",
                    format!(
                        "expected [conv3x3_][wino2_|wino3_|wino4_]<variant>[:tile] with variant \
                         direct, tiled, blocked[:c16p1w8], subgroup[:c16p2w8], \
                         packed[:c16p2w8], packed8[:c16p2w8] or auto, found '{text}'"
                    ),
                )
            })?;
        Ok((
            kernel,
            ConvConfig {
                variant,
                tile,
                winograd,
            },
        ))
    }

    /// [`ConvConfig::parse_labelled`] for a layer of `geometry`: a kernel name, if given, must
    /// be the layer's or its family's.
    pub fn parse_for(text: &str, geometry: &ConvGeometry) -> Result<ConvConfig> {
        let (kernel, config) = Self::parse_labelled(text)?;
        if let Some(kernel) = kernel {
            let family = Family::of(geometry).prefix();
            if kernel != geometry.kernel_name() && kernel != family {
                return Err(Error::invalid(
                    format!("convolution kernel '{text}'"),
                    format!(
                        "is for {kernel} layers; this layer is a {} ({family}_* kernels)",
                        geometry.kernel_name()
                    ),
                ));
            }
        }
        Ok(config)
    }
}

impl From<ConvVariant> for ConvConfig {
    /// The variant with its family's default tile.
    fn from(variant: ConvVariant) -> Self {
        ConvConfig {
            variant,
            tile: None,
            winograd: None,
        }
    }
}

/// `packed8:c16p3w8` (no kernel name: see [`ConvConfig::label`]).
impl fmt::Display for ConvConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.suffix())
    }
}

impl Resolved {
    /// The configuration this resolved to, with its tile spelled out.
    pub fn config(&self) -> ConvConfig {
        ConvConfig::new(self.variant, self.tile).with_winograd(self.winograd)
    }

    /// `conv3x3_packed8:c16p3w8`.
    pub fn label(&self, geometry: &ConvGeometry) -> String {
        self.config().label(geometry)
    }
}

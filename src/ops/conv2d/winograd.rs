//! Winograd minimal filtering for 3x3 convolutions of stride 1, any dilation and padding.
//! F(m x m, 3 x 3) computes an m x m tile of outputs from an (m+2) x (m+2) tile of input with
//! (m+2)^2 multiplies per pair of input and output channels instead of 9 m^2 (Lavin and Gray,
//! "Fast Algorithms for Convolutional Neural Networks", 2016): 2.25x fewer for m = 2, 3.24x for
//! m = 3, 4x for m = 4. Which m pays depends on the residue classes' widths too: a class w
//! pixels wide takes ceil(w / m) tiles, so m = 3 fits the 5- and 6-pixel classes of ASPP's
//! rates where m = 2 and 4 waste a partial tile.
//!
//! Dilation by residue classes: a 3x3 convolution of dilation d is d x d ordinary 3x3
//! convolutions, one per class of output pixels (y mod d, x mod d), each reading the input
//! pixels of its class's grid at stride d. A tile is m x m outputs of one class, d apart; its
//! input is the (m+2) x (m+2) pixels d apart that they read, gathered straight from the NCHW
//! input (no space-to-batch copy), and its outputs are written d apart. The tiles of each
//! class cover that class's outputs exactly (the last tile of a row or column may stick out
//! of the map: its outside outputs are computed and dropped). A tile whose inputs lie wholly
//! in the padding (padding wider than the kernel's reach) is skipped, as tap pruning skips
//! taps: its outputs are the epilogue of zeros, written by the output transform alone.
//!
//! Three dispatches per chunk of tiles:
//! 1. input transform (shaders/winograd.wgsl): V = B^T d B for each tile and input channel;
//! 2. the GEMM, a 1x1 kernel (shaders/conv1x1*.wgsl) whose images are the (m+2)^2 points xi
//!    of the transform, each with its own weights: M[xi] = U[xi] V[xi], the weights
//!    U = G g G^T transformed at load in f64 and stored f32. Past [`F4_PART_CHANNELS`] input
//!    channels F(4x4) sums C_in in parts, an image per (point, part): M[xi, s] = U[xi, s] V[xi, s];
//! 3. output transform (shaders/winograd.wgsl): Y = A^T (sum over s of M[., s]) A for each tile
//!    and output channel, through the shared epilogue (bias, residual, ReLU) to its pixels.
//!
//! x: (N, C_in, H, W)
//! V: (P, C_in', T) for a range of P of the a^2 points (a = m + 2) and T the chunk's tiles;
//!    (P, C_in' / 8, T, 8) for the packed8 GEMM (its packed input layout), with C_in' = S
//!    parts of C_in / S channels each, rounded up to the GEMM's packing, zeros past C_in (S = 1
//!    but for F(4x4) on more than [`F4_PART_CHANNELS`])
//! U: a^2 S blocks, one per point and part, each a 1x1 (C_out, C_in' / S) weight in the GEMM
//!    kernel's layout, point-major
//! M: (a^2, S, C_out, T)
//! y: (N, C_out, H_out, W_out)
//! tiles: the tiles' first output rows (row_tiles of them), then first columns (col_tiles)
//!
//! V and M are scratch tensors of the plan (the memory planner places them; `Plan` hands them
//! to [`Conv2d::prepare_with`](super::Conv2d::prepare_with)), or buffers of the launch when a
//! conv runs on its own; chunks of tiles and ranges of points keep each about the size of the
//! layer's larger activation ([`SCRATCH_BYTES`]). Weights larger than one storage binding
//! (PSPNet's 4096 -> 512 bottleneck in F(4x4) is 302 MB) are split by points over several
//! buffers, and a range of points never straddles two.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::ops::conv2d::{ConvParams, ConvWeights, Epilogue, Resolved};
use crate::ops::{to_u32, workgroups, WORKGROUP_CONSTANT};
use crate::pipeline::{Launch, Shader};
use crate::shape::ConvGeometry;
use crate::tensor::{OutputSlice, Tensor};

/// The output tile of a Winograd transform: F(2x2, 3x3), F(3x3, 3x3) or F(4x4, 3x3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WinogradTile {
    F2,
    /// Fits the 5- and 6-pixel residue classes of ASPP's rates (rate 6 on 33x33, rate 12 on
    /// 65x65), where F(2x2) and F(4x4) leave a partial tile.
    F3,
    F4,
}

/// Interpolation points 0, 1, -1 (and infinity).
const F2_BT: [[f64; 4]; 4] = [
    [1.0, 0.0, -1.0, 0.0],
    [0.0, 1.0, 1.0, 0.0],
    [0.0, -1.0, 1.0, 0.0],
    [0.0, 1.0, 0.0, -1.0],
];
const F2_G: [[f64; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];
const F2_AT: [[f64; 4]; 2] = [[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]];

/// Interpolation points 0, 1, -1, 2 (and infinity); the matrices follow from the points as
/// in Toom-Cook (A^T and G Vandermonde, B^T solved for).
const F3_BT: [[f64; 5]; 5] = [
    [2.0, -1.0, -2.0, 1.0, 0.0],
    [0.0, -2.0, -1.0, 1.0, 0.0],
    [0.0, 2.0, -3.0, 1.0, 0.0],
    [0.0, -1.0, 0.0, 1.0, 0.0],
    [0.0, 2.0, -1.0, -2.0, 1.0],
];
const F3_G: [[f64; 3]; 5] = [
    [1.0 / 2.0, 0.0, 0.0],
    [-1.0 / 2.0, -1.0 / 2.0, -1.0 / 2.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 6.0, 1.0 / 3.0, 2.0 / 3.0],
    [0.0, 0.0, 1.0],
];
const F3_AT: [[f64; 5]; 3] = [
    [1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 2.0, 0.0],
    [0.0, 1.0, 1.0, 4.0, 1.0],
];

/// Interpolation points 0, 1, -1, 2, -2 (and infinity), Lavin's. The points 0, 1, -1, 1/2,
/// -1/2 (Toom-Cook, as Barabasz et al. propose for accuracy) measured no better here on
/// random data: 1.2e-5 against 1.2e-5 at C_in = 4096, slightly worse below.
const F4_BT: [[f64; 6]; 6] = [
    [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
    [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
    [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
    [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
    [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
    [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
];
const F4_G: [[f64; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];
const F4_AT: [[f64; 6]; 4] = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
    [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
    [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
];

impl WinogradTile {
    pub const ALL: [WinogradTile; 3] = [WinogradTile::F2, WinogradTile::F3, WinogradTile::F4];

    /// Outputs per tile side.
    pub fn m(self) -> usize {
        match self {
            WinogradTile::F2 => 2,
            WinogradTile::F3 => 3,
            WinogradTile::F4 => 4,
        }
    }

    /// Inputs per tile side, m + 2: the transform has alpha^2 points.
    pub fn alpha(self) -> usize {
        self.m() + 2
    }

    /// `wino2`, `wino3`, `wino4` (in configuration labels).
    pub fn name(self) -> &'static str {
        match self {
            WinogradTile::F2 => "wino2",
            WinogradTile::F3 => "wino3",
            WinogradTile::F4 => "wino4",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == text)
    }

    /// B^T (alpha x alpha), row by row.
    pub fn bt(self) -> Vec<Vec<f64>> {
        match self {
            WinogradTile::F2 => F2_BT.iter().map(|r| r.to_vec()).collect(),
            WinogradTile::F3 => F3_BT.iter().map(|r| r.to_vec()).collect(),
            WinogradTile::F4 => F4_BT.iter().map(|r| r.to_vec()).collect(),
        }
    }

    /// G (alpha x 3).
    pub fn g(self) -> Vec<[f64; 3]> {
        match self {
            WinogradTile::F2 => F2_G.to_vec(),
            WinogradTile::F3 => F3_G.to_vec(),
            WinogradTile::F4 => F4_G.to_vec(),
        }
    }

    /// A^T (m x alpha).
    pub fn at(self) -> Vec<Vec<f64>> {
        match self {
            WinogradTile::F2 => F2_AT.iter().map(|r| r.to_vec()).collect(),
            WinogradTile::F3 => F3_AT.iter().map(|r| r.to_vec()).collect(),
            WinogradTile::F4 => F4_AT.iter().map(|r| r.to_vec()).collect(),
        }
    }

    /// Input channels per part of C_in ([`WinogradTile::parts`]) for a GEMM that reads V
    /// packed by `pack` (1 or 8) channels: V holds parts x this many channels, zeros past C_in.
    pub fn part_channels(self, in_channels: usize, pack: usize) -> usize {
        in_channels
            .div_ceil(self.parts(in_channels))
            .next_multiple_of(pack)
    }

    /// Whether the default and the tuner may run a layer of `in_channels` in this tile: F(2x2)
    /// and F(3x3) everywhere, F(4x4) from [`F4_MIN_IN_CHANNELS`] on.
    pub fn allowed(self, in_channels: usize) -> bool {
        match self {
            WinogradTile::F2 | WinogradTile::F3 => true,
            WinogradTile::F4 => in_channels >= F4_MIN_IN_CHANNELS,
        }
    }

    /// The parts the GEMM splits C_in into: F(4x4) sums at most [`F4_PART_CHANNELS`] input
    /// channels in one accumulator, then adds the parts in its output transform.
    pub fn parts(self, in_channels: usize) -> usize {
        match self {
            WinogradTile::F2 | WinogradTile::F3 => 1,
            WinogradTile::F4 => in_channels.div_ceil(F4_PART_CHANNELS).max(1),
        }
    }

    /// The transformed filters: for each point xi = (i, j) of the alpha x alpha transform and
    /// each of [`WinogradTile::parts`] parts of C_in (`part_channels` each, zeros past C_in),
    /// the (C_out, part_channels) matrix U[xi] = (G g G^T)[i][j] of those channels, computed
    /// in f64 from `weights`' 3x3 kernels, without bias (the output transform's epilogue adds
    /// it); point-major: block xi * parts + part.
    pub fn transform_weights(
        self,
        weights: &ConvWeights,
        part_channels: usize,
    ) -> Vec<ConvWeights> {
        let parts = self.parts(weights.in_channels);
        let (cout, cin) = (weights.out_channels, weights.in_channels);
        let mut blocks = Vec::with_capacity(self.alpha() * self.alpha() * parts);
        for point in self.transform_points(weights) {
            for part in 0..parts {
                let mut weight = vec![0f32; cout * part_channels];
                for co in 0..cout {
                    for c in 0..part_channels.min(cin.saturating_sub(part * part_channels)) {
                        weight[co * part_channels + c] = point[co * cin + part * part_channels + c];
                    }
                }
                blocks.push(ConvWeights {
                    out_channels: cout,
                    in_channels: part_channels,
                    kernel_size: 1,
                    weight,
                    bias: None,
                });
            }
        }
        blocks
    }

    /// U[xi] for each point xi, (C_out, C_in) row-major.
    fn transform_points(self, weights: &ConvWeights) -> Vec<Vec<f32>> {
        let (a, g) = (self.alpha(), self.g());
        let (cout, cin) = (weights.out_channels, weights.in_channels);
        let mut points = vec![vec![0f32; cout * cin]; a * a];
        for (pair, kernel) in weights.weight.chunks_exact(9).enumerate() {
            let k = |r: usize, c: usize| kernel[r * 3 + c] as f64;
            // G g: alpha x 3.
            let gg: Vec<[f64; 3]> = (0..a)
                .map(|i| std::array::from_fn(|c| (0..3).map(|r| g[i][r] * k(r, c)).sum()))
                .collect();
            for i in 0..a {
                for j in 0..a {
                    let u: f64 = (0..3).map(|c| gg[i][c] * g[j][c]).sum();
                    points[i * a + j][pair] = u as f32;
                }
            }
        }
        points
    }

    /// Tiles of an output of `out_h x out_w` at `dilation`, over every residue class.
    pub fn tiles(self, out_h: usize, out_w: usize, dilation: usize) -> usize {
        let rows = tile_origins(out_h, dilation, self.m()).len();
        let cols = tile_origins(out_w, dilation, self.m()).len();
        rows * cols
    }

    /// The tiles' first output rows and first columns for an input of `h x w` under
    /// `geometry`, each axis split into the origins whose inputs touch the map and those that
    /// read only padding (a tile with either reads only zeros: its outputs are the epilogue's
    /// alone, and no transform or GEMM runs it).
    pub fn origins(self, geometry: &ConvGeometry, h: usize, w: usize) -> Result<[Origins; 2]> {
        let (out_h, out_w) = geometry.out_hw(h, w)?;
        let d = geometry.dilation;
        let axis = |out: usize, size: usize, pad: usize| {
            let reads_the_map = |origin: usize| {
                (0..self.alpha()).any(|j| (pad..pad + size).contains(&(origin + j * d)))
            };
            let (live, dead) = tile_origins(out, d, self.m())
                .into_iter()
                .partition(|&o| reads_the_map(o));
            Origins { live, dead }
        };
        Ok([
            axis(out_h, h, geometry.padding[0]),
            axis(out_w, w, geometry.padding[1]),
        ])
    }

    /// Multiplies per pair of channels for an input of `h x w` under `geometry`: alpha^2 per
    /// tile that reads the map (direct convolution: 9 per output pixel, fewer where taps fall
    /// in the padding).
    pub fn multiplies(self, geometry: &ConvGeometry, h: usize, w: usize) -> Result<usize> {
        let [rows, cols] = self.origins(geometry, h, w)?;
        Ok(rows.live.len() * cols.live.len() * self.alpha() * self.alpha())
    }
}

/// The least C_in for which the default and the tuner may take F(4x4), whose error is 3-5x the
/// direct kernels' (rel L2 against the float64 reference, random data: 1.6e-6 at 64, 2.8e-6 at
/// 256, 5.4e-6 at 1024, 8.4e-6 at 2048; F(2x2) stays below the direct kernels' own error at
/// every C_in, F(3x3) at about 2x it, 6.2e-6 at 4096). An error made early in a deep network is
/// amplified by every layer after it: F(4x4) on the stem and layer1-2 (C_in 64-128) took
/// PSPNet-ResNet101's logits from 3.9e-5 to 1.2e-4 from PyTorch's (the network tolerance is
/// 1e-4), on layer3, layer4 and the heads only to 4.2e-5 (BENCHMARKS.md).
pub const F4_MIN_IN_CHANNELS: usize = 256;

/// The most input channels F(4x4)'s GEMM sums in one accumulator. Its error grows as the
/// square root of the channels summed (the rounding of a long f32 sum, amplified by A^T's
/// entries up to 8): 1.2e-5 at 4096 in one sum, past the op tolerance; in parts of 2048 added
/// by the output transform it stays at 2048's error.
pub const F4_PART_CHANNELS: usize = 2048;

/// The speed-up a layer gets per unit of multiply reduction, for channel counts whose harmonic
/// mean is h: h / (h + EFFICIENCY_KNEE). The transforms cost per channel and tile, the GEMM per
/// pair of channels and tile, so narrow layers keep less of the reduction. Fitted to lavapipe
/// (BENCHMARKS.md, "Winograd"): measured / predicted 0.89 and 0.84 (F(2x2), F(4x4)) at 4096 ->
/// 512, 0.62-0.74 at 512 -> 512, 0.61-0.71 at 2048 -> 256, 0.50-0.59 at 256 -> 256, 0.39-0.46
/// at 128 -> 128 and 0.24-0.27 at 64 -> 64; the model gives 0.84, 0.74, 0.72, 0.59, 0.42 and
/// 0.27.
const EFFICIENCY_KNEE: f64 = 177.0;

/// The least predicted speed-up worth switching kernels for. The model is conservative where
/// residue classes are narrow (F(3x3) at rate 24 on 65x65: predicted 1.08x, measured 1.39x).
const MIN_SPEEDUP: f64 = 1.05;

/// Below these channel counts the transforms (per channel and tile) weigh too much against
/// the GEMM (per pair of channels and tile).
const MIN_CHANNELS: usize = 16;

/// The tile the default configuration uses for a layer, if Winograd should run it: the one
/// with the largest predicted speed-up, the direct kernel's multiplies (only taps on real
/// pixels: at large rates on small maps, tap pruning wins) over its own, times the efficiency
/// its channel counts allow ([`EFFICIENCY_KNEE`]), if at least [`MIN_SPEEDUP`]; F(4x4) only
/// from [`F4_MIN_IN_CHANNELS`] input channels. The knee was fitted on F(2x2) and F(4x4);
/// F(3x3)'s measured speed-ups fall within the same band (0.47-0.93 of its multiply
/// reduction).
pub fn choose(
    geometry: &ConvGeometry,
    h: usize,
    w: usize,
    in_channels: usize,
    out_channels: usize,
) -> Result<Option<WinogradTile>> {
    if !eligible(geometry) || in_channels < MIN_CHANNELS || out_channels < MIN_CHANNELS {
        return Ok(None);
    }
    let direct = geometry.live_taps(h, w)? as f64;
    let mean = 2.0 / (1.0 / in_channels as f64 + 1.0 / out_channels as f64);
    let efficiency = mean / (mean + EFFICIENCY_KNEE);
    let mut best = None;
    for tile in WinogradTile::ALL {
        let multiplies = tile.multiplies(geometry, h, w)? as f64;
        let speedup = direct / multiplies * efficiency;
        let better = best.is_none_or(|(_, b)| speedup > b);
        if tile.allowed(in_channels) && speedup >= MIN_SPEEDUP && better {
            best = Some((tile, speedup));
        }
    }
    Ok(best.map(|(tile, _)| tile))
}

/// Whether Winograd's F(m x m, 3 x 3) computes this geometry: 3x3, stride 1.
pub fn eligible(geometry: &ConvGeometry) -> bool {
    geometry.kernel_size == 3 && geometry.stride == 1
}

/// The tile origins along one axis: those whose inputs touch the map, and those that read only
/// padding ([`WinogradTile::origins`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origins {
    pub live: Vec<usize>,
    pub dead: Vec<usize>,
}

/// The first output row (or column) of each tile along an axis of `out` pixels: for each
/// residue class r < `dilation`, the class's pixels r, r + d, ... in runs of `m`.
pub fn tile_origins(out: usize, dilation: usize, m: usize) -> Vec<usize> {
    let mut origins = Vec::new();
    for r in 0..dilation.min(out) {
        let pixels = (out - r).div_ceil(dilation);
        for t in 0..pixels.div_ceil(m) {
            origins.push(r + dilation * m * t);
        }
    }
    origins
}

/// Bytes of each scratch tensor at most: M (every point of a chunk of tiles) and V (a range
/// of points of that chunk), sized like the layer's larger activation within
/// [`MIN_SCRATCH_BYTES`]..=[`SCRATCH_BYTES`]. Larger chunks of tiles stream the weights fewer
/// times (every chunk reads them once; a 4096 -> 512 layer's F(4x4) weights are 302 MB), and
/// larger ranges of points read the input fewer times (each range's input transform reads the
/// chunk's input again). Measured on PSPNet's 4096 -> 512 bottleneck with a fixed budget
/// (F(2x2), F(4x4)): 1189 and 852 ms with 64 MiB, 1383 and 984 with 32, 1451 and 1239 with 8.
pub const SCRATCH_BYTES: u64 = 64 << 20;

/// The smallest scratch budget: below it the chunks' dispatches outweigh their work.
pub const MIN_SCRATCH_BYTES: u64 = 1 << 20;

const WINOGRAD: Shader = crate::pipeline::shader!(
    "winograd",
    prelude["conv_params"],
    [Uniform, ReadOnly, ReadWrite, ReadOnly, ReadWrite, ReadOnly, ReadOnly, ReadOnly]
);

/// A range of points the GEMM runs at once: `count` points from `first`, whose weights are
/// in weight buffer `buffer` from its block `first_in_buffer` on (a block per point and part
/// of C_in).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PointRange {
    pub first: usize,
    pub count: usize,
    pub buffer: usize,
    pub first_in_buffer: usize,
}

/// How one layer on one input shape is cut into chunks of tiles and ranges of points.
#[derive(Clone, Debug)]
pub(crate) struct Tiling {
    pub tile: WinogradTile,
    /// The origins of the tiles that read the map: the chunks run them.
    pub row_origins: Vec<usize>,
    pub col_origins: Vec<usize>,
    /// The tiles that read only padding, as (rows, columns) sets of origins: their outputs
    /// are the epilogue of zeros.
    pub padding_tiles: Vec<(Vec<usize>, Vec<usize>)>,
    /// Tiles per chunk (the last chunk may run past the last tile: those tiles are empty).
    pub chunk_tiles: usize,
    /// Chunks of the tiles that read the map (none when every tile reads only padding).
    pub chunks: usize,
    pub ranges: Vec<PointRange>,
    /// Input channels as V holds them: `parts` x `part_channels`.
    pub v_channels: usize,
    /// Parts of C_in the GEMM sums apart, its images being (point, part) pairs, point-major;
    /// the output transform adds them ([`WinogradTile::parts`]).
    pub parts: usize,
    /// C_in / parts, rounded up to the GEMM's packing.
    pub part_channels: usize,
    /// Channels packed together in V: 8 for the packed8 GEMM, else 1 (planes).
    pub pack: usize,
    pub out_channels: usize,
}

impl Tiling {
    /// The tiling of `geometry` on `shape` for the GEMM `resolved`, whose weight layout takes
    /// `block_bytes` per point and part of C_in.
    pub fn new(
        ctx: &Context,
        geometry: &ConvGeometry,
        shape: [usize; 4],
        out_channels: usize,
        resolved: &Resolved,
        block_bytes: u64,
    ) -> Result<Tiling> {
        let tile = resolved.winograd.expect("a Winograd configuration");
        let [n, c, h, w] = shape;
        let (out_h, out_w) = geometry.out_hw(h, w)?;
        let [rows, cols] = tile.origins(geometry, h, w)?;
        let all_cols: Vec<usize> = cols.live.iter().chain(&cols.dead).copied().collect();
        let padding_tiles = [
            (rows.dead.clone(), all_cols),
            (rows.live.clone(), cols.dead.clone()),
        ]
        .into_iter()
        .filter(|(r, c)| !r.is_empty() && !c.is_empty())
        .collect();
        let (row_origins, col_origins) = (rows.live, cols.live);
        let tiles = n * row_origins.len() * col_origins.len();
        let points = tile.alpha() * tile.alpha();
        let pack = resolved.variant.pack().unwrap_or(1);
        let parts = tile.parts(c);
        let part_channels = tile.part_channels(c, pack);
        let v_channels = parts * part_channels;
        // Scratch about the size of the layer's larger activation: the plan's buffers hold
        // tensors of that size already, so the scratch shares them rather than adding its own.
        let activation = (4 * n * c * h * w).max(4 * n * out_channels * out_h * out_w) as u64;
        let budget = activation
            .clamp(MIN_SCRATCH_BYTES, SCRATCH_BYTES)
            .min(ctx.max_binding_bytes());
        // M holds every point and part of a chunk; V at least one point.
        let per_tile = (4 * points * parts * out_channels).max(4 * v_channels) as u64;
        let most = ((budget / per_tile) as usize).max(1);
        let chunks = tiles.div_ceil(most);
        let chunk_tiles = tiles.div_ceil(chunks.max(1)).max(1);
        let per_range = ((budget / (4 * v_channels * chunk_tiles) as u64) as usize).max(1);
        let per_buffer = points_per_buffer(ctx, block_bytes, points, parts)? / parts;
        let mut ranges = Vec::new();
        let mut first = 0;
        while first < points {
            // A range never straddles two weight buffers.
            let (buffer, first_in_buffer) = (first / per_buffer, first % per_buffer);
            let count = per_range
                .min(per_buffer - first_in_buffer)
                .min(points - first);
            ranges.push(PointRange {
                first,
                count,
                buffer,
                first_in_buffer: first_in_buffer * parts,
            });
            first += count;
        }
        Ok(Tiling {
            tile,
            row_origins,
            col_origins,
            padding_tiles,
            chunk_tiles,
            chunks,
            ranges,
            v_channels,
            parts,
            part_channels,
            pack,
            out_channels,
        })
    }

    fn points(&self) -> usize {
        self.tile.alpha() * self.tile.alpha()
    }

    /// Bytes of V (the largest range of points) and M (every point and part) for one chunk:
    /// the scratch the layer needs.
    pub fn scratch_bytes(&self) -> [u64; 2] {
        let range = self.ranges.iter().map(|r| r.count).max().unwrap_or(1);
        let tiles = (self.chunk_tiles * 4) as u64;
        [
            tiles * (range * self.v_channels) as u64,
            tiles * (self.points() * self.parts * self.out_channels) as u64,
        ]
    }
}

/// How many weight blocks of `block_bytes` (one per point and part of C_in) go to one storage
/// binding: whole points' parts, so a multiple of `parts`.
pub(crate) fn points_per_buffer(
    ctx: &Context,
    block_bytes: u64,
    points: usize,
    parts: usize,
) -> Result<usize> {
    let limit = ctx.max_binding_bytes();
    let point_bytes = block_bytes * parts as u64;
    if point_bytes > limit {
        return Err(Error::TooLarge {
            what: "one point's Winograd weights".into(),
            bytes: point_bytes,
            limit,
        });
    }
    Ok(((limit / point_bytes) as usize).clamp(1, points) * parts)
}

/// The GEMM of one range of points of a chunk of tiles: (range, V) to its launch, which
/// writes M's planes of the range.
pub(crate) type Gemm<'a> = dyn Fn(&PointRange, &wgpu::Buffer) -> Result<Launch> + 'a;

/// The transforms' launches and the GEMM's, chunk by chunk and range by range, as one
/// [`Launch`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn launch(
    ctx: &Context,
    label: &str,
    tiling: &Tiling,
    base: ConvParams,
    input: &Tensor,
    scratch: [&wgpu::Buffer; 2],
    output: OutputSlice,
    epilogue: &Epilogue,
    bias: &wgpu::Buffer,
    zeros: &wgpu::Buffer,
    gemm: &Gemm,
) -> Result<Launch> {
    let mut table: Vec<u32> = Vec::new();
    for &o in tiling.row_origins.iter().chain(&tiling.col_origins) {
        table.push(to_u32("tile origin", o)?);
    }
    let table = ctx.upload(&format!("{label} tiles"), &table)?;
    let constants = [WORKGROUP_CONSTANT[0], ("PACK", tiling.pack as f64)];
    let (input_entry, output_entry) = match tiling.tile {
        WinogradTile::F2 => ("winograd_input_f2", "winograd_output_f2"),
        WinogradTile::F3 => ("winograd_input_f3", "winograd_output_f3"),
        WinogradTile::F4 => ("winograd_input_f4", "winograd_output_f4"),
    };
    let [v, m] = scratch;
    let residual = epilogue.residual.map_or(zeros, |r| r.buffer());
    // An output transform over the tiles of `table` (origins) that `params` describes: one
    // invocation per output channel and tile.
    let output_transform = |name: &str, params: ConvParams, table: &wgpu::Buffer| {
        Launch::new(
            ctx,
            format!("{label} {name}"),
            &WINOGRAD,
            output_entry,
            &constants,
            &params,
            &[
                input.buffer(),
                m,
                bias,
                output.tensor.buffer(),
                table,
                zeros,
                residual,
            ],
            workgroups(params.total as usize),
        )
    };
    let mut steps: Vec<Launch> = Vec::new();
    for chunk in 0..tiling.chunks {
        let common = ConvParams {
            first_tile: to_u32("tile", chunk * tiling.chunk_tiles)?,
            row_tiles: to_u32("tile rows", tiling.row_origins.len())?,
            col_tiles: to_u32("tile columns", tiling.col_origins.len())?,
            chunk_tiles: to_u32("tiles", tiling.chunk_tiles)?,
            ..base
        };
        for range in &tiling.ranges {
            let inputs = tiling.v_channels * tiling.chunk_tiles;
            steps.push(Launch::new(
                ctx,
                format!("{label} input transform"),
                &WINOGRAD,
                input_entry,
                &constants,
                &ConvParams {
                    total: to_u32("invocations", inputs)?,
                    first_point: to_u32("point", range.first)?,
                    point_count: to_u32("points", range.count)?,
                    ..common
                },
                &[
                    input.buffer(),
                    v,
                    zeros,
                    output.tensor.buffer(),
                    &table,
                    zeros,
                    residual,
                ],
                workgroups(inputs),
            )?);
            steps.push(gemm(range, v)?);
        }
        let outputs = tiling.out_channels * tiling.chunk_tiles;
        steps.push(output_transform(
            "output transform",
            ConvParams {
                total: to_u32("invocations", outputs)?,
                parts: to_u32("parts", tiling.parts)?,
                ..common
            },
            &table,
        )?);
    }
    // Tiles that read only padding: the output transform of zero products (no part read).
    let mut tables = vec![table];
    for (rows, cols) in &tiling.padding_tiles {
        let origins: Vec<u32> = rows
            .iter()
            .chain(cols)
            .map(|&o| to_u32("tile origin", o))
            .collect::<Result<_>>()?;
        let table = ctx.upload(&format!("{label} padding tiles"), &origins)?;
        let tiles = base.batch as usize * rows.len() * cols.len();
        steps.push(output_transform(
            "padding tiles",
            ConvParams {
                total: to_u32("invocations", tiling.out_channels * tiles)?,
                first_tile: 0,
                row_tiles: to_u32("tile rows", rows.len())?,
                col_tiles: to_u32("tile columns", cols.len())?,
                chunk_tiles: to_u32("tiles", tiles)?,
                parts: 0,
                ..base
            },
            &table,
        )?);
        tables.push(table);
    }
    let mut launch = steps
        .into_iter()
        .reduce(Launch::then)
        .expect("an output has a tile");
    // Named after the layer, not its first dispatch.
    launch.label = label.to_string();
    for table in tables {
        launch = launch.owning(table);
    }
    Ok(launch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// A^T [(G g) * (B^T d)] is the correlation y[i] = sum_k d[i + k] g[k], in f64.
    #[test]
    fn the_matrices_compute_a_correlation() {
        let mut rng = Rng::new(5);
        for tile in WinogradTile::ALL {
            let (m, a) = (tile.m(), tile.alpha());
            let (bt, g, at) = (tile.bt(), tile.g(), tile.at());
            for _ in 0..10 {
                let d: Vec<f64> = rng.vec(a, 1.0).into_iter().map(f64::from).collect();
                let k: Vec<f64> = rng.vec(3, 1.0).into_iter().map(f64::from).collect();
                let u: Vec<f64> = g
                    .iter()
                    .map(|row| (0..3).map(|j| row[j] * k[j]).sum())
                    .collect();
                let v: Vec<f64> = bt
                    .iter()
                    .map(|row| (0..a).map(|j| row[j] * d[j]).sum())
                    .collect();
                for i in 0..m {
                    let y: f64 = (0..a).map(|j| at[i][j] * u[j] * v[j]).sum();
                    let expected: f64 = (0..3).map(|j| d[i + j] * k[j]).sum();
                    assert!(
                        (y - expected).abs() < 1e-12,
                        "{tile:?} output {i}: {y} vs {expected}"
                    );
                }
            }
        }
    }

    /// Each residue class's outputs are covered once: origins r, r + d m, ... for r < d.
    #[test]
    fn tile_origins_cover_every_output_once() {
        for (out, d, m) in [
            (65, 4, 4),
            (65, 12, 2),
            (1, 3, 4),
            (60, 1, 4),
            (9, 24, 2),
            (33, 2, 4),
        ] {
            let mut covered = vec![0; out];
            for y0 in tile_origins(out, d, m) {
                for i in 0..m {
                    if let Some(c) = covered.get_mut(y0 + i * d) {
                        *c += 1;
                    }
                }
            }
            assert!(
                covered.iter().all(|&c| c == 1),
                "{out} {d} {m}: {covered:?}"
            );
        }
    }

    /// The cost model takes Winograd on ResNet's and PSPNet's dense 3x3s, tap pruning at
    /// ASPP's rates up to 24 on 65x65 (F(3x3)), tap pruning at the largest ones, F(4x4) only
    /// from its least C_in, and nothing but 3x3 of stride 1.
    #[test]
    fn the_default_follows_the_multiplies() {
        use WinogradTile::{F3, F4};
        // (dilation, map, C_in, C_out, the choice); the layers of BENCHMARKS.md's table, where
        // the default's choice was measured the fastest of those it may take (F(4x4) is out
        // of range at 128 input channels).
        let layers = [
            (1, 60, 4096, 512, Some(F4)),
            (1, 65, 2048, 512, Some(F4)),
            (4, 65, 512, 512, Some(F4)),
            (2, 65, 256, 256, Some(F4)),
            (1, 65, 128, 128, Some(F3)),
            (12, 65, 2048, 256, Some(F3)),
            (24, 65, 2048, 256, Some(F3)),
            (36, 65, 2048, 256, None),
            (6, 33, 512, 256, Some(F3)),
            (18, 33, 512, 256, None),
            (6, 33, 2048, 256, Some(F3)),
            (12, 33, 2048, 256, Some(F3)),
            (18, 33, 2048, 256, None),
            (1, 130, 64, 64, None),
            (1, 65, 8, 8, None),
        ];
        for (d, size, cin, cout, expected) in layers {
            let g = ConvGeometry::same_3x3(d);
            let chosen = choose(&g, size, size, cin, cout).unwrap();
            assert_eq!(chosen, expected, "{cin} -> {cout} at {size}, rate {d}");
        }
        let strided = ConvGeometry::new(3, 2, 1, 1);
        assert_eq!(choose(&strided, 65, 65, 256, 256).unwrap(), None);
    }
}

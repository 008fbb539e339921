//! One module per op, each the launcher of `shaders/<op>.wgsl`. Ops are eager: `forward`
//! allocates its output, records one dispatch and submits it. `prepare` builds the dispatch
//! ([`Launch`](crate::pipeline::Launch)) once for a fixed input and output so graphs can record
//! it again without rebuilding anything.

pub mod adaptive_avg_pool2d;
pub mod batchnorm;
pub mod concat;
pub mod conv1x1;
pub mod conv3x3;
pub mod interpolate;
pub mod kernel_config;
pub mod pack_channels;

pub use adaptive_avg_pool2d::adaptive_avg_pool2d;
pub use batchnorm::{BatchNorm, BatchNorm2d};
pub use concat::concat;
pub use conv1x1::Conv1x1;
pub use conv3x3::Conv3x3;
pub use interpolate::interpolate;
pub use pack_channels::pack_channels;

use crate::error::{Error, Result};

/// Host copy of a convolution's parameters in PyTorch's layout:
/// weight (C_out, C_in, k, k), bias (C_out,).
#[derive(Clone, Debug, PartialEq)]
pub struct ConvWeights {
    pub out_channels: usize,
    pub in_channels: usize,
    pub kernel_size: usize,
    pub weight: Vec<f32>,
    pub bias: Option<Vec<f32>>,
}

impl ConvWeights {
    /// Checks the lengths against the stated shape; `name` appears in the error.
    pub fn new(
        name: &str,
        [out_channels, in_channels, kernel_h, kernel_w]: [usize; 4],
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
    ) -> Result<Self> {
        if kernel_h != kernel_w || !(kernel_h == 1 || kernel_h == 3) {
            return Err(Error::shape(
                format!("{name} weight"),
                "a 1x1 or 3x3 kernel",
                format!("{kernel_h}x{kernel_w}"),
            ));
        }
        if out_channels == 0 || in_channels == 0 {
            return Err(Error::shape(
                format!("{name} weight"),
                "C_out >= 1 and C_in >= 1",
                format!("({out_channels}, {in_channels}, {kernel_h}, {kernel_w})"),
            ));
        }
        let expected = out_channels * in_channels * kernel_h * kernel_w;
        if weight.len() != expected {
            return Err(Error::shape(
                format!("{name} weight"),
                format!(
                    "{expected} values for ({out_channels}, {in_channels}, {kernel_h}, {kernel_w})"
                ),
                format!("{} values", weight.len()),
            ));
        }
        if let Some(b) = &bias {
            if b.len() != out_channels {
                return Err(Error::shape(
                    format!("{name} bias"),
                    format!("({out_channels},)"),
                    format!("({},)", b.len()),
                ));
            }
        }
        Ok(ConvWeights {
            out_channels,
            in_channels,
            kernel_size: kernel_h,
            weight,
            bias,
        })
    }

    /// Folds an eval-mode batch norm that follows this conv into its weights and bias, in f64:
    /// `w' = w * s`, `b' = (b - mean) * s + beta` with `s = gamma / sqrt(var + eps)`.
    pub fn fold_batchnorm(&self, bn: &BatchNorm) -> Result<ConvWeights> {
        bn.check_channels("batch norm folded into a conv", self.out_channels)?;
        let (scale, shift) = bn.scale_shift_f64();
        let per_out = self.in_channels * self.kernel_size * self.kernel_size;
        let weight = self
            .weight
            .chunks(per_out)
            .zip(&scale)
            .flat_map(|(row, &s)| row.iter().map(move |&v| (v as f64 * s) as f32))
            .collect();
        let bias = (0..self.out_channels)
            .map(|c| {
                let b = self.bias.as_ref().map_or(0.0, |b| b[c] as f64);
                (b * scale[c] + shift[c]) as f32
            })
            .collect();
        Ok(ConvWeights {
            weight,
            bias: Some(bias),
            ..self.clone()
        })
    }

    /// Weights repacked for the tiled kernels: (ceil(C_out/4), C_in, k*k) groups of 4 output
    /// channels side by side, zero-padded past C_out.
    pub(crate) fn packed_by_4(&self) -> Vec<f32> {
        let taps = self.kernel_size * self.kernel_size;
        let groups = self.out_channels.div_ceil(4);
        let mut packed = vec![0.0; groups * self.in_channels * taps * 4];
        for co in 0..self.out_channels {
            for ci in 0..self.in_channels {
                for tap in 0..taps {
                    let src = (co * self.in_channels + ci) * taps + tap;
                    let dst = (((co / 4) * self.in_channels + ci) * taps + tap) * 4 + co % 4;
                    packed[dst] = self.weight[src];
                }
            }
        }
        packed
    }

    /// Weights repacked for the register-blocked kernels: (ceil(C_out / block), k*k, C_in, block)
    /// with `block` output channels side by side (a multiple of 4, read as vec4), zero-padded
    /// past C_out. For one block and one tap, consecutive input channels are consecutive.
    pub(crate) fn packed_blocked(&self, block: usize) -> Vec<f32> {
        let taps = self.kernel_size * self.kernel_size;
        let blocks = self.out_channels.div_ceil(block);
        let mut packed = vec![0.0; blocks * taps * self.in_channels * block];
        for co in 0..self.out_channels {
            for ci in 0..self.in_channels {
                for tap in 0..taps {
                    let src = (co * self.in_channels + ci) * taps + tap;
                    let dst =
                        (((co / block) * taps + tap) * self.in_channels + ci) * block + co % block;
                    packed[dst] = self.weight[src];
                }
            }
        }
        packed
    }

    /// The same weights with C_in rounded up to a multiple of `multiple`, zeros in the new
    /// input channels (for kernels that read input channels in groups).
    pub(crate) fn padded_in_channels(&self, multiple: usize) -> ConvWeights {
        let taps = self.kernel_size * self.kernel_size;
        let in_channels = self.in_channels.next_multiple_of(multiple);
        let mut weight = vec![0.0; self.out_channels * in_channels * taps];
        for (co, row) in self.weight.chunks(self.in_channels * taps).enumerate() {
            let start = co * in_channels * taps;
            weight[start..start + row.len()].copy_from_slice(row);
        }
        ConvWeights {
            in_channels,
            weight,
            ..self.clone()
        }
    }

    /// Weights for the kernels with 64-bit loads (shaders/wide_tile.wgsl: conv3x3_packed8,
    /// conv1x1_packed8): the blocked layout of C_in rounded up to 8, `block` = 4 * VEC output
    /// channels per block with VEC even, and within each block, tap and group of 8 input
    /// channels the group's 8 * VEC weight vec4s g = c * VEC + v dealt out in rounds of 16, one
    /// vec4<u64> (8 floats) per lane of 8: vec4 g goes to round g / 16, lane g % 8, and
    /// interleaves into the even floats (g / 8 even) or the odd ones, so that the low and high
    /// halves of a lane's u64s are whole vec4s.
    pub(crate) fn packed_wide(&self, block: usize) -> Vec<f32> {
        let vec4s = block / 4;
        let group = 32 * vec4s;
        debug_assert!(block % 8 == 0);
        let blocked = self.padded_in_channels(8).packed_blocked(block);
        let mut out = vec![0.0; blocked.len()];
        for (src, dst) in blocked.chunks(group).zip(out.chunks_mut(group)) {
            for g in 0..8 * vec4s {
                let (round, lane, half) = (g / 16, g % 8, (g / 8) % 2);
                for j in 0..4 {
                    dst[(round * 8 + lane) * 8 + 2 * j + half] = src[g * 4 + j];
                }
            }
        }
        out
    }

    /// PyTorch's layout, padded to a whole number of vec4 for the direct kernels.
    pub(crate) fn padded_to_vec4(&self) -> Vec<f32> {
        let mut weight = self.weight.clone();
        weight.resize(weight.len().next_multiple_of(4), 0.0);
        weight
    }
}

/// The register tile of a blocked convolution kernel (`conv3x3_blocked`, `conv1x1_blocked`):
/// each invocation accumulates `pixels` output pixels x `4 * vec4s` output channels, and a
/// workgroup of `workgroup` invocations shares one block of output channels. The three numbers
/// are the kernels' `PIX`, `VEC` and `WORKGROUP` override constants; an autotuner enumerates
/// them through the configs' `candidates()`.
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

    /// Parses [`RegisterTile::label`]'s format (the ranges are checked by the config that uses
    /// the tile).
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
        let channels: u32 = channels.parse().map_err(|_| bad())?;
        if channels % 4 != 0 {
            return Err(bad());
        }
        Ok(RegisterTile::new(
            channels / 4,
            pixels.parse().map_err(|_| bad())?,
            workgroup.parse().map_err(|_| bad())?,
        ))
    }

    /// Checks the ranges `kernel` is written for: `vec4s` among `vec4_choices`, 1..=`max_pixels`
    /// pixels, a workgroup of 8..=256 in steps of 8.
    pub(crate) fn validate(
        &self,
        kernel: &str,
        vec4_choices: &[u32],
        max_pixels: u32,
    ) -> Result<()> {
        if !vec4_choices.contains(&self.vec4s)
            || !(1..=max_pixels).contains(&self.pixels)
            || self.workgroup == 0
            || self.workgroup % 8 != 0
            || self.workgroup > 256
        {
            let channels: Vec<String> = vec4_choices.iter().map(|v| (4 * v).to_string()).collect();
            return Err(Error::invalid(
                format!("{kernel} register tile {}", self.label()),
                format!(
                    "needs {} channels, 1..={max_pixels} pixels and a workgroup of 8..=256 in \
                     steps of 8",
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

/// Workgroup size of every kernel (the `WORKGROUP` override constant).
pub(crate) const WORKGROUP: u32 = 64;

pub(crate) fn workgroups(invocations: usize) -> u64 {
    (invocations as u64).div_ceil(WORKGROUP as u64)
}

pub(crate) fn to_u32(what: &str, value: usize) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::invalid(what, format!("{value} does not fit in u32")))
}

pub(crate) const WORKGROUP_CONSTANT: [(&str, f64); 1] = [("WORKGROUP", WORKGROUP as f64)];

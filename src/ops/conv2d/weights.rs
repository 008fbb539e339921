//! A convolution's parameters on the host, in PyTorch's layout, and their re-layouts for each
//! kernel family (the kernels' weight layouts are stated at the top of each shader).

use crate::error::{Error, Result};
use crate::ops::BatchNorm;

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
        if kernel_h != kernel_w || kernel_h == 0 {
            return Err(Error::shape(
                format!("{name} weight"),
                "a square kernel (k x k, k >= 1)",
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
        let expected = [out_channels, in_channels, kernel_h, kernel_w]
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .unwrap_or(usize::MAX);
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

    /// Splits the input channels at `at`: the conv over channels `[0, at)` (without bias) and
    /// the one over `[at, C_in)` (with this conv's bias). Their sum is this conv, so a conv
    /// over a concat can be split along the concat (ASPP folds its pooling branch this way).
    pub fn split_in_channels(&self, at: usize) -> Result<(ConvWeights, ConvWeights)> {
        if at == 0 || at >= self.in_channels {
            return Err(Error::invalid(
                "split of a conv's input channels",
                format!("at 1..{}, found {at}", self.in_channels),
            ));
        }
        let taps = self.kernel_size * self.kernel_size;
        let rows = self.weight.chunks(self.in_channels * taps);
        let first = rows
            .clone()
            .flat_map(|row| &row[..at * taps])
            .copied()
            .collect();
        let second = rows.flat_map(|row| &row[at * taps..]).copied().collect();
        let k = self.kernel_size;
        Ok((
            ConvWeights::new("split conv", [self.out_channels, at, k, k], first, None)?,
            ConvWeights::new(
                "split conv",
                [self.out_channels, self.in_channels - at, k, k],
                second,
                self.bias.clone(),
            )?,
        ))
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

    /// Weights for the kernels with 64-bit loads (shaders/wide_tile.wgsl: conv2d_packed8,
    /// conv1x1_packed8): the blocked layout of C_in rounded up to 8, `block` = 4 * VEC output
    /// channels per block with VEC even, and within each block, tap and group of 8 input
    /// channels the group's 8 * VEC weight vec4s g = c * VEC + v dealt out in rounds of 16, one
    /// vec4<u64> (8 floats) per lane of 8: vec4 g goes to round g / 16, lane g % 8, and
    /// interleaves into the even floats (g / 8 even) or the odd ones, so that the low and high
    /// halves of a lane's u64s are whole vec4s.
    pub(crate) fn packed_wide(&self, block: usize) -> Vec<f32> {
        let vec4s = block / 4;
        let group = 32 * vec4s;
        debug_assert!(block.is_multiple_of(8));
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

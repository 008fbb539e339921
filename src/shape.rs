//! Output-size and index math shared by the launchers, the CPU reference and the tests: the one
//! place that knows how PyTorch sizes a convolution, bins an adaptive pool and maps a bilinear
//! output pixel to its source.

use crate::error::{Error, Result};

/// Geometry of a 2-D convolution with a square kernel, as `nn.Conv2d` takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvGeometry {
    pub kernel_size: usize,
    pub stride: usize,
    pub dilation: usize,
    /// Zero padding added on (top and bottom, left and right).
    pub padding: [usize; 2],
}

impl ConvGeometry {
    /// A `kernel_size` x `kernel_size` kernel with the same padding on both axes.
    pub fn new(kernel_size: usize, stride: usize, padding: usize, dilation: usize) -> Self {
        ConvGeometry {
            kernel_size,
            stride,
            dilation,
            padding: [padding, padding],
        }
    }

    /// DeepLab's rule for a dilated 3x3: padding = dilation keeps the map size.
    pub fn same_3x3(dilation: usize) -> Self {
        Self::new(3, 1, dilation, dilation)
    }

    pub fn pointwise() -> Self {
        Self::new(1, 1, 0, 1)
    }

    /// A stride-1 1x1 without padding: a GEMM over channels.
    pub fn is_pointwise(&self) -> bool {
        self.kernel_size == 1 && self.stride == 1 && self.padding == [0, 0]
    }

    /// A strided 1x1 without padding: a GEMM over channels on every `stride`-th pixel.
    pub fn is_strided_pointwise(&self) -> bool {
        self.kernel_size == 1 && self.stride > 1 && self.padding == [0, 0]
    }

    /// The kernel's name by size and stride, after ncnn's `convolution_3x3s2`: `conv3x3`,
    /// `conv7x7s2`, `conv1x1s2`. Kernel labels and tune keys start with it.
    pub fn kernel_name(&self) -> String {
        let k = self.kernel_size;
        match self.stride {
            1 => format!("conv{k}x{k}"),
            s => format!("conv{k}x{k}s{s}"),
        }
    }

    /// Checks what PyTorch would reject before any size is computed.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("kernel_size", self.kernel_size),
            ("stride", self.stride),
            ("dilation", self.dilation),
        ] {
            if value == 0 {
                return Err(Error::invalid(
                    format!("conv2d {name}"),
                    "must be >= 1, found 0",
                ));
            }
        }
        // Tap masks are u128 (`live_mask`); real networks stop at 7x7.
        if self.kernel_size > 128 {
            return Err(Error::invalid(
                "conv2d kernel_size",
                format!("at most 128, found {}", self.kernel_size),
            ));
        }
        Ok(())
    }

    /// PyTorch's `out = (in + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1`
    /// (rounded down); an error if the dilated kernel does not fit in the padded input.
    pub fn out_hw(&self, in_h: usize, in_w: usize) -> Result<(usize, usize)> {
        self.validate()?;
        let span = self.dilation * (self.kernel_size - 1) + 1;
        let out = |size: usize, pad: usize| {
            (size + 2 * pad)
                .checked_sub(span)
                .map(|room| room / self.stride + 1)
        };
        match (out(in_h, self.padding[0]), out(in_w, self.padding[1])) {
            (Some(h), Some(w)) => Ok((h, w)),
            _ => Err(Error::shape(
                "conv2d input",
                format!(
                    "H + 2*{} and W + 2*{} at least the dilated kernel span {span}",
                    self.padding[0], self.padding[1]
                ),
                format!("H={in_h}, W={in_w}"),
            )),
        }
    }
}

impl ConvGeometry {
    /// Taps per output pixel along one axis that land inside the input, summed over the output
    /// positions of that axis.
    fn live_taps_1d(&self, in_size: usize, pad: usize, out_size: usize) -> usize {
        (0..out_size)
            .map(|o| self.live_mask(o, in_size, pad).count_ones() as usize)
            .sum()
    }

    /// Kernel taps that read a real input pixel, summed over all output pixels of one channel
    /// pair: the multiply-adds that are not multiplications by padding. (The count separates
    /// into rows times columns.) With `out_hw`'s error for a kernel that does not fit.
    pub fn live_taps(&self, in_h: usize, in_w: usize) -> Result<usize> {
        let (out_h, out_w) = self.out_hw(in_h, in_w)?;
        Ok(self.live_taps_1d(in_h, self.padding[0], out_h)
            * self.live_taps_1d(in_w, self.padding[1], out_w))
    }
}

/// A rectangle of output pixels on which every pixel reads the same kernel taps from real input
/// (the others lie in the zero padding): rows `y0..y0 + h`, columns `x0..x0 + w`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TapRegion {
    pub y0: usize,
    pub x0: usize,
    pub h: usize,
    pub w: usize,
}

impl ConvGeometry {
    /// Bit k set when tap k of output position `o` lands inside an input of `in_size`
    /// (kernels up to 128 taps wide).
    fn live_mask(&self, o: usize, in_size: usize, pad: usize) -> u128 {
        (0..self.kernel_size)
            .filter(|k| {
                let i = (o * self.stride + k * self.dilation) as isize - pad as isize;
                i >= 0 && i < in_size as isize
            })
            .fold(0, |mask, k| mask | 1 << k)
    }

    /// The output positions of one axis cut into maximal runs of equal live taps, in order.
    fn live_runs(&self, in_size: usize, pad: usize, out_size: usize) -> Vec<(usize, usize)> {
        let mut runs: Vec<(usize, usize)> = Vec::new();
        let mut previous = None;
        for o in 0..out_size {
            let mask = self.live_mask(o, in_size, pad);
            match runs.last_mut() {
                Some((_, len)) if previous == Some(mask) => *len += 1,
                _ => runs.push((o, 1)),
            }
            previous = Some(mask);
        }
        runs
    }

    /// The output map cut into rectangles of pixels that read the same taps, row runs times
    /// column runs, in row-major order: at most (2k + 1)^2 for a k x k kernel (each tap can
    /// enter and leave the input once per axis, whatever the stride), 9 for DeepLab's 3x3 with
    /// padding = dilation. A kernel that works on runs of pixels from one rectangle prunes taps
    /// exactly: a tap is live for all of them or for none.
    pub fn tap_regions(&self, in_h: usize, in_w: usize) -> Result<Vec<TapRegion>> {
        let (out_h, out_w) = self.out_hw(in_h, in_w)?;
        let rows = self.live_runs(in_h, self.padding[0], out_h);
        let cols = self.live_runs(in_w, self.padding[1], out_w);
        Ok(rows
            .iter()
            .flat_map(|&(y0, h)| cols.iter().map(move |&(x0, w)| TapRegion { y0, x0, h, w }))
            .collect())
    }
}

/// Geometry of `nn.MaxPool2d(kernel_size, stride, padding)` with PyTorch's defaults otherwise
/// (dilation 1, ceil_mode False).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolGeometry {
    pub kernel_size: usize,
    pub stride: usize,
    pub padding: usize,
}

impl PoolGeometry {
    /// ResNet's stem pool: 3x3, stride 2, padding 1.
    pub const RESNET_STEM: PoolGeometry = PoolGeometry {
        kernel_size: 3,
        stride: 2,
        padding: 1,
    };

    /// PyTorch's `out = (in + 2 * padding - kernel) / stride + 1` (rounded down), with its
    /// checks: kernel and stride >= 1, padding at most half the kernel (so every window holds a
    /// real pixel), and a window that fits the padded input.
    pub fn out_hw(&self, in_h: usize, in_w: usize) -> Result<(usize, usize)> {
        if self.kernel_size == 0 || self.stride == 0 {
            return Err(Error::invalid(
                "max_pool2d",
                format!(
                    "kernel_size and stride must be >= 1, found {} and {}",
                    self.kernel_size, self.stride
                ),
            ));
        }
        if 2 * self.padding > self.kernel_size {
            return Err(Error::invalid(
                "max_pool2d padding",
                format!(
                    "must be at most half the kernel size ({}), found {}",
                    self.kernel_size / 2,
                    self.padding
                ),
            ));
        }
        let out = |size: usize| {
            (size + 2 * self.padding)
                .checked_sub(self.kernel_size)
                .map(|room| room / self.stride + 1)
        };
        match (out(in_h), out(in_w)) {
            (Some(h), Some(w)) => Ok((h, w)),
            _ => Err(Error::shape(
                "max_pool2d input",
                format!(
                    "H + 2*{0} and W + 2*{0} at least the kernel size {1}",
                    self.padding, self.kernel_size
                ),
                format!("H={in_h}, W={in_w}"),
            )),
        }
    }
}

/// PyTorch's adaptive pooling window along one axis for output index `i`:
/// `[floor(i * in / out), ceil((i + 1) * in / out))`.
pub fn adaptive_window(i: usize, in_size: usize, out_size: usize) -> (usize, usize) {
    let start = (i * in_size) / out_size;
    let end = ((i + 1) * in_size).div_ceil(out_size);
    (start, end)
}

/// The source-coordinate scale PyTorch uses for bilinear interpolation along one axis, computed
/// in f32 exactly as `area_pixel_compute_scale` does for a float tensor with an explicit size.
pub fn bilinear_scale(in_size: usize, out_size: usize, align_corners: bool) -> f32 {
    if align_corners {
        if out_size > 1 {
            (in_size as f32 - 1.0) / (out_size as f32 - 1.0)
        } else {
            0.0
        }
    } else {
        in_size as f32 / out_size as f32
    }
}

/// Source position of output index `dst` (PyTorch's `area_pixel_compute_source_index` followed by
/// the neighbour choice of `upsample_bilinear2d`): returns (i0, i1, weight of i1).
///
/// Computed in f32 on purpose: PyTorch computes source coordinates and weights in f32 for f32
/// tensors (`opmath_t`), and at large sizes one f32 ulp of the coordinate is ~1e-5 of a pixel,
/// visible in the output. The reference models that; only the blend is done in f64.
pub fn bilinear_source(
    dst: usize,
    in_size: usize,
    scale: f32,
    align_corners: bool,
) -> (usize, usize, f32) {
    let src = if align_corners {
        scale * dst as f32
    } else {
        (scale * (dst as f32 + 0.5) - 0.5).max(0.0)
    };
    let i0 = (src as usize).min(in_size - 1);
    let i1 = (i0 + 1).min(in_size - 1);
    let lambda = (src - i0 as f32).clamp(0.0, 1.0);
    (i0, i1, lambda)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_output_size_follows_pytorch() {
        assert_eq!(ConvGeometry::same_3x3(12).out_hw(9, 7).unwrap(), (9, 7));
        let no_pad = ConvGeometry::new(3, 1, 0, 2);
        assert_eq!(no_pad.out_hw(9, 7).unwrap(), (5, 3));
        assert!(no_pad.out_hw(4, 7).is_err());
        let zero = ConvGeometry {
            dilation: 0,
            ..no_pad
        };
        assert!(zero.out_hw(9, 9).is_err());
        // Strided: ResNet's stem and its 3x3 / 1x1 downsampling, odd and even sizes.
        let stem = ConvGeometry::new(7, 2, 3, 1);
        assert_eq!(stem.out_hw(520, 520).unwrap(), (260, 260));
        assert_eq!(stem.out_hw(473, 31).unwrap(), (237, 16));
        assert_eq!(
            ConvGeometry::new(3, 2, 1, 1).out_hw(65, 64).unwrap(),
            (33, 32)
        );
        assert_eq!(ConvGeometry::new(3, 2, 2, 2).out_hw(9, 10).unwrap(), (5, 5));
        assert_eq!(
            ConvGeometry::new(1, 2, 0, 1).out_hw(65, 64).unwrap(),
            (33, 32)
        );
        assert!(ConvGeometry::new(3, 0, 1, 1).out_hw(9, 9).is_err());
    }

    #[test]
    fn max_pool_output_size_and_checks_follow_pytorch() {
        let pool = PoolGeometry::RESNET_STEM;
        assert_eq!(pool.out_hw(260, 260).unwrap(), (130, 130));
        assert_eq!(pool.out_hw(237, 16).unwrap(), (119, 8));
        assert_eq!(pool.out_hw(1, 1).unwrap(), (1, 1));
        let too_much_padding = PoolGeometry { padding: 2, ..pool };
        assert!(too_much_padding.out_hw(9, 9).is_err());
        let no_padding = PoolGeometry { padding: 0, ..pool };
        assert!(no_padding.out_hw(2, 5).is_err());
    }

    #[test]
    fn live_taps_match_the_aspp_fractions() {
        // 33x33 with padding = dilation: 77%, 57% and 41% of the nominal 9 taps per pixel.
        let nominal = 9.0 * 33.0 * 33.0;
        for (rate, fraction) in [(6, 0.772), (12, 0.574), (18, 0.405)] {
            let live = ConvGeometry::same_3x3(rate).live_taps(33, 33).unwrap() as f64;
            assert!(
                (live / nominal - fraction).abs() < 1e-3,
                "rate {rate}: {live}"
            );
        }
        // Rate >= map size: only the centre tap is live.
        assert_eq!(
            ConvGeometry::same_3x3(40).live_taps(33, 31).unwrap(),
            33 * 31
        );
        assert_eq!(ConvGeometry::pointwise().live_taps(5, 7).unwrap(), 35);
    }

    #[test]
    fn tap_regions_tile_the_output_and_prune_exactly() {
        let geometries = [
            ConvGeometry::same_3x3(1),
            ConvGeometry::same_3x3(6),
            ConvGeometry::same_3x3(18),
            ConvGeometry::same_3x3(40),
            ConvGeometry {
                padding: [0, 5],
                ..ConvGeometry::new(3, 1, 0, 2)
            },
            ConvGeometry {
                padding: [7, 1],
                ..ConvGeometry::new(3, 1, 0, 3)
            },
            ConvGeometry::new(7, 2, 3, 1),
            ConvGeometry::new(3, 2, 1, 1),
            ConvGeometry::new(3, 2, 2, 2),
            ConvGeometry::new(1, 2, 0, 1),
        ];
        for g in geometries {
            for (in_h, in_w) in [(33, 33), (5, 9), (1, 1), (60, 17)] {
                let Ok((out_h, out_w)) = g.out_hw(in_h, in_w) else {
                    continue;
                };
                let regions = g.tap_regions(in_h, in_w).unwrap();
                let bound = (2 * g.kernel_size + 1).pow(2);
                assert!(regions.len() <= bound);
                let mut covered = vec![0; out_h * out_w];
                for r in &regions {
                    let rows = g.live_mask(r.y0, in_h, g.padding[0]);
                    let cols = g.live_mask(r.x0, in_w, g.padding[1]);
                    for y in r.y0..r.y0 + r.h {
                        for x in r.x0..r.x0 + r.w {
                            covered[y * out_w + x] += 1;
                            assert_eq!(g.live_mask(y, in_h, g.padding[0]), rows, "{g:?} {r:?}");
                            assert_eq!(g.live_mask(x, in_w, g.padding[1]), cols, "{g:?} {r:?}");
                        }
                    }
                }
                assert!(covered.iter().all(|&c| c == 1), "{g:?} {in_h}x{in_w}");
            }
        }
        // DeepLab at 33x33, rate 18: taps enter and leave at 15 and 18 on each axis.
        let regions = ConvGeometry::same_3x3(18).tap_regions(33, 33).unwrap();
        let rows: Vec<_> = regions.iter().step_by(3).map(|r| (r.y0, r.h)).collect();
        assert_eq!(rows, [(0, 15), (15, 3), (18, 15)]);
    }

    #[test]
    fn adaptive_windows_cover_the_input_and_overlap_when_not_divisible() {
        // 33 -> 6: windows of 6 or 7 that overlap by one.
        let windows: Vec<_> = (0..6).map(|i| adaptive_window(i, 33, 6)).collect();
        assert_eq!(windows[0], (0, 6));
        assert_eq!(windows[5], (27, 33));
        // Output larger than input: every window is one or two pixels wide.
        for i in 0..7 {
            let (s, e) = adaptive_window(i, 3, 7);
            assert!(e > s && e - s <= 2);
        }
    }

    #[test]
    fn bilinear_from_one_pixel_reads_that_pixel() {
        for ac in [false, true] {
            let scale = bilinear_scale(1, 33, ac);
            for dst in 0..33 {
                // Both neighbours are pixel 0, so the weight between them is irrelevant.
                let (i0, i1, _) = bilinear_source(dst, 1, scale, ac);
                assert_eq!((i0, i1), (0, 0));
            }
        }
    }
}

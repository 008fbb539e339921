//! Plain-Rust float64 reference of every op, written for clarity, not speed. Inputs are f32 (what
//! the GPU sees); all arithmetic is f64. The shape math is the same as the launchers'
//! (src/shape.rs), so a disagreement points at a kernel, not at a size rule.
//!
//! Tensors are (shape, data) with NCHW contiguous data.

use crate::ops::{BatchNorm, ConvWeights};
use crate::shape::{adaptive_window, bilinear_scale, bilinear_source, ConvGeometry, PoolGeometry};

/// Relative L2 error allowed against the f64 reference. Summing n random-signed terms in
/// sequence in f32 errs by about 6e-8 x sqrt(n / 2) relative, so this holds to n ~ 50,000;
/// the widest conv of the networks (PSPNet's 4096 -> 512 3x3, 36,864 terms per output)
/// expects ~8e-6: its margin is thin, and a kernel that sums in another order may need a
/// tolerance of its own.
pub const REL_L2_TOLERANCE: f64 = 1e-5;

/// A host tensor in f64, NCHW contiguous.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: [usize; 4],
    pub data: Vec<f64>,
}

impl HostTensor {
    pub fn new(shape: [usize; 4], data: Vec<f64>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "reference tensor size"
        );
        HostTensor { shape, data }
    }

    pub fn from_f32(shape: [usize; 4], data: &[f32]) -> Self {
        Self::new(shape, data.iter().map(|&v| v as f64).collect())
    }

    fn index(&self, n: usize, c: usize, h: usize, w: usize) -> usize {
        let [_, cs, hs, ws] = self.shape;
        ((n * cs + c) * hs + h) * ws + w
    }

    pub fn at(&self, n: usize, c: usize, h: usize, w: usize) -> f64 {
        self.data[self.index(n, c, h, w)]
    }
}

fn relu_if(v: f64, relu: bool) -> f64 {
    if relu {
        v.max(0.0)
    } else {
        v
    }
}

/// Convolution (any square kernel, stride, dilation and padding) with its bias, optional ReLU.
pub fn conv2d(
    x: &HostTensor,
    weights: &ConvWeights,
    geometry: ConvGeometry,
    relu: bool,
) -> HostTensor {
    conv2d_with(x, weights, geometry, None, None, relu)
}

/// Convolution followed by the engine's epilogue, from its definition: `relu?(conv(x) + bias +
/// residual)`, where `per_image_bias` (N, C_out), when given, replaces the conv's own bias.
pub fn conv2d_with(
    x: &HostTensor,
    weights: &ConvWeights,
    geometry: ConvGeometry,
    per_image_bias: Option<&HostTensor>,
    residual: Option<&HostTensor>,
    relu: bool,
) -> HostTensor {
    let [n, cin, h, w] = x.shape;
    assert_eq!(cin, weights.in_channels);
    let k = weights.kernel_size;
    let (oh, ow) = geometry.out_hw(h, w).expect("reference conv2d geometry");
    let cout = weights.out_channels;
    let mut out = vec![0.0; n * cout * oh * ow];
    for b in 0..n {
        for co in 0..cout {
            let bias = match per_image_bias {
                Some(bias) => bias.data[b * cout + co],
                None => weights.bias.as_ref().map_or(0.0, |v| v[co] as f64),
            };
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = 0.0;
                    for ci in 0..cin {
                        for ky in 0..k {
                            let iy = (oy * geometry.stride + ky * geometry.dilation) as isize
                                - geometry.padding[0] as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            for kx in 0..k {
                                let ix = (ox * geometry.stride + kx * geometry.dilation) as isize
                                    - geometry.padding[1] as isize;
                                if ix < 0 || ix >= w as isize {
                                    continue;
                                }
                                let wv = weights.weight[((co * cin + ci) * k + ky) * k + kx] as f64;
                                acc += wv * x.at(b, ci, iy as usize, ix as usize);
                            }
                        }
                    }
                    let mut v = acc + bias;
                    if let Some(r) = residual {
                        v += r.at(b, co, oy, ox);
                    }
                    out[((b * cout + co) * oh + oy) * ow + ox] = relu_if(v, relu);
                }
            }
        }
    }
    HostTensor::new([n, cout, oh, ow], out)
}

/// Max pooling from PyTorch's definition: the maximum over the window's taps inside the input.
pub fn max_pool2d(x: &HostTensor, geometry: &PoolGeometry) -> HostTensor {
    let [n, c, h, w] = x.shape;
    let (oh, ow) = geometry
        .out_hw(h, w)
        .expect("reference max_pool2d geometry");
    let mut out = Vec::with_capacity(n * c * oh * ow);
    for b in 0..n {
        for ch in 0..c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut best = f64::NEG_INFINITY;
                    for ky in 0..geometry.kernel_size {
                        for kx in 0..geometry.kernel_size {
                            let iy =
                                (oy * geometry.stride + ky) as isize - geometry.padding as isize;
                            let ix =
                                (ox * geometry.stride + kx) as isize - geometry.padding as isize;
                            if iy >= 0 && iy < h as isize && ix >= 0 && ix < w as isize {
                                best = best.max(x.at(b, ch, iy as usize, ix as usize));
                            }
                        }
                    }
                    out.push(best);
                }
            }
        }
    }
    HostTensor::new([n, c, oh, ow], out)
}

/// Eval-mode batch norm computed from its definition, `(x - mean) / sqrt(var + eps) * gamma +
/// beta`, not from the folded form the engine uses.
pub fn batchnorm(x: &HostTensor, bn: &BatchNorm, relu: bool) -> HostTensor {
    let [n, c, h, w] = x.shape;
    let mut out = x.data.clone();
    for b in 0..n {
        for ch in 0..c {
            let inv = 1.0 / (bn.running_var[ch] as f64 + bn.eps).sqrt();
            for i in 0..h * w {
                let idx = (b * c + ch) * h * w + i;
                let v = (x.data[idx] - bn.running_mean[ch] as f64) * inv * bn.gamma[ch] as f64
                    + bn.beta[ch] as f64;
                out[idx] = relu_if(v, relu);
            }
        }
    }
    HostTensor::new(x.shape, out)
}

pub fn adaptive_avg_pool2d(x: &HostTensor, [oh, ow]: [usize; 2]) -> HostTensor {
    let [n, c, h, w] = x.shape;
    let mut out = Vec::with_capacity(n * c * oh * ow);
    for b in 0..n {
        for ch in 0..c {
            for oy in 0..oh {
                let (y0, y1) = adaptive_window(oy, h, oh);
                for ox in 0..ow {
                    let (x0, x1) = adaptive_window(ox, w, ow);
                    let mut sum = 0.0;
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            sum += x.at(b, ch, iy, ix);
                        }
                    }
                    out.push(sum / ((y1 - y0) * (x1 - x0)) as f64);
                }
            }
        }
    }
    HostTensor::new([n, c, oh, ow], out)
}

/// Bilinear interpolation with PyTorch's coordinate rules. Source positions and weights are f32,
/// as PyTorch computes them for f32 tensors ([`bilinear_source`]); the blend is f64.
pub fn interpolate(x: &HostTensor, [oh, ow]: [usize; 2], align_corners: bool) -> HostTensor {
    let [n, c, h, w] = x.shape;
    let scale_h = bilinear_scale(h, oh, align_corners);
    let scale_w = bilinear_scale(w, ow, align_corners);
    let mut out = Vec::with_capacity(n * c * oh * ow);
    for b in 0..n {
        for ch in 0..c {
            for oy in 0..oh {
                let (y0, y1, ly) = bilinear_source(oy, h, scale_h, align_corners);
                let ly = ly as f64;
                for ox in 0..ow {
                    let (x0, x1, lx) = bilinear_source(ox, w, scale_w, align_corners);
                    let lx = lx as f64;
                    let top = (1.0 - lx) * x.at(b, ch, y0, x0) + lx * x.at(b, ch, y0, x1);
                    let bottom = (1.0 - lx) * x.at(b, ch, y1, x0) + lx * x.at(b, ch, y1, x1);
                    out.push((1.0 - ly) * top + ly * bottom);
                }
            }
        }
    }
    HostTensor::new([n, c, oh, ow], out)
}

/// The class of each pixel of one image's logits resized to `size` ([`interpolate`], then the
/// first maximum over channels), with the margin between its two largest logits (a class map
/// can only be compared where that margin exceeds float rounding).
pub fn resize_argmax(x: &HostTensor, size: [usize; 2]) -> (Vec<u8>, Vec<f64>) {
    let resized = interpolate(x, size, false);
    let [_, c, h, w] = resized.shape;
    (0..h * w)
        .map(|pixel| {
            let mut best = (0, f64::NEG_INFINITY);
            let mut second = f64::NEG_INFINITY;
            for class in 0..c {
                let v = resized.data[class * h * w + pixel];
                if v > best.1 {
                    second = best.1;
                    best = (class, v);
                } else if v > second {
                    second = v;
                }
            }
            (best.0 as u8, best.1 - second)
        })
        .unzip()
}

pub fn concat(inputs: &[&HostTensor]) -> HostTensor {
    let [n, _, h, w] = inputs[0].shape;
    let channels: usize = inputs.iter().map(|t| t.shape[1]).sum();
    let mut out = Vec::with_capacity(n * channels * h * w);
    for b in 0..n {
        for t in inputs {
            let plane = t.shape[1] * h * w;
            out.extend_from_slice(&t.data[b * plane..(b + 1) * plane]);
        }
    }
    HostTensor::new([n, channels, h, w], out)
}

/// Errors of `actual` against `expected`: max |a - e| with its flat index, and the relative L2
/// error ||a - e|| / ||e|| (absolute L2 when ||e|| = 0).
#[derive(Clone, Copy, Debug)]
pub struct Comparison {
    pub max_abs: f64,
    pub worst_index: usize,
    pub rel_l2: f64,
}

pub fn compare(actual: &[f32], expected: &[f64]) -> Comparison {
    assert_eq!(
        actual.len(),
        expected.len(),
        "compared tensors differ in length"
    );
    let mut max_abs = 0.0f64;
    let mut worst_index = 0;
    let mut diff2 = 0.0;
    let mut ref2 = 0.0;
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let d = (a as f64 - e).abs();
        // NaN compares false: treat it as the worst error.
        if d > max_abs || d.is_nan() {
            max_abs = if d.is_nan() { f64::INFINITY } else { d };
            worst_index = i;
        }
        diff2 += d * d;
        ref2 += e * e;
    }
    let rel_l2 = if ref2 > 0.0 {
        (diff2 / ref2).sqrt()
    } else {
        diff2.sqrt()
    };
    Comparison {
        max_abs,
        worst_index,
        rel_l2: if rel_l2.is_nan() {
            f64::INFINITY
        } else {
            rel_l2
        },
    }
}

/// Flat NCHW index -> (n, c, h, w), for reporting the worst element.
pub fn unravel(index: usize, [_, c, h, w]: [usize; 4]) -> [usize; 4] {
    [
        index / (c * h * w),
        (index / (h * w)) % c,
        (index / w) % h,
        index % w,
    ]
}

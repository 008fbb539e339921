//! `atrous check`: runs every op and kernel variant on the current adapter over a set of shapes
//! (the edge cases of each op included) and compares each result with the float64 reference.
//! The same cases run in the test suite.

use crate::context::Context;
use crate::error::Result;
use crate::ops::conv1x1::{Conv1x1Config, Conv1x1Variant};
use crate::ops::conv3x3::{Conv3x3Config, Conv3x3Variant};
use crate::ops::RegisterTile;
use crate::ops::{self, BatchNorm, BatchNorm2d, Conv1x1, Conv3x3, ConvWeights};
use crate::reference::{self, compare, Comparison, HostTensor};
use crate::shape::ConvGeometry;
use crate::tensor::Tensor;

/// Relative L2 error allowed against the f64 reference: f32 accumulation over at most a few
/// thousand terms stays well below it.
pub const REL_L2_TOLERANCE: f64 = 1e-5;

/// SplitMix64: small, deterministic, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * unit
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn vec(&mut self, len: usize, scale: f32) -> Vec<f32> {
        (0..len).map(|_| self.uniform(-scale, scale)).collect()
    }

    pub fn conv_weights(&mut self, out_c: usize, in_c: usize, k: usize, bias: bool) -> ConvWeights {
        // Scaled by 1/sqrt(fan_in) so outputs stay O(1) whatever the channel count.
        let scale = 1.0 / ((in_c * k * k) as f32).sqrt();
        let weight = self.vec(out_c * in_c * k * k, scale * 1.7);
        let bias = bias.then(|| self.vec(out_c, 0.5));
        ConvWeights::new("conv", [out_c, in_c, k, k], weight, bias).expect("consistent weights")
    }

    pub fn batchnorm(&mut self, channels: usize, eps: f64) -> BatchNorm {
        BatchNorm {
            gamma: (0..channels)
                .map(|c| self.uniform(0.5, 1.5) * if c % 3 == 0 { -1.0 } else { 1.0 })
                .collect(),
            beta: self.vec(channels, 1.0),
            running_mean: self.vec(channels, 1.0),
            running_var: (0..channels).map(|_| self.uniform(0.1, 2.0)).collect(),
            eps,
        }
    }
}

/// One check: an op with its parameters on one input shape.
#[derive(Clone, Debug)]
pub enum Case {
    Conv3x3 {
        variant: Conv3x3Variant,
        input: [usize; 4],
        out_channels: usize,
        geometry: ConvGeometry,
        bias: bool,
        relu: bool,
    },
    Conv1x1 {
        variant: Conv1x1Variant,
        input: [usize; 4],
        out_channels: usize,
        bias: bool,
        relu: bool,
    },
    /// A 3x3 conv under an explicit configuration (a variant with a register tile).
    Conv3x3Config {
        config: Conv3x3Config,
        input: [usize; 4],
        out_channels: usize,
        geometry: ConvGeometry,
        bias: bool,
        relu: bool,
    },
    /// A 1x1 conv under an explicit configuration.
    Conv1x1Config {
        config: Conv1x1Config,
        input: [usize; 4],
        out_channels: usize,
        bias: bool,
        relu: bool,
    },
    /// A conv followed by an eval-mode BN folded into it.
    ConvBn {
        input: [usize; 4],
        out_channels: usize,
        geometry: ConvGeometry,
        relu: bool,
    },
    BatchNorm {
        input: [usize; 4],
        relu: bool,
    },
    Pool {
        input: [usize; 4],
        output: [usize; 2],
    },
    Interpolate {
        input: [usize; 4],
        output: [usize; 2],
        align_corners: bool,
    },
    Concat {
        n: usize,
        channels: Vec<usize>,
        hw: [usize; 2],
    },
}

/// One row of the `atrous check` table.
#[derive(Clone, Debug)]
pub struct Row {
    pub op: String,
    pub shape: String,
    pub params: String,
    pub comparison: Comparison,
    /// Within tolerance, or skipped.
    pub passed: bool,
    /// Why the case did not run on this adapter (a variant that needs a device feature it
    /// lacks, such as subgroups on the GL backend); `passed` is true and `comparison` empty.
    pub skipped: Option<String>,
}

fn shape_text(s: [usize; 4]) -> String {
    format!("{}x{}x{}x{}", s[0], s[1], s[2], s[3])
}

impl Case {
    pub fn op(&self) -> String {
        match self {
            Case::Conv3x3 { variant, .. } => variant.name().to_string(),
            Case::Conv1x1 { variant, .. } => variant.name().to_string(),
            Case::Conv3x3Config { config, .. } => config.label(),
            Case::Conv1x1Config { config, .. } => config.label(),
            Case::ConvBn { geometry, .. } => {
                format!("conv{0}x{0}+bn (folded)", geometry.kernel_size)
            }
            Case::BatchNorm { .. } => "batchnorm".into(),
            Case::Pool { .. } => "adaptive_avg_pool2d".into(),
            Case::Interpolate { .. } => "interpolate".into(),
            Case::Concat { .. } => "concat".into(),
        }
    }

    pub fn shape(&self) -> String {
        match self {
            Case::Conv3x3 { input, .. }
            | Case::Conv1x1 { input, .. }
            | Case::Conv3x3Config { input, .. }
            | Case::Conv1x1Config { input, .. }
            | Case::ConvBn { input, .. }
            | Case::BatchNorm { input, .. }
            | Case::Pool { input, .. }
            | Case::Interpolate { input, .. } => shape_text(*input),
            Case::Concat { n, channels, hw } => channels
                .iter()
                .map(|&c| shape_text([*n, c, hw[0], hw[1]]))
                .collect::<Vec<_>>()
                .join(" + "),
        }
    }

    pub fn params(&self) -> String {
        let flags = |bias: bool, relu: bool| {
            format!(
                "{}{}",
                if bias { " bias" } else { "" },
                if relu { " relu" } else { "" }
            )
        };
        match self {
            Case::Conv3x3 {
                out_channels,
                geometry,
                bias,
                relu,
                ..
            }
            | Case::Conv3x3Config {
                out_channels,
                geometry,
                bias,
                relu,
                ..
            } => format!(
                "cout={out_channels} dil={} pad={:?}{}",
                geometry.dilation,
                geometry.padding,
                flags(*bias, *relu)
            ),
            Case::Conv1x1 {
                out_channels,
                bias,
                relu,
                ..
            }
            | Case::Conv1x1Config {
                out_channels,
                bias,
                relu,
                ..
            } => {
                format!("cout={out_channels}{}", flags(*bias, *relu))
            }
            Case::ConvBn {
                out_channels,
                geometry,
                relu,
                ..
            } => format!(
                "cout={out_channels} dil={} pad={:?}{}",
                geometry.dilation,
                geometry.padding,
                flags(false, *relu)
            ),
            Case::BatchNorm { relu, .. } => flags(false, *relu).trim().to_string(),
            Case::Pool { output, .. } => format!("out={}x{}", output[0], output[1]),
            Case::Interpolate {
                output,
                align_corners,
                ..
            } => {
                format!(
                    "out={}x{} align_corners={align_corners}",
                    output[0], output[1]
                )
            }
            Case::Concat { channels, .. } => format!("{} inputs", channels.len()),
        }
    }

    /// Why `ctx` cannot run this case, if it cannot.
    pub fn unsupported(&self, ctx: &Context) -> Option<String> {
        match self {
            Case::Conv3x3 { variant, .. } => variant.unsupported(ctx).map(str::to_string),
            Case::Conv3x3Config { config, .. } => {
                config.variant.unsupported(ctx).map(str::to_string)
            }
            Case::Conv1x1 { variant, .. } => variant.unsupported(ctx).map(str::to_string),
            Case::Conv1x1Config { config, .. } => {
                config.variant.unsupported(ctx).map(str::to_string)
            }
            _ => None,
        }
    }

    /// Runs the case on the GPU and the reference with data from `seed`; a case the adapter
    /// cannot run comes back skipped.
    pub fn run(&self, ctx: &Context, seed: u64) -> Result<Row> {
        if let Some(reason) = self.unsupported(ctx) {
            return Ok(Row {
                op: self.op(),
                shape: self.shape(),
                params: self.params(),
                comparison: Comparison {
                    max_abs: 0.0,
                    worst_index: 0,
                    rel_l2: 0.0,
                },
                passed: true,
                skipped: Some(reason),
            });
        }
        let mut rng = Rng::new(seed);
        let upload =
            |rng: &mut Rng, name: &str, shape: [usize; 4]| -> Result<(Tensor, HostTensor)> {
                let data = rng.vec(shape.iter().product(), 1.0);
                Ok((
                    Tensor::from_slice(ctx, name, shape, &data)?,
                    HostTensor::from_f32(shape, &data),
                ))
            };
        let (gpu, expected) = match self {
            Case::Conv3x3 {
                variant,
                input,
                out_channels,
                geometry,
                bias,
                relu,
            } => {
                let (x, hx) = upload(&mut rng, "x", *input)?;
                let weights = rng.conv_weights(*out_channels, input[1], 3, *bias);
                let conv = Conv3x3::new(ctx, "conv3x3", &weights, *geometry, *relu, *variant)?;
                (
                    conv.forward(ctx, &x)?,
                    reference::conv2d(&hx, &weights, *geometry, *relu),
                )
            }
            Case::Conv1x1 {
                variant,
                input,
                out_channels,
                bias,
                relu,
            } => {
                let (x, hx) = upload(&mut rng, "x", *input)?;
                let weights = rng.conv_weights(*out_channels, input[1], 1, *bias);
                let conv = Conv1x1::new(ctx, "conv1x1", &weights, *relu, *variant)?;
                let expected = reference::conv2d(&hx, &weights, ConvGeometry::pointwise(), *relu);
                (conv.forward(ctx, &x)?, expected)
            }
            Case::Conv3x3Config {
                config,
                input,
                out_channels,
                geometry,
                bias,
                relu,
            } => {
                let (x, hx) = upload(&mut rng, "x", *input)?;
                let weights = rng.conv_weights(*out_channels, input[1], 3, *bias);
                let conv =
                    Conv3x3::with_config(ctx, "conv3x3", &weights, *geometry, *relu, *config)?;
                (
                    conv.forward(ctx, &x)?,
                    reference::conv2d(&hx, &weights, *geometry, *relu),
                )
            }
            Case::Conv1x1Config {
                config,
                input,
                out_channels,
                bias,
                relu,
            } => {
                let (x, hx) = upload(&mut rng, "x", *input)?;
                let weights = rng.conv_weights(*out_channels, input[1], 1, *bias);
                let conv = Conv1x1::with_config(ctx, "conv1x1", &weights, *relu, *config)?;
                let expected = reference::conv2d(&hx, &weights, ConvGeometry::pointwise(), *relu);
                (conv.forward(ctx, &x)?, expected)
            }
            Case::ConvBn {
                input,
                out_channels,
                geometry,
                relu,
            } => {
                let (x, hx) = upload(&mut rng, "x", *input)?;
                let k = geometry.kernel_size;
                let weights = rng.conv_weights(*out_channels, input[1], k, true);
                let bn = rng.batchnorm(*out_channels, 1e-5);
                let folded = weights.fold_batchnorm(&bn)?;
                let gpu = if k == 3 {
                    Conv3x3::new(
                        ctx,
                        "conv+bn",
                        &folded,
                        *geometry,
                        *relu,
                        Default::default(),
                    )?
                    .forward(ctx, &x)?
                } else {
                    Conv1x1::new(ctx, "conv+bn", &folded, *relu, Default::default())?
                        .forward(ctx, &x)?
                };
                // The reference applies the BN after the unfolded conv, from its definition.
                let conv = reference::conv2d(&hx, &weights, *geometry, false);
                (gpu, reference::batchnorm(&conv, &bn, *relu))
            }
            Case::BatchNorm { input, relu } => {
                let (x, hx) = upload(&mut rng, "x", *input)?;
                let bn = rng.batchnorm(input[1], 1e-5);
                let layer = BatchNorm2d::new(ctx, "batchnorm", &bn, *relu)?;
                (
                    layer.forward(ctx, &x)?,
                    reference::batchnorm(&hx, &bn, *relu),
                )
            }
            Case::Pool { input, output } => {
                let (x, hx) = upload(&mut rng, "x", *input)?;
                (
                    ops::adaptive_avg_pool2d(ctx, &x, *output)?,
                    reference::adaptive_avg_pool2d(&hx, *output),
                )
            }
            Case::Interpolate {
                input,
                output,
                align_corners,
            } => {
                let (x, hx) = upload(&mut rng, "x", *input)?;
                (
                    ops::interpolate(ctx, &x, *output, *align_corners)?,
                    reference::interpolate(&hx, *output, *align_corners),
                )
            }
            Case::Concat { n, channels, hw } => {
                let mut tensors = Vec::new();
                let mut hosts = Vec::new();
                for (i, &c) in channels.iter().enumerate() {
                    let (t, h) = upload(&mut rng, &format!("x{i}"), [*n, c, hw[0], hw[1]])?;
                    tensors.push(t);
                    hosts.push(h);
                }
                let refs: Vec<&Tensor> = tensors.iter().collect();
                let host_refs: Vec<&HostTensor> = hosts.iter().collect();
                (ops::concat(ctx, &refs)?, reference::concat(&host_refs))
            }
        };
        if gpu.shape() != expected.shape {
            return Err(crate::Error::shape(
                format!("{} output", self.op()),
                crate::error::Shape(expected.shape),
                crate::error::Shape(gpu.shape()),
            ));
        }
        let comparison = compare(&gpu.to_vec(ctx)?, &expected.data);
        Ok(Row {
            op: self.op(),
            shape: self.shape(),
            params: self.params(),
            passed: comparison.rel_l2 <= REL_L2_TOLERANCE,
            comparison,
            skipped: None,
        })
    }
}

/// The cases `atrous check` runs: every op and variant, over the edge cases the engine promises.
/// `large` adds shapes big enough to need a dispatch grid split over two dimensions.
pub fn cases(large: bool) -> Vec<Case> {
    let mut cases = Vec::new();
    // Dilated 3x3, DeepLab's padding = dilation, on maps from 1x1 to 65x65; rates at and past
    // the map size, where most taps read padding.
    let dilated: &[([usize; 4], usize, usize)] = &[
        ([1, 3, 1, 1], 5, 1),
        ([1, 4, 3, 3], 4, 2),
        ([2, 3, 9, 7], 6, 6),
        ([1, 5, 9, 7], 4, 12),
        ([1, 4, 13, 13], 5, 18),
        ([2, 3, 13, 11], 7, 24),
        ([1, 2, 33, 33], 4, 36),
        ([1, 2, 65, 65], 3, 12),
    ];
    for variant in Conv3x3Variant::ALL {
        for (i, &(input, out_channels, dilation)) in dilated.iter().enumerate() {
            cases.push(Case::Conv3x3 {
                variant,
                input,
                out_channels,
                geometry: ConvGeometry::same_3x3(dilation),
                bias: i % 2 == 0,
                relu: i % 3 != 1,
            });
        }
        // Padding other than the dilation: smaller outputs, and asymmetric padding.
        for (input, padding, dilation) in [([1, 3, 9, 9], [0, 0], 2), ([2, 2, 7, 5], [1, 3], 1)] {
            cases.push(Case::Conv3x3 {
                variant,
                input,
                out_channels: 6,
                geometry: ConvGeometry {
                    kernel_size: 3,
                    dilation,
                    padding,
                },
                bias: true,
                relu: false,
            });
        }
    }
    for variant in Conv1x1Variant::ALL {
        for (input, out_channels, bias, relu) in [
            ([1, 8, 5, 5], 4, true, true),
            ([2, 5, 9, 7], 7, false, false),
            ([1, 32, 1, 1], 21, true, false),
            ([1, 3, 33, 33], 6, false, true),
        ] {
            cases.push(Case::Conv1x1 {
                variant,
                input,
                out_channels,
                bias,
                relu,
            });
        }
    }
    // The register-blocked kernels under tiles other than their defaults (tests/conv_variants.rs
    // covers more): wide workgroups, runs of pixels that wrap rows, and channel counts that are
    // not a multiple of the block. Inputs have 10 channels so that the unrolled input-channel
    // loop has a remainder. Few tiles: each is a pipeline to compile, 1-4 s on lavapipe.
    use Conv1x1Variant as V1;
    use Conv3x3Variant as V3;
    let tiles: &[(V3, V1, RegisterTile)] = &[
        (V3::Blocked, V1::Blocked, RegisterTile::new(4, 1, 8)),
        (V3::Blocked, V1::Blocked, RegisterTile::new(2, 4, 16)),
        (V3::Subgroup, V1::Subgroup, RegisterTile::new(2, 3, 16)),
        (V3::Subgroup, V1::Subgroup, RegisterTile::new(4, 1, 8)),
        (V3::Packed, V1::Subgroup, RegisterTile::new(2, 4, 16)),
        (V3::Packed8, V1::Packed8, RegisterTile::new(2, 3, 16)),
    ];
    for (i, &(variant3, variant1, tile)) in tiles.iter().enumerate() {
        for (input, out_channels, dilation) in [([2, 10, 13, 11], 13, 3), ([1, 10, 9, 17], 7, 20)] {
            cases.push(Case::Conv3x3Config {
                config: Conv3x3Config::new(variant3, tile),
                input,
                out_channels,
                geometry: ConvGeometry::same_3x3(dilation),
                bias: i % 2 == 0,
                relu: i % 3 != 1,
            });
        }
        cases.push(Case::Conv1x1Config {
            config: Conv1x1Config::new(variant1, tile),
            input: [2, 10, 7, 9],
            out_channels: 11,
            bias: i % 2 == 1,
            relu: i % 3 != 2,
        });
    }
    cases.push(Case::ConvBn {
        input: [2, 4, 9, 7],
        out_channels: 6,
        geometry: ConvGeometry::same_3x3(6),
        relu: true,
    });
    cases.push(Case::ConvBn {
        input: [1, 6, 5, 5],
        out_channels: 5,
        geometry: ConvGeometry::pointwise(),
        relu: false,
    });
    cases.push(Case::BatchNorm {
        input: [2, 5, 7, 9],
        relu: true,
    });
    cases.push(Case::BatchNorm {
        input: [1, 3, 4, 4],
        relu: false,
    });
    for (input, output) in [
        ([1, 3, 12, 12], [6, 6]),
        ([1, 2, 33, 33], [1, 1]),
        ([1, 2, 33, 33], [2, 2]),
        ([1, 2, 33, 33], [3, 3]),
        ([1, 2, 33, 33], [6, 6]),
        ([2, 2, 60, 60], [6, 6]),
        ([1, 3, 7, 5], [3, 2]),
        ([1, 2, 2, 3], [5, 7]),
    ] {
        cases.push(Case::Pool { input, output });
    }
    for align_corners in [false, true] {
        for (input, output) in [
            ([1, 3, 1, 1], [33, 33]),
            ([1, 2, 6, 6], [33, 33]),
            ([2, 2, 5, 7], [13, 11]),
            ([1, 2, 33, 33], [9, 9]),
            ([1, 2, 5, 5], [1, 1]),
            // N = 2 with more rows than one workgroup, and a 1x1 source.
            ([2, 4, 3, 5], [40, 33]),
            ([1, 3, 1, 1], [100, 9]),
        ] {
            cases.push(Case::Interpolate {
                input,
                output,
                align_corners,
            });
        }
    }
    cases.push(Case::Concat {
        n: 1,
        channels: vec![1, 3],
        hw: [5, 7],
    });
    cases.push(Case::Concat {
        n: 2,
        channels: vec![4, 7, 1],
        hw: [9, 9],
    });
    // H * W % 4 == 0: the vec4 kernel, N = 2 and channel offsets 0, 3 and 8.
    cases.push(Case::Concat {
        n: 2,
        channels: vec![3, 5, 2],
        hw: [4, 6],
    });
    if large {
        // More than 65535 workgroups of 64 invocations: the grid is split over two dimensions.
        cases.push(Case::Conv1x1 {
            variant: Conv1x1Variant::Direct,
            input: [1, 4, 1024, 1040],
            out_channels: 4,
            bias: true,
            relu: false,
        });
        cases.push(Case::Interpolate {
            input: [1, 2, 300, 300],
            output: [1500, 1500],
            align_corners: false,
        });
        // One output row per invocation, 4.2 M rows: 65625 workgroups.
        cases.push(Case::Interpolate {
            input: [1, 1, 3, 2],
            output: [4_200_000, 1],
            align_corners: true,
        });
        // Concat with split grids: scalar (H * W odd, 78k workgroups) and vec4 (66.4k).
        cases.push(Case::Concat {
            n: 1,
            channels: vec![5, 1],
            hw: [1001, 1001],
        });
        cases.push(Case::Concat {
            n: 1,
            channels: vec![17, 1],
            hw: [1000, 1000],
        });
    }
    cases
}

/// Runs all cases; a case that fails to run at all is returned as an error.
pub fn run_all(ctx: &Context, cases: &[Case]) -> Result<Vec<Row>> {
    cases
        .iter()
        .enumerate()
        .map(|(i, case)| case.run(ctx, 1000 + i as u64))
        .collect()
}

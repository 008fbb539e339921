//! `atrous check`: runs every op and kernel variant on the current adapter over a set of shapes
//! (the edge cases of each op included) and compares each result with the float64 reference.
//! The same cases run in the test suite.

use std::process::ExitCode;

use crate::context::Context;
use crate::error::Result;
use crate::ops::conv2d::{ConvConfig, ConvVariant, Epilogue, Family, RegisterTile};
use crate::ops::{self, BatchNorm2d, Conv2d};
pub use crate::reference::REL_L2_TOLERANCE;
use crate::reference::{self, compare, Comparison, HostTensor};
use crate::rng::Rng;
use crate::shape::{ConvGeometry, PoolGeometry};
use crate::tensor::Tensor;

/// One check: an op with its parameters on one input shape.
#[derive(Clone, Debug)]
pub enum Case {
    /// A convolution under a configuration, ending in an epilogue: the conv's bias (if any),
    /// a per-image bias in its place, a residual, ReLU.
    Conv {
        config: ConvConfig,
        input: [usize; 4],
        out_channels: usize,
        geometry: ConvGeometry,
        bias: bool,
        relu: bool,
        per_image_bias: bool,
        residual: bool,
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
    MaxPool {
        input: [usize; 4],
        geometry: PoolGeometry,
    },
    Interpolate {
        input: [usize; 4],
        output: [usize; 2],
        align_corners: bool,
    },
    /// Logits resized to a photo's size and their argmax (`atrous segment`'s class map). Its
    /// "relative error" is the share of pixels whose class differs where the reference's two
    /// best logits are more than 1e-6 apart.
    ResizeArgmax {
        input: [usize; 4],
        output: [usize; 2],
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
            Case::Conv {
                config, geometry, ..
            } => config.label(geometry),
            Case::ConvBn { geometry, .. } => format!("{}+bn (folded)", geometry.kernel_name()),
            Case::BatchNorm { .. } => "batchnorm".into(),
            Case::Pool { .. } => "adaptive_avg_pool2d".into(),
            Case::MaxPool { .. } => "max_pool2d".into(),
            Case::Interpolate { .. } => "interpolate".into(),
            Case::ResizeArgmax { .. } => "resize_argmax".into(),
            Case::Concat { .. } => "concat".into(),
        }
    }

    pub fn shape(&self) -> String {
        match self {
            Case::Conv { input, .. }
            | Case::ConvBn { input, .. }
            | Case::BatchNorm { input, .. }
            | Case::Pool { input, .. }
            | Case::MaxPool { input, .. }
            | Case::ResizeArgmax { input, .. }
            | Case::Interpolate { input, .. } => shape_text(*input),
            Case::Concat { n, channels, hw } => channels
                .iter()
                .map(|&c| shape_text([*n, c, hw[0], hw[1]]))
                .collect::<Vec<_>>()
                .join(" + "),
        }
    }

    pub fn params(&self) -> String {
        let flag = |on: bool, name: &str| {
            if on {
                format!(" {name}")
            } else {
                String::new()
            }
        };
        let geometry_text = |g: &ConvGeometry| {
            let stride = if g.stride > 1 {
                format!(" stride={}", g.stride)
            } else {
                String::new()
            };
            format!("dil={} pad={:?}{stride}", g.dilation, g.padding)
        };
        match self {
            Case::Conv {
                out_channels,
                geometry,
                bias,
                relu,
                per_image_bias,
                residual,
                ..
            } => format!(
                "cout={out_channels} {}{}{}{}{}",
                geometry_text(geometry),
                flag(*bias, "bias"),
                flag(*per_image_bias, "image-bias"),
                flag(*residual, "+residual"),
                flag(*relu, "relu")
            ),
            Case::ConvBn {
                out_channels,
                geometry,
                relu,
                ..
            } => format!(
                "cout={out_channels} {}{}",
                geometry_text(geometry),
                flag(*relu, "relu")
            ),
            Case::BatchNorm { relu, .. } => flag(*relu, "relu").trim().to_string(),
            Case::Pool { output, .. } => format!("out={}x{}", output[0], output[1]),
            Case::MaxPool { geometry, .. } => format!(
                "k={} stride={} pad={}",
                geometry.kernel_size, geometry.stride, geometry.padding
            ),
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
            Case::ResizeArgmax { output, .. } => format!("out={}x{}", output[0], output[1]),
            Case::Concat { channels, .. } => format!("{} inputs", channels.len()),
        }
    }

    /// Why `ctx` cannot run this case, if it cannot.
    pub fn unsupported(&self, ctx: &Context) -> Option<String> {
        match self {
            Case::Conv {
                config, geometry, ..
            } => config
                .variant
                .unsupported(ctx, Family::of(geometry))
                .map(str::to_string),
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
            Case::Conv {
                config,
                input,
                out_channels,
                geometry,
                bias,
                relu,
                per_image_bias,
                residual,
            } => {
                let (x, hx) = upload(&mut rng, "x", *input)?;
                let k = geometry.kernel_size;
                let weights = rng.conv_weights(*out_channels, input[1], k, *bias);
                let conv = Conv2d::new("conv", weights.clone(), *geometry)?.with_config(*config);
                let out_shape = conv.out_shape(*input)?;
                let image_bias = match per_image_bias {
                    true => Some(upload(
                        &mut rng,
                        "image bias",
                        [input[0], *out_channels, 1, 1],
                    )?),
                    false => None,
                };
                let skip = match residual {
                    true => Some(upload(&mut rng, "residual", out_shape)?),
                    false => None,
                };
                let epilogue = Epilogue {
                    relu: *relu,
                    per_image_bias: image_bias.as_ref().map(|(t, _)| t),
                    residual: skip.as_ref().map(|(t, _)| t),
                };
                (
                    conv.forward_with(ctx, &x, &epilogue)?,
                    reference::conv2d_with(
                        &hx,
                        &weights,
                        *geometry,
                        image_bias.as_ref().map(|(_, h)| h),
                        skip.as_ref().map(|(_, h)| h),
                        *relu,
                    ),
                )
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
                let gpu = Conv2d::new("conv+bn", folded, *geometry)?.forward(ctx, &x, *relu)?;
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
            Case::MaxPool { input, geometry } => {
                let (x, hx) = upload(&mut rng, "x", *input)?;
                (
                    ops::max_pool2d(ctx, &x, geometry)?,
                    reference::max_pool2d(&hx, geometry),
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
            Case::ResizeArgmax { input, output } => {
                let (x, hx) = upload(&mut rng, "logits", *input)?;
                let classes = ops::resize_argmax::resize_argmax(ctx, &x, *output)?;
                let (expected, margins) = reference::resize_argmax(&hx, *output);
                let decisive: Vec<usize> =
                    (0..margins.len()).filter(|&i| margins[i] > 1e-6).collect();
                let wrong = decisive
                    .iter()
                    .filter(|&&i| classes[i] != expected[i])
                    .count();
                let comparison = Comparison {
                    max_abs: wrong as f64,
                    worst_index: 0,
                    rel_l2: wrong as f64 / decisive.len().max(1) as f64,
                };
                return Ok(Row {
                    op: self.op(),
                    shape: self.shape(),
                    params: self.params(),
                    passed: wrong == 0 && !decisive.is_empty(),
                    comparison,
                    skipped: None,
                });
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

/// A conv case with bias and ReLU as given and a plain epilogue otherwise.
fn conv_case(
    config: ConvConfig,
    input: [usize; 4],
    out_channels: usize,
    geometry: ConvGeometry,
    bias: bool,
    relu: bool,
) -> Case {
    Case::Conv {
        config,
        input,
        out_channels,
        geometry,
        bias,
        relu,
        per_image_bias: false,
        residual: false,
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
    // What whole networks add: ResNet's 7x7 stride-2 stem, 3x3 stride 2 (dilation 1 and 2)
    // and 1x1 stride 2, on odd and even maps, N = 2.
    let strided: &[([usize; 4], usize, ConvGeometry)] = &[
        ([2, 3, 23, 18], 8, ConvGeometry::new(7, 2, 3, 1)),
        ([1, 6, 17, 16], 9, ConvGeometry::new(3, 2, 1, 1)),
        ([2, 5, 12, 15], 6, ConvGeometry::new(3, 2, 2, 2)),
        ([2, 7, 13, 10], 5, ConvGeometry::new(1, 2, 0, 1)),
    ];
    // The dilated cases under `config`, bias and ReLU varying.
    let push_dilated = |cases: &mut Vec<Case>, config: ConvConfig| {
        for (i, &(input, out_channels, dilation)) in dilated.iter().enumerate() {
            let geometry = ConvGeometry::same_3x3(dilation);
            let (bias, relu) = (i % 2 == 0, i % 3 != 1);
            cases.push(conv_case(config, input, out_channels, geometry, bias, relu));
        }
    };
    for variant in ConvVariant::ALL {
        let config = ConvConfig::from(variant);
        push_dilated(&mut cases, config);
        // Padding other than the dilation: smaller outputs, and asymmetric padding.
        for (input, padding, dilation) in [([1, 3, 9, 9], [0, 0], 2), ([2, 2, 7, 5], [1, 3], 1)] {
            let geometry = ConvGeometry {
                padding,
                ..ConvGeometry::new(3, 1, 0, dilation)
            };
            cases.push(conv_case(config, input, 6, geometry, true, false));
        }
        for (i, &(input, out_channels, geometry)) in strided.iter().enumerate() {
            cases.push(conv_case(
                config,
                input,
                out_channels,
                geometry,
                i % 2 == 1,
                true,
            ));
        }
        if variant != ConvVariant::Packed {
            for (input, out_channels, bias, relu) in [
                ([1, 8, 5, 5], 4, true, true),
                ([2, 5, 9, 7], 7, false, false),
                ([1, 32, 1, 1], 21, true, false),
                ([1, 3, 33, 33], 6, false, true),
            ] {
                let geometry = ConvGeometry::pointwise();
                cases.push(conv_case(config, input, out_channels, geometry, bias, relu));
            }
        }
        // The shared epilogue: a residual before the ReLU (ResNet's blocks), a per-image bias
        // in place of the conv's (ASPP's folded pooling branch), both families.
        let epilogues = [
            ([2, 6, 9, 11], ConvGeometry::pointwise(), true, false),
            ([1, 5, 8, 7], ConvGeometry::new(3, 1, 2, 2), true, false),
            ([2, 9, 7, 7], ConvGeometry::pointwise(), false, true),
            ([2, 4, 10, 9], ConvGeometry::new(3, 2, 1, 1), true, true),
        ];
        for (input, geometry, residual, per_image_bias) in epilogues {
            if variant == ConvVariant::Packed && geometry.is_pointwise() {
                continue;
            }
            cases.push(Case::Conv {
                config,
                input,
                out_channels: 10,
                geometry,
                bias: !per_image_bias,
                relu: true,
                per_image_bias,
                residual,
            });
        }
    }
    // Winograd F(2x2), F(3x3) and F(4x4) (with the adapter's default GEMM) on the dilated cases, a
    // valid (unpadded) one, and through the epilogue with a residual and a per-image bias.
    for tile in crate::ops::WinogradTile::ALL {
        let config = ConvConfig::AUTO.winograd(tile);
        push_dilated(&mut cases, config);
        let valid = ConvGeometry::new(3, 1, 0, 2);
        cases.push(conv_case(config, [2, 9, 17, 12], 11, valid, true, false));
        cases.push(Case::Conv {
            config,
            input: [2, 12, 15, 9],
            out_channels: 10,
            geometry: ConvGeometry::same_3x3(2),
            bias: false,
            relu: true,
            per_image_bias: true,
            residual: true,
        });
    }
    // The register-blocked kernels under tiles other than their defaults (tests/conv_variants.rs
    // covers more): wide workgroups, runs of pixels that wrap rows, and channel counts that are
    // not a multiple of the block. Inputs have 10 channels so that the unrolled input-channel
    // loop has a remainder. Few tiles: each is a pipeline to compile, 1-4 s on lavapipe.
    use ConvVariant as V;
    let tiles: &[(V, V, RegisterTile)] = &[
        (V::Blocked, V::Blocked, RegisterTile::new(4, 1, 8)),
        (V::Blocked, V::Blocked, RegisterTile::new(2, 4, 16)),
        (V::Subgroup, V::Subgroup, RegisterTile::new(2, 3, 16)),
        (V::Subgroup, V::Subgroup, RegisterTile::new(4, 1, 8)),
        (V::Packed, V::Subgroup, RegisterTile::new(2, 4, 16)),
        (V::Packed8, V::Packed8, RegisterTile::new(2, 3, 16)),
    ];
    for (i, &(taps, pointwise, tile)) in tiles.iter().enumerate() {
        for (input, out_channels, dilation) in [([2, 10, 13, 11], 13, 3), ([1, 10, 9, 17], 7, 20)] {
            cases.push(conv_case(
                ConvConfig::new(taps, tile),
                input,
                out_channels,
                ConvGeometry::same_3x3(dilation),
                i % 2 == 0,
                i % 3 != 1,
            ));
        }
        cases.push(conv_case(
            ConvConfig::new(pointwise, tile),
            [2, 10, 7, 9],
            11,
            ConvGeometry::pointwise(),
            i % 2 == 1,
            i % 3 != 2,
        ));
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
    // ResNet's stem pool (3x3 stride 2 padding 1) on odd and even maps, a 1-pixel map (every
    // window mostly padding), and other kernels and strides.
    for (input, kernel_size, stride, padding) in [
        ([2, 3, 24, 17], 3, 2, 1),
        ([1, 4, 1, 1], 3, 2, 1),
        ([1, 2, 9, 12], 2, 2, 0),
        ([2, 2, 11, 8], 5, 3, 2),
        ([1, 3, 7, 7], 3, 1, 1),
    ] {
        cases.push(Case::MaxPool {
            input,
            geometry: PoolGeometry {
                kernel_size,
                stride,
                padding,
            },
        });
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
    // Segmentation logits to a photo's size, up and down, odd sizes, a 1x1 map, one class.
    for (input, output) in [
        ([1, 21, 9, 12], [47, 61]),
        ([1, 5, 13, 11], [7, 9]),
        ([1, 3, 1, 1], [5, 6]),
        ([1, 1, 4, 4], [3, 3]),
    ] {
        cases.push(Case::ResizeArgmax { input, output });
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
        cases.push(conv_case(
            ConvVariant::Direct.into(),
            [1, 4, 1024, 1040],
            4,
            ConvGeometry::pointwise(),
            true,
            false,
        ));
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

/// `atrous check`: every case on the chosen adapter, as a table; exits 1 on any failure.
pub fn main(quick: bool) -> Result<ExitCode> {
    let ctx = crate::tools::open_context_verbose()?;
    let cases = cases(!quick);
    let header = [
        "op",
        "shape",
        "params",
        "max abs error",
        "rel error",
        "result",
    ];
    let mut rows: Vec<[String; 6]> = Vec::new();
    let mut failures = 0;
    let mut skipped = 0;
    for (i, case) in cases.iter().enumerate() {
        let row = match case.run(&ctx, 1000 + i as u64) {
            Ok(row) if row.skipped.is_some() => {
                skipped += 1;
                [
                    row.op,
                    row.shape,
                    row.params,
                    "-".into(),
                    "-".into(),
                    format!("SKIP: {}", row.skipped.unwrap_or_default()),
                ]
            }
            Ok(row) => [
                row.op,
                row.shape,
                row.params,
                format!("{:.2e}", row.comparison.max_abs),
                format!("{:.2e}", row.comparison.rel_l2),
                if row.passed {
                    "PASS".into()
                } else {
                    "FAIL".into()
                },
            ],
            Err(error) => [
                case.op(),
                case.shape(),
                case.params(),
                "-".into(),
                "-".into(),
                format!("FAIL: {error}"),
            ],
        };
        if row[5] != "PASS" && !row[5].starts_with("SKIP") {
            failures += 1;
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].len())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    println!("{}", line(&header));
    println!(
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-|-")
    );
    for row in &rows {
        println!(
            "{}",
            line(&row.iter().map(String::as_str).collect::<Vec<_>>())
        );
    }
    println!(
        "{} passed, {} failed, {} skipped (tolerance: relative L2 <= {:e} against the float64 \
         reference)",
        rows.len() - failures - skipped,
        failures,
        skipped,
        REL_L2_TOLERANCE
    );
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

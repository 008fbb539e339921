//! Randomized comparisons of every op and kernel variant against the float64 CPU reference, over
//! many shapes and seeds. Shapes are drawn small (CI runs on CPU rasterizers), but span the
//! awkward cases: rates past the map size, H != W, N > 1, channel counts off the tile sizes.

mod common;

use atrous::ops::conv2d::{ConvConfig, ConvVariant};
use atrous::rng::Rng;
use atrous::shape::{ConvGeometry, PoolGeometry};
use atrous::tools::check::{self, Case, REL_L2_TOLERANCE};

const SEEDS: u64 = 24;

fn run(case: Case, seed: u64) {
    let row = case
        .run(common::ctx(), seed)
        .unwrap_or_else(|e| panic!("{} {} {}: {e}", case.op(), case.shape(), case.params()));
    assert!(
        row.passed,
        "seed {seed}: {} {} {}: relative L2 {:.3e} > {REL_L2_TOLERANCE:e} (max abs {:.3e})",
        row.op, row.shape, row.params, row.comparison.rel_l2, row.comparison.max_abs
    );
}

fn random_input(rng: &mut Rng, max_hw: usize, max_c: usize) -> [usize; 4] {
    [
        1 + rng.below(2),
        1 + rng.below(max_c),
        1 + rng.below(max_hw),
        1 + rng.below(max_hw),
    ]
}

/// A conv case under `variant` with random bias, ReLU and epilogue tensors.
fn conv(
    rng: &mut Rng,
    variant: ConvVariant,
    input: [usize; 4],
    geometry: ConvGeometry,
    max_out: usize,
) -> Case {
    Case::Conv {
        config: ConvConfig::from(variant),
        input,
        out_channels: 1 + rng.below(max_out),
        geometry,
        bias: rng.below(2) == 0,
        relu: rng.below(2) == 0,
        per_image_bias: rng.below(4) == 0,
        residual: rng.below(3) == 0,
    }
}

#[test]
fn conv3x3_variants_match_reference_on_random_shapes() {
    for seed in 0..SEEDS {
        let mut rng = Rng::new(seed);
        let input = random_input(&mut rng, 24, 9);
        let dilation = [1, 2, 3, 6, 12, 18, 24, 36][rng.below(8)];
        // Mostly DeepLab's padding = dilation; sometimes any padding that still fits.
        let geometry = if rng.below(3) > 0 {
            ConvGeometry::same_3x3(dilation)
        } else {
            let span = 2 * dilation;
            let min_pad = |size: usize| span.saturating_sub(size - 1).div_ceil(2);
            ConvGeometry {
                padding: [
                    min_pad(input[2]) + rng.below(3),
                    min_pad(input[3]) + rng.below(3),
                ],
                ..ConvGeometry::new(3, 1, 0, dilation)
            }
        };
        for variant in ConvVariant::ALL {
            let case = conv(&mut rng, variant, input, geometry, 11);
            run(case, seed);
        }
    }
}

/// Every geometry a ResNet adds (7x7 stride 2, 3x3 stride 2 with dilation, 1x1 stride 2) and
/// random others, under every k x k variant.
#[test]
fn strided_conv_variants_match_reference_on_random_shapes() {
    for seed in 0..SEEDS {
        let mut rng = Rng::new(500 + seed);
        let input = random_input(&mut rng, 30, 9);
        let kernel_size = [1, 3, 3, 5, 7][rng.below(5)];
        let stride = 2 + rng.below(2);
        let dilation = if kernel_size == 1 {
            1
        } else {
            1 + rng.below(3)
        };
        let span = dilation * (kernel_size - 1) + 1;
        let least = span.saturating_sub(input[2].min(input[3])).div_ceil(2);
        let padding = least + rng.below(dilation * (kernel_size - 1) / 2 + 1);
        let geometry = ConvGeometry::new(kernel_size, stride, padding, dilation);
        for variant in ConvVariant::ALL {
            let case = conv(&mut rng, variant, input, geometry, 11);
            run(case, seed);
        }
    }
}

#[test]
fn conv1x1_variants_match_reference_on_random_shapes() {
    for seed in 0..SEEDS {
        let mut rng = Rng::new(100 + seed);
        let input = random_input(&mut rng, 20, 40);
        for variant in ConvVariant::ALL {
            if variant == ConvVariant::Packed {
                continue;
            }
            let case = conv(&mut rng, variant, input, ConvGeometry::pointwise(), 13);
            run(case, seed);
        }
    }
}

#[test]
fn folded_batchnorm_matches_conv_then_batchnorm() {
    for seed in 0..SEEDS / 2 {
        let mut rng = Rng::new(200 + seed);
        let input = random_input(&mut rng, 16, 8);
        let geometry = if rng.below(2) == 0 {
            ConvGeometry::pointwise()
        } else {
            ConvGeometry::same_3x3(1 + rng.below(20))
        };
        run(
            Case::ConvBn {
                input,
                out_channels: 1 + rng.below(9),
                geometry,
                relu: rng.below(2) == 0,
            },
            seed,
        );
        run(
            Case::BatchNorm {
                input,
                relu: rng.below(2) == 0,
            },
            seed,
        );
    }
}

#[test]
fn pools_interpolate_and_concat_match_reference_on_random_shapes() {
    for seed in 0..SEEDS {
        let mut rng = Rng::new(300 + seed);
        let input = random_input(&mut rng, 40, 4);
        let output = [1 + rng.below(45), 1 + rng.below(45)];
        run(
            Case::Pool {
                input,
                output: [1 + rng.below(12), 1 + rng.below(12)],
            },
            seed,
        );
        let kernel_size = 1 + rng.below(5);
        let geometry = PoolGeometry {
            kernel_size,
            stride: 1 + rng.below(3),
            padding: rng.below(kernel_size / 2 + 1),
        };
        if geometry.out_hw(input[2], input[3]).is_ok() {
            run(Case::MaxPool { input, geometry }, seed);
        }
        run(
            Case::Interpolate {
                input,
                output,
                align_corners: rng.below(2) == 0,
            },
            seed,
        );
        let channels = (0..1 + rng.below(5)).map(|_| 1 + rng.below(6)).collect();
        run(
            Case::Concat {
                n: input[0],
                channels,
                hw: [input[2], input[3]],
            },
            seed,
        );
    }
}

/// Every case of `atrous check`, the large ones included: a 1x1 conv and an interpolation with
/// more than 65535 workgroups, so the dispatch grid is split over two dimensions.
#[test]
fn check_suite_passes_including_split_dispatch_grids() {
    let cases = check::cases(true);
    let rows = check::run_all(common::ctx(), &cases).unwrap();
    for row in &rows {
        assert!(
            row.passed,
            "{} {} {}: rel L2 {:.3e}",
            row.op, row.shape, row.params, row.comparison.rel_l2
        );
    }
    let large = cases
        .iter()
        .filter(|c| matches!(c, Case::Conv { input, .. } | Case::Interpolate { input, .. } if input[2] >= 300))
        .count();
    assert_eq!(large, 2, "the check suite lost its split-grid cases");
}

/// Uploads uniform random values in [-1, 1) as a device tensor and its f64 host copy.
fn random_tensor(
    rng: &mut Rng,
    name: &str,
    shape: [usize; 4],
) -> (atrous::Tensor, atrous::reference::HostTensor) {
    let data: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| rng.uniform(-1.0, 1.0))
        .collect();
    let tensor = atrous::Tensor::from_slice(common::ctx(), name, shape, &data).unwrap();
    (
        tensor,
        atrous::reference::HostTensor::from_f32(shape, &data),
    )
}

/// Runs `launch` into a (N, C_total, H, W) buffer prefilled with a sentinel and returns the
/// buffer, asserting that every channel outside [offset, offset + C) kept the sentinel.
fn write_into_slice(
    out_shape: [usize; 4],
    offset: usize,
    channels: usize,
    launch: impl Fn(atrous::OutputSlice) -> atrous::pipeline::Launch,
) -> Vec<f32> {
    const SENTINEL: f32 = 1234.5;
    let ctx = common::ctx();
    let len = out_shape.iter().product::<usize>();
    let out = atrous::Tensor::from_slice(ctx, "out", out_shape, &vec![SENTINEL; len]).unwrap();
    let launch = launch(atrous::OutputSlice::channels(&out, offset));
    atrous::pipeline::Launch::run_all(ctx, &[&launch]).unwrap();
    let values = out.to_vec(ctx).unwrap();
    let [n, c_total, h, w] = out_shape;
    for b in 0..n {
        for c in (0..c_total).filter(|c| !(offset..offset + channels).contains(c)) {
            let plane = &values[(b * c_total + c) * h * w..][..h * w];
            assert!(
                plane.iter().all(|&v| v == SENTINEL),
                "channel {c} of sample {b} outside the slice {offset}..{} was written",
                offset + channels
            );
        }
    }
    values
}

/// The slice [offset, offset + C) of every sample of a (N, C_total, H, W) buffer.
fn slice_channels(
    values: &[f32],
    out_shape: [usize; 4],
    offset: usize,
    channels: usize,
) -> Vec<f32> {
    let [n, c_total, h, w] = out_shape;
    (0..n)
        .flat_map(|b| values[(b * c_total + offset) * h * w..][..channels * h * w].to_vec())
        .collect()
}

/// Both concat kernels (scalar, and vec4 when H * W % 4 == 0) copy exactly into channel slices
/// at any offset, N = 1 and 2, and leave the other channels alone.
#[test]
fn concat_variants_copy_exactly_into_channel_slices() {
    use atrous::ops::concat::{prepare_variant, ConcatVariant};
    for seed in 0..SEEDS {
        let mut rng = Rng::new(700 + seed);
        let mut shape = random_input(&mut rng, 13, 6);
        if seed % 2 == 0 {
            // Make H * W a multiple of 4 on half the seeds so the vec4 kernel applies.
            shape[3] = 4 * (1 + rng.below(4));
        }
        let (x, hx) = random_tensor(&mut rng, "x", shape);
        let offset = rng.below(5);
        let out_shape = [
            shape[0],
            offset + shape[1] + rng.below(3),
            shape[2],
            shape[3],
        ];
        let mut variants = vec![ConcatVariant::Scalar];
        if (shape[2] * shape[3]).is_multiple_of(4) {
            variants.push(ConcatVariant::Vec4);
        }
        assert_eq!(ConcatVariant::for_shape(shape), *variants.last().unwrap());
        for variant in variants {
            let values = write_into_slice(out_shape, offset, shape[1], |slice| {
                prepare_variant(common::ctx(), &x, slice, variant).unwrap()
            });
            let copied = slice_channels(&values, out_shape, offset, shape[1]);
            let expected: Vec<f32> = hx.data.iter().map(|&v| v as f32).collect();
            assert_eq!(
                copied, expected,
                "seed {seed}: {variant:?} {shape:?} at channel {offset}"
            );
        }
    }
}

/// Both interpolation kernels (one element, one row per invocation) give bit-identical results,
/// match the float64 reference, and write only their channel slice: N = 1 and 2, 1x1 sources,
/// outputs narrower than 8, align_corners both ways.
#[test]
fn interpolate_variants_agree_bit_for_bit_in_channel_slices() {
    use atrous::ops::interpolate::{prepare_variant, InterpolateVariant};
    for seed in 0..SEEDS {
        let mut rng = Rng::new(800 + seed);
        let mut shape = random_input(&mut rng, 9, 5);
        if seed % 4 == 0 {
            shape[2] = 1;
            shape[3] = 1;
        }
        let (x, hx) = random_tensor(&mut rng, "x", shape);
        let size = [1 + rng.below(40), 1 + rng.below(40)];
        let align_corners = rng.below(2) == 0;
        let offset = rng.below(4);
        let out_shape = [shape[0], offset + shape[1] + rng.below(3), size[0], size[1]];
        let slice_shape = [shape[0], shape[1], size[0], size[1]];
        let run = |variant| {
            let values = write_into_slice(out_shape, offset, shape[1], |slice| {
                prepare_variant(common::ctx(), &x, slice, align_corners, variant).unwrap()
            });
            slice_channels(&values, out_shape, offset, shape[1])
        };
        let element = run(InterpolateVariant::Element);
        let rows = run(InterpolateVariant::Rows);
        let case = format!("seed {seed}: {shape:?} -> {size:?} align_corners={align_corners}");
        assert!(
            element
                .iter()
                .zip(&rows)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{case}: the row kernel differs from the element kernel"
        );
        let expected = atrous::reference::interpolate(&hx, size, align_corners);
        common::assert_close(&case, slice_shape, &rows, &expected.data, REL_L2_TOLERANCE);
    }
}

/// The element kernel (not the launcher's choice) over more than 65535 workgroups: the split
/// grid still covers every output exactly once.
#[test]
fn interpolate_element_kernel_with_a_split_grid() {
    use atrous::ops::interpolate::{interpolate_with, InterpolateVariant};
    let mut rng = Rng::new(900);
    let shape = [1, 2, 300, 3];
    let size = [600_000, 7]; // 8.4 M outputs: 131250 workgroups
    let (x, hx) = random_tensor(&mut rng, "x", shape);
    let y = interpolate_with(
        common::ctx(),
        &x,
        size,
        true,
        Some(InterpolateVariant::Element),
    )
    .unwrap();
    let expected = atrous::reference::interpolate(&hx, size, true);
    common::assert_close(
        "split element interpolate",
        [1, 2, size[0], size[1]],
        &y.to_vec(common::ctx()).unwrap(),
        &expected.data,
        REL_L2_TOLERANCE,
    );
}

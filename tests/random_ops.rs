//! Randomized comparisons of every op and kernel variant against the float64 CPU reference, over
//! many shapes and seeds. Shapes are drawn small (CI runs on CPU rasterizers), but span the
//! awkward cases: rates past the map size, H != W, N > 1, channel counts off the tile sizes.

mod common;

use atrous::check::{self, Case, Rng, REL_L2_TOLERANCE};
use atrous::ops::conv1x1::Conv1x1Variant;
use atrous::ops::conv3x3::Conv3x3Variant;
use atrous::shape::ConvGeometry;

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
                kernel_size: 3,
                dilation,
                padding: [
                    min_pad(input[2]) + rng.below(3),
                    min_pad(input[3]) + rng.below(3),
                ],
            }
        };
        for variant in Conv3x3Variant::ALL {
            run(
                Case::Conv3x3 {
                    variant,
                    input,
                    out_channels: 1 + rng.below(11),
                    geometry,
                    bias: rng.below(2) == 0,
                    relu: rng.below(2) == 0,
                },
                seed,
            );
        }
    }
}

#[test]
fn conv1x1_variants_match_reference_on_random_shapes() {
    for seed in 0..SEEDS {
        let mut rng = Rng::new(100 + seed);
        let input = random_input(&mut rng, 20, 40);
        for variant in Conv1x1Variant::ALL {
            run(
                Case::Conv1x1 {
                    variant,
                    input,
                    out_channels: 1 + rng.below(13),
                    bias: rng.below(2) == 0,
                    relu: rng.below(2) == 0,
                },
                seed,
            );
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
fn pool_interpolate_and_concat_match_reference_on_random_shapes() {
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
        .filter(|c| matches!(c, Case::Conv1x1 { input, .. } | Case::Interpolate { input, .. } if input[2] >= 300))
        .count();
    assert_eq!(large, 2, "the check suite lost its split-grid cases");
}

//! Every convolution kernel variant, under its default and several register tiles, against the
//! float64 reference (`atrous::reference::conv2d`) on randomized shapes: dilations up to and past
//! the map size (only the centre tap, or no tap at all, reads real pixels), H != W, batches of
//! 2, input channel counts that leave a remainder after the unrolled loop, output channel counts
//! that are not a multiple of any block, paddings other than the dilation, asymmetric ones
//! included. Relative L2 error <= 1e-5.
//!
//! Runs on the adapter `WGPU_BACKEND` selects; CI runs it under `vulkan` and `gl`. Variants the
//! adapter cannot run (the subgroup kernels on GL) are reported and skipped.

use std::sync::{Mutex, MutexGuard, OnceLock};

use atrous::check::{Rng, REL_L2_TOLERANCE};
use atrous::ops::conv1x1::{Conv1x1Config, Conv1x1Variant};
use atrous::ops::conv3x3::{Conv3x3Config, Conv3x3Variant};
use atrous::ops::{Conv1x1, Conv3x3, RegisterTile};
use atrous::reference::{self, compare, unravel, HostTensor};
use atrous::shape::ConvGeometry;
use atrous::{Context, Tensor};

/// Random shapes per configuration.
const SHAPES: u64 = 6;

fn ctx() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| Context::new().expect("an adapter (see `atrous info`)"))
}

/// Held by each test for its whole run: the tests of this binary use the GPU one at a time.
/// wgpu's GL backend panics when a thread waits more than 6 s for the GL context, which test
/// threads compiling these kernels with a cold shader cache can exceed on 2 cores.
fn gpu() -> MutexGuard<'static, ()> {
    static GPU: Mutex<()> = Mutex::new(());
    GPU.lock().unwrap_or_else(|p| p.into_inner())
}

/// A random 3x3 problem: input shape, output channels, geometry. Seeds 0 and 1 are forced
/// edge cases: a rate past both sides of a non-square map with a batch of 2, and a 1-pixel map.
fn random_conv3x3(rng: &mut Rng, seed: u64) -> ([usize; 4], usize, ConvGeometry) {
    let n = 1 + rng.below(2);
    let in_channels = 1 + rng.below(11);
    let out_channels = 1 + rng.below(21);
    let (h, w) = match seed {
        0 => (9, 14),
        1 => (1, 1),
        _ => (1 + rng.below(22), 1 + rng.below(22)),
    };
    let dilation = match seed {
        0 => 24,
        1 => 3,
        _ => 1 + rng.below(26),
    };
    let geometry = if seed < 2 || rng.below(3) > 0 {
        ConvGeometry::same_3x3(dilation)
    } else {
        // Any padding that still leaves an output, possibly different per axis.
        let span = 2 * dilation;
        let min_pad = |size: usize| span.saturating_sub(size - 1).div_ceil(2);
        ConvGeometry {
            kernel_size: 3,
            dilation,
            padding: [min_pad(h) + rng.below(4), min_pad(w) + rng.below(4)],
        }
    };
    let n = if seed == 0 { 2 } else { n };
    ([n, in_channels, h, w], out_channels, geometry)
}

fn upload(rng: &mut Rng, shape: [usize; 4]) -> (Tensor, HostTensor) {
    let data = rng.vec(shape.iter().product(), 1.0);
    (
        Tensor::from_slice(ctx(), "x", shape, &data).unwrap(),
        HostTensor::from_f32(shape, &data),
    )
}

fn assert_close(what: &str, gpu: &[f32], expected: &HostTensor) {
    let c = compare(gpu, &expected.data);
    assert!(
        c.rel_l2 <= REL_L2_TOLERANCE,
        "{what}: rel L2 {:.3e} > {REL_L2_TOLERANCE:e}; worst element {:?} off by {:.3e}",
        c.rel_l2,
        unravel(c.worst_index, expected.shape),
        c.max_abs
    );
}

/// Runs `config` on SHAPES random problems (or reports it skipped).
fn check_conv3x3(config: Conv3x3Config) {
    let _gpu = gpu();
    if let Some(reason) = config.variant.unsupported(ctx()) {
        eprintln!("skipped {config}: {reason}");
        return;
    }
    for seed in 0..SHAPES {
        let mut rng = Rng::new(1000 * seed + 17);
        let (input, out_channels, geometry) = random_conv3x3(&mut rng, seed);
        let (bias, relu) = (rng.below(2) == 0, rng.below(2) == 0);
        let (x, hx) = upload(&mut rng, input);
        let weights = rng.conv_weights(out_channels, input[1], 3, bias);
        let conv = Conv3x3::with_config(ctx(), "conv", &weights, geometry, relu, config).unwrap();
        let y = conv.forward(ctx(), &x).unwrap().to_vec(ctx()).unwrap();
        let expected = reference::conv2d(&hx, &weights, geometry, relu);
        assert_close(
            &format!("{config} on {input:?} -> {out_channels}, {geometry:?}"),
            &y,
            &expected,
        );
    }
}

fn check_conv1x1(config: Conv1x1Config) {
    let _gpu = gpu();
    if let Some(reason) = config.variant.unsupported(ctx()) {
        eprintln!("skipped {config}: {reason}");
        return;
    }
    for seed in 0..SHAPES {
        let mut rng = Rng::new(1000 * seed + 29);
        let input = [
            1 + rng.below(2),
            1 + rng.below(13),
            1 + rng.below(20),
            1 + rng.below(20),
        ];
        let out_channels = 1 + rng.below(21);
        let (bias, relu) = (rng.below(2) == 0, rng.below(2) == 0);
        let (x, hx) = upload(&mut rng, input);
        let weights = rng.conv_weights(out_channels, input[1], 1, bias);
        let conv = Conv1x1::with_config(ctx(), "conv", &weights, relu, config).unwrap();
        let y = conv.forward(ctx(), &x).unwrap().to_vec(ctx()).unwrap();
        let expected = reference::conv2d(&hx, &weights, ConvGeometry::pointwise(), relu);
        assert_close(
            &format!("{config} on {input:?} -> {out_channels}"),
            &y,
            &expected,
        );
    }
}

/// Tiles of the blocked kernels beside the default (c8p3w8): 4, 12 and 32 channels, 1, 2 and
/// 4 pixels, workgroups of 8, 16 and 24. Few, because each is a pipeline to compile (1-4 s cold
/// on lavapipe); `atrous check` covers others.
const BLOCKED_TILES: [RegisterTile; 3] = [
    RegisterTile::new(1, 4, 8),
    RegisterTile::new(3, 2, 16),
    RegisterTile::new(8, 1, 24),
];

/// Tiles of the subgroup kernels beside the defaults (c16p3w8 for the 3x3, c24p2w8 for the
/// 1x1): 8, 16, 24 and 32 channels, 1, 2 and 4 pixels, workgroups of 8, 16 and 32.
const SUBGROUP_TILES: [RegisterTile; 4] = [
    RegisterTile::new(2, 4, 8),
    RegisterTile::new(4, 2, 8),
    RegisterTile::new(6, 1, 16),
    RegisterTile::new(8, 1, 32),
];

#[test]
fn conv3x3_direct_matches_reference() {
    check_conv3x3(Conv3x3Variant::Direct.into());
}

#[test]
fn conv3x3_tiled_matches_reference() {
    check_conv3x3(Conv3x3Variant::Tiled.into());
}

#[test]
fn conv3x3_blocked_matches_reference_under_every_tile() {
    check_conv3x3(Conv3x3Variant::Blocked.into());
    for tile in BLOCKED_TILES {
        check_conv3x3(Conv3x3Config::new(Conv3x3Variant::Blocked, tile));
    }
}

#[test]
fn conv3x3_subgroup_matches_reference_under_every_tile() {
    check_conv3x3(Conv3x3Variant::Subgroup.into());
    for tile in SUBGROUP_TILES {
        check_conv3x3(Conv3x3Config::new(Conv3x3Variant::Subgroup, tile));
    }
}

#[test]
fn conv3x3_packed_matches_reference_under_every_tile() {
    check_conv3x3(Conv3x3Variant::Packed.into());
    for tile in SUBGROUP_TILES {
        check_conv3x3(Conv3x3Config::new(Conv3x3Variant::Packed, tile));
    }
}

/// The 64-bit-load kernel under the subgroup tiles it takes (2, 4 or 8 vec4s) and a workgroup
/// of two subgroups.
#[test]
fn conv3x3_packed8_matches_reference_under_every_tile() {
    check_conv3x3(Conv3x3Variant::Packed8.into());
    let tiles = SUBGROUP_TILES.into_iter().filter(|t| t.vec4s != 6);
    for tile in tiles.chain([RegisterTile::new(4, 1, 16)]) {
        check_conv3x3(Conv3x3Config::new(Conv3x3Variant::Packed8, tile));
    }
}

/// The default resolves to a concrete kernel this adapter runs, and that kernel is right.
#[test]
fn conv3x3_default_matches_reference() {
    let gpu_guard = gpu();
    let weights = Rng::new(3).conv_weights(12, 4, 3, true);
    let conv = Conv3x3::new(
        ctx(),
        "conv",
        &weights,
        ConvGeometry::same_3x3(2),
        false,
        Conv3x3Variant::default(),
    )
    .unwrap();
    let expected = if ctx().has_subgroups() && ctx().has_int64() {
        Conv3x3Variant::Packed8
    } else if ctx().has_subgroups() {
        Conv3x3Variant::Packed
    } else {
        Conv3x3Variant::Blocked
    };
    let x = Tensor::empty(ctx(), "x", [1, weights.in_channels, 9, 9]).unwrap();
    assert_eq!(conv.config_for(ctx(), x.shape()).unwrap().variant, expected);
    drop(gpu_guard);
    check_conv3x3(Conv3x3Config::default());
}

#[test]
fn conv1x1_direct_matches_reference() {
    check_conv1x1(Conv1x1Variant::Direct.into());
}

#[test]
fn conv1x1_tiled_matches_reference() {
    check_conv1x1(Conv1x1Variant::Tiled.into());
}

#[test]
fn conv1x1_blocked_matches_reference_under_every_tile() {
    check_conv1x1(Conv1x1Variant::Blocked.into());
    for tile in BLOCKED_TILES {
        check_conv1x1(Conv1x1Config::new(Conv1x1Variant::Blocked, tile));
    }
}

#[test]
fn conv1x1_subgroup_matches_reference_under_every_tile() {
    check_conv1x1(Conv1x1Variant::Subgroup.into());
    for tile in SUBGROUP_TILES {
        check_conv1x1(Conv1x1Config::new(Conv1x1Variant::Subgroup, tile));
    }
}

/// The 64-bit-load 1x1 under the subgroup tiles it takes (2, 4 or 8 vec4s) and a workgroup of
/// two subgroups. C_in runs 1..13, so the zero padding to 8 channels is exercised.
#[test]
fn conv1x1_packed8_matches_reference_under_every_tile() {
    check_conv1x1(Conv1x1Variant::Packed8.into());
    let tiles = SUBGROUP_TILES.into_iter().filter(|t| t.vec4s != 6);
    for tile in tiles.chain([RegisterTile::new(4, 1, 16)]) {
        check_conv1x1(Conv1x1Config::new(Conv1x1Variant::Packed8, tile));
    }
}

/// The default resolves to a concrete kernel this adapter runs, and that kernel is right.
#[test]
fn conv1x1_default_matches_reference() {
    let gpu_guard = gpu();
    let weights = Rng::new(4).conv_weights(12, 4, 1, true);
    let conv = Conv1x1::new(ctx(), "conv", &weights, false, Conv1x1Variant::default()).unwrap();
    let expected = if ctx().has_subgroups() && ctx().has_int64() {
        Conv1x1Variant::Packed8
    } else if ctx().has_subgroups() {
        Conv1x1Variant::Subgroup
    } else {
        Conv1x1Variant::Tiled
    };
    let x = Tensor::empty(ctx(), "x", [1, weights.in_channels, 9, 9]).unwrap();
    assert_eq!(conv.config_for(ctx(), x.shape()).unwrap().variant, expected);
    drop(gpu_guard);
    check_conv1x1(Conv1x1Config::default());
}

/// A configuration the adapter cannot run is an error that says why, not a validation failure.
#[test]
fn subgroup_variant_without_subgroups_is_a_clear_error() {
    let _gpu = gpu();
    if ctx().has_subgroups() {
        return;
    }
    let weights = Rng::new(5).conv_weights(4, 4, 1, false);
    let error = Conv1x1::new(ctx(), "conv", &weights, false, Conv1x1Variant::Subgroup)
        .err()
        .expect("no subgroups: an error");
    assert!(error.to_string().contains("subgroup"), "{error}");
}

/// Tile labels round-trip through the configs' Display and FromStr (the tuner's cache format),
/// and tiles outside a kernel's range are rejected with the range.
#[test]
fn configs_round_trip_and_reject_bad_tiles() {
    let _gpu = gpu();
    for config in Conv3x3Config::candidates(ctx()) {
        assert_eq!(config.to_string().parse::<Conv3x3Config>().unwrap(), config);
    }
    for config in Conv1x1Config::candidates(ctx()) {
        assert_eq!(config.to_string().parse::<Conv1x1Config>().unwrap(), config);
    }
    // Parsing is independent of the adapter (candidates() leaves out what it cannot run).
    assert_eq!(
        "packed:c16p3w8".parse::<Conv3x3Config>().unwrap(),
        Conv3x3Config::new(Conv3x3Variant::Packed, RegisterTile::new(4, 3, 8))
    );
    assert_eq!(
        "conv3x3_packed8:c8p4w16".parse::<Conv3x3Config>().unwrap(),
        Conv3x3Config::new(Conv3x3Variant::Packed8, RegisterTile::new(2, 4, 16))
    );
    assert_eq!(
        "packed8:c16p3w8".parse::<Conv1x1Config>().unwrap(),
        Conv1x1Config::new(Conv1x1Variant::Packed8, RegisterTile::new(4, 3, 8))
    );
    let error = "packed".parse::<Conv1x1Config>().unwrap_err().to_string();
    assert!(error.contains("found 'packed'"), "{error}");
    let weights = Rng::new(6).conv_weights(4, 4, 3, false);
    let rejection = |config: Conv3x3Config| {
        Conv3x3::with_config(
            ctx(),
            "conv",
            &weights,
            ConvGeometry::same_3x3(1),
            false,
            config,
        )
        .err()
        .unwrap_or_else(|| panic!("{config} is rejected"))
        .to_string()
    };
    let error = rejection(Conv3x3Config::new(
        Conv3x3Variant::Blocked,
        RegisterTile::new(9, 1, 8),
    ));
    assert!(error.contains("c36p1w8"), "{error}");
    // packed8 spells out broadcasts for 2, 4 and 8 vec4s only; without subgroups or 64-bit
    // integers the error names what is missing instead.
    let error = rejection(Conv3x3Config::new(
        Conv3x3Variant::Packed8,
        RegisterTile::new(6, 2, 8),
    ));
    let expected = match Conv3x3Variant::Packed8.unsupported(ctx()) {
        None => "c24p2w8",
        Some(_) if !ctx().has_subgroups() => "subgroup",
        Some(_) => "64-bit integers",
    };
    assert!(error.contains(expected), "{error}");
    // The same for the 1x1's packed8.
    let weights = Rng::new(7).conv_weights(4, 4, 1, false);
    let error = Conv1x1::with_config(
        ctx(),
        "conv",
        &weights,
        false,
        Conv1x1Config::new(Conv1x1Variant::Packed8, RegisterTile::new(6, 2, 8)),
    )
    .err()
    .expect("c24p2w8 is rejected")
    .to_string();
    assert!(error.contains(expected), "{error}");
}

/// The packed kernels' input layout: (N, ceil(C / P), H, W, P) with zeros past C, exactly, for
/// both group sizes.
#[test]
fn pack_channels_matches_host_packing() {
    let _gpu = gpu();
    let mut rng = Rng::new(41);
    for pack in [4, 8] {
        for shape in [[2, 5, 3, 7], [1, 8, 1, 1], [1, 1, 4, 9], [3, 11, 17, 5]] {
            let (x, hx) = upload(&mut rng, shape);
            let packed = atrous::ops::pack_channels(ctx(), &x, pack).unwrap();
            let [n, c, h, w] = shape;
            let groups = c.div_ceil(pack);
            assert_eq!(packed.shape(), [n, groups, h, pack * w]);
            let mut expected = vec![0.0f32; n * groups * h * w * pack];
            for (i, &v) in hx.data.iter().enumerate() {
                let (b, ch, pixel) = (i / (c * h * w), (i / (h * w)) % c, i % (h * w));
                let plane = b * groups + ch / pack;
                expected[(plane * h * w + pixel) * pack + ch % pack] = v as f32;
            }
            assert_eq!(
                packed.to_vec(ctx()).unwrap(),
                expected,
                "pack {pack}, {shape:?}"
            );
        }
    }
    let error = atrous::ops::pack_channels(ctx(), &upload(&mut rng, [1, 4, 2, 2]).0, 6)
        .err()
        .expect("groups of 6 channels are rejected");
    assert!(error.to_string().contains("4 or 8"), "{error}");
}

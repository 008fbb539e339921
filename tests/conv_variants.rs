//! Every convolution kernel variant of both families, under its default and several register
//! tiles, against the float64 reference (`atrous::reference::conv2d_with`) on randomized
//! problems, each ending in the shared epilogue (bias per channel or per image, residual,
//! ReLU): for the k x k kernels dilations up to and past the map size (only the centre tap, or
//! no tap at all, reads real pixels), strides 1 and 2, kernels of 1, 3, 5 and 7, paddings
//! other than the dilation (asymmetric ones included); for the 1x1 GEMMs channel counts around
//! their groups; for both H != W, batches of 2, input channel counts that leave a remainder
//! after the unrolled loop and output channel counts that are not a multiple of any block.
//! Relative L2 error <= 1e-5.
//!
//! Runs on the adapter `WGPU_BACKEND` selects; CI runs it under `vulkan` and `gl`. Variants the
//! adapter cannot run (the subgroup kernels on GL) are reported and skipped.

use std::sync::{Mutex, MutexGuard, OnceLock};

use atrous::ops::conv2d::{ConvConfig, ConvVariant, Family, RegisterTile, WinogradTile};
use atrous::ops::pack_channels::Packing;
use atrous::ops::{Conv2d, ConvWeights, Epilogue};
use atrous::reference::{self, compare, unravel, HostTensor, REL_L2_TOLERANCE};
use atrous::rng::Rng;
use atrous::shape::ConvGeometry;
use atrous::{Context, Tensor};

/// Random problems per configuration.
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

/// A random problem for the k x k kernels: input shape, output channels, geometry. Seeds 0-3
/// are forced edge cases: a rate past both sides of a non-square map with a batch of 2, a
/// 1-pixel map, ResNet's 7x7 stride-2 stem on an odd map, and a strided dilated 3x3.
fn random_taps(rng: &mut Rng, seed: u64) -> ([usize; 4], usize, ConvGeometry) {
    let n = if seed == 0 { 2 } else { 1 + rng.below(2) };
    let in_channels = 1 + rng.below(11);
    let out_channels = 1 + rng.below(21);
    let (h, w) = match seed {
        0 => (9, 14),
        1 => (1, 1),
        2 => (15, 12),
        _ => (1 + rng.below(22), 1 + rng.below(22)),
    };
    let geometry = match seed {
        0 => ConvGeometry::same_3x3(24),
        1 => ConvGeometry::same_3x3(3),
        2 => ConvGeometry::new(7, 2, 3, 1),
        3 => ConvGeometry::new(3, 2, 2, 2),
        _ => {
            let kernel_size = [1, 3, 3, 3, 5, 7][rng.below(6)];
            let stride = 1 + rng.below(2);
            let dilation = if kernel_size == 1 {
                1
            } else {
                1 + rng.below(8)
            };
            // Any padding that still leaves an output, possibly different per axis; a 1x1 of
            // stride 1 needs some, or it would be the GEMMs' geometry.
            let span = dilation * (kernel_size - 1) + 1;
            let min_pad = |size: usize| span.saturating_sub(size).div_ceil(2);
            let extra = if kernel_size == 1 && stride == 1 {
                1
            } else {
                0
            };
            ConvGeometry {
                padding: [min_pad(h) + rng.below(4) + extra, min_pad(w) + rng.below(4)],
                ..ConvGeometry::new(kernel_size, stride, 0, dilation)
            }
        }
    };
    ([n, in_channels, h, w], out_channels, geometry)
}

/// A random problem for Winograd (3x3, stride 1): seeds 0-3 are a rate past both sides of a
/// non-square map with a batch of 2, a 1-pixel map, a 65 x 65 map at ResNet's layer4 rate, and
/// a valid (unpadded) conv; then dilations up to 36, maps up to 40 x 40.
fn random_winograd(rng: &mut Rng, seed: u64) -> ([usize; 4], usize, ConvGeometry) {
    let n = if seed == 0 { 2 } else { 1 + rng.below(2) };
    let in_channels = 1 + rng.below(19);
    let out_channels = 1 + rng.below(21);
    let (h, w, dilation) = match seed {
        0 => (9, 14, 24),
        1 => (1, 1, 3),
        2 => (65, 65, 4),
        3 => (17, 16, 1),
        _ => (1 + rng.below(40), 1 + rng.below(40), 1 + rng.below(36)),
    };
    let span = 2 * dilation + 1;
    let min_pad = |size: usize| span.saturating_sub(size).div_ceil(2);
    let padding = match seed {
        3 => [0, 0],
        _ => [
            min_pad(h) + rng.below(dilation + 2),
            min_pad(w) + rng.below(dilation + 2),
        ],
    };
    let geometry = ConvGeometry {
        padding,
        ..ConvGeometry::new(3, 1, 0, dilation)
    };
    ([n, in_channels, h, w], out_channels, geometry)
}

/// A random problem for the 1x1 GEMMs.
fn random_pointwise(rng: &mut Rng, _seed: u64) -> ([usize; 4], usize, ConvGeometry) {
    let input = [
        1 + rng.below(2),
        1 + rng.below(13),
        1 + rng.below(20),
        1 + rng.below(20),
    ];
    (input, 1 + rng.below(21), ConvGeometry::pointwise())
}

/// A random strided 1x1 without padding (a ResNet downsample): stride 2 or 3 on odd and even
/// sizes, C_in past a group of 8, a batch of 2 at seed 0.
fn random_strided_pointwise(rng: &mut Rng, seed: u64) -> ([usize; 4], usize, ConvGeometry) {
    let n = if seed == 0 { 2 } else { 1 + rng.below(2) };
    let input = [n, 1 + rng.below(13), 1 + rng.below(20), 1 + rng.below(20)];
    let geometry = ConvGeometry::new(1, 2 + (seed % 2) as usize, 0, 1);
    (input, 1 + rng.below(21), geometry)
}

fn upload(rng: &mut Rng, shape: [usize; 4]) -> (Tensor, HostTensor) {
    let data = rng.vec(shape.iter().product(), 1.0);
    (
        Tensor::from_slice(ctx(), "x", shape, &data).unwrap(),
        HostTensor::from_f32(shape, &data),
    )
}

/// `weights` under `config` on `x` through `epilogue` (eagerly), read back.
fn run(
    context: &Context,
    weights: &ConvWeights,
    geometry: ConvGeometry,
    config: ConvConfig,
    x: &Tensor,
    epilogue: &Epilogue,
) -> Vec<f32> {
    Conv2d::new("conv", weights.clone(), geometry)
        .unwrap()
        .with_config(config)
        .forward_with(context, x, epilogue)
        .unwrap()
        .to_vec(context)
        .unwrap()
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

/// Which epilogue problem `seed` gets: every configuration sees a residual with ReLU (seed 2),
/// a per-image bias (seed 3, seed 5 with a residual too) and plain bias/ReLU choices.
fn epilogue_for(seed: u64, rng: &mut Rng) -> (bool, bool, bool, bool) {
    // (conv bias, relu, per-image bias, residual)
    match seed {
        2 => (true, true, false, true),
        3 => (false, false, true, false),
        5 => (true, true, true, true),
        _ => (rng.below(2) == 0, rng.below(2) == 0, false, false),
    }
}

/// Runs `config` on SHAPES random problems from `problem` (or reports it skipped).
fn check(
    config: ConvConfig,
    family: Family,
    problem: fn(&mut Rng, u64) -> ([usize; 4], usize, ConvGeometry),
) {
    let _gpu = gpu();
    // A Winograd configuration's variant is its GEMM's, a 1x1 kernel.
    let runs_on = match config.winograd {
        Some(_) => Family::Pointwise,
        None => family,
    };
    if let Some(reason) = config.variant.unsupported(ctx(), runs_on) {
        eprintln!("skipped {config} ({family:?}): {reason}");
        return;
    }
    for seed in 0..SHAPES {
        let mut rng = Rng::new(1000 * seed + 17);
        let (input, out_channels, geometry) = problem(&mut rng, seed);
        assert_eq!(Family::of(&geometry), family);
        let (bias, relu, per_image, residual) = epilogue_for(seed, &mut rng);
        let (x, hx) = upload(&mut rng, input);
        let weights = rng.conv_weights(out_channels, input[1], geometry.kernel_size, bias);
        let conv = Conv2d::new("conv", weights.clone(), geometry)
            .unwrap()
            .with_config(config);
        let out_shape = conv.out_shape(input).unwrap();
        let per_image = per_image.then(|| upload(&mut rng, [input[0], out_channels, 1, 1]));
        let residual = residual.then(|| upload(&mut rng, out_shape));
        let epilogue = Epilogue {
            relu,
            per_image_bias: per_image.as_ref().map(|(t, _)| t),
            residual: residual.as_ref().map(|(t, _)| t),
        };
        let y = conv
            .forward_with(ctx(), &x, &epilogue)
            .unwrap()
            .to_vec(ctx())
            .unwrap();
        let expected = reference::conv2d_with(
            &hx,
            &weights,
            geometry,
            per_image.as_ref().map(|(_, h)| h),
            residual.as_ref().map(|(_, h)| h),
            relu,
        );
        assert_close(
            &format!(
                "{} on {input:?} -> {out_channels}, {geometry:?}, relu {relu}, per-image bias \
                 {}, residual {}",
                config.label(&geometry),
                per_image.is_some(),
                residual.is_some()
            ),
            &y,
            &expected,
        );
    }
}

fn check_taps(config: ConvConfig) {
    check(config, Family::Taps, random_taps);
}

fn check_pointwise(config: ConvConfig) {
    check(config, Family::Pointwise, random_pointwise);
}

/// Winograd F(2x2), F(3x3) and F(4x4) with each GEMM variant (default tiles).
#[test]
fn winograd_matches_reference_with_every_gemm() {
    for tile in WinogradTile::ALL {
        for variant in [
            ConvVariant::Direct,
            ConvVariant::Tiled,
            ConvVariant::Blocked,
            ConvVariant::Subgroup,
            ConvVariant::Packed8,
        ] {
            check(
                ConvConfig::from(variant).winograd(tile),
                Family::Taps,
                random_winograd,
            );
        }
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

/// Tiles of the subgroup kernels beside the defaults (c16p3w8 for k x k, c24p2w8 for the
/// 1x1): 8, 16, 24 and 32 channels, 1, 2 and 4 pixels, workgroups of 8, 16 and 32.
const SUBGROUP_TILES: [RegisterTile; 4] = [
    RegisterTile::new(2, 4, 8),
    RegisterTile::new(4, 2, 8),
    RegisterTile::new(6, 1, 16),
    RegisterTile::new(8, 1, 32),
];

/// The 64-bit-load kernels take 2, 4 or 8 vec4s; one tile has a workgroup of two subgroups,
/// one is the long GEMMs' default (c16p4w8).
fn packed8_tiles() -> impl Iterator<Item = RegisterTile> {
    let tiles = SUBGROUP_TILES.into_iter().filter(|t| t.vec4s != 6);
    tiles.chain([RegisterTile::new(4, 1, 16), RegisterTile::new(4, 4, 8)])
}

#[test]
fn conv2d_direct_matches_reference() {
    check_taps(ConvVariant::Direct.into());
}

#[test]
fn conv2d_tiled_matches_reference() {
    check_taps(ConvVariant::Tiled.into());
}

#[test]
fn conv2d_blocked_matches_reference_under_every_tile() {
    check_taps(ConvVariant::Blocked.into());
    for tile in BLOCKED_TILES {
        check_taps(ConvConfig::new(ConvVariant::Blocked, tile));
    }
}

#[test]
fn conv2d_subgroup_matches_reference_under_every_tile() {
    check_taps(ConvVariant::Subgroup.into());
    for tile in SUBGROUP_TILES {
        check_taps(ConvConfig::new(ConvVariant::Subgroup, tile));
    }
}

#[test]
fn conv2d_packed_matches_reference_under_every_tile() {
    check_taps(ConvVariant::Packed.into());
    for tile in SUBGROUP_TILES {
        check_taps(ConvConfig::new(ConvVariant::Packed, tile));
    }
}

#[test]
fn conv2d_packed8_matches_reference_under_every_tile() {
    check_taps(ConvVariant::Packed8.into());
    for tile in packed8_tiles() {
        check_taps(ConvConfig::new(ConvVariant::Packed8, tile));
    }
}

/// A strided 1x1 without padding under every variant: packed8 runs it as a GEMM on a copy
/// packed at the stride (under each of its tiles), the others on the k x k kernels.
#[test]
fn conv1x1_strided_matches_reference_with_every_variant() {
    let geometry = ConvGeometry::new(1, 2, 0, 1);
    for variant in ConvVariant::ALL {
        let weights = Rng::new(5).conv_weights(8, 8, 1, true);
        let conv = Conv2d::new("conv", weights, geometry).unwrap();
        if let Ok(resolved) = conv
            .with_config(variant.into())
            .config_for(ctx(), [1, 8, 9, 9])
        {
            let gemm = resolved.variant == ConvVariant::Packed8;
            assert_eq!(resolved.family == Family::Pointwise, gemm, "{variant:?}");
        }
        check(variant.into(), Family::Taps, random_strided_pointwise);
    }
    for tile in packed8_tiles() {
        check(
            ConvConfig::new(ConvVariant::Packed8, tile),
            Family::Taps,
            random_strided_pointwise,
        );
    }
    // A ResNet downsample's shape: Auto runs it as the GEMM with the long GEMMs' tile where
    // the adapter has packed8.
    let conv = Conv2d::new("conv", Rng::new(6).conv_weights(32, 16, 1, true), geometry).unwrap();
    let resolved = conv.config_for(ctx(), [1, 16, 64, 64]).unwrap();
    if ConvVariant::Packed8
        .unsupported(ctx(), Family::Pointwise)
        .is_none()
    {
        assert_eq!(resolved.family, Family::Pointwise);
        assert_eq!(resolved.tile, RegisterTile::new(4, 4, 8));
    }
}

/// What `Auto` picks on this adapter for a k x k layer, and that kernel is right.
#[test]
fn conv2d_default_matches_reference() {
    let gpu_guard = gpu();
    let conv = |in_channels: usize| {
        let weights = Rng::new(3).conv_weights(12, in_channels, 3, true);
        Conv2d::new("conv", weights, ConvGeometry::same_3x3(2)).unwrap()
    };
    let picked = |in_channels: usize| {
        conv(in_channels)
            .config_for(ctx(), [1, in_channels, 9, 9])
            .unwrap()
            .variant
    };
    let (wide, narrow) = match (ctx().has_subgroups(), ctx().has_int64()) {
        (true, true) => (ConvVariant::Packed8, ConvVariant::Packed),
        (true, false) => (ConvVariant::Packed, ConvVariant::Packed),
        (false, _) => (ConvVariant::Blocked, ConvVariant::Blocked),
    };
    assert_eq!(picked(16), wide);
    // A 3-channel stem: padding it to 8 channels would do 2.7x the work.
    assert_eq!(picked(3), narrow);
    drop(gpu_guard);
    check_taps(ConvConfig::AUTO);
}

#[test]
fn conv1x1_direct_matches_reference() {
    check_pointwise(ConvVariant::Direct.into());
}

#[test]
fn conv1x1_tiled_matches_reference() {
    check_pointwise(ConvVariant::Tiled.into());
}

#[test]
fn conv1x1_blocked_matches_reference_under_every_tile() {
    check_pointwise(ConvVariant::Blocked.into());
    for tile in BLOCKED_TILES {
        check_pointwise(ConvConfig::new(ConvVariant::Blocked, tile));
    }
}

#[test]
fn conv1x1_subgroup_matches_reference_under_every_tile() {
    check_pointwise(ConvVariant::Subgroup.into());
    for tile in SUBGROUP_TILES {
        check_pointwise(ConvConfig::new(ConvVariant::Subgroup, tile));
    }
}

/// The 64-bit-load 1x1: C_in runs 1..13, so the zero padding to 8 channels is exercised.
#[test]
fn conv1x1_packed8_matches_reference_under_every_tile() {
    check_pointwise(ConvVariant::Packed8.into());
    for tile in packed8_tiles() {
        check_pointwise(ConvConfig::new(ConvVariant::Packed8, tile));
    }
}

/// What `Auto` picks on this adapter for a 1x1 layer, and that kernel is right.
#[test]
fn conv1x1_default_matches_reference() {
    let gpu_guard = gpu();
    let weights = Rng::new(4).conv_weights(12, 4, 1, true);
    let conv = Conv2d::new("conv", weights, ConvGeometry::pointwise()).unwrap();
    let expected = if ctx().has_subgroups() && ctx().has_int64() {
        ConvVariant::Packed8
    } else if ctx().has_subgroups() {
        ConvVariant::Subgroup
    } else {
        ConvVariant::Tiled
    };
    let resolved = conv.config_for(ctx(), [1, 4, 9, 9]).unwrap();
    assert_eq!(
        (resolved.family, resolved.variant),
        (Family::Pointwise, expected)
    );
    drop(gpu_guard);
    check_pointwise(ConvConfig::AUTO);
}

/// A configuration the adapter cannot run is an error that says why, not a validation failure.
#[test]
fn subgroup_variant_without_subgroups_is_a_clear_error() {
    let _gpu = gpu();
    if ctx().has_subgroups() {
        return;
    }
    let weights = Rng::new(5).conv_weights(4, 4, 1, false);
    let conv = Conv2d::new("conv", weights, ConvGeometry::pointwise())
        .unwrap()
        .with_config(ConvVariant::Subgroup.into());
    let x = Tensor::empty(ctx(), "x", [1, 4, 3, 3]).unwrap();
    let error = conv
        .forward(ctx(), &x, false)
        .err()
        .expect("no subgroups: an error");
    assert!(error.to_string().contains("subgroup"), "{error}");
}

/// Labels round-trip through `label` and `parse_for` (the tuner's cache format), a label for
/// another geometry is refused, and tiles outside a kernel's range are rejected with the range.
#[test]
fn configs_round_trip_and_reject_bad_tiles() {
    let _gpu = gpu();
    let geometries = [
        ConvGeometry::same_3x3(6),
        ConvGeometry::pointwise(),
        ConvGeometry::new(7, 2, 3, 1),
    ];
    for geometry in geometries {
        for config in ConvConfig::candidates(ctx(), Family::of(&geometry)) {
            let label = config.label(&geometry);
            assert_eq!(
                ConvConfig::parse_for(&label, &geometry).unwrap(),
                config,
                "{label}"
            );
        }
    }
    // Parsing is independent of the adapter (candidates() leaves out what it cannot run).
    let parse = |text: &str, geometry: &ConvGeometry| ConvConfig::parse_for(text, geometry);
    assert_eq!(
        parse("packed:c16p3w8", &ConvGeometry::same_3x3(1)).unwrap(),
        ConvConfig::new(ConvVariant::Packed, RegisterTile::new(4, 3, 8))
    );
    assert_eq!(
        parse("conv3x3_packed8:c8p4w16", &ConvGeometry::same_3x3(2)).unwrap(),
        ConvConfig::new(ConvVariant::Packed8, RegisterTile::new(2, 4, 16))
    );
    assert_eq!(
        parse("conv2d_direct", &ConvGeometry::new(7, 2, 3, 1)).unwrap(),
        ConvVariant::Direct.into()
    );
    let error = parse("conv3x3_direct", &ConvGeometry::pointwise())
        .unwrap_err()
        .to_string();
    assert!(error.contains("conv1x1"), "{error}");
    let error = parse("fastest", &ConvGeometry::pointwise())
        .unwrap_err()
        .to_string();
    assert!(error.contains("found 'fastest'"), "{error}");
    // Zeros and absurd sizes never reach a launcher's arithmetic, whatever the variant.
    for text in [
        "tiled:c0p1w8",
        "direct:c4p0w8",
        "blocked:c8p1w0",
        "subgroup:c16p1w99999999",
    ] {
        let error = parse(text, &ConvGeometry::same_3x3(1))
            .unwrap_err()
            .to_string();
        assert!(error.contains("register tile"), "{text}: {error}");
    }

    let rejection = |config: ConvConfig, geometry: ConvGeometry| {
        let k = geometry.kernel_size;
        let weights = Rng::new(6).conv_weights(4, 4, k, false);
        let conv = Conv2d::new("conv", weights, geometry)
            .unwrap()
            .with_config(config);
        conv.config_for(ctx(), [1, 4, 9, 9])
            .err()
            .unwrap_or_else(|| panic!("{config} is rejected"))
            .to_string()
    };
    let blocked = ConvConfig::new(ConvVariant::Blocked, RegisterTile::new(9, 1, 8));
    let error = rejection(blocked, ConvGeometry::same_3x3(1));
    assert!(error.contains("c36p1w8"), "{error}");
    // packed8 spells out broadcasts for 2, 4 and 8 vec4s only; without subgroups or 64-bit
    // integers the error names what is missing instead. The same for both families.
    let packed8 = ConvConfig::new(ConvVariant::Packed8, RegisterTile::new(6, 2, 8));
    let expected = match ConvVariant::Packed8.unsupported(ctx(), Family::Taps) {
        None => "c24p2w8",
        Some(_) if !ctx().has_subgroups() => "subgroup",
        Some(_) => "64-bit integers",
    };
    for geometry in [ConvGeometry::same_3x3(1), ConvGeometry::pointwise()] {
        let error = rejection(packed8, geometry);
        assert!(error.contains(expected), "{error}");
    }
    // The 1x1 GEMMs have no packed-by-4 kernel.
    let error = rejection(ConvVariant::Packed.into(), ConvGeometry::pointwise());
    assert!(error.contains("packed-by-4"), "{error}");
}

/// Weights must be the geometry's kernel size, and a residual or per-image bias of the wrong
/// shape is refused with the tensor named.
#[test]
fn mismatched_weights_and_epilogue_tensors_are_errors() {
    let _gpu = gpu();
    let weights: ConvWeights = Rng::new(8).conv_weights(4, 2, 3, true);
    let error = Conv2d::new("conv", weights.clone(), ConvGeometry::new(7, 2, 3, 1))
        .err()
        .expect("a 3x3 weight for a 7x7 geometry")
        .to_string();
    assert!(error.contains("7x7") && error.contains("3x3"), "{error}");
    let conv = Conv2d::new("conv", weights, ConvGeometry::new(3, 2, 1, 1)).unwrap();
    let x = Tensor::empty(ctx(), "x", [1, 2, 9, 9]).unwrap();
    let wrong = Tensor::empty(ctx(), "skip", [1, 4, 9, 9]).unwrap();
    let epilogue = Epilogue {
        residual: Some(&wrong),
        ..Default::default()
    };
    let error = conv
        .forward_with(ctx(), &x, &epilogue)
        .err()
        .expect("residual 9x9 for 5x5");
    assert!(error.to_string().contains("skip"), "{error}");
    let bias = Tensor::empty(ctx(), "image bias", [2, 4, 1, 1]).unwrap();
    let epilogue = Epilogue {
        per_image_bias: Some(&bias),
        ..Default::default()
    };
    let error = conv
        .forward_with(ctx(), &x, &epilogue)
        .err()
        .expect("bias for N = 2");
    assert!(error.to_string().contains("image bias"), "{error}");
}

/// The packed kernels' input layout: (N, ceil(C / P), H', W', P) with zeros past C, pixel
/// (y, x) taken from (S y, S x), exactly, for both group sizes and strides 1 to 3 on odd and
/// even sizes.
#[test]
fn pack_channels_matches_host_packing() {
    let _gpu = gpu();
    let mut rng = Rng::new(41);
    for (pack, stride) in [(4, 1), (8, 1), (8, 2), (4, 2), (8, 3)] {
        let packing = Packing {
            channels: pack,
            stride,
        };
        for shape in [[2, 5, 3, 7], [1, 8, 1, 1], [1, 1, 4, 9], [3, 11, 17, 6]] {
            let (x, hx) = upload(&mut rng, shape);
            let packed = atrous::ops::pack_channels(ctx(), &x, packing).unwrap();
            let [n, c, h, w] = shape;
            let groups = c.div_ceil(pack);
            let (oh, ow) = (h.div_ceil(stride), w.div_ceil(stride));
            assert_eq!(packed.shape(), [n, groups, oh, pack * ow]);
            let mut expected = vec![0.0f32; n * groups * oh * ow * pack];
            for (i, &v) in hx.data.iter().enumerate() {
                let [b, ch, y, x] = unravel(i, shape);
                if y % stride != 0 || x % stride != 0 {
                    continue;
                }
                let plane = b * groups + ch / pack;
                let pixel = (y / stride) * ow + x / stride;
                expected[(plane * oh * ow + pixel) * pack + ch % pack] = v as f32;
            }
            assert_eq!(
                packed.to_vec(ctx()).unwrap(),
                expected,
                "{packing}, {shape:?}"
            );
        }
    }
    let x = upload(&mut rng, [1, 4, 2, 2]).0;
    let error = atrous::ops::pack_channels(ctx(), &x, Packing::by(6))
        .err()
        .expect("groups of 6 channels are rejected");
    assert!(error.to_string().contains("4 or 8"), "{error}");
    let zero_stride = Packing {
        channels: 8,
        stride: 0,
    };
    let error = atrous::ops::pack_channels(ctx(), &x, zero_stride)
        .err()
        .expect("stride 0 is rejected");
    assert!(error.to_string().contains("stride"), "{error}");
}

/// Winograd's error against the float64 reference as C_in grows (random data in [-1, 1), a
/// 24 x 24 map, 8 output channels, rates 1 and 4), beside the direct kernel's: F(2x2) and F(3x3)
/// within the op tolerance at every C_in up to 4096, F(4x4) within it over the C_in range where the
/// default and the tuner may take it. `--nocapture` prints the table BENCHMARKS.md quotes.
#[test]
fn winograd_error_stays_within_the_tolerance_where_it_is_chosen() {
    let _gpu = gpu();
    eprintln!("C_in  rate  direct rel L2 (max abs)  F(2x2)  F(3x3)  F(4x4)");
    for cin in [16, 64, 256, 512, 1024, 2048, 4096] {
        for dilation in [1, 4] {
            let mut rng = Rng::new(cin as u64);
            let (x, hx) = upload(&mut rng, [1, cin, 24, 24]);
            let weights = rng.conv_weights(8, cin, 3, true);
            let geometry = ConvGeometry::same_3x3(dilation);
            let expected = reference::conv2d_with(&hx, &weights, geometry, None, None, false);
            let mut line = format!("{cin:5} {dilation:4}");
            // The direct kernel pinned (Auto could pick Winograd), then every tile.
            let direct = ConvConfig::select(ctx(), Family::Taps, cin, 8, 24 * 24);
            let tiles = WinogradTile::ALL.map(Some);
            for tile in std::iter::once(None).chain(tiles) {
                let config = match tile {
                    Some(tile) => ConvConfig::AUTO.winograd(tile),
                    None => direct,
                };
                let conv = Conv2d::new("conv", weights.clone(), geometry)
                    .unwrap()
                    .with_config(config);
                let y = conv
                    .forward(ctx(), &x, false)
                    .unwrap()
                    .to_vec(ctx())
                    .unwrap();
                let c = compare(&y, &expected.data);
                line += &format!("  {:.2e} ({:.1e})", c.rel_l2, c.max_abs);
                if tile.is_none_or(|tile| tile.allowed(cin)) {
                    assert!(
                        c.rel_l2 <= REL_L2_TOLERANCE,
                        "{} at C_in {cin}, rate {dilation}: {:.2e}",
                        config.label(&geometry),
                        c.rel_l2
                    );
                }
            }
            eprintln!("{line}");
        }
    }
}

/// F(4x4) on more input channels than its GEMM sums at once (winograd::F4_PART_CHANNELS): the
/// GEMM sums 2 and 3 parts apart (the last padded with zeros: 2056 and 4104 channels split
/// unevenly into groups of 8), the output transform adds them; through the epilogue, with the
/// packed8 GEMM (V packed by 8) and the tiled one (V in planes).
#[test]
fn winograd_f4_adds_the_parts_of_a_wide_input() {
    let _gpu = gpu();
    for (cin, parts) in [(2056, 2), (4104, 3)] {
        assert_eq!(WinogradTile::F4.parts(cin), parts);
        let mut rng = Rng::new(cin as u64);
        let input = [2, cin, 7, 9];
        let (x, hx) = upload(&mut rng, input);
        let weights = rng.conv_weights(12, cin, 3, true);
        let geometry = ConvGeometry::same_3x3(2);
        let residual = upload(&mut rng, [2, 12, 7, 9]);
        let expected =
            reference::conv2d_with(&hx, &weights, geometry, None, Some(&residual.1), true);
        // Also under 4 MiB storage bindings: a point's parts (66-88 KiB each with packed8)
        // share a weight buffer, the 36 points spread over 2 or 3 (4.8 and 9.5 MB in all).
        let small = Context::new().unwrap().with_binding_limit(4 << 20);
        let data = x.to_vec(ctx()).unwrap();
        let r = residual.0.to_vec(ctx()).unwrap();
        for (context, limit) in [(ctx(), "default"), (&small, "4 MiB")] {
            let x = Tensor::from_slice(context, "x", input, &data).unwrap();
            let r = Tensor::from_slice(context, "residual", [2, 12, 7, 9], &r).unwrap();
            for variant in [ConvVariant::Packed8, ConvVariant::Tiled] {
                if variant.unsupported(context, Family::Pointwise).is_some() {
                    continue;
                }
                let config = ConvConfig::from(variant).winograd(WinogradTile::F4);
                let epilogue = Epilogue {
                    relu: true,
                    residual: Some(&r),
                    ..Default::default()
                };
                let y = run(context, &weights, geometry, config, &x, &epilogue);
                let what = format!("{} C_in {cin}, {limit} bindings", config.label(&geometry));
                assert_close(&what, &y, &expected);
            }
        }
    }
}

/// Winograd where padding wider than the kernel's reach leaves tiles that read only padding
/// (their outputs are bias, residual and ReLU alone, written without a transform or a GEMM):
/// whole tile rows, whole tile columns, and both, at dilations 1 and 3, every tile size.
#[test]
fn winograd_tiles_that_read_only_padding_get_the_epilogue() {
    let _gpu = gpu();
    let cases = [
        ([2, 5, 5, 4], 1, [6, 6]),
        ([1, 6, 7, 9], 3, [10, 4]),
        ([1, 3, 1, 1], 2, [9, 2]),
    ];
    for (input, dilation, padding) in cases {
        let mut rng = Rng::new(input[1] as u64);
        let geometry = ConvGeometry {
            padding,
            ..ConvGeometry::new(3, 1, 0, dilation)
        };
        let (x, hx) = upload(&mut rng, input);
        let weights = rng.conv_weights(7, input[1], 3, true);
        let (out_h, out_w) = geometry.out_hw(input[2], input[3]).unwrap();
        let residual = upload(&mut rng, [input[0], 7, out_h, out_w]);
        let expected =
            reference::conv2d_with(&hx, &weights, geometry, None, Some(&residual.1), true);
        for tile in WinogradTile::ALL {
            // F(2x2)'s tiles, the narrowest, read only padding in every case.
            let [rows, cols] = tile.origins(&geometry, input[2], input[3]).unwrap();
            assert!(
                tile != WinogradTile::F2 || !rows.dead.is_empty() || !cols.dead.is_empty(),
                "{geometry:?}: no tile reads only padding"
            );
            let config = ConvConfig::AUTO.winograd(tile);
            let epilogue = Epilogue {
                relu: true,
                residual: Some(&residual.0),
                ..Default::default()
            };
            let y = run(ctx(), &weights, geometry, config, &x, &epilogue);
            let what = format!("{} on {input:?}, {geometry:?}", config.label(&geometry));
            assert_close(&what, &y, &expected);
        }
    }
}

/// Winograd on a device whose storage bindings hold 64 KiB, with 64 -> 16 channels on 16 x 16:
/// F(2x2)'s points run in ranges of 4 within one weight buffer, F(4x4)'s transformed weights
/// (4 KiB a point) spread over three buffers; the output is still right.
#[test]
fn winograd_splits_weights_and_ranges_under_a_small_binding_limit() {
    let _gpu = gpu();
    let limit = 64 << 10;
    let small = Context::new().unwrap().with_binding_limit(limit);
    let mut rng = Rng::new(41);
    let shape = [1, 64, 16, 16];
    let data = rng.vec(shape.iter().product(), 1.0);
    let x = Tensor::from_slice(&small, "x", shape, &data).unwrap();
    let hx = HostTensor::from_f32(shape, &data);
    let weights = rng.conv_weights(16, 64, 3, true);
    let geometry = ConvGeometry::same_3x3(1);
    let expected = reference::conv2d_with(&hx, &weights, geometry, None, None, true);
    for tile in WinogradTile::ALL {
        let config = ConvConfig::AUTO.winograd(tile);
        let conv = Conv2d::new("conv", weights.clone(), geometry)
            .unwrap()
            .with_config(config);
        let [v, m] = conv.scratch_for(&small, shape).unwrap().unwrap();
        assert!(v <= limit && m <= limit, "scratch {v}, {m} past the limit");
        let y = conv
            .forward(&small, &x, true)
            .unwrap()
            .to_vec(&small)
            .unwrap();
        assert_close(&config.label(&geometry), &y, &expected);
    }
}

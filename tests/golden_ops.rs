//! Every op against PyTorch's own functions (`F.conv2d` of any geometry, with the epilogue's
//! residual and ReLU, `F.batch_norm`, `F.max_pool2d`, `F.adaptive_avg_pool2d`, `F.interpolate`,
//! `torch.cat`): golden outputs in tests/fixtures/ops.safetensors, written by
//! scripts/make_fixtures.py. The file carries a format version; a missing or stale file fails.
//!
//! `ATROUS_OP_FIXTURES=FILE` points the same tests at another fixture file, e.g. random shapes
//! from `scripts/make_fixtures.py --random 300 --seed S --out FILE`; the coverage counts below
//! then apply only to the committed file.

mod common;

use std::collections::BTreeMap;

use atrous::ops::conv2d::{winograd, ConvConfig, ConvVariant, Epilogue, Family, WinogradTile};
use atrous::ops::{self, BatchNorm, BatchNorm2d, Conv2d, ConvWeights};
use atrous::shape::{ConvGeometry, PoolGeometry};
use atrous::Tensor;
use safetensors::SafeTensors;
use serde_json::Value;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/ops.safetensors"
);
const FORMAT: &str = "atrous-op-fixtures";
const VERSION: &str = "2";
/// Relative L2 error allowed against PyTorch's f32 results.
const TOLERANCE: f64 = 1e-5;

struct Fixture {
    bytes: Vec<u8>,
}

fn fixture_path() -> (String, bool) {
    match std::env::var("ATROUS_OP_FIXTURES") {
        Ok(path) => (path, false),
        Err(_) => (FIXTURE.to_string(), true),
    }
}

impl Fixture {
    fn load() -> Self {
        let (path, _) = fixture_path();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!("{path}: {e}. Regenerate it with `python scripts/make_fixtures.py` (see its header)")
        });
        Fixture { bytes }
    }

    fn parse(&self) -> (SafeTensors<'_>, BTreeMap<String, String>) {
        let (_, metadata) = SafeTensors::read_metadata(&self.bytes).expect("fixture header");
        let meta: BTreeMap<String, String> = metadata
            .metadata()
            .clone()
            .map(|m| m.into_iter().collect())
            .expect("fixture has __metadata__");
        let tensors = SafeTensors::deserialize(&self.bytes).expect("fixture tensors");
        (tensors, meta)
    }
}

fn tensor(st: &SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<f32>) {
    let view = st
        .tensor(name)
        .unwrap_or_else(|e| panic!("fixture tensor {name}: {e}"));
    assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name} dtype");
    (
        view.shape().to_vec(),
        bytemuck::pod_collect_to_vec(view.data()),
    )
}

fn shape4(name: &str, shape: &[usize]) -> [usize; 4] {
    shape
        .try_into()
        .unwrap_or_else(|_| panic!("{name}: rank 4 expected, found {shape:?}"))
}

fn upload(st: &SafeTensors<'_>, name: &str) -> Tensor {
    let (shape, data) = tensor(st, name);
    Tensor::from_slice(common::ctx(), name, shape4(name, &shape), &data).expect("upload")
}

fn conv_weights(st: &SafeTensors<'_>, case: &str, bias: bool) -> ConvWeights {
    let (shape, weight) = tensor(st, &format!("{case}.w"));
    let bias = bias.then(|| tensor(st, &format!("{case}.b")).1);
    ConvWeights::new(case, shape4("w", &shape), weight, bias).expect("fixture weights")
}

fn batchnorm(st: &SafeTensors<'_>, case: &str, eps: f64) -> BatchNorm {
    let get = |role: &str| tensor(st, &format!("{case}.{role}")).1;
    BatchNorm {
        gamma: get("gamma"),
        beta: get("beta"),
        running_mean: get("mean"),
        running_var: get("var"),
        eps,
    }
}

fn number(params: &Value, key: &str) -> usize {
    params[key]
        .as_u64()
        .unwrap_or_else(|| panic!("fixture parameter {key}")) as usize
}

fn geometry(params: &Value) -> ConvGeometry {
    let padding = params["padding"].as_array().expect("padding");
    ConvGeometry {
        padding: [
            padding[0].as_u64().unwrap() as usize,
            padding[1].as_u64().unwrap() as usize,
        ],
        ..ConvGeometry::new(
            number(params, "kernel_size"),
            number(params, "stride"),
            0,
            number(params, "dilation"),
        )
    }
}

/// Runs one conv with every kernel variant of its family that the adapter has (the variants
/// named by kernel and stride, `conv3x3s2_packed8`), and for a 3x3 of stride 1 with Winograd's
/// F(2x2), F(3x3) and F(4x4) too (`conv3x3_wino4_auto`); returns the outputs.
fn run_conv(
    weights: &ConvWeights,
    geometry: ConvGeometry,
    epilogue: &Epilogue,
    x: &Tensor,
) -> Vec<(String, Tensor)> {
    let ctx = common::ctx();
    let family = Family::of(&geometry);
    let mut configs: Vec<ConvConfig> = ConvVariant::ALL
        .into_iter()
        .filter(|v| v.unsupported(ctx, family).is_none())
        .map(ConvConfig::from)
        .collect();
    if winograd::eligible(&geometry) {
        configs.extend(WinogradTile::ALL.map(|t| ConvConfig::AUTO.winograd(t)));
    }
    configs
        .into_iter()
        .map(|config| {
            let conv = Conv2d::new("conv", weights.clone(), geometry)
                .unwrap()
                .with_config(config);
            (
                config.label(&geometry),
                conv.forward_with(ctx, x, epilogue).unwrap(),
            )
        })
        .collect()
}

/// Runs a case and returns (variant label, output) pairs to compare with `NAME.y`.
fn run_case(st: &SafeTensors<'_>, case: &str, params: &Value) -> Vec<(String, Tensor)> {
    let ctx = common::ctx();
    let x = || upload(st, &format!("{case}.x"));
    let flag = |key: &str| {
        params[key]
            .as_bool()
            .unwrap_or_else(|| panic!("{case}: {key}"))
    };
    match params["op"].as_str().expect("op") {
        "conv2d" => {
            let weights = conv_weights(st, case, flag("bias"));
            let residual = flag("residual").then(|| upload(st, &format!("{case}.r")));
            let epilogue = Epilogue {
                relu: flag("relu"),
                residual: residual.as_ref(),
                ..Default::default()
            };
            run_conv(&weights, geometry(params), &epilogue, &x())
        }
        "conv_bn" => {
            let weights = conv_weights(st, case, flag("bias"));
            let bn = batchnorm(st, case, params["eps"].as_f64().unwrap());
            let folded = weights.fold_batchnorm(&bn).unwrap();
            run_conv(
                &folded,
                geometry(params),
                &Epilogue::relu(flag("relu")),
                &x(),
            )
        }
        "max_pool2d" => {
            let geometry = PoolGeometry {
                kernel_size: number(params, "kernel_size"),
                stride: number(params, "stride"),
                padding: number(params, "padding"),
            };
            vec![(
                "max_pool2d".into(),
                ops::max_pool2d(ctx, &x(), &geometry).unwrap(),
            )]
        }
        "batchnorm" => {
            let bn = batchnorm(st, case, params["eps"].as_f64().unwrap());
            let layer = BatchNorm2d::new(ctx, "bn", &bn, flag("relu")).unwrap();
            vec![("batchnorm".into(), layer.forward(ctx, &x()).unwrap())]
        }
        "adaptive_avg_pool2d" => {
            let size = &params["output_size"];
            let size = [
                size[0].as_u64().unwrap() as usize,
                size[1].as_u64().unwrap() as usize,
            ];
            vec![(
                "pool".into(),
                ops::adaptive_avg_pool2d(ctx, &x(), size).unwrap(),
            )]
        }
        "interpolate" => {
            let size = &params["size"];
            let size = [
                size[0].as_u64().unwrap() as usize,
                size[1].as_u64().unwrap() as usize,
            ];
            let out = ops::interpolate(ctx, &x(), size, flag("align_corners")).unwrap();
            vec![("interpolate".into(), out)]
        }
        "concat" => {
            let count = params["count"].as_u64().unwrap() as usize;
            let inputs: Vec<Tensor> = (0..count)
                .map(|i| upload(st, &format!("{case}.x{i}")))
                .collect();
            let refs: Vec<&Tensor> = inputs.iter().collect();
            vec![("concat".into(), ops::concat(ctx, &refs).unwrap())]
        }
        other => panic!("{case}: unknown op {other} in fixture"),
    }
}

/// Runs every fixture case of `op` (with every kernel variant that computes it) and checks it
/// against PyTorch's output; returns how many comparisons each kernel made.
fn check_op(op: &str) -> BTreeMap<String, usize> {
    let fixture = Fixture::load();
    let (st, meta) = fixture.parse();
    assert_eq!(
        meta.get("format").map(String::as_str),
        Some(FORMAT),
        "fixture format"
    );
    assert_eq!(
        meta.get("version").map(String::as_str),
        Some(VERSION),
        "stale fixture: regenerate with scripts/make_fixtures.py"
    );
    let cases: Vec<String> = serde_json::from_str(&meta["cases"]).expect("case list");
    let mut per_kernel: BTreeMap<String, usize> = BTreeMap::new();
    let mut worst = (0.0f64, String::new());
    for case in &cases {
        let params: Value =
            serde_json::from_str(&meta[&format!("case.{case}")]).expect("case params");
        if params["op"] != op {
            continue;
        }
        let (y_shape, expected) = tensor(&st, &format!("{case}.y"));
        let expected: Vec<f64> = expected.iter().map(|&v| v as f64).collect();
        for (label, output) in run_case(&st, case, &params) {
            assert_eq!(
                output.shape().to_vec(),
                y_shape,
                "{case} ({label}) output shape"
            );
            let actual = output.to_vec(common::ctx()).unwrap();
            let c = common::assert_close(
                &format!("{case} ({label})"),
                output.shape(),
                &actual,
                &expected,
                TOLERANCE,
            );
            if c.rel_l2 >= worst.0 {
                worst = (
                    c.rel_l2,
                    format!("{case} ({label}), max abs {:.2e}", c.max_abs),
                );
            }
            *per_kernel.entry(label).or_default() += 1;
        }
    }
    println!(
        "{op}: per kernel {per_kernel:?}; worst rel L2 {:.2e} in {}",
        worst.0, worst.1
    );
    per_kernel
}

fn assert_covered(per_kernel: &BTreeMap<String, usize>, kernels: &[&str], at_least: usize) {
    if !fixture_path().1 {
        return;
    }
    for kernel in kernels {
        let count = per_kernel.get(*kernel).copied().unwrap_or(0);
        assert!(
            count >= at_least,
            "fixture runs {kernel} {count} times, expected >= {at_least}: {per_kernel:?}"
        );
    }
}

#[test]
fn conv2d_matches_pytorch() {
    let runs = check_op("conv2d");
    assert_covered(&runs, &["conv3x3_direct", "conv3x3_tiled"], 20);
    assert_covered(&runs, &["conv1x1_direct", "conv1x1_tiled"], 5);
    // What whole networks add: the 7x7 stem, 3x3 and 1x1 of stride 2.
    assert_covered(&runs, &["conv7x7s2_direct", "conv7x7s2_blocked"], 2);
    assert_covered(&runs, &["conv3x3s2_direct", "conv3x3s2_blocked"], 4);
    assert_covered(&runs, &["conv1x1s2_direct", "conv1x1s2_blocked"], 3);
}

#[test]
fn max_pool2d_matches_pytorch() {
    assert_covered(&check_op("max_pool2d"), &["max_pool2d"], 5);
}

#[test]
fn conv_with_folded_batchnorm_matches_pytorch_conv_then_batch_norm() {
    let runs = check_op("conv_bn");
    assert_covered(
        &runs,
        &[
            "conv3x3_direct",
            "conv3x3_tiled",
            "conv1x1_direct",
            "conv1x1_tiled",
        ],
        3,
    );
}

#[test]
fn standalone_batchnorm_matches_pytorch() {
    assert_covered(&check_op("batchnorm"), &["batchnorm"], 3);
}

#[test]
fn adaptive_avg_pool2d_matches_pytorch() {
    assert_covered(&check_op("adaptive_avg_pool2d"), &["pool"], 10);
}

#[test]
fn interpolate_matches_pytorch_for_both_align_corners() {
    assert_covered(&check_op("interpolate"), &["interpolate"], 10);
}

#[test]
fn concat_matches_torch_cat() {
    assert_covered(&check_op("concat"), &["concat"], 3);
}

/// The fixture itself must cover the edge cases the engine promises (the script could drift).
#[test]
fn fixture_covers_the_promised_edge_cases() {
    if !fixture_path().1 {
        return;
    }
    let fixture = Fixture::load();
    let (st, meta) = fixture.parse();
    let cases: Vec<String> = serde_json::from_str(&meta["cases"]).unwrap();
    let mut dilations = std::collections::BTreeSet::new();
    let (mut beyond_map, mut n2, mut hw_differ, mut pool_up, mut pool_nondiv, mut interp_from_1x1) =
        (false, false, false, false, false, [false; 2]);
    // Strided kernels on odd and on even maps, a residual, a max pool of all-negative values.
    let (mut strided_odd, mut strided_even, mut residual, mut pool_negative) =
        (false, false, false, false);
    for case in &cases {
        let params: Value = serde_json::from_str(&meta[&format!("case.{case}")]).unwrap();
        let x_name = if params["op"] == "concat" {
            format!("{case}.x0")
        } else {
            format!("{case}.x")
        };
        let (shape, _) = tensor(&st, &x_name);
        n2 |= shape[0] == 2;
        hw_differ |= shape[2] != shape[3];
        match params["op"].as_str().unwrap() {
            "conv2d" if params["stride"] == 1 && params["kernel_size"] == 3 => {
                let d = params["dilation"].as_u64().unwrap() as usize;
                dilations.insert(d);
                beyond_map |= d >= shape[2].max(shape[3]);
                residual |= params["residual"] == true;
            }
            "conv2d" if params["stride"] == 2 => {
                strided_odd |= shape[2] % 2 == 1;
                strided_even |= shape[2] % 2 == 0;
            }
            "max_pool2d" => pool_negative |= case.ends_with("_neg"),
            "adaptive_avg_pool2d" => {
                let o = params["output_size"][0].as_u64().unwrap() as usize;
                pool_up |= o > shape[2];
                pool_nondiv |= shape[2] % o != 0;
            }
            "interpolate" if shape[2] == 1 && shape[3] == 1 => {
                interp_from_1x1[params["align_corners"].as_bool().unwrap() as usize] = true;
            }
            _ => {}
        }
    }
    for d in [1, 2, 6, 12, 18, 24, 36] {
        assert!(dilations.contains(&d), "no 3x3 case with dilation {d}");
    }
    assert!(
        beyond_map && n2 && hw_differ && pool_up && pool_nondiv && interp_from_1x1 == [true, true]
    );
    assert!(strided_odd && strided_even && residual && pool_negative);
}

//! Shared by the graph tests (tests/graphs.rs, tests/run_cli.rs): the golden fixtures of
//! scripts/make_graph_fixtures.py, and safetensors files written by hand.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use atrous::graph::StateDict;
use atrous::models::ModelOptions;
use atrous::tools::run::read_input;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

pub const FIXTURE_FORMAT: &str = "atrous-graph-fixtures";
pub const FIXTURE_VERSION: &str = "1";

/// Relative L2 error allowed against PyTorch's float32 output.
pub const REL_L2_TOLERANCE: f64 = 1e-4;

/// Every fixture case, as named by scripts/make_graph_fixtures.py.
pub const CASES: [&str; 9] = [
    "aspp_r6-12-18_n2_c16to12_h13w11",
    "aspp_r12-24-36_n3_c24to16_h9w7_f64",
    "aspp_r1-2-3-5_n1_c20to10_h17w15_bf16",
    "deeplab_head_r12-24-36_n2_c16_cls5_h11w9_size21x17_f16",
    "ppm_b1-2-3-6_n1_c16to12_h60w60",
    "ppm_b1-2-3-6_n3_c24to20_h5w4",
    "psp_head_b1-2-3-6_n2_c32_cls5_h7w9",
    "psp_head_b1-2-3_n1_c18_cls3_h13w11_size27x23",
    "aspp_no-rates_n1_c16to8_h7w5",
];

pub fn fixture_path(case: &str, role: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/graphs")
        .join(format!("{case}.{role}.safetensors"))
}

/// One golden case: the weights, the model and its options, the input and PyTorch's output.
pub struct Case {
    pub name: String,
    /// The registry name (`aspp`, `deeplab-head`, `ppm`, `psp-head`).
    pub model: &'static str,
    pub options: ModelOptions,
    /// The `atrous run` subcommand and its options for this case.
    pub cli_args: Vec<String>,
    pub weights: StateDict,
    pub input_shape: [usize; 4],
    pub input: Vec<f32>,
    pub expected_shape: [usize; 4],
    pub expected: Vec<f32>,
}

/// Fails loudly unless the file is a fixture of the current format and version.
pub fn check_fixture_file(file: &StateDict, case: &str, role: &str) {
    let metadata = file.metadata();
    let field = |key: &str| metadata.and_then(|m| m.get(key)).map(String::as_str);
    assert!(
        field("format") == Some(FIXTURE_FORMAT) && field("version") == Some(FIXTURE_VERSION),
        "{}: fixture format/version {:?}/{:?}, expected {FIXTURE_FORMAT:?}/{FIXTURE_VERSION:?}: \
         stale or foreign fixture; regenerate with scripts/make_graph_fixtures.py",
        file.file_name(),
        field("format"),
        field("version"),
    );
    assert_eq!(field("case"), Some(case), "{}", file.file_name());
    assert_eq!(field("role"), Some(role), "{}", file.file_name());
}

fn list(value: &serde_json::Value, key: &str) -> Vec<usize> {
    value[key]
        .as_array()
        .unwrap_or_else(|| panic!("fixture config lacks '{key}'"))
        .iter()
        .map(|v| v.as_u64().expect("a positive integer") as usize)
        .collect()
}

fn joined(values: &[usize]) -> String {
    values
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

pub fn load_case(name: &str) -> Case {
    let weights = StateDict::open(fixture_path(name, "weights"), "").expect("fixture weights");
    check_fixture_file(&weights, name, "weights");
    for role in ["input", "expected"] {
        let file = StateDict::open(fixture_path(name, role), "").expect("fixture file");
        check_fixture_file(&file, name, role);
    }
    let config: serde_json::Value = serde_json::from_str(
        weights
            .metadata()
            .and_then(|m| m.get("config"))
            .expect("fixture weights carry a config"),
    )
    .expect("fixture config is JSON");
    let size = config["size"].as_array().map(|s| {
        let s: Vec<usize> = s.iter().map(|v| v.as_u64().unwrap() as usize).collect();
        [s[0], s[1]]
    });
    let graph = config["graph"].as_str().expect("fixture graph kind");
    let (model, options, mut cli_args) = match graph {
        "aspp" | "deeplab_head" => {
            let rates = list(&config, "rates");
            let model = if graph == "aspp" {
                "aspp"
            } else {
                "deeplab-head"
            };
            let args = vec![model.into(), "--rates".into(), joined(&rates)];
            let options = ModelOptions {
                rates: Some(rates),
                size,
                ..Default::default()
            };
            (model, options, args)
        }
        "ppm" | "psp_head" => {
            let bins = list(&config, "bins");
            let model = if graph == "ppm" { "ppm" } else { "psp-head" };
            let args = vec![model.into(), "--bins".into(), joined(&bins)];
            let options = ModelOptions {
                bins: Some(bins),
                size,
                ..Default::default()
            };
            (model, options, args)
        }
        other => panic!("unknown fixture graph {other:?}"),
    };
    if let Some(size) = size {
        cli_args.extend(["--size".into(), joined(&size)]);
    }
    let (input_shape, input) = read_input(&fixture_path(name, "input")).expect("fixture input");
    let (expected_shape, expected) =
        read_input(&fixture_path(name, "expected")).expect("fixture output");
    Case {
        name: name.to_string(),
        model,
        options,
        cli_args,
        weights,
        input_shape,
        input,
        expected_shape,
        expected,
    }
}

/// Compares with PyTorch's output, prints the errors, and fails past the tolerance.
pub fn assert_matches(what: &str, shape: [usize; 4], actual: &[f32], expected: &[f32]) {
    assert_eq!(actual.len(), expected.len(), "{what}: output length");
    let expected: Vec<f64> = expected.iter().map(|&v| v as f64).collect();
    let c = crate::common::assert_close(what, shape, actual, &expected, REL_L2_TOLERANCE);
    eprintln!("{what}: rel L2 {:.2e}, max abs {:.2e}", c.rel_l2, c.max_abs);
}

/// A tensor to write: name, dtype, shape, little-endian bytes.
pub struct RawTensor {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl RawTensor {
    pub fn f32(name: &str, shape: &[usize], values: &[f32]) -> Self {
        RawTensor {
            name: name.into(),
            dtype: Dtype::F32,
            shape: shape.to_vec(),
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

/// Every tensor of a safetensors file, in file order.
pub fn read_raw(path: &Path) -> Vec<RawTensor> {
    let bytes = std::fs::read(path).expect("read safetensors");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let mut tensors: Vec<RawTensor> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| RawTensor {
            name,
            dtype: view.dtype(),
            shape: view.shape().to_vec(),
            bytes: view.data().to_vec(),
        })
        .collect();
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    tensors
}

pub fn write_raw(path: &Path, tensors: &[RawTensor]) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                TensorView::new(t.dtype, t.shape.clone(), &t.bytes).expect("consistent tensor"),
            )
        })
        .collect();
    let bytes = safetensors::serialize(views, None).expect("serialize");
    std::fs::write(path, bytes).expect("write safetensors");
}

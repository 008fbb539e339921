//! The golden whole-network fixtures of scripts/make_network_fixtures.py (narrow DeepLabV3, FCN
//! and PSPNet built from PyTorch's own module classes, batch norms calibrated), shared by
//! tests/networks.rs and tests/run_cli.rs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use atrous::graph::StateDict;
use atrous::models::ModelOptions;

pub const FORMAT: &str = "atrous-network-fixtures";
pub const VERSION: &str = "1";

/// Relative L2 error allowed against PyTorch's float32 logits.
pub const REL_L2_TOLERANCE: f64 = 1e-4;

/// Every case, as named by the script: model, stem, block, output stride, aux, N, size.
pub const CASES: [&str; 7] = [
    "deeplabv3_bottleneck_os8_aux_n2_h37w45",
    "deeplabv3_bottleneck_os16_n1_h64w48",
    "fcn_bottleneck_os8_aux_n2_h41w35",
    "fcn_bottleneck_os16_n1_h50w62",
    "pspnet_7x7_bottleneck_b1-2-3-6_aux_n2_h49w41",
    "pspnet_deep_basic_b1-3-6_n1_h45w39",
    "pspnet_deep_bottleneck_b1-2-3-6_aux_n1_h57w63",
];

pub fn path(case: &str, role: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/networks")
        .join(format!("{case}.{role}.safetensors"))
}

/// One case: the weights, the model and its options (with the CLI flags that give them), the
/// input and PyTorch's outputs by name.
pub struct Case {
    pub name: String,
    pub model: String,
    pub options: ModelOptions,
    pub cli_args: Vec<String>,
    pub weights: StateDict,
    pub input_shape: [usize; 4],
    pub input: Vec<f32>,
    /// (name, shape, values): `output`, and `aux` when the case has it.
    pub expected: Vec<(String, [usize; 4], Vec<f32>)>,
}

fn check_file(file: &StateDict, case: &str, role: &str) {
    let field = |key: &str| file.metadata().and_then(|m| m.get(key)).map(String::as_str);
    assert!(
        field("format") == Some(FORMAT) && field("version") == Some(VERSION),
        "{}: fixture format/version {:?}/{:?}, expected {FORMAT:?}/{VERSION:?}: stale or \
         foreign fixture; regenerate with scripts/make_network_fixtures.py",
        file.file_name(),
        field("format"),
        field("version"),
    );
    assert_eq!(field("case"), Some(case));
    assert_eq!(field("role"), Some(role));
}

fn tensor(file: &StateDict, name: &str) -> ([usize; 4], Vec<f32>) {
    let array = file.tensor(name).expect("fixture tensor");
    (array.shape.clone().try_into().expect("rank 4"), array.data)
}

pub fn load(name: &str) -> Case {
    let weights = StateDict::open(path(name, "weights"), "").expect("fixture weights");
    check_file(&weights, name, "weights");
    let input_file = StateDict::open(path(name, "input"), "").unwrap();
    check_file(&input_file, name, "input");
    let expected_file = StateDict::open(path(name, "expected"), "").unwrap();
    check_file(&expected_file, name, "expected");
    let config: serde_json::Value = serde_json::from_str(
        weights
            .metadata()
            .and_then(|m| m.get("config"))
            .expect("fixture config"),
    )
    .unwrap();
    let list = |key: &str| -> Option<Vec<usize>> {
        config[key].as_array().map(|values| {
            values
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect()
        })
    };
    let joined = |values: &[usize]| {
        values
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let model = config["model"].as_str().unwrap().to_string();
    let options = ModelOptions {
        rates: list("rates"),
        bins: list("bins"),
        size: None,
        output_stride: config["output_stride"].as_u64().map(|v| v as usize),
        aux: config["aux"].as_bool().unwrap(),
    };
    let mut cli_args = vec![model.clone()];
    if let Some(rates) = &options.rates {
        cli_args.extend(["--rates".into(), joined(rates)]);
    }
    if let Some(bins) = &options.bins {
        cli_args.extend(["--bins".into(), joined(bins)]);
    }
    if let Some(stride) = options.output_stride {
        cli_args.extend(["--output-stride".into(), stride.to_string()]);
    }
    if options.aux {
        cli_args.push("--aux".into());
    }
    let (input_shape, input) = tensor(&input_file, "input");
    let mut expected = Vec::new();
    for output in ["output", "aux"] {
        if expected_file.contains(output) {
            let (shape, data) = tensor(&expected_file, output);
            expected.push((output.to_string(), shape, data));
        }
    }
    Case {
        name: name.to_string(),
        model,
        options,
        cli_args,
        weights,
        input_shape,
        input,
        expected,
    }
}

//! `atrous run` end to end: the real binary on fixture files, its output read back and compared
//! with PyTorch's; and every way the input can be wrong, each of which must end the process
//! with a non-zero status and a message naming the problem, without a panic and without
//! leaving an output file (or a temporary one) behind.

mod common;
mod graph_fixtures;
mod network_fixtures;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use atrous::tools::run::read_input;
use common::{atrous, TempDir};
use graph_fixtures::*;
use safetensors::Dtype;

const ASPP: &str = CASES[0];
const PPM: &str = CASES[5];

/// `atrous run <graph args> --weights W --input X --output Y`.
fn run_args(graph_args: &[&str], weights: &Path, input: &Path, output: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["run".into()];
    args.push(graph_args[0].into());
    for (flag, path) in [
        ("--weights", weights),
        ("--input", input),
        ("--output", output),
    ] {
        args.push(flag.into());
        args.push(path.into());
    }
    args.extend(graph_args[1..].iter().map(OsString::from));
    args
}

/// Runs a command that must fail; checks the message and that `dir` holds only `inputs`.
fn expect_failure(dir: &TempDir, inputs: &[&str], args: &[OsString], needles: &[&str]) {
    let (code, _, stderr) = atrous(args, &[]);
    assert!(
        code != 0,
        "expected a failure, got success; stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "the binary panicked:\n{stderr}"
    );
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "stderr lacks {needle:?}:\n{stderr}"
        );
    }
    let mut expected: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(dir.files(), expected, "files left in the output directory");
}

/// A temp dir holding copies of one case's weights and input, ready for a failing run.
struct Setup {
    dir: TempDir,
    weights: PathBuf,
    input: PathBuf,
    output: PathBuf,
}

impl Setup {
    fn new(name: &str, case: &str) -> Self {
        let dir = TempDir::new(name);
        let weights = dir.join("w.safetensors");
        let input = dir.join("x.safetensors");
        std::fs::copy(fixture_path(case, "weights"), &weights).unwrap();
        std::fs::copy(fixture_path(case, "input"), &input).unwrap();
        let output = dir.join("y.safetensors");
        Setup {
            dir,
            weights,
            input,
            output,
        }
    }

    fn fails(&self, graph_args: &[&str], needles: &[&str]) {
        let args = run_args(graph_args, &self.weights, &self.input, &self.output);
        expect_failure(
            &self.dir,
            &["w.safetensors", "x.safetensors"],
            &args,
            needles,
        );
    }

    /// Rewrites the weights through `edit`.
    fn edit_weights(&self, edit: impl FnOnce(&mut Vec<RawTensor>)) {
        let mut tensors = read_raw(&self.weights);
        edit(&mut tensors);
        write_raw(&self.weights, &tensors);
    }
}

const ASPP_ARGS: [&str; 3] = ["aspp", "--rates", "6,12,18"];

/// Every fixture case through the binary: the output file holds one f32 tensor `output` that
/// matches PyTorch, and nothing else is left in the directory.
#[test]
fn run_writes_pytorch_matching_output_for_every_fixture() {
    for name in CASES {
        let case = load_case(name);
        let dir = TempDir::new("e2e");
        let output = dir.join("out.safetensors");
        let args: Vec<&str> = case.cli_args.iter().map(String::as_str).collect();
        let (code, _, stderr) = atrous(
            &run_args(
                &args,
                &fixture_path(name, "weights"),
                &fixture_path(name, "input"),
                &output,
            ),
            &[],
        );
        assert!(code == 0, "{name}: {stderr}");
        assert_eq!(dir.files(), ["out.safetensors"], "{name}");
        let tensors = read_raw(&output);
        assert_eq!(tensors.len(), 1);
        assert_eq!(
            (tensors[0].name.as_str(), tensors[0].dtype),
            ("output", Dtype::F32)
        );
        let (shape, data) = read_input(&output).unwrap();
        assert_eq!(shape, case.expected_shape, "{name}");
        assert_matches(&format!("atrous run {name}"), shape, &data, &case.expected);
    }
}

/// Every whole-network fixture through the binary: `output` (and `aux` with `--aux`) match
/// PyTorch's forward, and `-v` reports load time and plan memory.
#[test]
fn run_writes_pytorch_matching_outputs_for_every_network() {
    for name in network_fixtures::CASES {
        let case = network_fixtures::load(name);
        let dir = TempDir::new("e2e-net");
        let output = dir.join("out.safetensors");
        let mut args: Vec<&str> = case.cli_args.iter().map(String::as_str).collect();
        args.push("-v");
        let (code, _, stderr) = atrous(
            &run_args(
                &args,
                &network_fixtures::path(name, "weights"),
                &network_fixtures::path(name, "input"),
                &output,
            ),
            &[],
        );
        assert!(code == 0, "{name}: {stderr}");
        assert!(
            stderr.contains("plan:") && stderr.contains("MiB"),
            "{stderr}"
        );
        let written = read_raw(&output);
        let names: Vec<&str> = written.iter().map(|t| t.name.as_str()).collect();
        let mut expected: Vec<&str> = case.expected.iter().map(|(n, _, _)| n.as_str()).collect();
        expected.sort();
        assert_eq!(names, expected, "{name}");
        for (out_name, shape, values) in &case.expected {
            let t = written.iter().find(|t| &t.name == out_name).unwrap();
            assert_eq!(&t.shape, &shape.to_vec(), "{name} {out_name}");
            let data: Vec<f32> = bytemuck::pod_collect_to_vec(&t.bytes);
            assert_matches(
                &format!("atrous run {name} {out_name}"),
                *shape,
                &data,
                values,
            );
        }
    }
}

/// `--prefix` on a whole-model file, through the binary.
#[test]
fn run_with_prefix_on_a_whole_model_file() {
    let case = load_case(ASPP);
    let dir = TempDir::new("prefix-cli");
    let mut tensors = read_raw(&fixture_path(ASPP, "weights"));
    for t in &mut tensors {
        t.name = format!("classifier.0.{}", t.name);
    }
    let weights = dir.join("model.safetensors");
    write_raw(&weights, &tensors);
    let output = dir.join("out.safetensors");
    let mut args = run_args(&ASPP_ARGS, &weights, &fixture_path(ASPP, "input"), &output);
    args.extend(["--prefix".into(), "classifier.0.".into()]);
    let (code, _, stderr) = atrous(&args, &[]);
    assert!(code == 0, "{stderr}");
    let (shape, data) = read_input(&output).unwrap();
    assert_matches("atrous run --prefix", shape, &data, &case.expected);
}

#[test]
fn missing_key_is_named() {
    let setup = Setup::new("missing-key", ASPP);
    setup.edit_weights(|t| t.retain(|t| t.name != "convs.1.1.running_var"));
    setup.fails(&ASPP_ARGS, &["missing tensor 'convs.1.1.running_var'"]);
}

/// A 1x1 weight where the 3x3 of an atrous branch belongs.
#[test]
fn wrong_weight_shape_names_key_expected_and_found() {
    let setup = Setup::new("wrong-shape", ASPP);
    setup.edit_weights(|tensors| {
        let t = tensors
            .iter_mut()
            .find(|t| t.name == "convs.1.0.weight")
            .unwrap();
        t.shape = vec![12, 16, 1, 1];
        t.bytes.truncate(12 * 16 * 4);
    });
    setup.fails(
        &ASPP_ARGS,
        &["'convs.1.0.weight'", "(C_out, 16, 3, 3)", "(12, 16, 1, 1)"],
    );
}

#[test]
fn integer_weights_are_an_unsupported_dtype() {
    let setup = Setup::new("dtype", ASPP);
    setup.edit_weights(|tensors| {
        let t = tensors
            .iter_mut()
            .find(|t| t.name == "convs.0.0.weight")
            .unwrap();
        t.dtype = Dtype::I32;
    });
    setup.fails(&ASPP_ARGS, &["'convs.0.0.weight'", "I32", "F32"]);
}

#[test]
fn truncated_weights_file() {
    let setup = Setup::new("truncated", ASPP);
    let bytes = std::fs::read(&setup.weights).unwrap();
    std::fs::write(&setup.weights, &bytes[..bytes.len() / 2]).unwrap();
    setup.fails(
        &ASPP_ARGS,
        &["w.safetensors", "cannot read it as safetensors"],
    );
}

#[test]
fn empty_weights_file() {
    let setup = Setup::new("empty", ASPP);
    std::fs::write(&setup.weights, b"").unwrap();
    setup.fails(&ASPP_ARGS, &["w.safetensors", "the file is empty"]);
}

#[test]
fn text_file_is_not_safetensors() {
    let setup = Setup::new("text", ASPP);
    std::fs::write(&setup.weights, b"this is not a tensor file\n").unwrap();
    setup.fails(&ASPP_ARGS, &["w.safetensors", "not a safetensors file"]);
}

/// A PyTorch checkpoint renamed to .safetensors, in both of torch.save's formats: the zip
/// archive (PyTorch >= 1.6) and a bare pickle (legacy). Neither is ever unpickled.
#[test]
fn pytorch_checkpoint_renamed_to_safetensors() {
    let setup = Setup::new("pickle", ASPP);
    // pickle protocol 2 of `{}`.
    std::fs::write(&setup.weights, b"\x80\x02}q\x00.").unwrap();
    setup.fails(&ASPP_ARGS, &["Python pickle", "export_safetensors.py"]);
    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend_from_slice(b"\x00\x00\x08\x00archive/data.pkl");
    std::fs::write(&setup.weights, zip).unwrap();
    setup.fails(&ASPP_ARGS, &["zip archive", "export_safetensors.py"]);
}

#[test]
fn more_rates_than_branches() {
    let setup = Setup::new("more-rates", ASPP);
    setup.fails(
        &["aspp", "--rates", "6,12,18,24"],
        &["4 given (6,12,18,24)", "3 atrous branches", "give 3 rates"],
    );
}

#[test]
fn fewer_rates_than_branches() {
    let setup = Setup::new("fewer-rates", ASPP);
    setup.fails(
        &["aspp", "--rates", "6,12"],
        &["2 given (6,12)", "3 atrous branches"],
    );
}

#[test]
fn bins_count_must_match_the_stages() {
    let setup = Setup::new("bins", PPM);
    setup.fails(
        &["ppm", "--bins", "1,2,3"],
        &["3 given (1,2,3)", "4 pyramid stages"],
    );
}

#[test]
fn input_channels_must_match_the_weights() {
    let setup = Setup::new("channels", ASPP);
    write_raw(
        &setup.input,
        &[RawTensor::f32("x", &[1, 8, 5, 5], &[0.5; 200])],
    );
    setup.fails(
        &ASPP_ARGS,
        &[
            "ASPP input",
            "(N, 16, H, W)",
            "(1, 8, 5, 5)",
            "convs.0.0.weight",
        ],
    );
}

#[test]
fn input_must_be_rank_4() {
    let setup = Setup::new("rank", ASPP);
    write_raw(
        &setup.input,
        &[RawTensor::f32("x", &[16, 5, 5], &[0.5; 400])],
    );
    setup.fails(&ASPP_ARGS, &["input tensor 'x'", "rank-4", "(16, 5, 5)"]);
}

#[test]
fn input_must_be_f32() {
    let setup = Setup::new("input-dtype", ASPP);
    write_raw(
        &setup.input,
        &[RawTensor {
            name: "x".into(),
            dtype: Dtype::F64,
            shape: vec![1, 16, 2, 2],
            bytes: vec![0; 64 * 8],
        }],
    );
    setup.fails(&ASPP_ARGS, &["input tensor 'x'", "F32", "F64"]);
}

#[test]
fn input_must_hold_one_tensor() {
    let setup = Setup::new("two-inputs", ASPP);
    write_raw(
        &setup.input,
        &[
            RawTensor::f32("a", &[1, 16, 1, 1], &[0.0; 16]),
            RawTensor::f32("b", &[1, 16, 1, 1], &[0.0; 16]),
        ],
    );
    setup.fails(&ASPP_ARGS, &["exactly one tensor", "found 2: a, b"]);
}

#[test]
fn rate_zero_is_rejected() {
    let setup = Setup::new("rate-zero", ASPP);
    setup.fails(&["aspp", "--rates", "6,0,18"], &["--rates", "found 0"]);
}

#[test]
fn non_numeric_list_is_rejected() {
    let setup = Setup::new("non-numeric", ASPP);
    setup.fails(
        &["aspp", "--rates", "6,twelve,18"],
        &["--rates", "'twelve'", "not a positive integer"],
    );
    setup.fails(&["psp-head", "--size", "21"], &["--size", "two values"]);
}

/// PPM weights given to `run aspp`, ASPP weights to `run psp-head`: the message says what the
/// file holds and which command fits.
#[test]
fn weights_of_another_graph() {
    let setup = Setup::new("other-graph", PPM);
    setup.fails(
        &ASPP_ARGS,
        &[
            "missing tensor 'convs.0.0.weight'",
            "no ASPP",
            "a PPM",
            "run ppm",
        ],
    );
    let setup = Setup::new("other-graph", ASPP);
    setup.fails(
        &["psp-head"],
        &[
            "'0.stages.0.1.weight'",
            "no PSP head",
            "an ASPP",
            "run aspp",
        ],
    );
}

#[test]
fn prefix_that_matches_nothing() {
    let setup = Setup::new("bad-prefix", ASPP);
    setup.fails(
        &["aspp", "--rates", "6,12,18", "--prefix", "classifier."],
        &[
            "no key starts with the prefix 'classifier.'",
            "convs, project",
        ],
    );
}

#[test]
fn missing_weights_file() {
    let setup = Setup::new("no-file", ASPP);
    std::fs::remove_file(&setup.weights).unwrap();
    let args = run_args(&ASPP_ARGS, &setup.weights, &setup.input, &setup.output);
    expect_failure(&setup.dir, &["x.safetensors"], &args, &["w.safetensors"]);
}

#[test]
fn output_directory_must_exist() {
    let setup = Setup::new("no-dir", ASPP);
    let output = setup.dir.join("missing/y.safetensors");
    let args = run_args(&ASPP_ARGS, &setup.weights, &setup.input, &output);
    expect_failure(
        &setup.dir,
        &["w.safetensors", "x.safetensors"],
        &args,
        &["does not exist"],
    );
}

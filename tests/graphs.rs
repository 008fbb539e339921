//! The heads against PyTorch: each golden case of scripts/make_graph_fixtures.py (torchvision's
//! own ASPP and DeepLabHead, PSPNet's PPM and PSP head, random batch-norm statistics) runs
//! through the library API that `atrous run` uses — `StateDict` -> `Model::load` ->
//! `Model::run` — and must match within relative L2 1e-4.

mod common;
mod graph_fixtures;

use atrous::graph::StateDict;
use atrous::models::Model;
use common::TempDir;
use graph_fixtures::*;

fn run_golden(name: &str) {
    let case = load_case(name);
    let ctx = common::ctx();
    let model = Model::load(case.model, &case.weights, &case.options).expect("weights");
    model.check_input(case.input_shape).expect("input fits");
    assert_eq!(
        model.out_shape(case.input_shape).unwrap(),
        case.expected_shape,
        "{name}: output shape"
    );
    let output = model
        .run(ctx, case.input_shape, &case.input)
        .expect("model runs");
    assert_matches(name, case.expected_shape, &output, &case.expected);
}

/// Rates 6,12,18 on a 13x11 map (rate 18 reaches past every border), N = 2, 12 output
/// channels (not a multiple of the tiled kernels' 4).
#[test]
fn aspp_rates_6_12_18_larger_than_the_map() {
    run_golden(CASES[0]);
}

/// Rates 12,24,36 on a 9x7 map, N = 3: the 3x3 branches see almost only padding; weights
/// stored as f64.
#[test]
fn aspp_rates_12_24_36_on_a_tiny_map_with_f64_weights() {
    run_golden(CASES[1]);
}

/// Four rates (any number of branches), all smaller than the map; weights stored as bf16.
#[test]
fn aspp_four_small_rates_with_bf16_weights() {
    run_golden(CASES[2]);
}

/// No atrous rates: only the 1x1 branch and the pooling branch.
#[test]
fn aspp_without_atrous_branches() {
    run_golden(CASES[8]);
}

/// torchvision's DeepLabHead (256-channel ASPP, 3x3, classifier) with logits resized to
/// 21x17; weights stored as f16.
#[test]
fn deeplab_head_with_resized_logits_and_f16_weights() {
    run_golden(CASES[3]);
}

/// Bins 1,2,3,6 on 60x60: every adaptive window is exact (60 divides by all bins).
#[test]
fn ppm_bins_1_2_3_6_on_60x60() {
    run_golden(CASES[4]);
}

/// Bins 1,2,3,6 on 5x4, N = 3: the 6x6 stage pools windows of one or two pixels, smaller than
/// the map, and the align_corners=True upsample shrinks it back.
#[test]
fn ppm_bins_larger_than_the_map() {
    run_golden(CASES[5]);
}

#[test]
fn psp_head_without_resize() {
    run_golden(CASES[6]);
}

/// Bins 1,2,3 (any bins list) and logits resized to 27x23.
#[test]
fn psp_head_with_three_bins_and_resized_logits() {
    run_golden(CASES[7]);
}

/// A head inside a whole-model state_dict: `--prefix` selects it, with or without the trailing
/// dot, and keys of other modules are ignored.
#[test]
fn prefix_selects_a_submodule_of_a_whole_model_file() {
    let case = load_case(CASES[0]);
    let dir = TempDir::new("prefix");
    let mut tensors = read_raw(&graph_fixtures::fixture_path(CASES[0], "weights"));
    for t in &mut tensors {
        t.name = format!("model.aspp.{}", t.name);
    }
    tensors.push(RawTensor::f32(
        "model.backbone.conv1.weight",
        &[4, 3, 3, 3],
        &[0.5; 108],
    ));
    let path = dir.join("model.safetensors");
    write_raw(&path, &tensors);
    for prefix in ["model.aspp.", "model.aspp"] {
        let weights = StateDict::open(&path, prefix).unwrap();
        let model = Model::load(case.model, &weights, &case.options).unwrap();
        let output = model
            .run(common::ctx(), case.input_shape, &case.input)
            .unwrap();
        assert_matches(
            &format!("prefix {prefix}"),
            case.expected_shape,
            &output,
            &case.expected,
        );
    }
}

/// The same model serves several input shapes; the per-shape plans do not interfere.
#[test]
fn one_graph_runs_on_several_input_shapes() {
    let case = load_case(CASES[4]);
    let graph = Model::load(case.model, &case.weights, &case.options).unwrap();
    // A smaller shape first, then the fixture's: the second plan must not reuse the first's.
    let small = [1, 16, 5, 7];
    let output = graph
        .run(common::ctx(), small, &vec![0.25; 16 * 35])
        .unwrap();
    assert_eq!(output.len(), 12 * 35);
    let output = graph
        .run(common::ctx(), case.input_shape, &case.input)
        .unwrap();
    assert_matches(
        "PPM after another shape",
        case.expected_shape,
        &output,
        &case.expected,
    );
    // More shapes than a model keeps plans for: the first plan is dropped and built again.
    for size in 6..6 + atrous::models::PLANS_KEPT {
        graph
            .run(
                common::ctx(),
                [1, 16, size, size],
                &vec![0.5; 16 * size * size],
            )
            .unwrap();
    }
    let output = graph
        .run(common::ctx(), case.input_shape, &case.input)
        .unwrap();
    assert_matches(
        "PPM after its plan was dropped",
        case.expected_shape,
        &output,
        &case.expected,
    );
}

#[test]
fn a_graph_without_outputs_is_an_error() {
    let error = atrous::graph::GraphBuilder::new()
        .finish(vec![])
        .err()
        .expect("a graph without outputs")
        .to_string();
    assert!(error.contains("at least one output"), "{error}");
}

/// A fixture of another version must stop the tests, not be compared silently.
#[test]
#[should_panic(expected = "regenerate with scripts/make_graph_fixtures.py")]
fn stale_fixture_version_fails_loudly() {
    let dir = TempDir::new("stale");
    let mut bytes = std::fs::read(graph_fixtures::fixture_path(CASES[0], "input")).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
    // Same length, so the header's offsets stay valid.
    let stale = header.replace("\"version\":\"1\"", "\"version\":\"0\"");
    assert_ne!(stale, header, "the fixture header records a version");
    bytes[8..8 + header_len].copy_from_slice(stale.as_bytes());
    let path = dir.join(&format!("{}.input.safetensors", CASES[0]));
    std::fs::write(&path, bytes).unwrap();
    let file = StateDict::open(&path, "").unwrap();
    graph_fixtures::check_fixture_file(&file, CASES[0], "input");
}

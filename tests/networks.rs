//! Whole networks against PyTorch: each golden case of scripts/make_network_fixtures.py (narrow
//! versions of torchvision's DeepLabV3 and FCN and of the seed's PSPNet, both stems, both block
//! types, output stride 8 and 16, with and without the auxiliary head, N = 1 and 2, batch norms
//! calibrated so that the logits depend on the input) runs through `Model::load` ->
//! `Model::run_all` and must match `forward()["out"]` (and `["aux"]`) within relative L2 1e-4.
//! Then what a user can get wrong with whole-network weights, and two threads on one context.

mod common;
mod network_fixtures;

use atrous::graph::StateDict;
use atrous::models::{Model, ModelOptions};
use network_fixtures::*;

fn assert_outputs(case: &Case, outputs: &[atrous::models::Output]) {
    assert_eq!(
        outputs.len(),
        case.expected.len(),
        "{}: outputs {:?}",
        case.name,
        outputs.iter().map(|o| &o.name).collect::<Vec<_>>()
    );
    for (output, (name, shape, expected)) in outputs.iter().zip(&case.expected) {
        assert_eq!(&output.name, name);
        assert_eq!(&output.shape, shape, "{} {name} shape", case.name);
        let expected: Vec<f64> = expected.iter().map(|&v| v as f64).collect();
        let c = common::assert_close(
            &format!("{} {name}", case.name),
            *shape,
            &output.data,
            &expected,
            REL_L2_TOLERANCE,
        );
        eprintln!(
            "{} {name}: rel L2 {:.2e}, max abs {:.2e}",
            case.name, c.rel_l2, c.max_abs
        );
    }
}

fn run_golden(name: &str) {
    let case = load(name);
    let model = Model::load(&case.model, &case.weights, &case.options).expect("weights load");
    let outputs = model
        .run_all(common::ctx(), case.input_shape, &case.input)
        .expect("model runs");
    assert_outputs(&case, &outputs);
}

/// torchvision's DeepLabV3 at output stride 8 (layer3 and layer4 dilated, their first blocks
/// at the previous dilation), with the aux head, N = 2, an odd H != W.
#[test]
fn deeplabv3_output_stride_8_with_aux() {
    run_golden(CASES[0]);
}

/// Output stride 16: only layer4 dilated; rates 6,12,18.
#[test]
fn deeplabv3_output_stride_16() {
    run_golden(CASES[1]);
}

#[test]
fn fcn_output_stride_8_with_aux() {
    run_golden(CASES[2]);
}

#[test]
fn fcn_output_stride_16() {
    run_golden(CASES[3]);
}

/// PSPNet with torchvision's 7x7 stem, Bottleneck blocks, the aux branch, N = 2.
#[test]
fn pspnet_7x7_stem_bottleneck_with_aux() {
    run_golden(CASES[4]);
}

/// PSPNet with the dilated ResNet's deep stem and BasicBlocks (conv1 at the block's dilation,
/// conv2 at the layer's), three bins.
#[test]
fn pspnet_deep_stem_basic_blocks() {
    run_golden(CASES[5]);
}

#[test]
fn pspnet_deep_stem_bottleneck_with_aux() {
    run_golden(CASES[6]);
}

/// Weights with an aux head run without it unless asked: one output, the same logits.
#[test]
fn aux_head_is_computed_only_when_asked() {
    let case = load(CASES[2]);
    let options = ModelOptions {
        aux: false,
        ..case.options.clone()
    };
    let model = Model::load(&case.model, &case.weights, &options).unwrap();
    assert!(!model
        .graph()
        .nodes()
        .iter()
        .any(|n| n.name.starts_with("aux_classifier")));
    let outputs = model
        .run_all(common::ctx(), case.input_shape, &case.input)
        .unwrap();
    assert_eq!(outputs.len(), 1);
    let trimmed = Case {
        expected: case.expected[..1].to_vec(),
        ..case
    };
    assert_outputs(&trimmed, &outputs);
}

/// Two threads running models on one context at once get exactly the outputs one thread
/// gets: each run holds its plan from input upload to read-back.
#[test]
fn two_threads_on_one_context_get_the_same_outputs() {
    let ctx = common::ctx();
    let cases = [load(CASES[0]), load(CASES[5])];
    let models: Vec<Model> = cases
        .iter()
        .map(|c| Model::load(&c.model, &c.weights, &c.options).unwrap())
        .collect();
    let alone: Vec<_> = cases
        .iter()
        .zip(&models)
        .map(|(c, m)| m.run_all(ctx, c.input_shape, &c.input).unwrap())
        .collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (case, model) = (&cases[i % 2], &models[i % 2]);
                scope.spawn(move || {
                    (0..3)
                        .map(|_| model.run_all(ctx, case.input_shape, &case.input).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for (i, handle) in handles.into_iter().enumerate() {
            for outputs in handle.join().unwrap() {
                assert_eq!(outputs, alone[i % 2], "thread {i}");
            }
        }
    });
}

/// A batch whose tensors would pass the device's largest storage binding runs one image at a
/// time instead of being refused, with the outputs each image gets alone.
#[test]
fn a_batch_over_the_binding_limit_is_split_per_image() {
    let case = load(CASES[0]);
    let model = Model::load(&case.model, &case.weights, &case.options).unwrap();
    // Activations large against the narrow model's weights.
    let shape = [2, 3, 97, 129];
    let image: usize = shape[1..].iter().product();
    let input = atrous::rng::Rng::new(5).vec(2 * image, 1.0);
    let one = [1, 3, 97, 129];
    let alone: Vec<Vec<atrous::models::Output>> = (0..2)
        .map(|i| {
            let slice = &input[i * image..(i + 1) * image];
            model.run_all(common::ctx(), one, slice).unwrap()
        })
        .collect();
    let plan = model.plan(common::ctx(), shape).unwrap();
    let largest = plan.memory().tensors.iter().map(|t| t.bytes).max().unwrap();
    // A context whose bindings hold one image's largest tensor but not two images'.
    let ctx = atrous::Context::new()
        .unwrap()
        .with_binding_limit(largest / 2 + 4);
    assert!(matches!(
        model.plan(&ctx, shape),
        Err(atrous::Error::TooLarge { .. })
    ));
    let outputs = model.run_all(&ctx, shape, &input).unwrap();
    for (o, output) in outputs.iter().enumerate() {
        let joined: Vec<f32> = alone.iter().flat_map(|a| a[o].data.clone()).collect();
        assert_eq!(output.shape[0], 2);
        assert_eq!(output.data, joined, "{}", output.name);
    }
}

fn expect_error(model: &str, weights: &StateDict, options: &ModelOptions, needles: &[&str]) {
    let message = match Model::load(model, weights, options) {
        Ok(_) => panic!("{model}: the weights were accepted"),
        Err(e) => e.to_string(),
    };
    for needle in needles {
        assert!(message.contains(needle), "{needle:?} not in: {message}");
    }
}

/// A state_dict edited in memory: `edit` sees (key, shape, values) of every tensor.
fn edited(case: &Case, edit: impl Fn(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) -> StateDict {
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = case
        .weights
        .keys()
        .into_iter()
        .filter(|key| !key.ends_with("num_batches_tracked"))
        .map(|key| {
            let t = case.weights.tensor(&key).unwrap();
            (key, t.shape, t.data)
        })
        .collect();
    edit(&mut tensors);
    StateDict::from_tensors("edited.safetensors", &tensors).unwrap()
}

/// Every way whole-network weights can be wrong ends in an error that names the key and says
/// why, or which command fits the weights.
#[test]
fn unsupported_or_mismatched_weights_are_errors_that_say_why() {
    let deeplab = load(CASES[0]);
    let fcn = load(CASES[2]);
    let psp = load(CASES[4]);
    let defaults = ModelOptions::default();
    // Another model's weights: which command fits.
    expect_error(
        "deeplabv3",
        &fcn.weights,
        &defaults,
        &[
            "classifier.0.convs.0.0.weight",
            "no DeepLabV3",
            "a whole FCN",
            "run fcn",
        ],
    );
    expect_error(
        "fcn",
        &psp.weights,
        &defaults,
        &[
            "backbone.layer1.0.conv1.weight",
            "a whole PSPNet",
            "run pspnet",
        ],
    );
    expect_error(
        "aspp",
        &deeplab.weights,
        &ModelOptions {
            rates: Some(vec![1]),
            ..defaults.clone()
        },
        &["no ASPP", "a whole DeepLabV3", "run deeplabv3"],
    );
    // A missing key is named.
    let missing = edited(&deeplab, |t| {
        t.retain(|(k, _, _)| k != "backbone.layer2.0.bn2.running_var")
    });
    expect_error(
        "deeplabv3",
        &missing,
        &deeplab.options,
        &["missing tensor 'backbone.layer2.0.bn2.running_var'"],
    );
    // Grouped convs (ResNeXt): conv2 reads a quarter of its input channels.
    let grouped = edited(&deeplab, |tensors| {
        let (_, shape, data) = tensors
            .iter_mut()
            .find(|(k, _, _)| k == "backbone.layer1.0.conv2.weight")
            .unwrap();
        shape[1] /= 2;
        data.truncate(shape.iter().product());
    });
    expect_error(
        "deeplabv3",
        &grouped,
        &deeplab.options,
        &[
            "backbone.layer1.0.conv2.weight",
            "grouped convolutions",
            "ResNeXt",
        ],
    );
    // --aux on weights without an aux head.
    let no_aux = load(CASES[1]);
    expect_error(
        "deeplabv3",
        &no_aux.weights,
        &ModelOptions {
            aux: true,
            ..no_aux.options.clone()
        },
        &[
            "aux_classifier.0.weight",
            "no auxiliary head",
            "without --aux",
        ],
    );
    // Options the model does not take, or out of range.
    expect_error(
        "deeplabv3",
        &deeplab.weights,
        &ModelOptions {
            bins: Some(vec![1, 2]),
            ..defaults.clone()
        },
        &[
            "deeplabv3 takes no --bins",
            "--rates, --output-stride, --aux",
        ],
    );
    expect_error(
        "fcn",
        &fcn.weights,
        &ModelOptions {
            output_stride: Some(32),
            ..defaults.clone()
        },
        &["--output-stride", "8 or 16", "32"],
    );
    expect_error(
        "pspnet",
        &psp.weights,
        &ModelOptions {
            bins: Some(vec![1, 2, 3]),
            ..defaults.clone()
        },
        &[
            "3 given (1,2,3)",
            "4 pyramid stages",
            "master_branch.0.stages",
        ],
    );
    expect_error(
        "deeplabv3",
        &deeplab.weights,
        &ModelOptions {
            rates: Some(vec![12, 24]),
            ..defaults
        },
        &["2 given (12,24)", "3 atrous branches"],
    );
}

/// An input with the wrong channel count is refused before any GPU work, naming the weight.
#[test]
fn an_image_must_have_the_stem_channels() {
    let case = load(CASES[5]);
    let model = Model::load(&case.model, &case.weights, &case.options).unwrap();
    let message = model.check_input([1, 4, 32, 32]).unwrap_err().to_string();
    assert!(
        message.contains("PSPNet input")
            && message.contains("(N, 3, H, W)")
            && message.contains("initial.0.0.weight"),
        "{message}"
    );
}

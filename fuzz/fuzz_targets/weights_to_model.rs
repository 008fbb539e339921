//! Arbitrary safetensors files through the weights-to-model path: parsing, every model of the
//! registry built from them (key lookups, shape checks, batch-norm folding, the graph), and
//! the shapes of a few inputs. No GPU: building a model allocates nothing on it.
//!
//! Half the inputs are taken as files as they are (mutations of the seed corpus, real
//! state_dicts); the other half are decoded into a *valid* safetensors file of tensors with
//! key names drawn from the ones the models read, any dtype and small shapes, so that the
//! fuzzer reaches past the parser into the models.

#![no_main]

use atrous::graph::StateDict;
use atrous::models::{Model, ModelOptions, REGISTRY};
use libfuzzer_sys::fuzz_target;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

/// Pieces of the keys the models read.
const PARTS: &[&str] = &[
    "backbone.", "classifier.", "aux_classifier.", "initial.", "master_branch.",
    "auxiliary_branch.", "layer1.", "layer2.", "layer3.", "layer4.", "0.", "1.", "2.", "3.",
    "4.", "6.", "convs.", "project.", "stages.", "bottleneck.", "conv1.", "conv2.", "conv3.",
    "bn1.", "bn2.", "bn3.", "downsample.", "weight", "bias", "running_mean", "running_var",
    "num_batches_tracked",
];

const DTYPES: &[Dtype] = &[Dtype::F32, Dtype::F16, Dtype::BF16, Dtype::F64, Dtype::I64, Dtype::U8];

fn structured(data: &[u8]) -> Option<Vec<u8>> {
    let mut bytes = data.iter().copied();
    let mut next = || bytes.next();
    let count = next()? % 24;
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for _ in 0..count {
        let mut key = String::new();
        for _ in 0..1 + next()? % 6 {
            key.push_str(PARTS[next()? as usize % PARTS.len()]);
        }
        let dtype = DTYPES[next()? as usize % DTYPES.len()];
        let rank = next()? % 5;
        let shape: Vec<usize> = (0..rank).map(|_| next().map(|d| d as usize % 9)).collect::<Option<_>>()?;
        let len = shape.iter().product::<usize>() * dtype.bitsize() / 8;
        let fill = next()?;
        let payload: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
        if !tensors.iter().any(|t| t.0 == key) {
            tensors.push((key, dtype, shape, payload));
        }
    }
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .filter_map(|(k, d, s, p)| TensorView::new(*d, s.clone(), p).ok().map(|v| (k.clone(), v)))
        .collect();
    safetensors::serialize(views, None).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let file = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        match structured(rest) {
            Some(file) => file,
            None => return,
        }
    };
    let Ok(weights) = StateDict::from_bytes("fuzz.safetensors", file, "") else {
        return;
    };
    for spec in REGISTRY {
        let options = ModelOptions {
            rates: (spec.name == "aspp").then(|| vec![1 + mode as usize % 3]),
            aux: mode & 2 != 0,
            ..Default::default()
        };
        let Ok(model) = Model::from_spec(spec, &weights, &options) else {
            continue;
        };
        let c = model.in_channels();
        for (h, w) in [(1, 1), (7, 5), (33, 40)] {
            let _ = model.output_shapes([1, c, h, w]);
        }
    }
});

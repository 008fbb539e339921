//! Whole segmentation networks on dilated ResNets, eval mode (dropout is identity):
//!
//! ```text
//! deeplabv3  torchvision's DeepLabV3 (deeplabv3_resnet50/101): backbone.* (ResNet, output
//!            stride 8 or 16), classifier.* (DeepLabHead, rates 12,24,36), logits resized to the
//!            input's H x W (bilinear, align_corners=False); aux: aux_classifier.* (FCNHead on
//!            layer3), resized the same way
//! fcn        torchvision's FCN (fcn_resnet50/101): the same with classifier.* an FCNHead
//! pspnet     the seed's PSPNet: initial.* (7x7 or deep stem), layer1..layer4 (layer3 dilated
//!            by 2, layer4 by 4), master_branch.0 (PPM, bins 1,2,3,6), master_branch.1 (1x1
//!            conv), resized to the input; aux: auxiliary_branch.* on layer3
//! ```

use crate::error::{Error, Result};
use crate::graph::{GraphBuilder, Size, StateDict, Value};
use crate::models::heads::{deeplab_head, fcn_head, ppm};
use crate::models::resnet::{dilated_layers, resnet, Backbone, Stem};
use crate::models::{synthetic, ModelSpec, Setting, Settings};

type Outputs = Vec<(&'static str, Value)>;

/// The logits of `head`, resized to the input's H x W, as PyTorch's forward returns them.
fn upsampled(g: &mut GraphBuilder, layer: &str, logits: Value) -> Result<Value> {
    let input = g.input();
    g.interpolate(layer, logits, Size::Like(input), false)
}

/// The auxiliary head on layer3 under `key`, when the settings ask for it.
fn with_aux(
    g: &mut GraphBuilder,
    w: &StateDict,
    s: &Settings,
    key: &str,
    backbone: &Backbone,
    mut outputs: Outputs,
) -> Result<Outputs> {
    if s.aux {
        if !w.contains(&format!("{key}.0.weight")) {
            return Err(Error::file(
                w.file_name(),
                format!(
                    "missing tensor '{}': these weights have no auxiliary head (run without \
                     --aux)",
                    w.full_key(&format!("{key}.0.weight"))
                ),
            ));
        }
        let aux = fcn_head(g, &w.sub(&format!("{key}.")), backbone.layer3)?;
        outputs.push(("aux", upsampled(g, "aux_upsample", aux)?));
    }
    Ok(outputs)
}

fn backbone(g: &mut GraphBuilder, w: &StateDict, s: &Settings) -> Result<Backbone> {
    let x = g.input();
    resnet(
        g,
        &w.sub("backbone."),
        Stem::Torchvision,
        dilated_layers(s.output_stride)?,
        x,
    )
}

fn build_deeplabv3(g: &mut GraphBuilder, w: &StateDict, s: &Settings) -> Result<Outputs> {
    let backbone = backbone(g, w, s)?;
    let logits = deeplab_head(g, &w.sub("classifier."), &s.rates, backbone.layer4)?;
    let outputs = vec![("output", upsampled(g, "upsample", logits)?)];
    with_aux(g, w, s, "aux_classifier", &backbone, outputs)
}

fn build_fcn(g: &mut GraphBuilder, w: &StateDict, s: &Settings) -> Result<Outputs> {
    let backbone = backbone(g, w, s)?;
    let logits = fcn_head(g, &w.sub("classifier."), backbone.layer4)?;
    let outputs = vec![("output", upsampled(g, "upsample", logits)?)];
    with_aux(g, w, s, "aux_classifier", &backbone, outputs)
}

fn build_pspnet(g: &mut GraphBuilder, w: &StateDict, s: &Settings) -> Result<Outputs> {
    let x = g.input();
    let backbone = resnet(g, w, Stem::Psp, dilated_layers(8)?, x)?;
    let features = ppm(g, &w.sub("master_branch.0."), &s.bins, backbone.layer4)?;
    let logits = g.conv(
        &w.path("master_branch.1"),
        w,
        "master_branch.1",
        features,
        crate::graph::Conv::k(1),
    )?;
    let outputs = vec![("output", upsampled(g, "upsample", logits)?)];
    with_aux(g, w, s, "auxiliary_branch", &backbone, outputs)
}

pub const DEEPLABV3: ModelSpec = ModelSpec {
    name: "deeplabv3",
    about: "torchvision's DeepLabV3 on a dilated ResNet (deeplabv3_resnet50/101): logits at \
            the input's size",
    display: "DeepLabV3",
    article: "a whole DeepLabV3",
    settings: &[Setting::Rates, Setting::OutputStride, Setting::Aux],
    default_rates: Some(&[12, 24, 36]),
    default_bins: None,
    default_output_stride: Some(8),
    takes_image: true,
    typical_input: [520, 520],
    example_rates: None,
    signature: &[
        "backbone.layer1.0.conv1.weight",
        "classifier.0.convs.0.0.weight",
    ],
    build: build_deeplabv3,
    synthetic: synthetic::deeplabv3,
};

pub const FCN: ModelSpec = ModelSpec {
    name: "fcn",
    about: "torchvision's FCN on a dilated ResNet (fcn_resnet50/101): logits at the input's size",
    display: "FCN",
    article: "a whole FCN",
    settings: &[Setting::OutputStride, Setting::Aux],
    default_rates: None,
    default_bins: None,
    default_output_stride: Some(8),
    takes_image: true,
    typical_input: [520, 520],
    example_rates: None,
    signature: &["backbone.layer1.0.conv1.weight", "classifier.0.weight"],
    build: build_fcn,
    synthetic: synthetic::fcn,
};

pub const PSPNET: ModelSpec = ModelSpec {
    name: "pspnet",
    about: "PSPNet on a dilated ResNet, as in the seed (initial, layer1..4, master_branch, \
            auxiliary_branch): logits at the input's size",
    display: "PSPNet",
    article: "a whole PSPNet",
    settings: &[Setting::Bins, Setting::Aux],
    default_rates: None,
    default_bins: Some(&[1, 2, 3, 6]),
    default_output_stride: None,
    takes_image: true,
    typical_input: [473, 473],
    example_rates: None,
    signature: &["layer1.0.conv1.weight", "master_branch.0.stages.0.1.weight"],
    build: build_pspnet,
    synthetic: synthetic::pspnet,
};

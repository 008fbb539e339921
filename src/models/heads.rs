//! The context heads of semantic segmentation, each as PyTorch defines it (eval mode: batch
//! norm with running statistics, dropout off):
//!
//! ```text
//! ASPP (torchvision deeplabv3.ASPP(C_in, rates, C)), keys convs.*, project.*
//!   convs.0        1x1 conv + BN + ReLU
//!   convs.i        3x3 conv, padding = dilation = rate_i, BN, ReLU
//!   convs.{R+1}    avg pool to 1x1, 1x1 conv + BN + ReLU, bilinear back to H x W
//!   project        1x1 conv + BN + ReLU over the concat of all branches (Dropout: identity)
//! DeepLabHead (torchvision), keys 0.* (ASPP), 1.* 3x3 conv, 2.* BN, 4.* 1x1 conv with bias
//! FCNHead (torchvision), keys 0.* 3x3 conv, 1.* BN, 4.* 1x1 conv with bias
//! PPM (PSPNet's pyramid pooling module), keys stages.*, bottleneck.*
//!   stages.i       avg pool to b x b, 1x1 conv + BN + ReLU, bilinear (align_corners=True) back
//!   bottleneck     3x3 conv (padding 1) + BN + ReLU over [x, stage 0, stage 1, ...]
//! PSP head: Sequential(PPM, Conv2d(C_b, classes, 1)), keys 0.*, 1.*
//! ```
//!
//! How they run: batch norms fold into the convs at load. The branches write straight into
//! their channel slices of one concat tensor (the planner places them). ASPP's pooling branch
//! is constant over H x W, so it is never upsampled: the projection weight is split into
//! `[W_main | W_pool]` at load, a 1x1 conv computes `b_proj + W_pool · pooled(n)` per image,
//! and the projection over the other branches takes that (N, C_out) tensor as its bias (exact:
//! ReLU comes after the sum).

use crate::error::{Error, Result};
use crate::graph::{Conv, GraphBuilder, Size, StateDict, Value};
use crate::models::{join, synthetic, ModelSpec, Outputs, Setting, Settings};

/// torchvision's `ASPP` on `x`; `w` is the view at the ASPP's keys.
pub fn aspp(g: &mut GraphBuilder, w: &StateDict, rates: &[usize], x: Value) -> Result<Value> {
    let branches = w.count_children("convs");
    if branches == 0 {
        return Err(w.missing("convs.0.0.weight"));
    }
    if branches < 2 || branches != rates.len() + 2 {
        let found = branches.saturating_sub(2);
        return Err(Error::invalid(
            "atrous rates",
            format!(
                "{} given ({}), but the weights in {} hold {found} atrous branches ({branches} \
                 modules '{}' to '{}': a 1x1 branch, the 3x3 branches, then the pooling \
                 branch); give {found} rates",
                rates.len(),
                join(rates),
                w.file_name(),
                w.full_key("convs.0"),
                w.full_key(&format!("convs.{}", branches - 1)),
            ),
        ));
    }
    let mut members = vec![g.conv_bn(
        &w.path("convs.0"),
        w,
        "convs.0.0",
        "convs.0.1",
        x,
        Conv::k(1).relu(),
    )?];
    for (i, &rate) in rates.iter().enumerate() {
        let branch = format!("convs.{}", i + 1);
        members.push(g.conv_bn(
            &w.path(&branch),
            w,
            &format!("{branch}.0"),
            &format!("{branch}.1"),
            x,
            Conv::k(3).dilation(rate).padding(rate).relu(),
        )?);
    }
    let pool = format!("convs.{}", rates.len() + 1);
    let pooled = g.adaptive_avg_pool(&w.path(&pool), x, [1, 1])?;
    let pooling = g.conv_bn(
        &w.path(&pool),
        w,
        &format!("{pool}.1"),
        &format!("{pool}.2"),
        pooled,
        Conv::k(1).relu(),
    )?;
    let concat = g.concat(&w.path("cat"), &members)?;
    let branch_channels = g.channels(concat).unwrap_or_default();
    let pool_channels = g.channels(pooling).unwrap_or_default();
    let projection = w.conv_bn(
        "project.0",
        "project.1",
        "ASPP projection over the concat of all branches",
        1,
        Some(branch_channels + pool_channels),
    )?;
    let (main, pooling_part) = projection.split_in_channels(branch_channels)?;
    // The pooled channels' share of the projection, as a per-image bias.
    let modules = vec![w.path("project.0"), w.path("project.1")];
    let bias = g.conv_weights(
        &w.path("project"),
        modules.clone(),
        pooling_part,
        pooling,
        Conv::k(1),
    )?;
    g.conv_weights(
        &w.path("project"),
        modules,
        main,
        concat,
        Conv::k(1).per_image_bias(bias).relu(),
    )
}

/// torchvision's `DeepLabHead` on `x` (ASPP, 3x3 conv, classifier).
pub fn deeplab_head(
    g: &mut GraphBuilder,
    w: &StateDict,
    rates: &[usize],
    x: Value,
) -> Result<Value> {
    let features = aspp(g, &w.sub("0."), rates, x)?;
    let features = g.conv_bn(&w.path("1"), w, "1", "2", features, Conv::k(3).relu())?;
    g.conv(&w.path("4"), w, "4", features, Conv::k(1))
}

/// torchvision's `FCNHead` on `x` (3x3 conv without bias, BN, ReLU, 1x1 classifier); also the
/// layout of PSPNet's auxiliary branch.
pub fn fcn_head(g: &mut GraphBuilder, w: &StateDict, x: Value) -> Result<Value> {
    let features = g.conv_bn(&w.path("0"), w, "0", "1", x, Conv::k(3).relu())?;
    g.conv(&w.path("4"), w, "4", features, Conv::k(1))
}

/// PSPNet's pyramid pooling module on `x`.
pub fn ppm(g: &mut GraphBuilder, w: &StateDict, bins: &[usize], x: Value) -> Result<Value> {
    let stages = w.count_children("stages");
    if stages == 0 {
        return Err(w.missing("stages.0.1.weight"));
    }
    if stages != bins.len() {
        return Err(Error::invalid(
            "pyramid bins",
            format!(
                "{} given ({}), but the weights in {} hold {stages} pyramid stages ('{}' to \
                 '{}'); give {stages} bins",
                bins.len(),
                join(bins),
                w.file_name(),
                w.full_key("stages.0"),
                w.full_key(&format!("stages.{}", stages - 1)),
            ),
        ));
    }
    if g.channels(x).is_none() {
        g.input_channels_from(w, "stages.0.1.weight")?;
    }
    let mut members = vec![x];
    for (i, &bin) in bins.iter().enumerate() {
        let stage = format!("stages.{i}");
        let layer = w.path(&stage);
        let pooled = g.adaptive_avg_pool(&layer, x, [bin, bin])?;
        let features = g.conv_bn(
            &layer,
            w,
            &format!("{stage}.1"),
            &format!("{stage}.2"),
            pooled,
            Conv::k(1).relu(),
        )?;
        members.push(g.interpolate(&layer, features, Size::Like(x), true)?);
    }
    let concat = g.concat(&w.path("cat"), &members)?;
    g.conv_bn(
        &w.path("bottleneck"),
        w,
        "bottleneck.0",
        "bottleneck.1",
        concat,
        Conv::k(3).relu(),
    )
}

/// A head's logits, resized to `size` when one is given.
fn resized(g: &mut GraphBuilder, logits: Value, size: Option<[usize; 2]>) -> Result<Value> {
    match size {
        Some(size) => g.interpolate("upsample", logits, Size::Fixed(size), false),
        None => Ok(logits),
    }
}

fn build_aspp(g: &mut GraphBuilder, w: &StateDict, s: &Settings) -> Result<Outputs> {
    let x = g.input();
    Ok(vec![("output", aspp(g, w, &s.rates, x)?)])
}

fn build_deeplab_head(g: &mut GraphBuilder, w: &StateDict, s: &Settings) -> Result<Outputs> {
    let x = g.input();
    let logits = deeplab_head(g, w, &s.rates, x)?;
    Ok(vec![("output", resized(g, logits, s.size)?)])
}

fn build_ppm(g: &mut GraphBuilder, w: &StateDict, s: &Settings) -> Result<Outputs> {
    let x = g.input();
    Ok(vec![("output", ppm(g, w, &s.bins, x)?)])
}

fn build_psp_head(g: &mut GraphBuilder, w: &StateDict, s: &Settings) -> Result<Outputs> {
    let x = g.input();
    let features = ppm(g, &w.sub("0."), &s.bins, x)?;
    let logits = g.conv(&w.path("1"), w, "1", features, Conv::k(1))?;
    Ok(vec![("output", resized(g, logits, s.size)?)])
}

pub const ASPP: ModelSpec = ModelSpec {
    name: "aspp",
    about: "torchvision's ASPP (keys convs.*, project.*)",
    display: "ASPP",
    article: "an ASPP",
    settings: &[Setting::Rates],
    default_rates: None,
    default_bins: None,
    default_output_stride: None,
    takes_image: false,
    typical_input: [33, 33],
    example_rates: Some(&[6, 12, 18]),
    signature: &["convs.0.0.weight", "project.0.weight"],
    build: build_aspp,
    synthetic: synthetic::aspp,
};

pub const DEEPLAB_HEAD: ModelSpec = ModelSpec {
    name: "deeplab-head",
    about: "torchvision's DeepLabHead: ASPP, 3x3 conv, classifier (keys 0.*, 1.*, 2.*, 4.*)",
    display: "DeepLabHead",
    article: "a DeepLabHead",
    settings: &[Setting::Rates, Setting::Size],
    default_rates: Some(&[12, 24, 36]),
    default_bins: None,
    default_output_stride: None,
    takes_image: false,
    typical_input: [33, 33],
    example_rates: None,
    signature: &["0.convs.0.0.weight", "4.weight"],
    build: build_deeplab_head,
    synthetic: synthetic::deeplab_head,
};

pub const PPM: ModelSpec = ModelSpec {
    name: "ppm",
    about: "PSPNet's pyramid pooling module (keys stages.*, bottleneck.*)",
    display: "PPM",
    article: "a PPM",
    settings: &[Setting::Bins],
    default_rates: None,
    default_bins: Some(&[1, 2, 3, 6]),
    default_output_stride: None,
    takes_image: false,
    typical_input: [60, 60],
    example_rates: None,
    signature: &["stages.0.1.weight", "bottleneck.0.weight"],
    build: build_ppm,
    synthetic: synthetic::ppm,
};

pub const PSP_HEAD: ModelSpec = ModelSpec {
    name: "psp-head",
    about: "PSP head: the PPM, then a 1x1 classifier (keys 0.*, 1.*)",
    display: "PSP head",
    article: "a PSP head",
    settings: &[Setting::Bins, Setting::Size],
    default_rates: None,
    default_bins: Some(&[1, 2, 3, 6]),
    default_output_stride: None,
    takes_image: false,
    typical_input: [60, 60],
    example_rates: None,
    signature: &["0.stages.0.1.weight", "1.weight"],
    build: build_psp_head,
    synthetic: synthetic::psp_head,
};

//! Dilated ResNet backbones with torchvision's `resnet.py` semantics; depth (the blocks per
//! layer), block type and widths come from the weights.
//!
//! ```text
//! stem     7x7 conv stride 2 padding 3 + BN + ReLU, max pool 3x3 stride 2 padding 1
//!          (PSPNet's dilated ResNet: three 3x3 convs 3->64 stride 2, 64->64, 64->128 with BN +
//!          ReLU between, then BN + ReLU and the same max pool)
//! layer1   stride 1; layer2..layer4 stride 2, or dilated instead:
//! Bottleneck   conv1 1x1, conv2 3x3 (the block's stride and dilation), conv3 1x1, each + BN;
//!              ReLU after conv1, conv2 and after the residual add
//! BasicBlock   conv1 3x3 (the block's stride and dilation), conv2 3x3 (the layer's dilation)
//! downsample   1x1 conv with the block's stride + BN, where the weights have one
//! ```
//!
//! A dilated layer trades its stride for dilation (torchvision's `replace_stride_with_dilation`)
//! and its first block keeps the previous dilation: at output stride 8, layer3 runs block 0 at
//! dilation 1 and the others at 2, layer4 block 0 at 2 and the others at 4. torchvision's
//! BasicBlock refuses dilation; PSPNet's dilated ResNets give a BasicBlock's conv1 the block's
//! dilation and its conv2 the layer's, and so does this one.
//!
//! Each block is one node per conv: the residual add and the last ReLU are the epilogue of
//! conv3 (conv2 for a BasicBlock), so a block costs no kernel beyond its convs.

use crate::error::{Error, Result};
use crate::graph::{Conv, GraphBuilder, StateDict, Value};
use crate::shape::PoolGeometry;

/// Which stem the weights hold, and under which keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stem {
    /// torchvision's `conv1`, `bn1`, `maxpool`.
    Torchvision,
    /// The seed PSPNet's `initial`: `initial.0` a 7x7 conv (or the three-conv deep stem
    /// `initial.0.{0,1,3,4,6}`), `initial.1` BN, `initial.3` the max pool.
    Psp,
}

/// The outputs a segmentation head reads: layer3's (auxiliary heads) and layer4's.
pub struct Backbone {
    pub layer3: Value,
    pub layer4: Value,
}

/// Which of layer2, layer3, layer4 trade their stride for dilation, for an output stride.
pub fn dilated_layers(output_stride: usize) -> Result<[bool; 3]> {
    match output_stride {
        8 => Ok([false, true, true]),
        16 => Ok([false, false, true]),
        other => Err(Error::invalid(
            "--output-stride",
            format!("must be 8 or 16, found {other}"),
        )),
    }
}

/// The backbone on `x`; `w` is the view at its keys (`backbone.` in torchvision's models, the
/// root in PSPNet's).
pub fn resnet(
    g: &mut GraphBuilder,
    w: &StateDict,
    stem: Stem,
    dilate: [bool; 3],
    x: Value,
) -> Result<Backbone> {
    let mut y = match stem {
        Stem::Torchvision => {
            let y = g.conv_bn(
                &w.path("conv1"),
                w,
                "conv1",
                "bn1",
                x,
                Conv::k(7).stride(2).padding(3).relu(),
            )?;
            g.max_pool(&w.path("maxpool"), y, PoolGeometry::RESNET_STEM)?
        }
        Stem::Psp => psp_stem(g, w, x)?,
    };
    let bottleneck = w.contains("layer1.0.conv3.weight");
    let mut dilation = 1;
    let mut outputs = Vec::new();
    for layer in 0..4 {
        let name = format!("layer{}", layer + 1);
        let blocks = w.count_children(&name);
        if blocks == 0 {
            return Err(w.missing(&format!("{name}.0.conv1.weight")));
        }
        let mut stride = if layer == 0 { 1 } else { 2 };
        let previous = dilation;
        if layer > 0 && dilate[layer - 1] {
            dilation *= stride;
            stride = 1;
        }
        for block in 0..blocks {
            let bw = w.sub(&format!("{name}.{block}."));
            let (block_stride, block_dilation) = if block == 0 {
                (stride, previous)
            } else {
                (1, dilation)
            };
            y = if bottleneck {
                bottleneck_block(g, &bw, y, block_stride, block_dilation)?
            } else {
                basic_block(g, &bw, y, block_stride, block_dilation, dilation)?
            };
        }
        outputs.push(y);
    }
    Ok(Backbone {
        layer3: outputs[2],
        layer4: outputs[3],
    })
}

/// PSPNet's `initial`: a 7x7 conv or the deep stem, BN, ReLU, max pool.
fn psp_stem(g: &mut GraphBuilder, w: &StateDict, x: Value) -> Result<Value> {
    let y = if w.contains("initial.0.0.weight") {
        let stem = w.sub("initial.0.");
        let y = g.conv_bn(
            &stem.path("0"),
            &stem,
            "0",
            "1",
            x,
            Conv::k(3).stride(2).padding(1).relu(),
        )?;
        let y = g.conv_bn(&stem.path("3"), &stem, "3", "4", y, Conv::k(3).relu())?;
        let conv = stem.conv("6", "deep stem conv 3", 3, g.channels(y), false)?;
        let bn = w.batchnorm("initial.1", "stem batch norm", conv.out_channels)?;
        let modules = vec![stem.path("6"), w.path("initial.1")];
        let folded = conv.fold_batchnorm(&bn)?;
        g.conv_weights(&stem.path("6"), modules, folded, y, Conv::k(3).relu())?
    } else {
        g.conv_bn(
            &w.path("initial.0"),
            w,
            "initial.0",
            "initial.1",
            x,
            Conv::k(7).stride(2).padding(3).relu(),
        )?
    };
    g.max_pool(&w.path("initial.3"), y, PoolGeometry::RESNET_STEM)
}

/// A conv's weight that reads fewer channels than its input has, by a whole factor, is a
/// grouped conv (ResNeXt): say so rather than report a bare shape mismatch.
fn refuse_groups(g: &GraphBuilder, w: &StateDict, conv: &str, input: Value) -> Result<()> {
    let key = format!("{conv}.weight");
    if let (Some((_, shape)), Some(channels)) = (w.info(&key), g.channels(input)) {
        if let Some(&per_group) = shape.get(1) {
            if per_group > 0 && per_group < channels && channels % per_group == 0 {
                return Err(Error::invalid(
                    format!("tensor '{}'", w.full_key(&key)),
                    format!(
                        "reads {per_group} of its {channels} input channels per group ({} \
                         groups): grouped convolutions, as in ResNeXt, are not supported",
                        channels / per_group
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn downsample(g: &mut GraphBuilder, w: &StateDict, x: Value, stride: usize) -> Result<Value> {
    if w.contains("downsample.0.weight") {
        g.conv_bn(
            &w.path("downsample"),
            w,
            "downsample.0",
            "downsample.1",
            x,
            Conv::k(1).stride(stride),
        )
    } else {
        Ok(x)
    }
}

/// torchvision's `Bottleneck`. The downsample runs first: it and conv1 read the block input,
/// so a packed copy of it that both kernels read lives for two nodes only.
fn bottleneck_block(
    g: &mut GraphBuilder,
    w: &StateDict,
    x: Value,
    stride: usize,
    dilation: usize,
) -> Result<Value> {
    let identity = downsample(g, w, x, stride)?;
    let y = g.conv_bn(&w.path("conv1"), w, "conv1", "bn1", x, Conv::k(1).relu())?;
    refuse_groups(g, w, "conv2", y)?;
    let y = g.conv_bn(
        &w.path("conv2"),
        w,
        "conv2",
        "bn2",
        y,
        Conv::k(3).stride(stride).dilation(dilation).relu(),
    )?;
    g.conv_bn(
        &w.path("conv3"),
        w,
        "conv3",
        "bn3",
        y,
        Conv::k(1).residual(identity).relu(),
    )
}

/// A `BasicBlock`, dilated as PSPNet's ResNets dilate it.
fn basic_block(
    g: &mut GraphBuilder,
    w: &StateDict,
    x: Value,
    stride: usize,
    block_dilation: usize,
    layer_dilation: usize,
) -> Result<Value> {
    let identity = downsample(g, w, x, stride)?;
    let y = g.conv_bn(
        &w.path("conv1"),
        w,
        "conv1",
        "bn1",
        x,
        Conv::k(3).stride(stride).dilation(block_dilation).relu(),
    )?;
    g.conv_bn(
        &w.path("conv2"),
        w,
        "conv2",
        "bn2",
        y,
        Conv::k(3)
            .dilation(layer_dilation)
            .residual(identity)
            .relu(),
    )
}

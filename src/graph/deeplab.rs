//! torchvision's `DeepLabHead(in_channels, num_classes, atrous_rates)` in eval mode:
//!
//! ```text
//! x: (N, C_in, H, W)
//! 0  ASPP(C_in, atrous_rates, 256)                 -> (N, 256, H, W)
//! 1  3x3 conv (padding 1, no bias), 2 BN, 3 ReLU   -> (N, 256, H, W)
//! 4  1x1 conv with bias                            -> (N, num_classes, H, W)
//! ```
//!
//! optionally followed by a bilinear (align_corners=False) resize of the logits, as
//! `DeepLabV3.forward` does to the input size. Channel counts come from the weights, so heads
//! with other widths load too.

use std::sync::Arc;

use crate::context::Context;
use crate::error::Result;
use crate::graph::aspp::{Aspp, AsppWeights};
use crate::graph::plan::{Plan, PlanCache};
use crate::graph::weights::StateDict;
use crate::graph::{check_input_channels, check_size, record_classifier, Graph};
use crate::ops::{Conv1x1, Conv3x3, ConvWeights};
use crate::shape::ConvGeometry;
use crate::tensor::Tensor;

/// DeepLabHead parameters on the host, batch norms folded in.
#[derive(Clone, Debug)]
pub struct DeepLabHeadWeights {
    /// `0.`: the ASPP.
    pub aspp: AsppWeights,
    /// `1.` + `2.`: 3x3 conv with its batch norm folded in.
    pub conv3x3: ConvWeights,
    /// `4.`: 1x1 conv with bias to the class count.
    pub classifier: ConvWeights,
}

impl DeepLabHeadWeights {
    pub fn from_state_dict(weights: &StateDict, rates: &[usize]) -> Result<Self> {
        if !weights.contains("0.convs.0.0.weight") {
            return Err(weights.missing_graph("0.convs.0.0.weight", "DeepLabHead"));
        }
        let aspp = AsppWeights::from_state_dict(&weights.sub("0."), rates)?;
        let conv3x3 = weights.conv_bn(
            "1",
            "2",
            "DeepLabHead 3x3 conv after the ASPP",
            3,
            Some(aspp.out_channels()),
        )?;
        let classifier = weights.conv(
            "4",
            "DeepLabHead classifier: 1x1 conv with bias",
            1,
            Some(conv3x3.out_channels),
            true,
        )?;
        Ok(DeepLabHeadWeights {
            aspp,
            conv3x3,
            classifier,
        })
    }

    pub fn in_channels(&self) -> usize {
        self.aspp.in_channels
    }
}

/// The DeepLab head on the GPU: ASPP, 3x3 conv, classifier, optional upsample of the logits.
pub struct DeepLabHead {
    aspp: Aspp,
    input_key: String,
    conv3x3: Conv3x3,
    classifier: Conv1x1,
    upsample: Option<[usize; 2]>,
    plans: PlanCache,
}

impl DeepLabHead {
    /// Uploads the weights; `upsample` resizes the logits (bilinear, align_corners=False).
    pub fn new(
        ctx: &Context,
        weights: &DeepLabHeadWeights,
        upsample: Option<[usize; 2]>,
    ) -> Result<Self> {
        check_size(upsample)?;
        Ok(DeepLabHead {
            aspp: Aspp::new(ctx, &weights.aspp)?,
            input_key: weights.aspp.input_key.clone(),
            conv3x3: Conv3x3::new(
                ctx,
                "DeepLabHead 3x3",
                &weights.conv3x3,
                ConvGeometry::same_3x3(1),
                true,
                Default::default(),
            )?,
            classifier: Conv1x1::new(
                ctx,
                "DeepLabHead classifier",
                &weights.classifier,
                false,
                Default::default(),
            )?,
            upsample,
            plans: PlanCache::default(),
        })
    }

    pub fn load(
        ctx: &Context,
        weights: &StateDict,
        rates: &[usize],
        upsample: Option<[usize; 2]>,
    ) -> Result<Self> {
        Self::new(
            ctx,
            &DeepLabHeadWeights::from_state_dict(weights, rates)?,
            upsample,
        )
    }

    pub fn num_classes(&self) -> usize {
        self.classifier.out_channels()
    }
}

impl Graph for DeepLabHead {
    fn name(&self) -> &'static str {
        "DeepLabHead"
    }

    fn in_channels(&self) -> usize {
        self.aspp.in_channels()
    }

    fn out_shape(&self, input_shape: [usize; 4]) -> Result<[usize; 4]> {
        check_input_channels(
            self.name(),
            self.in_channels(),
            &self.input_key,
            input_shape,
        )?;
        let [n, _, h, w] = input_shape;
        let [out_h, out_w] = self.upsample.unwrap_or([h, w]);
        Ok([n, self.num_classes(), out_h, out_w])
    }

    fn plan(&self, ctx: &Context, input_shape: [usize; 4]) -> Result<Arc<Plan>> {
        let output_shape = self.out_shape(input_shape)?;
        let [n, _, h, w] = input_shape;
        self.plans.get_or_build(input_shape, || {
            Plan::build(
                ctx,
                "DeepLabHead",
                input_shape,
                output_shape,
                |input, output, plan| {
                    let aspp_out =
                        Tensor::empty(ctx, "ASPP output", [n, self.aspp.out_channels(), h, w])?;
                    plan.nested("0.", |plan| {
                        self.aspp.record(ctx, input, (&aspp_out).into(), plan)
                    })?;
                    let features = Tensor::empty(
                        ctx,
                        "DeepLabHead features",
                        [n, self.conv3x3.out_channels(), h, w],
                    )?;
                    plan.push(
                        "1",
                        self.conv3x3.prepare(ctx, &aspp_out, (&features).into())?,
                    );
                    record_classifier(ctx, "4", &self.classifier, &features, output, plan)?;
                    plan.keep([aspp_out, features]);
                    Ok(())
                },
            )
        })
    }
}

//! PSPNet's Pyramid Pooling Module and the PSP head (PPM + classifier), in eval mode:
//!
//! ```text
//! x: (N, C_in, H, W)
//! stage i (bin b)  avg pool to b x b, 1x1 conv + BN + ReLU, bilinear (align_corners=True) to HxW
//! concat           [x, stage 0, stage 1, ...]                     -> (N, C_in + sum C_i, H, W)
//! bottleneck       3x3 conv (padding 1) + BN + ReLU                -> (N, C_b, H, W)
//! PSP head         PPM, then 1x1 conv with bias                    -> (N, classes, H, W)
//! ```
//!
//! PyTorch module layout (the state_dict keys): `stages = ModuleList([Sequential(
//! AdaptiveAvgPool2d(b), Conv2d(C_in, C_i, 1, bias=False), BatchNorm2d(C_i), ReLU)])`,
//! `bottleneck = Sequential(Conv2d(C_in + sum C_i, C_b, 3, padding=1, bias=False),
//! BatchNorm2d(C_b), ReLU)`; the PSP head is `Sequential(PPM, Conv2d(C_b, classes, 1))`.
//!
//! How it runs: the input is copied into channel slice 0 of one concat buffer and each stage's
//! upsample writes straight into its own slice; batch norms are folded into the convs at load.

use std::sync::Arc;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::graph::aspp::{check_positive, join};
use crate::graph::plan::{Plan, PlanBuilder, PlanCache};
use crate::graph::weights::StateDict;
use crate::graph::{check_input_channels, check_size, record_classifier, Graph};
use crate::ops::{self, Conv1x1, Conv3x3, ConvWeights};
use crate::shape::ConvGeometry;
use crate::tensor::{OutputSlice, Tensor};

/// PPM parameters on the host, batch norms folded in.
#[derive(Clone, Debug)]
pub struct PpmWeights {
    pub in_channels: usize,
    pub bins: Vec<usize>,
    /// Full key of the first conv, named when an input has the wrong channel count.
    pub input_key: String,
    /// One 1x1 conv per bin (`stages.i.1`).
    pub stages: Vec<ConvWeights>,
    /// The 3x3 bottleneck conv over the concat (`bottleneck.0`).
    pub bottleneck: ConvWeights,
}

impl PpmWeights {
    /// Reads PPM keys (`stages.*`, `bottleneck.*`) from `weights` for `bins`. Channel counts come
    /// from the weight shapes; the number of bins must match the stages.
    pub fn from_state_dict(weights: &StateDict, bins: &[usize]) -> Result<Self> {
        check_positive("pyramid bins", bins)?;
        let stage_count = weights.count_children("stages");
        if stage_count == 0 {
            return Err(weights.missing_graph("stages.0.1.weight", "PPM"));
        }
        if stage_count != bins.len() {
            return Err(Error::invalid(
                "pyramid bins",
                format!(
                    "{} given ({}), but the weights in {} hold {stage_count} pyramid stages \
                     ('{}' to '{}'); give {stage_count} bins",
                    bins.len(),
                    join(bins),
                    weights.file_name(),
                    weights.full_key("stages.0"),
                    weights.full_key(&format!("stages.{}", stage_count - 1)),
                ),
            ));
        }
        let mut stages: Vec<ConvWeights> = Vec::with_capacity(bins.len());
        for (i, bin) in bins.iter().enumerate() {
            let in_channels = stages.first().map(|s| s.in_channels);
            stages.push(weights.conv_bn(
                &format!("stages.{i}.1"),
                &format!("stages.{i}.2"),
                &format!("PPM stage {i}: 1x1 conv after pooling to {bin}x{bin}"),
                1,
                in_channels,
            )?);
        }
        let in_channels = stages[0].in_channels;
        let concat_channels = in_channels + stages.iter().map(|s| s.out_channels).sum::<usize>();
        let bottleneck = weights.conv_bn(
            "bottleneck.0",
            "bottleneck.1",
            "PPM bottleneck: 3x3 conv over [input, stages]",
            3,
            Some(concat_channels),
        )?;
        Ok(PpmWeights {
            in_channels,
            bins: bins.to_vec(),
            input_key: weights.full_key("stages.0.1.weight"),
            stages,
            bottleneck,
        })
    }

    pub fn out_channels(&self) -> usize {
        self.bottleneck.out_channels
    }
}

/// A PPM with its weights on the GPU and its plans per input shape.
pub struct Ppm {
    in_channels: usize,
    input_key: String,
    bins: Vec<usize>,
    stages: Vec<Conv1x1>,
    bottleneck: Conv3x3,
    plans: PlanCache,
}

impl Ppm {
    /// Uploads the weights (once; every plan shares them).
    pub fn new(ctx: &Context, weights: &PpmWeights) -> Result<Self> {
        Ok(Ppm {
            in_channels: weights.in_channels,
            input_key: weights.input_key.clone(),
            bins: weights.bins.clone(),
            stages: weights
                .stages
                .iter()
                .zip(&weights.bins)
                .map(|(w, bin)| {
                    Conv1x1::new(
                        ctx,
                        &format!("PPM stage {bin}x{bin}"),
                        w,
                        true,
                        Default::default(),
                    )
                })
                .collect::<Result<_>>()?,
            bottleneck: Conv3x3::new(
                ctx,
                "PPM bottleneck",
                &weights.bottleneck,
                ConvGeometry::same_3x3(1),
                true,
                Default::default(),
            )?,
            plans: PlanCache::default(),
        })
    }

    /// Reads the weights from a state_dict and uploads them.
    pub fn load(ctx: &Context, weights: &StateDict, bins: &[usize]) -> Result<Self> {
        Self::new(ctx, &PpmWeights::from_state_dict(weights, bins)?)
    }

    pub fn out_channels(&self) -> usize {
        self.bottleneck.out_channels()
    }

    /// Adds the PPM's dispatches, reading `input` and writing `output`, to a plan.
    pub(crate) fn record(
        &self,
        ctx: &Context,
        input: &Tensor,
        output: OutputSlice,
        plan: &mut PlanBuilder,
    ) -> Result<()> {
        let [n, _, h, w] = self.out_shape(input.shape())?;
        let concat = Tensor::empty(ctx, "PPM concat", [n, self.bottleneck.in_channels(), h, w])?;
        // The input's copy into the concat buffer: the only part of torch.cat left.
        plan.push(
            "cat",
            ops::concat::prepare(ctx, input, OutputSlice::channels(&concat, 0))?,
        );
        let mut offset = self.in_channels;
        for (i, (stage, &bin)) in self.stages.iter().zip(&self.bins).enumerate() {
            let layer = format!("stages.{i}");
            let pooled = Tensor::empty(ctx, "PPM pooled", [n, self.in_channels, bin, bin])?;
            plan.push(
                &layer,
                ops::adaptive_avg_pool2d::prepare(ctx, input, &pooled)?,
            );
            let features = Tensor::empty(ctx, "PPM stage", [n, stage.out_channels(), bin, bin])?;
            plan.push(&layer, stage.prepare(ctx, &pooled, (&features).into())?);
            plan.push(
                &layer,
                ops::interpolate::prepare(
                    ctx,
                    &features,
                    OutputSlice::channels(&concat, offset),
                    true,
                )?,
            );
            offset += stage.out_channels();
            plan.keep([pooled, features]);
        }
        plan.push("bottleneck", self.bottleneck.prepare(ctx, &concat, output)?);
        plan.keep([concat]);
        Ok(())
    }
}

impl Graph for Ppm {
    fn name(&self) -> &'static str {
        "PPM"
    }

    fn in_channels(&self) -> usize {
        self.in_channels
    }

    fn out_shape(&self, input_shape: [usize; 4]) -> Result<[usize; 4]> {
        check_input_channels(self.name(), self.in_channels, &self.input_key, input_shape)?;
        let [n, _, h, w] = input_shape;
        Ok([n, self.out_channels(), h, w])
    }

    fn plan(&self, ctx: &Context, input_shape: [usize; 4]) -> Result<Arc<Plan>> {
        let output_shape = self.out_shape(input_shape)?;
        self.plans.get_or_build(input_shape, || {
            Plan::build(
                ctx,
                "PPM",
                input_shape,
                output_shape,
                |input, output, plan| self.record(ctx, input, output.into(), plan),
            )
        })
    }
}

/// PSP head parameters on the host: `0.` the PPM, `1.` the classifier.
#[derive(Clone, Debug)]
pub struct PspHeadWeights {
    pub ppm: PpmWeights,
    /// 1x1 conv with bias to the class count (`1`).
    pub classifier: ConvWeights,
}

impl PspHeadWeights {
    pub fn from_state_dict(weights: &StateDict, bins: &[usize]) -> Result<Self> {
        if !weights.contains("0.stages.0.1.weight") {
            return Err(weights.missing_graph("0.stages.0.1.weight", "PSP head"));
        }
        let ppm = PpmWeights::from_state_dict(&weights.sub("0."), bins)?;
        let classifier = weights.conv(
            "1",
            "PSP head classifier: 1x1 conv with bias",
            1,
            Some(ppm.out_channels()),
            true,
        )?;
        Ok(PspHeadWeights { ppm, classifier })
    }

    pub fn in_channels(&self) -> usize {
        self.ppm.in_channels
    }
}

/// The PSP head on the GPU: PPM, classifier, optional bilinear upsample of the logits.
pub struct PspHead {
    ppm: Ppm,
    classifier: Conv1x1,
    upsample: Option<[usize; 2]>,
    plans: PlanCache,
}

impl PspHead {
    /// Uploads the weights; `upsample` resizes the logits (bilinear, align_corners=False).
    pub fn new(
        ctx: &Context,
        weights: &PspHeadWeights,
        upsample: Option<[usize; 2]>,
    ) -> Result<Self> {
        check_size(upsample)?;
        Ok(PspHead {
            ppm: Ppm::new(ctx, &weights.ppm)?,
            classifier: Conv1x1::new(
                ctx,
                "PSP head classifier",
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
        bins: &[usize],
        upsample: Option<[usize; 2]>,
    ) -> Result<Self> {
        Self::new(
            ctx,
            &PspHeadWeights::from_state_dict(weights, bins)?,
            upsample,
        )
    }

    pub fn num_classes(&self) -> usize {
        self.classifier.out_channels()
    }
}

impl Graph for PspHead {
    fn name(&self) -> &'static str {
        "PSP head"
    }

    fn in_channels(&self) -> usize {
        self.ppm.in_channels
    }

    fn out_shape(&self, input_shape: [usize; 4]) -> Result<[usize; 4]> {
        let ppm = &self.ppm;
        check_input_channels(self.name(), ppm.in_channels, &ppm.input_key, input_shape)?;
        let [n, _, h, w] = input_shape;
        let [out_h, out_w] = self.upsample.unwrap_or([h, w]);
        Ok([n, self.num_classes(), out_h, out_w])
    }

    fn plan(&self, ctx: &Context, input_shape: [usize; 4]) -> Result<Arc<Plan>> {
        let output_shape = self.out_shape(input_shape)?;
        self.plans.get_or_build(input_shape, || {
            Plan::build(
                ctx,
                "PSP head",
                input_shape,
                output_shape,
                |input, output, plan| {
                    let features =
                        Tensor::empty(ctx, "PPM output", self.ppm.out_shape(input.shape())?)?;
                    plan.nested("0.", |plan| {
                        self.ppm.record(ctx, input, (&features).into(), plan)
                    })?;
                    record_classifier(ctx, "1", &self.classifier, &features, output, plan)?;
                    plan.keep([features]);
                    Ok(())
                },
            )
        })
    }
}

impl PpmWeights {
    /// Random weights for a PPM of the given shape (benchmarks run without files): one stage of
    /// `in_channels / bins.len()` channels per bin, a bottleneck to `bottleneck_channels`.
    pub fn random(
        in_channels: usize,
        bins: &[usize],
        bottleneck_channels: usize,
        seed: u64,
    ) -> Result<Self> {
        check_positive("pyramid bins", bins)?;
        let stage_channels = in_channels / bins.len().max(1);
        if stage_channels == 0 {
            return Err(Error::invalid(
                "PPM in_channels",
                format!(
                    "{in_channels} channels cannot be split over {} bins",
                    bins.len()
                ),
            ));
        }
        let mut rng = crate::check::Rng::new(seed);
        Ok(PpmWeights {
            in_channels,
            bins: bins.to_vec(),
            input_key: "stages.0.1.weight".into(),
            stages: bins
                .iter()
                .map(|_| rng.conv_weights(stage_channels, in_channels, 1, true))
                .collect(),
            bottleneck: rng.conv_weights(
                bottleneck_channels,
                in_channels + bins.len() * stage_channels,
                3,
                true,
            ),
        })
    }
}

//! DeepLabV3's Atrous Spatial Pyramid Pooling, as torchvision's
//! `torchvision.models.segmentation.deeplabv3.ASPP(in_channels, atrous_rates, out_channels)`
//! computes it in eval mode:
//!
//! ```text
//! x: (N, C_in, H, W)
//! branch 0        1x1 conv + BN + ReLU                          -> (N, C, H, W)
//! branch i        3x3 conv, padding = dilation = rate_i, BN, ReLU -> (N, C, H, W)
//! pooling branch  avg pool to 1x1, 1x1 conv + BN + ReLU, bilinear back to HxW
//! project         1x1 conv + BN + ReLU over the concat of all branches (Dropout: identity)
//! y: (N, C_out, H, W)
//! ```
//!
//! How it runs: batch norms are folded into the convs at load. The conv branches write straight
//! into their channel slices of one concat buffer. The pooling branch is constant over HxW, so
//! its share of the projection, `W_pool · pooled(n)`, is a per-image bias: the projection weight
//! is split into `[W_main | W_pool]` at load, a 1x1 conv computes `b_proj + W_pool · pooled(n)`
//! into an (N, C_out) buffer on the GPU, and the projection runs over the conv branches only with
//! that buffer as its bias (exact: ReLU comes after the sum). The upsampled pooling map is never
//! materialized.

use std::sync::Arc;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::graph::plan::{Plan, PlanBuilder, PlanCache};
use crate::graph::weights::StateDict;
use crate::graph::{check_input_channels, Graph};
use crate::ops::{self, Conv1x1, Conv3x3, ConvWeights};
use crate::shape::ConvGeometry;
use crate::tensor::{OutputSlice, Tensor};

/// ASPP parameters on the host, batch norms folded in, projection split.
#[derive(Clone, Debug)]
pub struct AsppWeights {
    pub in_channels: usize,
    pub rates: Vec<usize>,
    /// Full key of the first conv, named when an input has the wrong channel count.
    pub input_key: String,
    /// Branch 0 (`convs.0`): 1x1 conv.
    pub conv1x1: ConvWeights,
    /// Branches 1..=R (`convs.i`): 3x3 convs, dilation `rates[i - 1]`.
    pub atrous: Vec<ConvWeights>,
    /// The pooling branch's 1x1 conv (`convs.{R+1}.1`).
    pub pooling: ConvWeights,
    /// The projection's columns that read the conv branches, without bias (the per-image bias
    /// takes its place).
    pub project: ConvWeights,
    /// The projection's columns that read the pooling branch, with the projection's bias.
    pub project_pooling: ConvWeights,
}

/// Checks a list of rates or bins: each must be >= 1.
pub(crate) fn check_positive(what: &str, values: &[usize]) -> Result<()> {
    if let Some(position) = values.iter().position(|&v| v == 0) {
        return Err(Error::invalid(
            what,
            format!("entry {} is 0; each must be >= 1", position + 1),
        ));
    }
    Ok(())
}

/// Splits a 1x1 conv's input channels at `at`: columns `[0, at)` and `[at, C_in)`. The bias goes
/// with the second part.
fn split_input_channels(conv: &ConvWeights, at: usize) -> Result<(ConvWeights, ConvWeights)> {
    let rows = conv.weight.chunks(conv.in_channels);
    let first = rows.clone().flat_map(|row| &row[..at]).copied().collect();
    let second = rows.flat_map(|row| &row[at..]).copied().collect();
    let name = "projection";
    Ok((
        ConvWeights::new(name, [conv.out_channels, at, 1, 1], first, None)?,
        ConvWeights::new(
            name,
            [conv.out_channels, conv.in_channels - at, 1, 1],
            second,
            conv.bias.clone(),
        )?,
    ))
}

impl AsppWeights {
    /// Reads torchvision ASPP keys (`convs.*`, `project.*`) from `weights` for `rates`. Channel
    /// counts come from the weight shapes; the number of rates must match the branches.
    pub fn from_state_dict(weights: &StateDict, rates: &[usize]) -> Result<Self> {
        check_positive("atrous rates", rates)?;
        let branches = weights.count_children("convs");
        if branches == 0 {
            return Err(weights.missing_graph("convs.0.0.weight", "ASPP"));
        }
        if branches < 2 || branches != rates.len() + 2 {
            let found = branches.saturating_sub(2);
            return Err(Error::invalid(
                "atrous rates",
                format!(
                    "{} given ({}), but the weights in {} hold {found} atrous branches \
                     ({branches} modules '{}' to '{}': a 1x1 branch, the 3x3 branches, then \
                     the pooling branch); give {found} rates",
                    rates.len(),
                    join(rates),
                    weights.file_name(),
                    weights.full_key("convs.0"),
                    weights.full_key(&format!("convs.{}", branches - 1)),
                ),
            ));
        }
        let conv1x1 = weights.conv_bn("convs.0.0", "convs.0.1", "ASPP 1x1 branch", 1, None)?;
        let in_channels = conv1x1.in_channels;
        let atrous = rates
            .iter()
            .enumerate()
            .map(|(i, rate)| {
                let branch = i + 1;
                weights.conv_bn(
                    &format!("convs.{branch}.0"),
                    &format!("convs.{branch}.1"),
                    &format!("ASPP branch {branch}: 3x3 conv, dilation {rate}"),
                    3,
                    Some(in_channels),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let pool = branches - 1;
        let pooling = weights.conv_bn(
            &format!("convs.{pool}.1"),
            &format!("convs.{pool}.2"),
            "ASPP pooling branch 1x1 conv",
            1,
            Some(in_channels),
        )?;
        let conv_channels =
            conv1x1.out_channels + atrous.iter().map(|w| w.out_channels).sum::<usize>();
        let projection = weights.conv_bn(
            "project.0",
            "project.1",
            "ASPP projection over the concat of all branches",
            1,
            Some(conv_channels + pooling.out_channels),
        )?;
        let (project, project_pooling) = split_input_channels(&projection, conv_channels)?;
        Ok(AsppWeights {
            in_channels,
            rates: rates.to_vec(),
            input_key: weights.full_key("convs.0.0.weight"),
            conv1x1,
            atrous,
            pooling,
            project,
            project_pooling,
        })
    }

    pub fn out_channels(&self) -> usize {
        self.project.out_channels
    }
}

/// "6,12,18": a list of rates or bins as the command line takes it.
pub(crate) fn join(values: &[usize]) -> String {
    values
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// An ASPP with its weights on the GPU and its plans per input shape.
pub struct Aspp {
    in_channels: usize,
    input_key: String,
    conv1x1: Conv1x1,
    atrous: Vec<Conv3x3>,
    pooling: Conv1x1,
    project: Conv1x1,
    project_pooling: Conv1x1,
    plans: PlanCache,
}

impl Aspp {
    /// Uploads the weights (once; every plan shares them).
    pub fn new(ctx: &Context, weights: &AsppWeights) -> Result<Self> {
        let variant = Default::default();
        Ok(Aspp {
            in_channels: weights.in_channels,
            input_key: weights.input_key.clone(),
            conv1x1: Conv1x1::new(ctx, "ASPP 1x1 branch", &weights.conv1x1, true, variant)?,
            atrous: weights
                .atrous
                .iter()
                .zip(&weights.rates)
                .map(|(w, &rate)| {
                    Conv3x3::new(
                        ctx,
                        &format!("ASPP 3x3 branch, rate {rate}"),
                        w,
                        ConvGeometry::same_3x3(rate),
                        true,
                        Default::default(),
                    )
                })
                .collect::<Result<_>>()?,
            pooling: Conv1x1::new(ctx, "ASPP pooling 1x1", &weights.pooling, true, variant)?,
            project: Conv1x1::new(ctx, "ASPP projection", &weights.project, true, variant)?,
            project_pooling: Conv1x1::new(
                ctx,
                "ASPP projection bias from pooling",
                &weights.project_pooling,
                false,
                variant,
            )?,
            plans: PlanCache::default(),
        })
    }

    /// Reads the weights from a state_dict and uploads them.
    pub fn load(ctx: &Context, weights: &StateDict, rates: &[usize]) -> Result<Self> {
        Self::new(ctx, &AsppWeights::from_state_dict(weights, rates)?)
    }

    pub fn out_channels(&self) -> usize {
        self.project.out_channels()
    }

    /// Channels of the concat buffer: every branch but the pooling one.
    fn concat_channels(&self) -> usize {
        self.project.in_channels()
    }

    /// Adds the ASPP's dispatches, reading `input` and writing `output`, to a plan.
    pub(crate) fn record(
        &self,
        ctx: &Context,
        input: &Tensor,
        output: OutputSlice,
        plan: &mut PlanBuilder,
    ) -> Result<()> {
        let [n, _, h, w] = self.out_shape(input.shape())?;
        let concat = Tensor::empty(ctx, "ASPP concat", [n, self.concat_channels(), h, w])?;
        plan.push(
            "convs.0",
            self.conv1x1
                .prepare(ctx, input, OutputSlice::channels(&concat, 0))?,
        );
        let mut offset = self.conv1x1.out_channels();
        for (i, branch) in self.atrous.iter().enumerate() {
            plan.push(
                &format!("convs.{}", i + 1),
                branch.prepare(ctx, input, OutputSlice::channels(&concat, offset))?,
            );
            offset += branch.out_channels();
        }
        let pooling_layer = format!("convs.{}", self.atrous.len() + 1);
        // Pooling branch -> per-image projection bias, all at 1x1.
        let pooled = Tensor::empty(ctx, "ASPP pooled", [n, self.in_channels, 1, 1])?;
        plan.push(
            &pooling_layer,
            ops::adaptive_avg_pool2d::prepare(ctx, input, &pooled)?,
        );
        let pool_features = Tensor::empty(
            ctx,
            "ASPP pooling branch",
            [n, self.pooling.out_channels(), 1, 1],
        )?;
        plan.push(
            &pooling_layer,
            self.pooling
                .prepare(ctx, &pooled, (&pool_features).into())?,
        );
        let bias = Tensor::empty(ctx, "ASPP projection bias", [n, self.out_channels(), 1, 1])?;
        // The pooled channels' share of the projection, as a per-image bias.
        plan.push(
            "project",
            self.project_pooling
                .prepare(ctx, &pool_features, (&bias).into())?,
        );
        plan.push(
            "project",
            self.project
                .prepare_with_bias(ctx, &concat, output, Some(bias.buffer()))?,
        );
        plan.keep([concat, pooled, pool_features, bias]);
        Ok(())
    }
}

impl Graph for Aspp {
    fn name(&self) -> &'static str {
        "ASPP"
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
                "ASPP",
                input_shape,
                output_shape,
                |input, output, plan| self.record(ctx, input, output.into(), plan),
            )
        })
    }
}

impl AsppWeights {
    /// Random weights for an ASPP of the given shape (benchmarks run without files). BN is
    /// taken as already folded: the convs have a bias, the pooling branch's share of the
    /// projection is split off as `from_state_dict` does.
    pub fn random(
        in_channels: usize,
        out_channels: usize,
        rates: &[usize],
        seed: u64,
    ) -> Result<Self> {
        check_positive("atrous rates", rates)?;
        let mut rng = crate::check::Rng::new(seed);
        let branches = 1 + rates.len();
        let project = rng.conv_weights(out_channels, (branches + 1) * out_channels, 1, true);
        let (project, project_pooling) = split_input_channels(&project, branches * out_channels)?;
        Ok(AsppWeights {
            in_channels,
            rates: rates.to_vec(),
            input_key: "convs.0.0.weight".into(),
            conv1x1: rng.conv_weights(out_channels, in_channels, 1, true),
            atrous: rates
                .iter()
                .map(|_| rng.conv_weights(out_channels, in_channels, 3, true))
                .collect(),
            pooling: rng.conv_weights(out_channels, in_channels, 1, true),
            project,
            project_pooling,
        })
    }
}

//! Graphs: the context heads of semantic segmentation composed from the ops, loaded from PyTorch
//! state_dicts stored as safetensors. A graph holds no shader code; it prepares op dispatches.
//!
//! - [`Aspp`] (torchvision's `ASPP`), [`DeepLabHead`] (torchvision's `DeepLabHead`), [`Ppm`]
//!   (PSPNet's pyramid pooling module) and [`PspHead`] (PPM + classifier).
//! - Each comes in two parts: `*Weights`, the host-side parameters read from a [`StateDict`] by
//!   PyTorch key, checked and with batch norms folded into the convs (in f64); and the GPU graph,
//!   built from them with the weights uploaded once.
//! - [`Graph::plan`] prepares every dispatch for one input shape and caches the [`Plan`]: running
//!   the graph again on that shape compiles nothing and builds no bind group.
//!
//! ```no_run
//! use atrous::graph::{Graph, GraphConfig, StateDict};
//! let ctx = atrous::Context::new()?;
//! let weights = StateDict::open("deeplabv3.safetensors", "classifier.")?;
//! let config = GraphConfig::DeepLabHead { rates: vec![12, 24, 36], size: None };
//! let head = config.read_weights(&weights)?.upload(&ctx)?;
//! let logits = head.run(&ctx, [1, 2048, 33, 33], &vec![0.0; 2048 * 33 * 33])?;
//! # Ok::<(), atrous::Error>(())
//! ```

pub mod aspp;
pub mod deeplab;
pub mod plan;
pub mod ppm;
pub mod weights;

use std::sync::Arc;

pub use aspp::{Aspp, AsppWeights};
pub use deeplab::{DeepLabHead, DeepLabHeadWeights};
pub use plan::Plan;
pub use ppm::{Ppm, PpmWeights, PspHead, PspHeadWeights};
pub use weights::StateDict;

use crate::context::Context;
use crate::error::{Error, Result, Shape};
use crate::ops::{self, Conv1x1};
use crate::tensor::Tensor;

use plan::PlanBuilder;

/// A graph on the GPU, ready to run on inputs of any shape with its channel count.
pub trait Graph {
    /// "ASPP", "DeepLabHead", "PPM" or "PSP head".
    fn name(&self) -> &'static str;

    /// The channel count the input must have.
    fn in_channels(&self) -> usize;

    /// The output shape for an input of `input_shape`, or an error naming the mismatch.
    fn out_shape(&self, input_shape: [usize; 4]) -> Result<[usize; 4]>;

    /// The prepared plan for `input_shape`: built on first use, then shared.
    fn plan(&self, ctx: &Context, input_shape: [usize; 4]) -> Result<Arc<Plan>>;

    /// Runs the graph on host data (NCHW, contiguous) and returns the output (NCHW) — the plan's
    /// input upload, one submission, one read-back.
    fn run(&self, ctx: &Context, input_shape: [usize; 4], input: &[f32]) -> Result<Vec<f32>> {
        let plan = self.plan(ctx, input_shape)?;
        plan.write_input(ctx, input)?;
        plan.run(ctx)?;
        plan.output().to_vec(ctx)
    }
}

/// Which graph to read from a state_dict, with the settings the weights do not record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GraphConfig {
    Aspp {
        rates: Vec<usize>,
    },
    DeepLabHead {
        rates: Vec<usize>,
        /// Resize the logits to (H, W), bilinear with align_corners=False.
        size: Option<[usize; 2]>,
    },
    Ppm {
        bins: Vec<usize>,
    },
    PspHead {
        bins: Vec<usize>,
        size: Option<[usize; 2]>,
    },
}

/// The host-side parameters of one of the graphs.
#[derive(Clone, Debug)]
pub enum GraphWeights {
    Aspp(AsppWeights),
    DeepLabHead(DeepLabHeadWeights, Option<[usize; 2]>),
    Ppm(PpmWeights),
    PspHead(PspHeadWeights, Option<[usize; 2]>),
}

impl GraphConfig {
    /// DeepLabHead's default atrous rates (torchvision's).
    pub const DEEPLAB_RATES: [usize; 3] = [12, 24, 36];
    /// PSPNet's pyramid bins.
    pub const PSP_BINS: [usize; 4] = [1, 2, 3, 6];

    /// Reads and checks the graph's weights (no GPU needed).
    pub fn read_weights(&self, weights: &StateDict) -> Result<GraphWeights> {
        Ok(match self {
            GraphConfig::Aspp { rates } => {
                GraphWeights::Aspp(AsppWeights::from_state_dict(weights, rates)?)
            }
            GraphConfig::DeepLabHead { rates, size } => GraphWeights::DeepLabHead(
                DeepLabHeadWeights::from_state_dict(weights, rates)?,
                *size,
            ),
            GraphConfig::Ppm { bins } => {
                GraphWeights::Ppm(PpmWeights::from_state_dict(weights, bins)?)
            }
            GraphConfig::PspHead { bins, size } => {
                GraphWeights::PspHead(PspHeadWeights::from_state_dict(weights, bins)?, *size)
            }
        })
    }
}

impl GraphWeights {
    pub fn name(&self) -> &'static str {
        match self {
            GraphWeights::Aspp(_) => "ASPP",
            GraphWeights::DeepLabHead(..) => "DeepLabHead",
            GraphWeights::Ppm(_) => "PPM",
            GraphWeights::PspHead(..) => "PSP head",
        }
    }

    pub fn in_channels(&self) -> usize {
        match self {
            GraphWeights::Aspp(w) => w.in_channels,
            GraphWeights::DeepLabHead(w, _) => w.in_channels(),
            GraphWeights::Ppm(w) => w.in_channels,
            GraphWeights::PspHead(w, _) => w.in_channels(),
        }
    }

    /// Checks an input shape against the weights before any GPU work.
    pub fn check_input(&self, input_shape: [usize; 4]) -> Result<()> {
        let key = match self {
            GraphWeights::Aspp(w) => &w.input_key,
            GraphWeights::DeepLabHead(w, _) => &w.aspp.input_key,
            GraphWeights::Ppm(w) => &w.input_key,
            GraphWeights::PspHead(w, _) => &w.ppm.input_key,
        };
        check_input_channels(self.name(), self.in_channels(), key, input_shape)
    }

    /// Uploads the weights and returns the graph.
    pub fn upload(&self, ctx: &Context) -> Result<Box<dyn Graph>> {
        Ok(match self {
            GraphWeights::Aspp(w) => Box::new(Aspp::new(ctx, w)?),
            GraphWeights::DeepLabHead(w, size) => Box::new(DeepLabHead::new(ctx, w, *size)?),
            GraphWeights::Ppm(w) => Box::new(Ppm::new(ctx, w)?),
            GraphWeights::PspHead(w, size) => Box::new(PspHead::new(ctx, w, *size)?),
        })
    }
}

/// Checks that an input has the channel count of the graph's first conv (`key`).
pub(crate) fn check_input_channels(
    graph: &str,
    in_channels: usize,
    key: &str,
    input_shape: [usize; 4],
) -> Result<()> {
    if input_shape[1] != in_channels {
        return Err(Error::shape(
            format!("{graph} input"),
            format!("shape (N, {in_channels}, H, W), the input channels of the weights' '{key}'"),
            Shape(input_shape),
        ));
    }
    crate::tensor::check_shape(&format!("{graph} input"), input_shape)?;
    Ok(())
}

/// Checks a head's optional output size.
pub(crate) fn check_size(size: Option<[usize; 2]>) -> Result<()> {
    match size {
        Some(size) if size.contains(&0) => Err(Error::invalid(
            "output size",
            format!("must be >= 1 in both dimensions, found {size:?}"),
        )),
        _ => Ok(()),
    }
}

/// A head's last layer: the classifier 1x1 conv writes the logits into `output` directly, or,
/// when `output` has another H x W, into a logits tensor that a bilinear (align_corners=False)
/// resize writes into `output`.
pub(crate) fn record_classifier(
    ctx: &Context,
    layer: &str,
    classifier: &Conv1x1,
    features: &Tensor,
    output: &Tensor,
    plan: &mut PlanBuilder,
) -> Result<()> {
    let [n, _, h, w] = features.shape();
    let [_, classes, out_h, out_w] = output.shape();
    if (out_h, out_w) == (h, w) {
        // Resizing to the same size is the identity (every source coordinate is exact).
        plan.push(layer, classifier.prepare(ctx, features, output.into())?);
        return Ok(());
    }
    let logits = Tensor::empty(ctx, "logits", [n, classes, h, w])?;
    plan.push(layer, classifier.prepare(ctx, features, (&logits).into())?);
    plan.push(
        "upsample",
        ops::interpolate::prepare(ctx, &logits, output.into(), false)?,
    );
    plan.keep([logits]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(case: &str, role: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/graphs")
            .join(format!("{case}.{role}.safetensors"))
    }

    fn load(case: &str, config: GraphConfig, ctx: &Context) -> Box<dyn Graph> {
        let weights = StateDict::open(fixture(case, "weights"), "").unwrap();
        config.read_weights(&weights).unwrap().upload(ctx).unwrap()
    }

    /// Running a graph again on the same input shape reuses its plan: no pipeline compiled, no
    /// dispatch rebuilt, same result. A new shape gets its own plan but still compiles nothing.
    #[test]
    fn second_run_reuses_the_plan_and_compiles_nothing() {
        let ctx = Context::new().unwrap();
        let case = "psp_head_b1-2-3_n1_c18_cls3_h13w11_size27x23";
        let config = GraphConfig::PspHead {
            bins: vec![1, 2, 3],
            size: Some([27, 23]),
        };
        let graph = load(case, config, &ctx);
        let input = StateDict::open(fixture(case, "input"), "")
            .unwrap()
            .tensor("input")
            .unwrap();
        let shape: [usize; 4] = input.shape.try_into().unwrap();
        let input = input.data;
        let first_plan = graph.plan(&ctx, shape).unwrap();
        let first = graph.run(&ctx, shape, &input).unwrap();
        let compiled = ctx.pipelines_compiled();
        assert!(compiled > 0);

        let second = graph.run(&ctx, shape, &input).unwrap();
        assert_eq!(
            ctx.pipelines_compiled(),
            compiled,
            "the second run compiled pipelines"
        );
        assert!(Arc::ptr_eq(&first_plan, &graph.plan(&ctx, shape).unwrap()));
        assert_eq!(first, second);

        let other = [2, shape[1], 4, 3];
        let other_plan = graph.plan(&ctx, other).unwrap();
        assert!(!Arc::ptr_eq(&first_plan, &other_plan));
        graph.run(&ctx, other, &vec![1.0; 2 * 18 * 12]).unwrap();
        assert_eq!(
            ctx.pipelines_compiled(),
            compiled,
            "a new shape compiled pipelines"
        );
    }

    fn labels(plan: &Plan) -> Vec<&str> {
        plan.launches().iter().map(|l| l.label.as_str()).collect()
    }

    /// The ASPP's pooling branch never becomes an HxW map: its plan has no interpolate and no
    /// concat copy; pool, 1x1, then the per-image projection bias, all at 1x1.
    #[test]
    fn aspp_plan_folds_the_pooling_branch_into_the_projection_bias() {
        let ctx = Context::new().unwrap();
        let rates = vec![6, 12, 18];
        let graph = load(
            "aspp_r6-12-18_n2_c16to12_h13w11",
            GraphConfig::Aspp {
                rates: rates.clone(),
            },
            &ctx,
        );
        let plan = graph.plan(&ctx, [2, 16, 13, 11]).unwrap();
        let labels = labels(&plan);
        assert!(
            labels
                .iter()
                .all(|l| !l.contains("interpolate") && !l.starts_with("concat")),
            "{labels:?}"
        );
        // 1x1 branch, 3 atrous branches, pool, pooling 1x1, projection bias, projection.
        assert_eq!(labels.len(), 1 + rates.len() + 4, "{labels:?}");
        // Layers carry PyTorch's module paths, as the per-layer benchmark reports them.
        let layers: Vec<(&str, usize)> = plan.layers().iter().map(|(n, l)| (*n, l.len())).collect();
        assert_eq!(
            layers,
            [
                ("convs.0", 1),
                ("convs.1", 1),
                ("convs.2", 1),
                ("convs.3", 1),
                ("convs.4", 2),
                ("project", 2)
            ]
        );
    }

    /// Nested graphs prefix their layers with the module path PyTorch gives them.
    #[test]
    fn head_layers_are_named_by_module_path() {
        let ctx = Context::new().unwrap();
        let case = "psp_head_b1-2-3_n1_c18_cls3_h13w11_size27x23";
        let config = GraphConfig::PspHead {
            bins: vec![1, 2, 3],
            size: Some([27, 23]),
        };
        let plan = load(case, config, &ctx)
            .plan(&ctx, [1, 18, 13, 11])
            .unwrap();
        let names: Vec<&str> = plan.layers().iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "0.cat",
                "0.stages.0",
                "0.stages.1",
                "0.stages.2",
                "0.bottleneck",
                "1",
                "upsample"
            ]
        );
    }

    /// The PPM copies its input into the concat buffer once; each stage's upsample writes its
    /// own slice (no other concat copy).
    #[test]
    fn ppm_plan_copies_the_input_once_and_upsamples_into_slices() {
        let ctx = Context::new().unwrap();
        let bins = vec![1, 2, 3, 6];
        let graph = load(
            "ppm_b1-2-3-6_n3_c24to20_h5w4",
            GraphConfig::Ppm { bins: bins.clone() },
            &ctx,
        );
        let plan = graph.plan(&ctx, [3, 24, 5, 4]).unwrap();
        let labels = labels(&plan);
        let count = |prefix: &str| labels.iter().filter(|l| l.starts_with(prefix)).count();
        assert_eq!(count("concat"), 1, "{labels:?}");
        assert_eq!(count("interpolate"), bins.len(), "{labels:?}");
        assert_eq!(count("adaptive_avg_pool2d"), bins.len(), "{labels:?}");
    }
}

//! Models: each one written once, as a short composition over the graph builder, and listed
//! once in [`REGISTRY`] with what its weights do not record (atrous rates, pyramid bins, output
//! stride) and the keys that identify its state_dict. `atrous run`, `segment`, `bench`, `tune`
//! and the PyTorch scripts (through `atrous models`) all derive from the registry.
//!
//! ```no_run
//! use atrous::{models::{Model, ModelOptions}, graph::StateDict, Context};
//! let ctx = Context::new()?;
//! let weights = StateDict::open("deeplabv3_resnet50.safetensors", "")?;
//! let model = Model::load("deeplabv3", &weights, &ModelOptions::default())?;
//! let image = vec![0.0; 3 * 520 * 520]; // normalized, NCHW
//! let logits = model.run(&ctx, [1, 3, 520, 520], &image)?; // (1, 21, 520, 520)
//! # Ok::<(), atrous::Error>(())
//! ```

pub mod heads;
pub mod networks;
pub mod resnet;
pub mod synthetic;

use std::sync::{Arc, Mutex};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::graph::{Graph, GraphBuilder, Plan, StateDict, Value};

/// What a model takes beyond its weights, as the command line gives it; `None` takes the
/// model's default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelOptions {
    /// One atrous rate per 3x3 branch of an ASPP.
    pub rates: Option<Vec<usize>>,
    /// One bin per pyramid stage of a PPM.
    pub bins: Option<Vec<usize>>,
    /// Resize a head's logits to (H, W) (bilinear, align_corners=False).
    pub size: Option<[usize; 2]>,
    /// 8 or 16: where the backbone trades stride for dilation.
    pub output_stride: Option<usize>,
    /// Also compute the auxiliary head's logits (`aux`).
    pub aux: bool,
}

/// The options a model can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    Rates,
    Bins,
    Size,
    OutputStride,
    Aux,
}

impl Setting {
    pub fn flag(self) -> &'static str {
        match self {
            Setting::Rates => "--rates",
            Setting::Bins => "--bins",
            Setting::Size => "--size",
            Setting::OutputStride => "--output-stride",
            Setting::Aux => "--aux",
        }
    }
}

/// A model's options with its defaults applied and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub rates: Vec<usize>,
    pub bins: Vec<usize>,
    pub size: Option<[usize; 2]>,
    pub output_stride: usize,
    pub aux: bool,
}

/// The sizes of random weights for a model (benchmarks and tests run without files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Synthetic {
    /// Heads: the input channels (2048 for a ResNet-50's layer4).
    pub in_channels: usize,
    /// ASPP and DeepLabHead: the branch width (256 in torchvision).
    pub out_channels: usize,
    /// PPM: the bottleneck's output channels (512 in PSPNet).
    pub bottleneck_channels: usize,
    pub num_classes: usize,
    /// Networks: 18, 34, 50, 101 or 152.
    pub depth: usize,
    /// Networks: channels of the first stage (64 in every ResNet); narrower for tests.
    pub base_width: usize,
    /// PSPNet: the three-conv stem of its dilated ResNet instead of torchvision's 7x7.
    pub deep_stem: bool,
}

impl Default for Synthetic {
    fn default() -> Self {
        Synthetic {
            in_channels: 2048,
            out_channels: 256,
            bottleneck_channels: 512,
            num_classes: 21,
            depth: 50,
            base_width: 64,
            deep_stem: true,
        }
    }
}

/// A built graph's named outputs, `output` first.
pub type Outputs = Vec<(&'static str, Value)>;

/// A plan cache entry: (context id, input shape) and the plan.
type CachedPlan = ((u64, [usize; 4]), Arc<Plan>);

/// One model of the registry.
pub struct ModelSpec {
    /// The command-line name: `atrous run <name>`.
    pub name: &'static str,
    /// What the model is, in a sentence (help text, `atrous models`).
    pub about: &'static str,
    /// How errors name it: `ASPP input`, `no ASPP in these weights`.
    pub display: &'static str,
    /// How a guess names it: "they look like an ASPP".
    pub article: &'static str,
    /// The options it takes.
    pub settings: &'static [Setting],
    pub default_rates: Option<&'static [usize]>,
    pub default_bins: Option<&'static [usize]>,
    pub default_output_stride: Option<usize>,
    /// Whether it reads images (3 channels), else feature maps.
    pub takes_image: bool,
    /// The input H, W it is usually run at (benchmarks and the tuner default to it): 520 for
    /// torchvision's segmentation models, 473 for PSPNet, their heads' maps at output stride
    /// 16 (DeepLab, 33) or 8 (PSPNet, 60).
    pub typical_input: [usize; 2],
    /// Rates for random weights when the model has no default (ASPP: the 6,12,18 of
    /// torchvision's examples).
    pub example_rates: Option<&'static [usize]>,
    /// Keys every state_dict of the model has; the first is named when it is missing.
    pub signature: &'static [&'static str],
    /// Builds the graph from the weights; returns the named outputs (`output` first).
    pub build: fn(&mut GraphBuilder, &StateDict, &Settings) -> Result<Outputs>,
    /// Random weights of the model's architecture (keys and shapes as PyTorch's).
    pub synthetic: fn(&Synthetic, &Settings, u64) -> synthetic::Tensors,
}

/// Every model, most specific state_dict signature first (a whole network's keys contain its
/// head's under a prefix, never at the root, so the order only matters for the guess).
pub static REGISTRY: &[ModelSpec] = &[
    networks::DEEPLABV3,
    networks::FCN,
    networks::PSPNET,
    heads::DEEPLAB_HEAD,
    heads::PSP_HEAD,
    heads::ASPP,
    heads::PPM,
];

/// The registry entry named `name`.
pub fn spec(name: &str) -> Result<&'static ModelSpec> {
    REGISTRY.iter().find(|s| s.name == name).ok_or_else(|| {
        let names: Vec<&str> = REGISTRY.iter().map(|s| s.name).collect();
        Error::invalid(
            "model",
            format!("expected one of {}, found '{name}'", names.join(", ")),
        )
    })
}

impl ModelSpec {
    pub fn takes(&self, setting: Setting) -> bool {
        self.settings.contains(&setting)
    }

    /// `options` with this model's defaults, checked: an option the model does not take is an
    /// error that lists the ones it does.
    pub fn settings(&self, options: &ModelOptions) -> Result<Settings> {
        let given = [
            (Setting::Rates, options.rates.is_some()),
            (Setting::Bins, options.bins.is_some()),
            (Setting::Size, options.size.is_some()),
            (Setting::OutputStride, options.output_stride.is_some()),
            (Setting::Aux, options.aux),
        ];
        for (setting, is_given) in given {
            if is_given && !self.takes(setting) {
                let takes: Vec<&str> = self.settings.iter().map(|s| s.flag()).collect();
                return Err(Error::invalid(
                    setting.flag(),
                    format!(
                        "{} takes no {}{}",
                        self.name,
                        setting.flag(),
                        if takes.is_empty() {
                            String::new()
                        } else {
                            format!(" (its options: {})", takes.join(", "))
                        }
                    ),
                ));
            }
        }
        let rates = match (&options.rates, self.default_rates) {
            (Some(rates), _) => rates.clone(),
            (None, Some(rates)) => rates.to_vec(),
            (None, None) if self.takes(Setting::Rates) => {
                return Err(Error::invalid(
                    "--rates",
                    format!(
                        "{} needs --rates: a state_dict does not record the atrous rates (give \
                         one per 3x3 branch, e.g. 6,12,18)",
                        self.name
                    ),
                ))
            }
            (None, None) => Vec::new(),
        };
        check_positive("atrous rates", &rates)?;
        let bins = options
            .bins
            .clone()
            .or(self.default_bins.map(<[usize]>::to_vec))
            .unwrap_or_default();
        check_positive("pyramid bins", &bins)?;
        if let Some(size) = options.size {
            if size.contains(&0) {
                return Err(Error::invalid(
                    "output size",
                    format!("must be >= 1 in both dimensions, found {size:?}"),
                ));
            }
        }
        let output_stride = options
            .output_stride
            .or(self.default_output_stride)
            .unwrap_or(8);
        if self.takes(Setting::OutputStride) && !matches!(output_stride, 8 | 16) {
            return Err(Error::invalid(
                "--output-stride",
                format!("must be 8 or 16, found {output_stride}"),
            ));
        }
        Ok(Settings {
            rates,
            bins,
            size: options.size,
            output_stride,
            aux: options.aux,
        })
    }

    /// The error for weights that hold no such model: one of its keys, `key`, is missing. Says
    /// what the weights seem to hold instead, or which prefix would select the model.
    fn missing(&self, weights: &StateDict, key: &str) -> Error {
        let full = weights.full_key(key);
        let mut message = format!(
            "missing tensor '{full}': no {} in these weights",
            self.display
        );
        if let Some(hint) = weights.prefix_hint() {
            message += &hint;
        } else if let Some(other) = guess(weights) {
            message += &format!(
                "; they look like {} (use `atrous run {}`)",
                other.article, other.name
            );
        } else if let Some(found) = weights
            .keys_everywhere()
            .into_iter()
            .find(|k| k.ends_with(&format!(".{full}")))
        {
            let prefix = &found[..found.len() - key.len()];
            message += &format!("; the file has '{found}': select it with --prefix {prefix}");
        }
        Error::file(weights.file_name(), message)
    }
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

/// "6,12,18": a list as the command line takes it.
pub(crate) fn join(values: &[usize]) -> String {
    values
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The model whose signature the view's keys match, if any.
pub fn guess(weights: &StateDict) -> Option<&'static ModelSpec> {
    REGISTRY
        .iter()
        .find(|spec| spec.signature.iter().all(|key| weights.contains(key)))
}

/// How many plans a [`Model`] keeps (two: a batch split into chunks runs a full chunk and
/// a remainder).
pub const PLANS_KEPT: usize = 2;

/// A model: its graph, built once from the weights, and its plans, one per input shape.
pub struct Model {
    spec: &'static ModelSpec,
    settings: Settings,
    graph: Graph,
    /// The plans used last, by context and input shape, most recent last.
    plans: Mutex<Vec<CachedPlan>>,
}

/// One output of a run: its name (`output`, `aux`), shape and values (NCHW).
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub name: String,
    pub shape: [usize; 4],
    pub data: Vec<f32>,
}

impl Model {
    /// Reads model `name` of the registry from `weights`: checks every shape, folds the batch
    /// norms (in f64) and builds the graph. No GPU is needed; the weights are uploaded when
    /// the model first runs.
    pub fn load(name: &str, weights: &StateDict, options: &ModelOptions) -> Result<Model> {
        Self::from_spec(spec(name)?, weights, options)
    }

    pub fn from_spec(
        spec: &'static ModelSpec,
        weights: &StateDict,
        options: &ModelOptions,
    ) -> Result<Model> {
        let settings = spec.settings(options)?;
        if let Some(key) = spec.signature.iter().find(|key| !weights.contains(key)) {
            return Err(spec.missing(weights, key));
        }
        let mut g = GraphBuilder::new();
        let outputs = (spec.build)(&mut g, weights, &settings)?;
        Ok(Model {
            spec,
            settings,
            graph: g.finish(outputs)?,
            plans: Mutex::new(Vec::new()),
        })
    }

    /// Model `name` with random weights of the given sizes (benchmarks run without files).
    pub fn synthetic(
        name: &str,
        sizes: &Synthetic,
        options: &ModelOptions,
        seed: u64,
    ) -> Result<Model> {
        let spec = spec(name)?;
        let settings = spec.settings(options)?;
        let tensors = (spec.synthetic)(sizes, &settings, seed);
        let weights = StateDict::from_tensors(&format!("random {name} weights"), &tensors)?;
        Self::from_spec(spec, &weights, options)
    }

    pub fn spec(&self) -> &'static ModelSpec {
        self.spec
    }

    pub fn name(&self) -> &'static str {
        self.spec.name
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    pub fn in_channels(&self) -> usize {
        self.graph.in_channels()
    }

    /// Checks an input shape against the weights, before any GPU work.
    pub fn check_input(&self, input_shape: [usize; 4]) -> Result<()> {
        self.output_shapes(input_shape).map(|_| ())
    }

    /// The name and shape of every output for an input of `input_shape`.
    pub fn output_shapes(&self, input_shape: [usize; 4]) -> Result<Vec<(String, [usize; 4])>> {
        let shapes = self.graph.shapes(input_shape).map_err(|e| match e {
            Error::Shape {
                what,
                expected,
                found,
            } if what == "input" => Error::Shape {
                what: format!("{} input", self.spec.display),
                expected,
                found,
            },
            other => other,
        })?;
        Ok(self
            .graph
            .outputs()
            .iter()
            .map(|(name, value)| (name.clone(), shapes[value.index()]))
            .collect())
    }

    /// The shape of the first output (`output`).
    pub fn out_shape(&self, input_shape: [usize; 4]) -> Result<[usize; 4]> {
        Ok(self.output_shapes(input_shape)?[0].1)
    }

    /// The prepared plan for `input_shape` on `ctx`: built on first use, then shared. The
    /// model keeps the [`PLANS_KEPT`] plans used last (a plan holds its activations on the
    /// GPU: a directory of photos of many sizes must not keep one per size).
    pub fn plan(&self, ctx: &Context, input_shape: [usize; 4]) -> Result<Arc<Plan>> {
        self.check_input(input_shape)?;
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        let key = (ctx.id(), input_shape);
        let plan = match plans.iter().position(|(k, _)| *k == key) {
            Some(i) => plans.remove(i).1,
            None => Arc::new(Plan::build(ctx, &self.graph, input_shape)?),
        };
        if plans.len() >= PLANS_KEPT {
            plans.remove(0);
        }
        plans.push((key, plan.clone()));
        Ok(plan)
    }

    /// Runs the model on host data (NCHW, contiguous) and returns the first output (NCHW).
    pub fn run(&self, ctx: &Context, input_shape: [usize; 4], input: &[f32]) -> Result<Vec<f32>> {
        let mut outputs = self.run_all(ctx, input_shape, input)?;
        Ok(outputs.swap_remove(0).data)
    }

    /// Runs the model and returns every output. A batch whose tensors would pass the device's
    /// largest storage binding runs in smaller batches (down to one image), not refused.
    pub fn run_all(
        &self,
        ctx: &Context,
        input_shape: [usize; 4],
        input: &[f32],
    ) -> Result<Vec<Output>> {
        let expected: usize = input_shape.iter().product();
        if input.len() != expected {
            return Err(Error::shape(
                format!("{} input", self.spec.display),
                format!(
                    "{expected} values for shape {}",
                    crate::error::Shape(input_shape)
                ),
                format!("{} values", input.len()),
            ));
        }
        let chunk = self.batch_that_fits(ctx, input_shape)?;
        let [n, c, h, w] = input_shape;
        let per_image = c * h * w;
        let shapes = self.output_shapes(input_shape)?;
        let mut outputs: Vec<Output> = shapes
            .iter()
            .map(|(name, shape)| Output {
                name: name.clone(),
                shape: *shape,
                data: Vec::with_capacity(shape.iter().product()),
            })
            .collect();
        for start in (0..n).step_by(chunk) {
            let images = chunk.min(n - start);
            let plan = self.plan(ctx, [images, c, h, w])?;
            let slice = &input[start * per_image..(start + images) * per_image];
            for (output, data) in outputs.iter_mut().zip(plan.execute(ctx, slice)?) {
                output.data.extend(data);
            }
        }
        Ok(outputs)
    }

    /// The largest batch (up to `input_shape`'s) whose tensors each fit one storage binding:
    /// the chunks [`Model::run_all`] runs.
    pub fn batch_that_fits(&self, ctx: &Context, input_shape: [usize; 4]) -> Result<usize> {
        let [_, c, h, w] = input_shape;
        let mut batch = input_shape[0];
        loop {
            match self.plan(ctx, [batch, c, h, w]) {
                Ok(_) => return Ok(batch),
                // Every tensor's size is linear in the batch; the tensor named may not be the
                // largest, so shrink until every one fits.
                Err(Error::TooLarge { bytes, limit, .. }) if batch > 1 => {
                    let per_image = bytes.div_ceil(batch as u64);
                    batch = (limit / per_image).clamp(1, batch as u64 - 1) as usize;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

//! `atrous run`: runs a model of the registry on a safetensors input with weights from a
//! PyTorch state_dict and writes its outputs as safetensors.
//!
//! ```text
//! atrous run aspp         --weights W --input X --output Y --rates 6,12,18 [--prefix P]
//! atrous run deeplab-head --weights W --input X --output Y [--rates 12,24,36] [--size H,W]
//! atrous run ppm          --weights W --input X --output Y [--bins 1,2,3,6]
//! atrous run psp-head     --weights W --input X --output Y [--bins 1,2,3,6] [--size H,W]
//! atrous run deeplabv3    --weights W --input X --output Y [--aux] [--rates 12,24,36] [--output-stride 8|16]
//! atrous run fcn          --weights W --input X --output Y [--aux] [--output-stride 8|16]
//! atrous run pspnet       --weights W --input X --output Y [--aux] [--bins 1,2,3,6]
//! ```
//!
//! The input file holds one rank-4 f32 tensor (NCHW, any name); the output file holds the f32
//! tensor `output` (and `aux` with `--aux`). Everything that can be checked without a GPU
//! (arguments, weights, input, output directory) is checked before the device is opened. The
//! output is written to a temporary file beside it and renamed into place, so a failed run
//! leaves no output file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

use crate::context::Context;
use crate::error::{Error, Result, Shape};
use crate::graph::state_dict::shape_text;
use crate::graph::StateDict;
use crate::models::{self, Model, ModelOptions, Output};

/// The model and its options, shared by `run` and `segment`.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// The model (`atrous models` lists them with their options).
    #[arg(value_name = "MODEL", value_parser = clap::builder::PossibleValuesParser::new(model_names()))]
    pub model: String,
    /// Atrous rates, one per 3x3 branch of the weights' ASPP, e.g. 6,12,18 ('' for an ASPP
    /// without 3x3 branches). Default: the model's (12,24,36 for DeepLab); required for aspp.
    #[arg(long, value_name = "R1,R2,...")]
    pub rates: Option<String>,
    /// Output size of each pyramid stage's pooling, one per stage of the weights. Default:
    /// 1,2,3,6.
    #[arg(long, value_name = "B1,B2,...")]
    pub bins: Option<String>,
    /// Resize a head's logits to H,W (bilinear, align_corners=False).
    #[arg(long, value_name = "H,W")]
    pub size: Option<String>,
    /// 8 or 16: the backbone's output stride (DeepLabV3, FCN). Default: 8.
    #[arg(long, value_name = "8|16")]
    pub output_stride: Option<usize>,
    /// Also compute the auxiliary head's logits (written as `aux`).
    #[arg(long)]
    pub aux: bool,
}

/// The registry's names, for the command line.
pub fn model_names() -> Vec<&'static str> {
    models::REGISTRY.iter().map(|s| s.name).collect()
}

impl ModelArgs {
    /// The options, with the lists parsed.
    pub fn options(&self) -> Result<ModelOptions> {
        Ok(ModelOptions {
            rates: self.rates.as_deref().map(parse_rates).transpose()?,
            bins: self
                .bins
                .as_deref()
                .map(|b| parse_list("--bins", b))
                .transpose()?,
            size: self.size.as_deref().map(parse_size).transpose()?,
            output_stride: self.output_stride,
            aux: self.aux,
        })
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// safetensors file holding the PyTorch state_dict (see scripts/export_safetensors.py).
    #[arg(long, value_name = "W.safetensors")]
    pub weights: PathBuf,
    /// safetensors file holding one rank-4 f32 tensor (N, C, H, W).
    #[arg(long, value_name = "X.safetensors")]
    pub input: PathBuf,
    /// Where to write the outputs: f32 tensors named `output` (and `aux`).
    #[arg(long, value_name = "Y.safetensors")]
    pub output: PathBuf,
    /// Key prefix of the module inside a whole-model state_dict, e.g. `classifier.` or
    /// `module.` (a DataParallel checkpoint).
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Also report load time, plan memory and the adapter.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Parses a comma-separated list of positive integers ("6,12,18").
pub fn parse_list(flag: &str, text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .map(|item| {
            let item = item.trim();
            match item.parse::<usize>() {
                Ok(0) => Err(Error::invalid(
                    flag,
                    format!("found 0 in '{text}'; each value must be >= 1"),
                )),
                Ok(value) => Ok(value),
                Err(_) => Err(Error::invalid(
                    flag,
                    format!(
                        "'{item}' in '{text}' is not a positive integer; expected a \
                         comma-separated list such as 6,12,18"
                    ),
                )),
            }
        })
        .collect()
}

/// Parses `--rates`: a list as [`parse_list`], or nothing at all, for an ASPP whose only
/// branches are the 1x1 and the pooling one (torchvision accepts `atrous_rates=[]`).
pub fn parse_rates(text: &str) -> Result<Vec<usize>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    parse_list("--rates", text)
}

/// Parses "H,W".
pub fn parse_size(text: &str) -> Result<[usize; 2]> {
    match parse_list("--size", text)?[..] {
        [h, w] => Ok([h, w]),
        ref other => Err(Error::invalid(
            "--size",
            format!("expected two values H,W, found {} in '{text}'", other.len()),
        )),
    }
}

/// Reads the single rank-4 f32 tensor of an input file: its shape and data.
pub fn read_input(path: &Path) -> Result<([usize; 4], Vec<f32>)> {
    let file = StateDict::open(path, "")?;
    let keys = file.keys();
    let [name] = &keys[..] else {
        return Err(Error::file(
            path.display(),
            format!(
                "expected exactly one tensor (the NCHW input), found {}{}",
                keys.len(),
                if keys.is_empty() {
                    String::new()
                } else {
                    format!(": {}", keys.join(", "))
                }
            ),
        ));
    };
    let what = format!("{}: input tensor '{name}'", path.display());
    let (dtype, shape) = file.info(name).ok_or_else(|| file.missing(name))?;
    if dtype != Dtype::F32 {
        return Err(Error::shape(
            what,
            "dtype F32",
            format!("{dtype:?} (convert it with .float() before saving)"),
        ));
    }
    let shape: [usize; 4] = shape.try_into().map_err(|_| {
        Error::shape(
            &what,
            "a rank-4 NCHW shape (N, C, H, W)",
            format!("rank {}, shape {}", shape.len(), shape_text(shape)),
        )
    })?;
    crate::tensor::check_shape(&what, shape)?;
    Ok((shape, file.tensor(name)?.data))
}

/// Writes `outputs` of `model` as f32 tensors under their names (the producer and the model in
/// the metadata): to a temporary file in the same directory, then renamed over `path`, so a
/// failure never leaves a partial file.
pub fn write_outputs(path: &Path, outputs: &[Output], model: &str) -> Result<()> {
    let metadata = HashMap::from([
        (
            "producer".to_string(),
            format!("atrous {}", env!("CARGO_PKG_VERSION")),
        ),
        ("model".to_string(), model.to_string()),
    ]);
    let fail = |message: String| Error::file(path.display(), message);
    let views = outputs
        .iter()
        .map(|o| {
            TensorView::new(Dtype::F32, o.shape.to_vec(), bytemuck::cast_slice(&o.data))
                .map(|view| (o.name.clone(), view))
                .map_err(|e| fail(format!("cannot serialize the output: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, Some(metadata))
        .map_err(|e| fail(format!("cannot serialize the output: {e}")))?;
    crate::files::write_atomically(path, &bytes)
}

/// The directory an output path lives in ("." for a bare file name).
pub fn output_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Fails unless the directory `path` would be written into exists.
pub fn check_output_dir(path: &Path) -> Result<()> {
    let dir = output_dir(path);
    if !dir.is_dir() {
        return Err(Error::file(
            path.display(),
            format!("the output directory '{}' does not exist", dir.display()),
        ));
    }
    Ok(())
}

/// `atrous run`: everything the subcommand does.
pub fn run(args: &RunArgs, ctx: impl FnOnce() -> Result<Context>) -> Result<()> {
    let options = args.model.options()?;
    let started = Instant::now();
    let weights = StateDict::open(&args.weights, &args.prefix)?;
    let model = Model::load(&args.model.model, &weights, &options)?;
    let loaded = started.elapsed();
    let (input_shape, input) = read_input(&args.input)?;
    let shapes = model.output_shapes(input_shape).map_err(|e| match e {
        Error::Shape {
            what,
            expected,
            found,
        } => Error::Shape {
            what: format!("{what} ({})", args.input.display()),
            expected,
            found,
        },
        other => other,
    })?;
    check_output_dir(&args.output)?;

    let ctx = ctx()?;
    let started = Instant::now();
    let outputs = model.run_all(&ctx, input_shape, &input)?;
    let ran = started.elapsed();
    write_outputs(&args.output, &outputs, model.name())?;
    let described: Vec<String> = shapes
        .iter()
        .map(|(name, shape)| format!("{name} {}", Shape(*shape)))
        .collect();
    eprintln!(
        "{}: {} -> {} written to {}",
        model.spec().display,
        Shape(input_shape),
        described.join(", "),
        args.output.display(),
    );
    if args.verbose {
        let [_, c, h, w] = input_shape;
        // The batch may have run in smaller chunks (see `Model::run_all`): their plan.
        let plan = model
            .batch_that_fits(&ctx, input_shape)
            .and_then(|chunk| model.plan(&ctx, [chunk, c, h, w]));
        eprintln!(
            "adapter: {} ({})",
            ctx.adapter().describe(),
            ctx.selection_reason()
        );
        eprintln!(
            "weights: {} read and checked in {:.1} ms ({} convolutions, batch norms folded)",
            args.weights.display(),
            loaded.as_secs_f64() * 1e3,
            model.graph().convs().count()
        );
        if let Ok(plan) = plan {
            let memory = plan.memory();
            eprintln!(
                "plan: {} dispatches; activations {:.1} MiB in {} buffers (lower bound {:.1} \
                 MiB)",
                plan.launches().len(),
                memory.allocated_bytes() as f64 / (1 << 20) as f64,
                memory.slots.len(),
                memory.lower_bound_bytes as f64 / (1 << 20) as f64,
            );
        }
        eprintln!(
            "run: {:.1} ms, first run (weights uploaded, pipelines compiled)",
            ran.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

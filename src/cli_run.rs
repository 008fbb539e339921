//! `atrous run`: runs one of the graphs on a safetensors input with weights from a PyTorch
//! state_dict and writes the output as safetensors.
//!
//! ```text
//! atrous run aspp         --weights W --input X --output Y --rates 6,12,18 [--prefix P]
//! atrous run deeplab-head --weights W --input X --output Y [--rates 12,24,36] [--size H,W] [--prefix P]
//! atrous run ppm          --weights W --input X --output Y [--bins 1,2,3,6] [--prefix P]
//! atrous run psp-head     --weights W --input X --output Y [--bins 1,2,3,6] [--size H,W] [--prefix P]
//! ```
//!
//! The input file holds one rank-4 f32 tensor (NCHW, any name); the output file holds one f32
//! tensor named `output`. Everything that can be checked without a GPU (arguments, weights,
//! input, output directory) is checked before the device is opened. The output is written to a
//! temporary file beside it and renamed into place, so a failed run leaves no output file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

use crate::context::Context;
use crate::error::{Error, Result, Shape};
use crate::graph::weights::shape_text;
use crate::graph::{GraphConfig, StateDict};

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(subcommand)]
    pub graph: RunGraph,
}

/// The files every graph reads and writes.
#[derive(Args, Debug)]
pub struct Files {
    /// safetensors file holding the PyTorch state_dict (see scripts/export_safetensors.py).
    #[arg(long, value_name = "W.safetensors")]
    pub weights: PathBuf,
    /// safetensors file holding one rank-4 f32 tensor (N, C, H, W).
    #[arg(long, value_name = "X.safetensors")]
    pub input: PathBuf,
    /// Where to write the output: one f32 tensor named `output`.
    #[arg(long, value_name = "Y.safetensors")]
    pub output: PathBuf,
    /// Key prefix of the module inside a whole-model state_dict, e.g. `classifier.`.
    #[arg(long, default_value = "")]
    pub prefix: String,
}

#[derive(Subcommand, Debug)]
pub enum RunGraph {
    /// torchvision's ASPP (keys convs.*, project.*).
    Aspp {
        #[command(flatten)]
        files: Files,
        /// Atrous rates, one per 3x3 branch of the weights, e.g. 6,12,18 ('' for an ASPP
        /// without 3x3 branches).
        #[arg(long, value_name = "R1,R2,...")]
        rates: String,
    },
    /// torchvision's DeepLabHead: ASPP, 3x3 conv, classifier (keys 0.*, 1.*, 2.*, 4.*).
    DeeplabHead {
        #[command(flatten)]
        files: Files,
        /// Atrous rates, one per 3x3 branch of the weights' ASPP.
        #[arg(long, value_name = "R1,R2,...", default_value = "12,24,36")]
        rates: String,
        /// Resize the logits to H,W (bilinear, align_corners=False).
        #[arg(long, value_name = "H,W")]
        size: Option<String>,
    },
    /// PSPNet's pyramid pooling module (keys stages.*, bottleneck.*).
    Ppm {
        #[command(flatten)]
        files: Files,
        /// Output size of each pyramid stage's pooling, one per stage of the weights.
        #[arg(long, value_name = "B1,B2,...", default_value = "1,2,3,6")]
        bins: String,
    },
    /// PSP head: PPM then a 1x1 classifier (keys 0.*, 1.*).
    PspHead {
        #[command(flatten)]
        files: Files,
        /// Output size of each pyramid stage's pooling, one per stage of the weights.
        #[arg(long, value_name = "B1,B2,...", default_value = "1,2,3,6")]
        bins: String,
        /// Resize the logits to H,W (bilinear, align_corners=False).
        #[arg(long, value_name = "H,W")]
        size: Option<String>,
    },
}

impl RunGraph {
    /// The files and the graph configuration, with the lists parsed.
    pub fn config(&self) -> Result<(&Files, GraphConfig)> {
        let size = |size: &Option<String>| -> Result<Option<[usize; 2]>> {
            size.as_deref().map(parse_size).transpose()
        };
        Ok(match self {
            RunGraph::Aspp { files, rates } => (
                files,
                GraphConfig::Aspp {
                    rates: parse_rates(rates)?,
                },
            ),
            RunGraph::DeeplabHead {
                files,
                rates,
                size: s,
            } => (
                files,
                GraphConfig::DeepLabHead {
                    rates: parse_rates(rates)?,
                    size: size(s)?,
                },
            ),
            RunGraph::Ppm { files, bins } => (
                files,
                GraphConfig::Ppm {
                    bins: parse_list("--bins", bins)?,
                },
            ),
            RunGraph::PspHead {
                files,
                bins,
                size: s,
            } => (
                files,
                GraphConfig::PspHead {
                    bins: parse_list("--bins", bins)?,
                    size: size(s)?,
                },
            ),
        })
    }
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

/// Writes `data` as the f32 tensor `output` of `shape`: to a temporary file in the same
/// directory, then renamed over `path`, so a failure never leaves a partial file.
pub fn write_output(
    path: &Path,
    shape: [usize; 4],
    data: &[f32],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let fail = |message: String| Error::file(path.display(), message);
    let view = TensorView::new(Dtype::F32, shape.to_vec(), bytemuck::cast_slice(data))
        .map_err(|e| fail(format!("cannot serialize the output: {e}")))?;
    let bytes = safetensors::serialize([("output", view)], Some(metadata))
        .map_err(|e| fail(format!("cannot serialize the output: {e}")))?;
    crate::files::write_atomically(path, &bytes)
}

/// The directory an output path lives in ("." for a bare file name).
fn output_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// `atrous run`: everything the subcommand does.
pub fn run(args: &RunArgs) -> Result<()> {
    let (files, config) = args.graph.config()?;
    let weights = StateDict::open(&files.weights, &files.prefix)?;
    let graph_weights = config.read_weights(&weights)?;
    let (input_shape, input) = read_input(&files.input)?;
    graph_weights
        .check_input(input_shape)
        .map_err(|e| match e {
            Error::Shape {
                what,
                expected,
                found,
            } => Error::Shape {
                what: format!("{what} ({})", files.input.display()),
                expected,
                found,
            },
            other => other,
        })?;
    let dir = output_dir(&files.output);
    if !dir.is_dir() {
        return Err(Error::file(
            files.output.display(),
            format!("the output directory '{}' does not exist", dir.display()),
        ));
    }

    let ctx = Context::new()?;
    let graph = graph_weights.upload(&ctx)?;
    let output_shape = graph.out_shape(input_shape)?;
    let output = graph.run(&ctx, input_shape, &input)?;
    let metadata = HashMap::from([
        (
            "producer".to_string(),
            format!("atrous {}", env!("CARGO_PKG_VERSION")),
        ),
        ("graph".to_string(), graph.name().to_string()),
    ]);
    write_output(&files.output, output_shape, &output, metadata)?;
    eprintln!(
        "{}: {} -> {} written to {} (adapter: {})",
        graph.name(),
        Shape(input_shape),
        Shape(output_shape),
        files.output.display(),
        ctx.adapter().describe()
    );
    Ok(())
}

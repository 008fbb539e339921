//! `atrous bench`: the adapter's own ceilings ([`peak`]), the timing machinery every benchmark
//! shares ([`timing`]), per-layer micro-benchmarks of the convolutions ([`layer`]) and whole
//! models against PyTorch ([`model`]).

pub mod layer;
pub mod model;
pub mod peak;
pub mod timing;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::models::{self, ModelOptions, Synthetic};
use crate::ops::conv2d::ConvConfig;
use crate::shape::ConvGeometry;
use crate::tools::{open_context_verbose, parse_hw, parse_positive, TimingArgs};
use layer::ConvLayer;
use model::{Ceilings, ModelBenchSpec, Per};
use peak::PeakOptions;

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    crate::files::write_atomically(path, (text + "\n").as_bytes())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// Reads the FMA ceiling (`fma_gflops`) from the JSON that `atrous bench peak --json` wrote.
pub fn read_fma_ceiling(path: &Path) -> Result<f64> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path.display(), e))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::file(path.display(), e))?;
    json["fma_gflops"]
        .as_f64()
        .ok_or_else(|| Error::file(path.display(), "no number at key fma_gflops"))
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchCommand,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// This adapter's FMA throughput (GFLOP/s) and copy bandwidth (GB/s), each the best of a
    /// sweep of launch parameters.
    Peak {
        /// A smaller sweep.
        #[arg(long)]
        quick: bool,
        /// Also write the numbers as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        #[command(flatten)]
        timing: TimingArgs,
    },
    /// One convolution layer of any geometry under one or more kernel configurations, timed in
    /// the same runs.
    Conv2d {
        #[command(flatten)]
        layer: LayerArgs,
        #[arg(long, default_value_t = 3)]
        kernel_size: usize,
        #[arg(long, default_value_t = 1)]
        stride: usize,
        #[arg(long, default_value_t = 1)]
        dilation: usize,
        /// Padding (H and W); default: "same" for stride 1, dilation * (k - 1) / 2.
        #[arg(long)]
        padding: Option<usize>,
    },
    /// One dilated 3x3 layer (stride 1) under one or more kernel configurations.
    Conv3x3 {
        #[command(flatten)]
        layer: LayerArgs,
        #[arg(long, default_value_t = 1)]
        dilation: usize,
        /// Padding (H and W); default: the dilation (DeepLab's "same").
        #[arg(long)]
        padding: Option<usize>,
    },
    /// One 1x1 layer (stride 1) under one or more kernel configurations.
    Conv1x1 {
        #[command(flatten)]
        layer: LayerArgs,
    },
    /// A model of the registry (`atrous models`) on random weights, whole and per layer:
    /// `atrous bench deeplabv3 --size 520,520 --reference torch`. `atrous bench MODEL --help`
    /// lists the options.
    #[command(external_subcommand)]
    Model(Vec<String>),
}

/// Options of the single-layer benchmarks.
#[derive(Args, Debug)]
pub struct LayerArgs {
    #[arg(long)]
    in_channels: usize,
    #[arg(long)]
    out_channels: usize,
    /// Input H,W.
    #[arg(long, value_parser = parse_hw)]
    size: [usize; 2],
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Kernel configurations (repeat or comma-separate): direct, tiled, blocked,
    /// blocked:c16p1w8, packed8:c16p3w8, wino4_packed8 (Winograd F(4x4); wino2, wino3: F(2x2), F(3x3); 3x3 of stride 1), ...,
    /// or all. Default: tiled and the default.
    #[arg(long, value_delimiter = ',')]
    variant: Vec<String>,
    #[command(flatten)]
    ceiling: CeilingArgs,
    #[command(flatten)]
    timing: TimingArgs,
    /// Also write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct CeilingArgs {
    /// FMA ceiling in GFLOP/s for the "% of ceiling" column.
    #[arg(long)]
    ceiling: Option<f64>,
    /// Read the ceilings from the JSON of `atrous bench peak --json` instead of measuring them
    /// first (a quick sweep).
    #[arg(long, value_name = "PEAK.json")]
    peak: Option<PathBuf>,
}

impl CeilingArgs {
    fn fma(&self, ctx: &Context, timing: &TimingArgs) -> Result<f64> {
        if let Some(c) = self.ceiling {
            return Ok(c);
        }
        if let Some(path) = &self.peak {
            return read_fma_ceiling(path);
        }
        let ceiling = peak::fma_ceiling(ctx, &timing.options())?;
        eprintln!("measured FMA ceiling (quick sweep): {ceiling:.1} GFLOP/s");
        Ok(ceiling)
    }

    fn both(&self, ctx: &Context, timing: &TimingArgs) -> Result<Ceilings> {
        match &self.peak {
            Some(path) => Ceilings::read(path),
            None => {
                eprintln!("measuring the adapter's ceilings (quick sweep; --peak FILE skips this)");
                Ceilings::measure(ctx, &timing.options())
            }
        }
    }
}

/// A model and the sizes of its random weights: what `bench MODEL` and `tune MODEL` take.
#[derive(Args, Debug, Clone)]
pub struct SyntheticModelArgs {
    /// Input H,W. Default: the model's typical input (`atrous models`): 520,520 for deeplabv3
    /// and fcn, 473,473 for pspnet, 33,33 for the DeepLab heads, 60,60 for the PSPNet ones.
    #[arg(long, value_parser = parse_hw)]
    pub size: Option<[usize; 2]>,
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Atrous rates (ASPP branches). Default: the model's (6,12,18 for aspp).
    #[arg(long, value_delimiter = ',', value_parser = parse_positive)]
    pub rates: Option<Vec<usize>>,
    /// Pyramid bins (PPM stages). Default: 1,2,3,6.
    #[arg(long, value_delimiter = ',', value_parser = parse_positive)]
    pub bins: Option<Vec<usize>>,
    /// 8 or 16 (deeplabv3, fcn).
    #[arg(long)]
    pub output_stride: Option<usize>,
    /// Include the auxiliary head (networks).
    #[arg(long)]
    pub aux: bool,
    /// Heads: input channels.
    #[arg(long, default_value_t = 2048)]
    pub in_channels: usize,
    /// ASPP and DeepLabHead: branch width.
    #[arg(long, default_value_t = 256)]
    pub out_channels: usize,
    /// PPM: bottleneck output channels.
    #[arg(long, default_value_t = 512)]
    pub bottleneck_channels: usize,
    #[arg(long, default_value_t = 21)]
    pub num_classes: usize,
    /// Networks: ResNet depth (18, 34, 50, 101, 152).
    #[arg(long, default_value_t = 50)]
    pub depth: usize,
    /// PSPNet: the stem of its dilated ResNet (deep: three 3x3 convs) or torchvision's 7x7.
    #[arg(long, default_value = "deep", value_parser = ["deep", "7x7"])]
    pub stem: String,
}

impl SyntheticModelArgs {
    pub fn spec(&self, model: &str, per: Option<Per>) -> Result<ModelBenchSpec> {
        let spec = models::spec(model)?;
        let network = spec.takes_image;
        if !matches!(self.depth, 18 | 34 | 50 | 101 | 152) {
            return Err(Error::invalid(
                "--depth",
                format!("must be 18, 34, 50, 101 or 152, found {}", self.depth),
            ));
        }
        let options = ModelOptions {
            rates: self
                .rates
                .clone()
                .or(spec.example_rates.map(<[usize]>::to_vec)),
            bins: self.bins.clone(),
            size: None,
            output_stride: self.output_stride,
            aux: self.aux,
        };
        spec.settings(&options)?;
        let [h, w] = self.size.unwrap_or(spec.typical_input);
        let channels = if network { 3 } else { self.in_channels };
        Ok(ModelBenchSpec {
            model: model.to_string(),
            options,
            sizes: Synthetic {
                in_channels: self.in_channels,
                out_channels: self.out_channels,
                bottleneck_channels: self.bottleneck_channels,
                num_classes: self.num_classes,
                depth: self.depth,
                base_width: 64,
                deep_stem: self.stem == "deep",
            },
            input_shape: [self.batch, channels, h, w],
            per: per.unwrap_or(if network { Per::Stage } else { Per::Conv }),
        })
    }
}

/// `atrous bench MODEL`'s own command line.
#[derive(Parser, Debug)]
#[command(name = "atrous bench MODEL")]
struct ModelBenchCli {
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(crate::tools::run::model_names()))]
    model: String,
    #[command(flatten)]
    model_args: SyntheticModelArgs,
    /// Rows: per stage (networks' default), block or conv (heads' default).
    #[arg(long, value_enum)]
    per: Option<Per>,
    /// Time every conv node of the model under each of these configurations instead (repeat
    /// or comma-separate; `all` for every candidate), in the same runs.
    #[arg(long, value_delimiter = ',')]
    convs: Option<Vec<String>>,
    /// Also write the results as JSON (`total.median_ms` and one record per row).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also run PyTorch's same model on the same input (scripts/bench_torch.py, with
    /// $ATROUS_PYTHON or python3) and add its times and the speed ratio.
    #[arg(long, value_parser = ["torch"])]
    reference: Option<String>,
    /// Draw the per-row comparison as an SVG chart.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    #[command(flatten)]
    ceiling: CeilingArgs,
    #[command(flatten)]
    timing: TimingArgs,
}

/// `atrous bench`.
pub fn main(args: BenchArgs) -> Result<ExitCode> {
    let command = match args.what {
        BenchCommand::Model(argv) => {
            let argv = std::iter::once("atrous bench".to_string()).chain(argv);
            match ModelBenchCli::try_parse_from(argv) {
                Ok(cli) => return bench_model(cli),
                Err(e) => {
                    let _ = e.print();
                    return Ok(ExitCode::from(if e.use_stderr() { 2 } else { 0 }));
                }
            }
        }
        other => other,
    };
    let ctx = open_context_verbose()?;
    match command {
        BenchCommand::Peak {
            quick,
            json,
            timing,
        } => {
            let result = peak::measure(
                &ctx,
                &PeakOptions {
                    quick,
                    timing: timing.options(),
                },
            )?;
            result.print();
            if let Some(path) = json {
                write_json(&path, &result.to_json())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Conv2d {
            layer,
            kernel_size,
            stride,
            dilation,
            padding,
        } => {
            let padding = padding.unwrap_or(dilation * kernel_size.saturating_sub(1) / 2);
            let geometry = ConvGeometry::new(kernel_size, stride, padding, dilation);
            single_layer(&ctx, layer, geometry)
        }
        BenchCommand::Conv3x3 {
            layer,
            dilation,
            padding,
        } => {
            let geometry = ConvGeometry::new(3, 1, padding.unwrap_or(dilation), dilation);
            single_layer(&ctx, layer, geometry)
        }
        BenchCommand::Conv1x1 { layer } => single_layer(&ctx, layer, ConvGeometry::pointwise()),
        BenchCommand::Model(_) => unreachable!("handled above"),
    }
}

/// Resolves configuration names for `layer`: `all` expands to every candidate.
fn layer_configs(ctx: &Context, layer: &ConvLayer, names: &[String]) -> Result<Vec<ConvConfig>> {
    let defaults = ["tiled".to_string(), "auto".to_string()];
    let names = if names.is_empty() {
        &defaults[..]
    } else {
        names
    };
    let mut configs = Vec::new();
    for name in names {
        if name == "all" {
            configs.extend(layer.candidates(ctx));
        } else {
            configs.push(layer.parse_config(name)?);
        }
    }
    Ok(configs)
}

fn single_layer(ctx: &Context, args: LayerArgs, geometry: ConvGeometry) -> Result<ExitCode> {
    let layer = ConvLayer::new(
        &geometry.kernel_name(),
        args.batch,
        args.in_channels,
        args.out_channels,
        args.size,
        geometry,
    );
    let configs = layer_configs(ctx, &layer, &args.variant)?;
    run_layers(
        ctx,
        vec![(layer, configs)],
        &args.ceiling,
        &args.timing,
        args.json.as_deref(),
    )
}

fn run_layers(
    ctx: &Context,
    layers: Vec<(ConvLayer, Vec<ConvConfig>)>,
    ceiling: &CeilingArgs,
    timing: &TimingArgs,
    json: Option<&Path>,
) -> Result<ExitCode> {
    let ceiling = ceiling.fma(ctx, timing)?;
    let (clock, results) = layer::bench_layers(ctx, &layers, &timing.options())?;
    println!("clock: {}", clock.describe());
    println!("FMA ceiling: {ceiling:.1} GFLOP/s");
    layer::print_table(&results, Some(ceiling));
    if let Some(path) = json {
        write_json(
            path,
            &serde_json::json!({
                "adapter": ctx.adapter().describe(),
                "clock": clock.describe(),
                "fma_ceiling_gflops": ceiling,
                "results": results.iter().map(|r| r.to_json(Some(ceiling))).collect::<Vec<_>>(),
            }),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The conv nodes of a model's graph on an input, as layers to benchmark or tune: named by
/// module path, with the shapes they see, each distinct (layer, shape) once.
pub fn model_conv_layers(spec: &ModelBenchSpec) -> Result<Vec<ConvLayer>> {
    let model = models::Model::synthetic(&spec.model, &spec.sizes, &spec.options, 1)?;
    let shapes = model.graph().shapes(spec.input_shape)?;
    let mut layers: Vec<ConvLayer> = Vec::new();
    for (_, node, conv) in model.graph().convs() {
        let crate::graph::Op::Conv { input, .. } = &node.op else {
            continue;
        };
        let layer = ConvLayer::of(&node.name, conv, shapes[input.index()]);
        let duplicate = layers.iter().any(|l| {
            (l.input_shape(), l.out_channels, l.geometry)
                == (layer.input_shape(), layer.out_channels, layer.geometry)
        });
        if !duplicate {
            layers.push(layer);
        }
    }
    Ok(layers)
}

fn bench_model(cli: ModelBenchCli) -> Result<ExitCode> {
    let spec = cli.model_args.spec(&cli.model, cli.per)?;
    // scripts/bench_torch.py builds torchvision's ResNet-50 and -101 only: say so before
    // atrous's half of the run, not after it.
    let network = models::spec(&cli.model)?.takes_image;
    if cli.reference.is_some() && network && !matches!(spec.sizes.depth, 50 | 101) {
        return Err(Error::invalid(
            "--reference torch",
            format!(
                "PyTorch's networks are ResNet-50 and -101 here, found --depth {}",
                spec.sizes.depth
            ),
        ));
    }
    let ctx = open_context_verbose()?;
    if let Some(names) = &cli.convs {
        let layers = model_conv_layers(&spec)?
            .into_iter()
            .map(|layer| {
                let configs = layer_configs(&ctx, &layer, names)?;
                Ok((layer, configs))
            })
            .collect::<Result<Vec<_>>>()?;
        return run_layers(&ctx, layers, &cli.ceiling, &cli.timing, cli.json.as_deref());
    }
    let ceilings = cli.ceiling.both(&ctx, &cli.timing)?;
    let python = cli
        .reference
        .as_ref()
        .map(|_| std::env::var("ATROUS_PYTHON").unwrap_or_else(|_| "python3".to_string()));
    let result = model::run(
        &ctx,
        &spec,
        &cli.timing.options(),
        ceilings,
        python.as_deref(),
    )?;
    result.print();
    if let Some(path) = &cli.json {
        write_json(path, &result.to_json())?;
    }
    if let Some(path) = &cli.plot {
        crate::files::write_atomically(path, result.svg().as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

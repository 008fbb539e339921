//! The `atrous` command line.

use std::process::ExitCode;

use std::path::{Path, PathBuf};

use atrous::bench::layer::{self, ConvConfig, ConvLayer};
use atrous::bench::peak::{self, PeakOptions};
use atrous::bench::timing::TimingOptions;
use atrous::check;
use atrous::context::{enumerate_adapters, Context};
use atrous::shape::ConvGeometry;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "atrous",
    version,
    about = "Segmentation context layers on any GPU through wgpu"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the adapters wgpu sees and say which one atrous would use.
    Info,
    /// Run every op on the chosen adapter against the float64 reference; exits 1 on any FAIL.
    Check {
        /// Skip the large shapes that exercise the split dispatch grid.
        #[arg(long)]
        quick: bool,
    },
    /// Measure: the adapter's ceilings and the kernels against them.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
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
    /// One dilated 3x3 layer under one or more kernel configurations, timed in the same runs.
    Conv3x3 {
        #[command(flatten)]
        layer: LayerArgs,
        #[arg(long, default_value_t = 1)]
        dilation: usize,
        /// Padding (H and W); default: the dilation (DeepLab's "same").
        #[arg(long)]
        padding: Option<usize>,
    },
    /// One 1x1 layer under one or more kernel configurations, timed in the same runs.
    Conv1x1 {
        #[command(flatten)]
        layer: LayerArgs,
    },
    /// The convolutions of an ASPP head (1x1 branch, one dilated 3x3 per rate, projection),
    /// each under the given configurations, timed in the same runs.
    AsppConvs {
        #[arg(long, default_value_t = 512)]
        in_channels: usize,
        #[arg(long, default_value_t = 256)]
        out_channels: usize,
        /// Input H,W.
        #[arg(long, default_value = "33,33", value_parser = parse_size)]
        size: [usize; 2],
        #[arg(long, default_value = "6,12,18", value_delimiter = ',')]
        rates: Vec<usize>,
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Configurations of the 3x3 layers (repeat or comma-separate).
        #[arg(long = "conv3x3", default_value = "tiled,auto", value_delimiter = ',')]
        conv3x3: Vec<String>,
        /// Configurations of the 1x1 layers (repeat or comma-separate).
        #[arg(long = "conv1x1", default_value = "tiled,auto", value_delimiter = ',')]
        conv1x1: Vec<String>,
        #[command(flatten)]
        ceiling: CeilingArgs,
        #[command(flatten)]
        timing: TimingArgs,
        /// Also write the results as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

#[derive(Args)]
struct TimingArgs {
    /// Timed runs (median, min and max are reported).
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Time on the host clock even where GPU timestamps are available.
    #[arg(long)]
    wall_clock: bool,
}

impl TimingArgs {
    fn options(&self) -> TimingOptions {
        TimingOptions {
            warmup: self.warmup,
            runs: self.runs.max(1),
            force_wall_clock: self.wall_clock,
        }
    }
}

#[derive(Args)]
struct CeilingArgs {
    /// FMA ceiling in GFLOP/s for the "% of ceiling" column.
    #[arg(long)]
    ceiling: Option<f64>,
    /// Read the FMA ceiling from the JSON of `atrous bench peak --json`. Without this or
    /// --ceiling, a quick FMA sweep runs first.
    #[arg(long)]
    peak: Option<PathBuf>,
}

impl CeilingArgs {
    fn resolve(&self, ctx: &Context, timing: TimingOptions) -> atrous::Result<f64> {
        if let Some(c) = self.ceiling {
            return Ok(c);
        }
        if let Some(path) = &self.peak {
            return atrous::bench::read_fma_ceiling(path);
        }
        let ceiling = peak::fma_ceiling(ctx, &timing)?;
        eprintln!("measured FMA ceiling (quick sweep): {ceiling:.1} GFLOP/s");
        Ok(ceiling)
    }
}

#[derive(Args)]
struct LayerArgs {
    #[arg(long)]
    in_channels: usize,
    #[arg(long)]
    out_channels: usize,
    /// Input H,W.
    #[arg(long, value_parser = parse_size)]
    size: [usize; 2],
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Kernel configurations (repeat or comma-separate): direct, tiled, blocked,
    /// blocked:c16p1w8, or all. Default: tiled and the default.
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

fn parse_size(text: &str) -> Result<[usize; 2], String> {
    let parts: Vec<_> = text.split([',', 'x']).map(str::parse::<usize>).collect();
    match parts.as_slice() {
        [Ok(h), Ok(w)] if *h > 0 && *w > 0 => Ok([*h, *w]),
        [Ok(s)] if *s > 0 => Ok([*s, *s]),
        _ => Err(format!("expected H,W (e.g. 33,33), found '{text}'")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info => info(),
        Command::Check { quick } => run_check(quick),
        Command::Bench { what } => run_bench(what),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn info() -> atrous::Result<ExitCode> {
    let (adapters, choice) = enumerate_adapters();
    println!(
        "adapters seen by wgpu (WGPU_BACKEND={}):",
        std::env::var("WGPU_BACKEND").unwrap_or_else(|_| "all".into())
    );
    for (i, adapter) in adapters.iter().enumerate() {
        let marker = match &choice {
            Ok((chosen, _)) if *chosen == i => "*",
            _ => " ",
        };
        println!(" {marker} [{i}] {}", adapter.describe());
    }
    let (index, reason) = choice?;
    println!("would use [{index}]: {reason}");
    let ctx = Context::new()?;
    let limits = ctx.limits();
    println!(
        "limits: max storage binding {} MiB, max buffer {} MiB, {} workgroups per dimension, timestamps: {}, subgroups of >= 8: {}",
        limits.max_storage_buffer_binding_size >> 20,
        limits.max_buffer_size >> 20,
        limits.max_compute_workgroups_per_dimension,
        if ctx.has_timestamps() { "yes" } else { "no" },
        if ctx.has_subgroups() { "yes" } else { "no" }
    );
    Ok(ExitCode::SUCCESS)
}

fn run_check(quick: bool) -> atrous::Result<ExitCode> {
    let ctx = Context::new()?;
    eprintln!(
        "adapter: {} ({})",
        ctx.adapter().describe(),
        ctx.selection_reason()
    );
    let cases = check::cases(!quick);
    let header = [
        "op",
        "shape",
        "params",
        "max abs error",
        "rel error",
        "result",
    ];
    let mut rows: Vec<[String; 6]> = Vec::new();
    let mut failures = 0;
    let mut skipped = 0;
    for (i, case) in cases.iter().enumerate() {
        let row = match case.run(&ctx, 1000 + i as u64) {
            Ok(row) if row.skipped.is_some() => {
                skipped += 1;
                [
                    row.op,
                    row.shape,
                    row.params,
                    "-".into(),
                    "-".into(),
                    format!("SKIP: {}", row.skipped.unwrap_or_default()),
                ]
            }
            Ok(row) => [
                row.op,
                row.shape,
                row.params,
                format!("{:.2e}", row.comparison.max_abs),
                format!("{:.2e}", row.comparison.rel_l2),
                if row.passed {
                    "PASS".into()
                } else {
                    "FAIL".into()
                },
            ],
            Err(error) => [
                case.op(),
                case.shape(),
                case.params(),
                "-".into(),
                "-".into(),
                format!("FAIL: {error}"),
            ],
        };
        if row[5] != "PASS" && !row[5].starts_with("SKIP") {
            failures += 1;
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].len())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    println!("{}", line(&header));
    println!(
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-|-")
    );
    for row in &rows {
        println!(
            "{}",
            line(&row.iter().map(String::as_str).collect::<Vec<_>>())
        );
    }
    println!(
        "{} passed, {} failed, {} skipped (tolerance: relative L2 <= {:e} against the float64 \
         reference)",
        rows.len() - failures - skipped,
        failures,
        skipped,
        check::REL_L2_TOLERANCE
    );
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn open_context() -> atrous::Result<Context> {
    let ctx = Context::new()?;
    eprintln!(
        "adapter: {} ({})",
        ctx.adapter().describe(),
        ctx.selection_reason()
    );
    Ok(ctx)
}

fn write_json(path: &Path, value: &serde_json::Value) -> atrous::Result<()> {
    atrous::bench::write_json(path, value)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// Resolves configuration names for `layer`: `all` expands to every candidate.
fn layer_configs(
    ctx: &Context,
    layer: &ConvLayer,
    names: &[String],
) -> atrous::Result<Vec<ConvConfig>> {
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

fn run_layers(
    ctx: &Context,
    layers: Vec<(ConvLayer, Vec<ConvConfig>)>,
    ceiling: &CeilingArgs,
    timing: &TimingArgs,
    json: Option<&Path>,
) -> atrous::Result<ExitCode> {
    let ceiling = ceiling.resolve(ctx, timing.options())?;
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

fn run_bench(what: BenchCommand) -> atrous::Result<ExitCode> {
    let ctx = open_context()?;
    match what {
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
        BenchCommand::Conv3x3 {
            layer: args,
            dilation,
            padding,
        } => {
            let padding = padding.unwrap_or(dilation);
            let geometry = ConvGeometry {
                kernel_size: 3,
                dilation,
                padding: [padding, padding],
            };
            let layer = ConvLayer::conv3x3(
                &format!("conv3x3 d{dilation}"),
                args.batch,
                args.in_channels,
                args.out_channels,
                args.size,
                geometry,
            );
            let configs = layer_configs(&ctx, &layer, &args.variant)?;
            run_layers(
                &ctx,
                vec![(layer, configs)],
                &args.ceiling,
                &args.timing,
                args.json.as_deref(),
            )
        }
        BenchCommand::Conv1x1 { layer: args } => {
            let layer = ConvLayer::conv1x1(
                "conv1x1",
                args.batch,
                args.in_channels,
                args.out_channels,
                args.size,
            );
            let configs = layer_configs(&ctx, &layer, &args.variant)?;
            run_layers(
                &ctx,
                vec![(layer, configs)],
                &args.ceiling,
                &args.timing,
                args.json.as_deref(),
            )
        }
        BenchCommand::AsppConvs {
            in_channels,
            out_channels,
            size,
            rates,
            batch,
            conv3x3,
            conv1x1,
            ceiling,
            timing,
            json,
        } => {
            let mut layers = Vec::new();
            let branch = ConvLayer::conv1x1("aspp 1x1", batch, in_channels, out_channels, size);
            let configs = layer_configs(&ctx, &branch, &conv1x1)?;
            layers.push((branch, configs));
            for &rate in &rates {
                let layer = ConvLayer::conv3x3(
                    &format!("aspp rate {rate}"),
                    batch,
                    in_channels,
                    out_channels,
                    size,
                    ConvGeometry::same_3x3(rate),
                );
                let configs = layer_configs(&ctx, &layer, &conv3x3)?;
                layers.push((layer, configs));
            }
            // The projection reads the concatenation of the 1x1, the rates and the pooling
            // branch.
            let project = ConvLayer::conv1x1(
                "aspp project",
                batch,
                out_channels * (rates.len() + 2),
                out_channels,
                size,
            );
            let configs = layer_configs(&ctx, &project, &conv1x1)?;
            layers.push((project, configs));
            run_layers(&ctx, layers, &ceiling, &timing, json.as_deref())
        }
    }
}

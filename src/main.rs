//! The `atrous` command line.

use std::process::ExitCode;

use std::path::{Path, PathBuf};

use atrous::bench::graph::{Ceilings, GraphSpec};
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
    /// Run a context head (ASPP, DeepLabHead, PPM, PSP head) with PyTorch weights stored as
    /// safetensors on a safetensors input.
    Run(atrous::cli_run::RunArgs),
    /// Sweep the kernel variants and tiles of every convolution of a graph on this adapter,
    /// verify each against the float64 reference, time them and keep the fastest in the tune
    /// cache ($ATROUS_TUNE_CACHE, else ~/.cache/atrous/tune.json); `run` and `bench` use it.
    Tune {
        #[command(subcommand)]
        graph: Option<TuneGraph>,
        /// Print what was tried for each shape and the winner, then exit.
        #[arg(long)]
        report: bool,
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
    /// DeepLabV3's ASPP, whole and per layer, on random weights; defaults: DeepLabV3 at 513 px,
    /// output stride 16 (2048 -> 256 channels at 33x33, rates 6,12,18).
    Aspp {
        #[arg(long, default_value_t = 2048)]
        in_channels: usize,
        #[arg(long, default_value_t = 256)]
        out_channels: usize,
        /// Input H,W.
        #[arg(long, default_value = "33,33", value_parser = parse_size)]
        size: [usize; 2],
        #[arg(long, default_value = "6,12,18", value_delimiter = ',', value_parser = parse_positive)]
        rates: Vec<usize>,
        #[command(flatten)]
        graph: GraphBenchArgs,
    },
    /// PSPNet's pyramid pooling module, whole and per layer, on random weights; defaults:
    /// PSPNet at 473 px, output stride 8 (2048 channels at 60x60, bins 1,2,3,6, bottleneck 512).
    Ppm {
        #[arg(long, default_value_t = 2048)]
        in_channels: usize,
        /// Output channels of the 3x3 bottleneck.
        #[arg(long, default_value_t = 512)]
        bottleneck_channels: usize,
        /// Input H,W.
        #[arg(long, default_value = "60,60", value_parser = parse_size)]
        size: [usize; 2],
        #[arg(long, default_value = "1,2,3,6", value_delimiter = ',', value_parser = parse_positive)]
        bins: Vec<usize>,
        #[command(flatten)]
        graph: GraphBenchArgs,
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

#[derive(Subcommand)]
enum TuneGraph {
    /// The convolutions of an ASPP (defaults: 2048 -> 256 at 33x33, rates 6,12,18).
    Aspp {
        #[arg(long, default_value_t = 2048)]
        in_channels: usize,
        #[arg(long, default_value_t = 256)]
        out_channels: usize,
        #[arg(long, default_value = "33,33", value_parser = parse_size)]
        size: [usize; 2],
        #[arg(long, default_value = "6,12,18", value_delimiter = ',', value_parser = parse_positive)]
        rates: Vec<usize>,
        #[arg(long, default_value_t = 1)]
        batch: usize,
        #[command(flatten)]
        timing: TuneTimingArgs,
    },
    /// The convolutions of a PPM (defaults: 2048 at 60x60, bins 1,2,3,6, bottleneck 512).
    Ppm {
        #[arg(long, default_value_t = 2048)]
        in_channels: usize,
        #[arg(long, default_value_t = 512)]
        bottleneck_channels: usize,
        #[arg(long, default_value = "60,60", value_parser = parse_size)]
        size: [usize; 2],
        #[arg(long, default_value = "1,2,3,6", value_delimiter = ',', value_parser = parse_positive)]
        bins: Vec<usize>,
        #[arg(long, default_value_t = 1)]
        batch: usize,
        #[command(flatten)]
        timing: TuneTimingArgs,
    },
}

/// Fewer runs than a benchmark: the tuner times dozens of candidates per layer.
#[derive(Args)]
struct TuneTimingArgs {
    #[arg(long, default_value_t = 5)]
    runs: usize,
    #[arg(long, default_value_t = 1)]
    warmup: usize,
}

/// Options shared by the graph benchmarks.
#[derive(Args)]
struct GraphBenchArgs {
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Also write the results as JSON (`total.median_ms` and one record per layer).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also run PyTorch on the same layers and shapes (scripts/bench_torch.py, with
    /// $ATROUS_PYTHON or python3) and add its times and the speed ratio.
    #[arg(long, value_parser = ["torch"])]
    reference: Option<String>,
    /// Draw the per-layer comparison as an SVG chart.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Read the ceilings from `atrous bench peak --json` instead of measuring them first.
    #[arg(long, value_name = "PEAK.json")]
    peak: Option<PathBuf>,
    #[command(flatten)]
    timing: TimingArgs,
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

fn parse_positive(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(format!("expected a whole number >= 1, found '{text}'")),
    }
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
    // Like other Unix tools, stop quietly when the reader of our output goes away
    // (`atrous tune --report | head`) instead of panicking on a failed print.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info => info(),
        Command::Check { quick } => run_check(quick),
        Command::Run(args) => atrous::cli_run::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Bench { what } => run_bench(what),
        Command::Tune { graph, report } => run_tune(graph, report),
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
        "limits: max storage binding {} MiB, max buffer {} MiB, {} workgroups per dimension, timestamps: {}, subgroups of >= 8: {}, 64-bit integers: {}",
        limits.max_storage_buffer_binding_size >> 20,
        limits.max_buffer_size >> 20,
        limits.max_compute_workgroups_per_dimension,
        if ctx.has_timestamps() { "yes" } else { "no" },
        if ctx.has_subgroups() { "yes" } else { "no" },
        if ctx.has_int64() { "yes" } else { "no" }
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

fn run_tune(graph: Option<TuneGraph>, report: bool) -> atrous::Result<ExitCode> {
    use atrous::tune::{default_path, print_report, tune_layers, TuneCache};
    let path = default_path();
    if report {
        print_report(&TuneCache::load(&path)?, &path);
        return Ok(ExitCode::SUCCESS);
    }
    let Some(graph) = graph else {
        eprintln!(
            "error: name a graph to tune (`atrous tune aspp`, `atrous tune ppm`) or pass --report"
        );
        return Ok(ExitCode::from(2));
    };
    let (spec, size, batch, timing) = match graph {
        TuneGraph::Aspp {
            in_channels,
            out_channels,
            size,
            rates,
            batch,
            timing,
        } => (
            GraphSpec::Aspp {
                in_channels,
                out_channels,
                rates,
            },
            size,
            batch,
            timing,
        ),
        TuneGraph::Ppm {
            in_channels,
            bottleneck_channels,
            size,
            bins,
            batch,
            timing,
        } => (
            GraphSpec::Ppm {
                in_channels,
                bins,
                bottleneck_channels,
            },
            size,
            batch,
            timing,
        ),
    };
    // Read the cache before the long sweep so a malformed file fails fast.
    let mut cache = TuneCache::load(&path)?;
    let ctx = open_context()?;
    eprintln!("tuning the convolutions of {}", spec.describe(batch, size));
    let timing = TimingOptions {
        warmup: timing.warmup,
        runs: timing.runs.max(1),
        force_wall_clock: false,
    };
    let layers = spec.conv_layers(batch, size);
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let results = tune_layers(&ctx, &layers, &timing, |done, total, what| {
        let width = 30;
        let filled = (done * width) / total.max(1);
        let bar = format!(
            "[{}{}] {done}/{total} {what}",
            "#".repeat(filled),
            "-".repeat(width - filled)
        );
        if terminal {
            eprint!("\r\x1b[2K{bar}");
        } else {
            eprintln!("{bar}");
        }
    })?;
    if terminal {
        eprintln!();
    }
    let adapter = ctx.adapter().cache_key();
    for result in &results {
        cache.insert(&adapter, &result.key, result.entry.clone());
    }
    cache.save(&path)?;
    println!(
        "{:<24} {:<48} {:<28} {:>10} {:>8}",
        "layer", "shape", "winner", "ms", "tried"
    );
    for r in &results {
        let verified = r.entry.tried.iter().filter(|t| t.verified).count();
        println!(
            "{:<24} {:<48} {:<28} {:>10.3} {:>3}/{:<3}",
            r.layer,
            r.key,
            r.entry.winner,
            r.entry.median_ms,
            verified,
            r.entry.tried.len()
        );
    }
    println!(
        "winners saved to {} (atrous run and atrous bench use them on this adapter)",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn bench_graph(
    ctx: &Context,
    spec: &GraphSpec,
    size: [usize; 2],
    args: GraphBenchArgs,
) -> atrous::Result<ExitCode> {
    let timing = args.timing.options();
    let ceilings = match &args.peak {
        Some(path) => Ceilings::read(path)?,
        None => {
            eprintln!("measuring the adapter's ceilings (quick sweep; --peak FILE skips this)");
            Ceilings::measure(ctx, &timing)?
        }
    };
    let python = args
        .reference
        .as_ref()
        .map(|_| std::env::var("ATROUS_PYTHON").unwrap_or_else(|_| "python3".to_string()));
    let result = atrous::bench::graph::run(
        ctx,
        spec,
        args.batch,
        size,
        &timing,
        ceilings,
        python.as_deref(),
    )?;
    result.print();
    if let Some(path) = &args.json {
        write_json(path, &result.to_json())?;
    }
    if let Some(path) = &args.plot {
        atrous::files::write_atomically(path, result.svg().as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
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
        BenchCommand::Aspp {
            in_channels,
            out_channels,
            size,
            rates,
            graph,
        } => {
            let spec = GraphSpec::Aspp {
                in_channels,
                out_channels,
                rates,
            };
            bench_graph(&ctx, &spec, size, graph)
        }
        BenchCommand::Ppm {
            in_channels,
            bottleneck_channels,
            size,
            bins,
            graph,
        } => {
            let spec = GraphSpec::Ppm {
                in_channels,
                bins,
                bottleneck_channels,
            };
            bench_graph(&ctx, &spec, size, graph)
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

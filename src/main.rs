//! The `atrous` command line: parses and dispatches; each subcommand (src/tools) does its work
//! and prints its own report.

use std::process::ExitCode;

use atrous::tools;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "atrous",
    version,
    about = "Semantic segmentation networks (DeepLabV3, FCN, PSPNet) and their layers on any GPU \
             through wgpu"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the adapters wgpu sees and say which one atrous would use.
    Info,
    /// List the models atrous runs, with their options and the state_dict keys that identify
    /// them (`--json` for scripts).
    Models {
        /// One JSON document: every model with its options, defaults and keys.
        #[arg(long)]
        json: bool,
    },
    /// Run every op on the chosen adapter against the float64 reference; exits 1 on any FAIL.
    Check {
        /// Skip the large shapes that exercise the split dispatch grid.
        #[arg(long)]
        quick: bool,
    },
    /// Run a model (a whole network or a context head) with PyTorch weights stored as
    /// safetensors on a safetensors input.
    Run(tools::run::RunArgs),
    /// Segment a photo (or a directory of photos) with a whole network: a class map as an 8-bit
    /// indexed PNG with the VOC palette, optionally an overlay and the logits.
    Segment(tools::segment::SegmentArgs),
    /// Measure: the adapter's ceilings, single layers, and whole models against PyTorch.
    #[command(
        after_help = "Models: atrous bench MODEL [OPTIONS], MODEL any of `atrous models`, on \
                      random weights, e.g. `atrous bench deeplabv3 --reference torch`; \
                      `atrous bench MODEL --help` lists the options."
    )]
    Bench(tools::bench::BenchArgs),
    /// Sweep the kernel variants and tiles of every convolution of a model on this adapter,
    /// verify each against the float64 reference, time them and keep the fastest in the tune
    /// cache ($ATROUS_TUNE_CACHE, else ~/.cache/atrous/tune.json); `run`, `segment` and
    /// `bench` use it.
    #[command(
        after_help = "Models: atrous tune MODEL [OPTIONS], MODEL any of `atrous models`, with \
                      the options of `atrous bench MODEL` (input size, batch, widths); \
                      `atrous tune MODEL --help` lists them."
    )]
    Tune(tools::tune::TuneArgs),
}

fn main() -> ExitCode {
    // Like other Unix tools, stop quietly when the reader of our output goes away
    // (`atrous tune --report | head`) instead of panicking on a failed print.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let result = match Cli::parse().command {
        Command::Info => tools::info::info(),
        Command::Models { json } => tools::info::models(json),
        Command::Check { quick } => tools::check::main(quick),
        Command::Run(args) => {
            tools::run::run(&args, tools::open_context).map(|()| ExitCode::SUCCESS)
        }
        Command::Segment(args) => {
            tools::segment::run(&args, tools::open_context).map(|()| ExitCode::SUCCESS)
        }
        Command::Bench(args) => tools::bench::main(args),
        Command::Tune(args) => tools::tune::main(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

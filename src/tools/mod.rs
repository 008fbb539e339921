//! The tools around the engine: the `atrous` subcommands and what they need (benchmarks, the
//! autotuner and its cache, `check`'s cases, plots). The core (`context`, `ops`, `graph`,
//! `models`) never calls into this module; the tools hand it what it takes (a tuning table, a
//! weights file).

pub mod bench;
pub mod check;
pub mod info;
pub mod plot;
pub mod run;
pub mod segment;
pub mod tune;

use std::process::ExitCode;

use clap::Args;

use crate::context::Context;
use crate::error::Result;
use crate::tools::bench::timing::TimingOptions;

/// A context on the adapter the environment selects, with `atrous tune`'s winners for it
/// (`$ATROUS_TUNE_CACHE`, else the user's cache directory). A cache that cannot be read is
/// reported on stderr and otherwise ignored: the measured defaults still work.
pub fn open_context() -> Result<Context> {
    let ctx = Context::new()?;
    let path = tune::default_path();
    let table = match tune::TuneCache::load(&path) {
        Ok(cache) => cache.table(&ctx.adapter().cache_key()),
        Err(error) => {
            eprintln!("warning: ignoring the tune cache: {error}");
            Default::default()
        }
    };
    Ok(ctx.with_tuning(table))
}

/// [`open_context`], saying which adapter it chose.
pub fn open_context_verbose() -> Result<Context> {
    let ctx = open_context()?;
    eprintln!(
        "adapter: {} ({})",
        ctx.adapter().describe(),
        ctx.selection_reason()
    );
    Ok(ctx)
}

/// Parses a whole number >= 1 (a clap value parser).
pub fn parse_positive(text: &str) -> std::result::Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(format!("expected a whole number >= 1, found '{text}'")),
    }
}

/// Parses `H,W` (or `HxW`, or one number for a square) (a clap value parser).
pub fn parse_hw(text: &str) -> std::result::Result<[usize; 2], String> {
    let parts: Vec<_> = text.split([',', 'x']).map(str::parse::<usize>).collect();
    match parts.as_slice() {
        [Ok(h), Ok(w)] if *h > 0 && *w > 0 => Ok([*h, *w]),
        [Ok(s)] if *s > 0 => Ok([*s, *s]),
        _ => Err(format!("expected H,W (e.g. 33,33), found '{text}'")),
    }
}

/// How many timed runs, and which clock.
#[derive(Args, Clone, Debug)]
pub struct TimingArgs {
    /// Timed runs (median, min and max are reported).
    #[arg(long, default_value_t = 7, value_parser = parse_positive)]
    pub runs: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Time on the host clock even where GPU timestamps are available.
    #[arg(long)]
    pub wall_clock: bool,
}

impl TimingArgs {
    pub fn options(&self) -> TimingOptions {
        TimingOptions {
            warmup: self.warmup,
            runs: self.runs,
            force_wall_clock: self.wall_clock,
        }
    }
}

/// Success, or the exit status of a usage error.
pub fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

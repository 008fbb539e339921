//! The `atrous` command line.

use std::process::ExitCode;

use atrous::check;
use atrous::context::{enumerate_adapters, Context};
use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info => info(),
        Command::Check { quick } => run_check(quick),
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
        "limits: max storage binding {} MiB, max buffer {} MiB, {} workgroups per dimension, timestamps: {}",
        limits.max_storage_buffer_binding_size >> 20,
        limits.max_buffer_size >> 20,
        limits.max_compute_workgroups_per_dimension,
        if ctx.has_timestamps() { "yes" } else { "no" }
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

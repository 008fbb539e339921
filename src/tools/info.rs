//! `atrous info` (the adapters wgpu sees) and `atrous models` (the model registry).

use std::process::ExitCode;

use serde_json::json;

use crate::context::{enumerate_adapters, Context};
use crate::error::Result;
use crate::models::{join, REGISTRY};

/// `atrous info`: every adapter, the one atrous would use and why, and its limits.
pub fn info() -> Result<ExitCode> {
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
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!(
        "limits: max storage binding {} MiB, max buffer {} MiB, {} workgroups per dimension, \
         timestamps: {}, subgroups of >= 8: {}, 64-bit integers: {}",
        limits.max_storage_buffer_binding_size >> 20,
        limits.max_buffer_size >> 20,
        limits.max_compute_workgroups_per_dimension,
        yes(ctx.has_timestamps()),
        yes(ctx.has_subgroups()),
        yes(ctx.has_int64())
    );
    Ok(ExitCode::SUCCESS)
}

/// `atrous models`: the registry, as a table or as JSON (what the PyTorch scripts read).
pub fn models(as_json: bool) -> Result<ExitCode> {
    if as_json {
        let models: Vec<_> = REGISTRY
            .iter()
            .map(|spec| {
                json!({
                    "name": spec.name,
                    "about": spec.about,
                    "options": spec.settings.iter().map(|s| s.flag()).collect::<Vec<_>>(),
                    "default_rates": spec.default_rates,
                    "default_bins": spec.default_bins,
                    "default_output_stride": spec.default_output_stride,
                    "keys": spec.signature,
                    "input": if spec.takes_image { "image" } else { "features" },
                    "typical_input": spec.typical_input,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "models": models })).expect("JSON")
        );
        return Ok(ExitCode::SUCCESS);
    }
    for spec in REGISTRY {
        println!("{:<13} {}", spec.name, spec.about);
        let mut options: Vec<String> = Vec::new();
        for setting in spec.settings {
            let default = match setting {
                crate::models::Setting::Rates => spec.default_rates.map(join),
                crate::models::Setting::Bins => spec.default_bins.map(join),
                crate::models::Setting::OutputStride => {
                    spec.default_output_stride.map(|s| s.to_string())
                }
                _ => None,
            };
            options.push(match default {
                Some(default) => format!("{} (default {default})", setting.flag()),
                None => setting.flag().to_string(),
            });
        }
        if !options.is_empty() {
            println!("{:<13} options: {}", "", options.join(", "));
        }
        println!("{:<13} keys: {}", "", spec.signature.join(", "));
        let [h, w] = spec.typical_input;
        let input = if spec.takes_image {
            "images"
        } else {
            "feature maps"
        };
        println!("{:<13} input: {input}, typically {h}x{w}", "");
    }
    Ok(ExitCode::SUCCESS)
}

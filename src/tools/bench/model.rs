//! `atrous bench <model>`: a whole model and each of its layers, timed in the same runs,
//! against the adapter's ceilings and, with `--reference torch`, against PyTorch's same model in
//! the same invocation (scripts/bench_torch.py times its modules with forward hooks).
//!
//! Rows are the plan's launches grouped by module path at the granularity asked for
//! ([`Per`]): each conv node (`backbone.layer1.0.conv1`, `convs.1`), each residual block
//! (`backbone.layer1.0`) or each stage (`stem`, `layer1`..`layer4`, the heads). Each row is
//! recorded into its own compute pass so timestamps split them. The input is on the GPU before
//! timing starts; each run waits for the device.
//!
//! Share of the ceiling: a row can go no faster than the larger of useful FLOPs / FMA ceiling
//! and compulsory bytes / copy ceiling (a roofline); the share is that bound over the measured
//! median, and the ceiling that binds is named.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::graph::Plan;
use crate::models::{Model, Synthetic};
use crate::pipeline::{Cost, Launch};
use crate::rng::Rng;
use crate::tools::bench::peak::{self, PeakOptions};
use crate::tools::bench::timing::{time_segments, Clock, Segment, Stats, TimingOptions};
use crate::tools::plot::{self, PlotLayer};

/// How finely a model's time is split into rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Per {
    /// The stem, each ResNet layer, each head.
    Stage,
    /// Each residual block, and the stages that are not made of blocks.
    Block,
    /// Each conv node (a conv with its folded batch norm, residual and ReLU), pool and resize.
    Conv,
}

/// The row a node named `name` (a module path) falls in at granularity `per`: its display name
/// and the module path PyTorch times it under (`None`: PyTorch has no such module).
pub fn row_of(name: &str, per: Per) -> String {
    let path = name.strip_prefix("backbone.").unwrap_or(name);
    let parts: Vec<&str> = path.split('.').collect();
    let stem = matches!(parts[0], "conv1" | "bn1" | "maxpool" | "initial");
    let is_layer = parts[0].starts_with("layer");
    match per {
        Per::Conv => name.to_string(),
        Per::Stage if stem => "stem".to_string(),
        Per::Stage if is_layer => parts[0].to_string(),
        Per::Stage => parts[0].to_string(),
        Per::Block if stem => "stem".to_string(),
        Per::Block if is_layer && parts.len() >= 2 => {
            let prefix = &name[..name.len() - path.len()];
            format!("{prefix}{}.{}", parts[0], parts[1])
        }
        Per::Block => parts[0].to_string(),
    }
}

/// The PyTorch modules a row covers: its own path when every module of its nodes lies under
/// it (one hook times the block or stage whole, its residual adds and ReLUs included), else
/// the nodes' modules.
fn row_modules(row: &str, node_modules: &[String]) -> Vec<String> {
    let under = |m: &String| m == row || m.starts_with(&format!("{row}."));
    let backbone = format!("backbone.{row}");
    let under_backbone = |m: &String| m == &backbone || m.starts_with(&format!("{backbone}."));
    if node_modules.is_empty() {
        Vec::new()
    } else if node_modules.iter().all(under) {
        vec![row.to_string()]
    } else if node_modules.iter().all(under_backbone) {
        vec![backbone]
    } else {
        let mut modules = node_modules.to_vec();
        modules.dedup();
        modules
    }
}

/// What to benchmark: a model of the registry with random weights of the given sizes.
#[derive(Clone, Debug)]
pub struct ModelBenchSpec {
    pub model: String,
    pub options: crate::models::ModelOptions,
    pub sizes: Synthetic,
    pub input_shape: [usize; 4],
    pub per: Per,
}

impl ModelBenchSpec {
    /// "DeepLabV3 (ResNet-50, 21 classes) @ 1x3x520x520".
    pub fn describe(&self, model: &Model) -> String {
        let [n, c, h, w] = self.input_shape;
        let s = &self.sizes;
        let what = match model.name() {
            "aspp" => format!("{}->{}", s.in_channels, s.out_channels),
            "ppm" => format!("{} (bottleneck {})", s.in_channels, s.bottleneck_channels),
            "deeplab-head" | "psp-head" => format!("{}, {} classes", s.in_channels, s.num_classes),
            "pspnet" => format!(
                "ResNet-{}, {} stem, {} classes",
                s.depth,
                if s.deep_stem { "deep" } else { "7x7" },
                s.num_classes
            ),
            _ => format!("ResNet-{}, {} classes", s.depth, s.num_classes),
        };
        let settings = model.settings();
        let mut extra = Vec::new();
        if model.spec().takes(crate::models::Setting::Rates) {
            extra.push(format!("rates {}", crate::models::join(&settings.rates)));
        }
        if model.spec().takes(crate::models::Setting::Bins) {
            extra.push(format!("bins {}", crate::models::join(&settings.bins)));
        }
        if model.spec().takes(crate::models::Setting::OutputStride) {
            extra.push(format!("output stride {}", settings.output_stride));
        }
        if settings.aux {
            extra.push("aux".into());
        }
        format!(
            "{} {what} @ {h}x{w}, batch {n}, input channels {c}{}",
            model.spec().display,
            extra.iter().map(|e| format!(", {e}")).collect::<String>()
        )
    }

    /// The `options` object of scripts/bench_torch.py's spec for the same model.
    fn torch_options(&self, model: &Model) -> Value {
        let s = &self.sizes;
        let settings = model.settings();
        match model.name() {
            "aspp" => json!({"in_channels": s.in_channels, "out_channels": s.out_channels,
                             "rates": settings.rates}),
            "deeplab-head" => json!({"in_channels": s.in_channels, "num_classes": s.num_classes,
                                     "rates": settings.rates, "size": settings.size}),
            "ppm" => json!({"in_channels": s.in_channels,
                            "bottleneck_channels": s.bottleneck_channels, "bins": settings.bins}),
            "psp-head" => json!({"in_channels": s.in_channels,
                                 "bottleneck_channels": s.bottleneck_channels,
                                 "bins": settings.bins, "num_classes": s.num_classes,
                                 "size": settings.size}),
            "deeplabv3" => json!({"depth": s.depth, "num_classes": s.num_classes,
                                  "aux": settings.aux, "output_stride": settings.output_stride,
                                  "rates": settings.rates}),
            "fcn" => json!({"depth": s.depth, "num_classes": s.num_classes, "aux": settings.aux,
                            "output_stride": settings.output_stride}),
            _ => json!({"depth": s.depth, "num_classes": s.num_classes, "aux": settings.aux,
                        "stem": if s.deep_stem { "deep" } else { "7x7" },
                        "bins": settings.bins}),
        }
    }
}

/// The adapter's ceilings the shares are computed against.
#[derive(Clone, Copy, Debug)]
pub struct Ceilings {
    pub fma_gflops: f64,
    pub copy_gbps: f64,
}

impl Ceilings {
    /// Measures them with the quick sweep of `atrous bench peak`.
    pub fn measure(ctx: &Context, timing: &TimingOptions) -> Result<Self> {
        let peak = peak::measure(
            ctx,
            &PeakOptions {
                quick: true,
                timing: *timing,
            },
        )?;
        Ok(Ceilings {
            fma_gflops: peak.best_fma().gflops,
            copy_gbps: peak.best_copy().gbps,
        })
    }

    /// Reads them from the JSON of `atrous bench peak --json`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file(path.display(), e))?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| Error::file(path.display(), e))?;
        let number = |key: &str| {
            value[key]
                .as_f64()
                .ok_or_else(|| Error::file(path.display(), format!("no number at key {key}")))
        };
        Ok(Ceilings {
            fma_gflops: number("fma_gflops")?,
            copy_gbps: number("copy_gbps")?,
        })
    }

    /// The share of the roofline bound reached in `ms`, and the ceiling that binds.
    fn share(&self, cost: &Cost, ms: f64) -> (f64, &'static str) {
        let compute_ms = cost.useful_flops / (self.fma_gflops * 1e6);
        let memory_ms = cost.bytes / (self.copy_gbps * 1e6);
        let (bound_ms, ceiling) = if compute_ms >= memory_ms {
            (compute_ms, "FMA")
        } else {
            (memory_ms, "copy")
        };
        (100.0 * bound_ms / ms, ceiling)
    }
}

/// One row's measurement.
#[derive(Clone, Debug)]
pub struct LayerRow {
    pub name: String,
    /// The PyTorch modules the row covers (what the reference times).
    pub modules: Vec<String>,
    pub cost: Cost,
    pub time: Stats,
    pub torch: Option<Stats>,
}

/// Everything a model benchmark measured.
#[derive(Clone, Debug)]
pub struct ModelBench {
    pub title: String,
    pub adapter: String,
    pub clock: Clock,
    pub ceilings: Ceilings,
    pub total: Stats,
    pub total_cost: Cost,
    pub layers: Vec<LayerRow>,
    pub torch: Option<TorchReference>,
    /// Bytes of the plan's tensors and the planner's lower bound.
    pub memory: (u64, u64),
    /// Weights read, checked and folded on the host, in ms.
    pub load_ms: f64,
}

/// What the PyTorch run reported about itself.
#[derive(Clone, Debug)]
pub struct TorchReference {
    pub version: String,
    pub device: String,
    pub threads: u64,
    pub total: Stats,
}

/// The costs of a layer's launches added up; shape and parameters are the dominant launch's
/// (the most FLOPs, then the most bytes), the others' parameters appended (counted, past two).
fn sum_costs<'a>(costs: impl IntoIterator<Item = &'a Cost>) -> Cost {
    let costs: Vec<&Cost> = costs.into_iter().collect();
    let weight = |c: &Cost| (c.nominal_flops, c.bytes);
    let Some(dominant) = costs.iter().copied().max_by(|a, b| {
        weight(a)
            .partial_cmp(&weight(b))
            .unwrap_or(std::cmp::Ordering::Equal)
    }) else {
        return Cost::default();
    };
    let mut params = vec![dominant.params.clone()];
    params.extend(
        costs
            .iter()
            .filter(|c| !std::ptr::eq(**c, dominant))
            .map(|c| c.params.clone()),
    );
    // A stage of dozens of launches names its dominant one and counts the rest.
    if params.len() > 3 {
        let more = params.len() - 1;
        params = vec![params[0].clone(), format!("{more} more")];
    }
    Cost {
        nominal_flops: costs.iter().map(|c| c.nominal_flops).sum(),
        useful_flops: costs.iter().map(|c| c.useful_flops).sum(),
        bytes: costs.iter().map(|c| c.bytes).sum(),
        shape: dominant.shape.clone(),
        params: params.join(" + "),
    }
}

/// The plan's launches grouped into rows at granularity `per` (consecutive launches of one
/// row), each with the modules of its nodes.
fn rows<'a>(model: &Model, plan: &'a Plan, per: Per) -> Vec<(String, Vec<String>, &'a [Launch])> {
    let modules_of = |name: &str| -> Vec<String> {
        model
            .graph()
            .nodes()
            .iter()
            .filter(|n| n.name == name)
            .flat_map(|n| n.modules.clone())
            .collect()
    };
    let names = plan.layer_names();
    let launches = plan.launches();
    let mut rows: Vec<(String, Vec<String>, &[Launch])> = Vec::new();
    let mut start = 0;
    for end in 1..=launches.len() {
        let row = row_of(&names[start], per);
        if end == launches.len() || row_of(&names[end], per) != row {
            let mut modules: Vec<String> = Vec::new();
            for name in &names[start..end] {
                for m in modules_of(name) {
                    if !modules.contains(&m) {
                        modules.push(m);
                    }
                }
            }
            let modules = row_modules(&row, &modules);
            rows.push((row, modules, &launches[start..end]));
            start = end;
        }
    }
    rows
}

/// Runs the benchmark; `torch_python` runs scripts/bench_torch.py with that interpreter.
pub fn run(
    ctx: &Context,
    spec: &ModelBenchSpec,
    timing: &TimingOptions,
    ceilings: Ceilings,
    torch_python: Option<&str>,
) -> Result<ModelBench> {
    if spec.input_shape.contains(&0) {
        return Err(Error::invalid(
            "bench",
            format!("batch and size must be >= 1, found {:?}", spec.input_shape),
        ));
    }
    let started = std::time::Instant::now();
    let model = Model::synthetic(&spec.model, &spec.sizes, &spec.options, 1)?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let plan = model.plan(ctx, spec.input_shape)?;
    let input = Rng::new(3).vec(spec.input_shape.iter().product(), 1.0);
    plan.write_input(ctx, &input)?;
    let grouped = rows(&model, &plan, spec.per);
    let segments: Vec<Segment> = grouped
        .iter()
        .map(|(name, _, launches)| {
            Segment::new(name.clone(), move |pass| {
                for launch in launches.iter() {
                    launch.record(pass);
                }
            })
        })
        .collect();
    let timings = time_segments(ctx, &segments, timing)?;
    let mut rows: Vec<LayerRow> = grouped
        .iter()
        .zip(timings.segments)
        .map(|((name, modules, launches), (_, time))| LayerRow {
            name: name.clone(),
            modules: modules.clone(),
            cost: sum_costs(launches.iter().map(|l| &l.cost)),
            time,
            torch: None,
        })
        .collect();
    let total_cost = sum_costs(rows.iter().map(|r| &r.cost));
    let torch = match torch_python {
        Some(python) => Some(torch_reference(python, spec, &model, timing, &mut rows)?),
        None => None,
    };
    Ok(ModelBench {
        title: spec.describe(&model),
        adapter: ctx.adapter().describe(),
        clock: timings.clock,
        ceilings,
        total: timings.total,
        total_cost,
        layers: rows,
        torch,
        memory: (plan.bytes(), plan.memory().lower_bound_bytes),
        load_ms,
    })
}

/// The committed script, found beside the sources (a checkout) or under the current directory.
fn torch_script() -> Result<std::path::PathBuf> {
    let candidates = [
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_torch.py"),
        Path::new("scripts/bench_torch.py").to_path_buf(),
    ];
    candidates.into_iter().find(|p| p.exists()).ok_or_else(|| {
        Error::file(
            "scripts/bench_torch.py",
            "not found: run from an atrous checkout for --reference torch",
        )
    })
}

fn stats_from_json(value: &Value) -> Option<Stats> {
    Some(Stats {
        median_ms: value["median_ms"].as_f64()?,
        min_ms: value["min_ms"].as_f64()?,
        max_ms: value["max_ms"].as_f64()?,
        samples_ms: Vec::new(),
    })
}

/// Runs scripts/bench_torch.py on the same model and rows and merges its times into `rows`.
fn torch_reference(
    python: &str,
    spec: &ModelBenchSpec,
    model: &Model,
    timing: &TimingOptions,
    rows: &mut [LayerRow],
) -> Result<TorchReference> {
    let not_installed = |detail: String| Error::InvalidArgument {
        what: "--reference torch".into(),
        message: format!(
            "PyTorch is not installed for '{python}' ({detail}). Install it with \
             `{python} -m pip install torch torchvision`, or point ATROUS_PYTHON at an \
             interpreter that has it."
        ),
    };
    let probe = Command::new(python)
        .args(["-c", "import torch, torchvision"])
        .output()
        .map_err(|e| not_installed(e.to_string()))?;
    if !probe.status.success() {
        let stderr = String::from_utf8_lossy(&probe.stderr);
        return Err(not_installed(
            stderr.lines().last().unwrap_or("import failed").to_string(),
        ));
    }
    let request = json!({
        "model": model.name(),
        "options": spec.torch_options(model),
        "input_shape": spec.input_shape,
        "runs": timing.runs,
        "warmup": timing.warmup,
        "rows": rows.iter().map(|r| json!({"name": r.name, "modules": r.modules})).collect::<Vec<_>>(),
    });
    let spec_path = std::env::temp_dir().join(format!(
        "atrous-bench-torch-{}-{}.json",
        std::process::id(),
        model.name()
    ));
    std::fs::write(&spec_path, request.to_string())
        .map_err(|e| Error::file(spec_path.display(), e))?;
    let out = Command::new(python)
        .arg(torch_script()?)
        .arg("--spec")
        .arg(&spec_path)
        .output();
    let _ = std::fs::remove_file(&spec_path);
    let out = out.map_err(|e| not_installed(e.to_string()))?;
    if !out.status.success() {
        return Err(Error::invalid(
            "--reference torch",
            format!(
                "scripts/bench_torch.py failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    let value: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        Error::invalid(
            "--reference torch",
            format!("unreadable output of scripts/bench_torch.py: {e}"),
        )
    })?;
    let bad = || {
        Error::invalid(
            "--reference torch",
            "scripts/bench_torch.py output lacks times",
        )
    };
    for (row, reported) in rows
        .iter_mut()
        .zip(value["rows"].as_array().ok_or_else(bad)?)
    {
        row.torch = stats_from_json(reported);
    }
    Ok(TorchReference {
        version: value["torch_version"].as_str().unwrap_or("?").to_string(),
        device: value["device"].as_str().unwrap_or("?").to_string(),
        threads: value["threads"].as_u64().unwrap_or(0),
        total: stats_from_json(&value["total"]).ok_or_else(bad)?,
    })
}

fn gflops(flops: f64, ms: f64) -> f64 {
    flops / (ms * 1e6)
}

impl ModelBench {
    /// The table: layer | shape | params | ms | nominal GFLOP/s | useful GFLOP/s | GB/s |
    /// % of ceiling, with PyTorch's time and the speed ratio (PyTorch time / atrous time) when
    /// it ran.
    pub fn print(&self) {
        println!("{}", self.title);
        println!("adapter: {}", self.adapter);
        println!(
            "timing: {}; ceilings: FMA {:.1} GFLOP/s, copy {:.1} GB/s",
            self.clock.describe(),
            self.ceilings.fma_gflops,
            self.ceilings.copy_gbps
        );
        if let Some(t) = &self.torch {
            println!(
                "reference: PyTorch {} on {} ({} threads)",
                t.version, t.device, t.threads
            );
        }
        let mut table: Vec<Vec<String>> = vec![[
            "layer",
            "shape",
            "params",
            "ms (median)",
            "min",
            "max",
            "nominal GF/s",
            "useful GF/s",
            "GB/s",
            "% of ceiling",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()];
        if self.torch.is_some() {
            table[0].extend(["torch ms".to_string(), "speed vs torch".to_string()]);
        }
        let mut add = |name: &str, cost: &Cost, time: &Stats, torch: Option<&Stats>| {
            let (share, ceiling) = self.ceilings.share(cost, time.median_ms);
            let mut row = vec![
                name.to_string(),
                cost.shape.clone(),
                cost.params.clone(),
                format!("{:.3}", time.median_ms),
                format!("{:.3}", time.min_ms),
                format!("{:.3}", time.max_ms),
                format!("{:.1}", gflops(cost.nominal_flops, time.median_ms)),
                format!("{:.1}", gflops(cost.useful_flops, time.median_ms)),
                format!("{:.1}", cost.bytes / (time.median_ms * 1e6)),
                format!("{share:.1}% {ceiling}"),
            ];
            if self.torch.is_some() {
                match torch {
                    Some(t) => row.extend([
                        format!("{:.3}", t.median_ms),
                        format!("{:.2}x", t.median_ms / time.median_ms),
                    ]),
                    None => row.extend(["-".to_string(), "-".to_string()]),
                }
            }
            table.push(row);
        };
        for layer in &self.layers {
            add(&layer.name, &layer.cost, &layer.time, layer.torch.as_ref());
        }
        let total_cost = Cost {
            shape: String::new(),
            params: "whole graph".into(),
            ..self.total_cost.clone()
        };
        add(
            "total",
            &total_cost,
            &self.total,
            self.torch.as_ref().map(|t| &t.total),
        );
        let columns = table[0].len();
        let widths: Vec<usize> = (0..columns)
            .map(|c| table.iter().map(|r| r[c].len()).max().unwrap_or(0))
            .collect();
        for (i, row) in table.iter().enumerate() {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            println!("{}", cells.join(" | "));
            if i == 0 {
                println!(
                    "{}",
                    widths
                        .iter()
                        .map(|w| "-".repeat(*w))
                        .collect::<Vec<_>>()
                        .join("-|-")
                );
            }
        }
        println!(
            "plan memory: {:.1} MiB in its buffers (lower bound {:.1} MiB); weights read and \
             folded in {:.1} ms",
            self.memory.0 as f64 / (1 << 20) as f64,
            self.memory.1 as f64 / (1 << 20) as f64,
            self.load_ms
        );
    }

    fn layer_json(&self, name: &str, cost: &Cost, time: &Stats, torch: Option<&Stats>) -> Value {
        let (share, ceiling) = self.ceilings.share(cost, time.median_ms);
        json!({
            "name": name,
            "shape": cost.shape,
            "params": cost.params,
            "median_ms": time.median_ms,
            "min_ms": time.min_ms,
            "max_ms": time.max_ms,
            "nominal_flops": cost.nominal_flops,
            "useful_flops": cost.useful_flops,
            "bytes": cost.bytes,
            "nominal_gflops": gflops(cost.nominal_flops, time.median_ms),
            "useful_gflops": gflops(cost.useful_flops, time.median_ms),
            "gbps": cost.bytes / (time.median_ms * 1e6),
            "percent_of_ceiling": share,
            "binding_ceiling": ceiling,
            "torch_median_ms": torch.map(|t| t.median_ms),
            "speed_vs_torch": torch.map(|t| t.median_ms / time.median_ms),
        })
    }

    pub fn to_json(&self) -> Value {
        json!({
            "graph": self.title,
            "adapter": self.adapter,
            "clock": self.clock.describe(),
            "ceilings": {"fma_gflops": self.ceilings.fma_gflops, "copy_gbps": self.ceilings.copy_gbps},
            "total": self.layer_json("total", &self.total_cost, &self.total, self.torch.as_ref().map(|t| &t.total)),
            "layers": self.layers.iter().map(|l| self.layer_json(&l.name, &l.cost, &l.time, l.torch.as_ref())).collect::<Vec<_>>(),
            "plan_bytes": self.memory.0,
            "plan_lower_bound_bytes": self.memory.1,
            "load_ms": self.load_ms,
            "reference": self.torch.as_ref().map(|t| json!({
                "torch_version": t.version,
                "device": t.device,
                "threads": t.threads,
                "total_median_ms": t.total.median_ms,
            })),
        })
    }

    /// The SVG chart of `--plot`.
    pub fn svg(&self) -> String {
        let mut layers: Vec<PlotLayer> = self
            .layers
            .iter()
            .map(|l| PlotLayer {
                name: l.name.clone(),
                atrous_ms: l.time.median_ms,
                torch_ms: l.torch.as_ref().map(|t| t.median_ms),
                ceiling_percent: Some(self.ceilings.share(&l.cost, l.time.median_ms)),
            })
            .collect();
        layers.push(PlotLayer {
            name: "total".into(),
            atrous_ms: self.total.median_ms,
            torch_ms: self.torch.as_ref().map(|t| t.total.median_ms),
            ceiling_percent: Some(self.ceilings.share(&self.total_cost, self.total.median_ms)),
        });
        plot::svg(&self.title, &self.adapter, &layers)
    }
}

//! `atrous bench aspp` and `atrous bench ppm`: a whole graph and each of its layers, timed in the
//! same runs, against the adapter's ceilings and, with `--reference torch`, against PyTorch on
//! the very same layers and shapes.
//!
//! Layers are the graph's plan grouped by PyTorch module path (`convs.1`, `project`,
//! `stages.2`, ...), each recorded into its own compute pass so timestamps split them. The input
//! is on the GPU before timing starts; each run waits for the device.
//!
//! Share of the ceiling: a layer can go no faster than the larger of useful FLOPs / FMA ceiling
//! and compulsory bytes / copy ceiling (a roofline); the share is that bound over the measured
//! median, and the ceiling that binds is named.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::bench::layer::ConvLayer;
use crate::bench::peak::{self, PeakOptions};
use crate::bench::timing::{time_segments, Clock, Segment, Stats, TimingOptions};
use crate::check::Rng;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::graph::{Aspp, AsppWeights, Graph, Ppm, PpmWeights};
use crate::pipeline::Cost;
use crate::plot::{self, PlotLayer};
use crate::shape::ConvGeometry;

/// Which graph, with the shapes of the real configurations as defaults.
#[derive(Clone, Debug, PartialEq)]
pub enum GraphSpec {
    Aspp {
        in_channels: usize,
        out_channels: usize,
        rates: Vec<usize>,
    },
    Ppm {
        in_channels: usize,
        bins: Vec<usize>,
        bottleneck_channels: usize,
    },
}

impl GraphSpec {
    fn name(&self) -> &'static str {
        match self {
            GraphSpec::Aspp { .. } => "aspp",
            GraphSpec::Ppm { .. } => "ppm",
        }
    }

    fn in_channels(&self) -> usize {
        match self {
            GraphSpec::Aspp { in_channels, .. } | GraphSpec::Ppm { in_channels, .. } => {
                *in_channels
            }
        }
    }

    pub fn describe(&self, batch: usize, [h, w]: [usize; 2]) -> String {
        match self {
            GraphSpec::Aspp { in_channels, out_channels, rates } => format!(
                "ASPP {in_channels}->{out_channels} @ {h}x{w}, rates {}, batch {batch}",
                join(rates)
            ),
            GraphSpec::Ppm { in_channels, bins, bottleneck_channels } => format!(
                "PPM {in_channels} (bottleneck {bottleneck_channels}) @ {h}x{w}, bins {}, batch {batch}",
                join(bins)
            ),
        }
    }

    fn build(&self, ctx: &Context) -> Result<Box<dyn Graph>> {
        Ok(match self {
            GraphSpec::Aspp {
                in_channels,
                out_channels,
                rates,
            } => Box::new(Aspp::new(
                ctx,
                &AsppWeights::random(*in_channels, *out_channels, rates, 1)?,
            )?),
            GraphSpec::Ppm {
                in_channels,
                bins,
                bottleneck_channels,
            } => Box::new(Ppm::new(
                ctx,
                &PpmWeights::random(*in_channels, bins, *bottleneck_channels, 1)?,
            )?),
        })
    }

    /// The graph's convolutions with the input shapes they see (what `atrous tune` sweeps).
    /// Names and shapes follow the graph's own layers (src/graph): a convolution built for a
    /// layer here has the tune key its counterpart in the graph looks up.
    pub fn conv_layers(&self, batch: usize, size: [usize; 2]) -> Vec<ConvLayer> {
        let pointwise =
            |name: &str, c_in, c_out, size| ConvLayer::conv1x1(name, batch, c_in, c_out, size);
        match self {
            GraphSpec::Aspp {
                in_channels,
                out_channels,
                rates,
            } => {
                let (i, o) = (*in_channels, *out_channels);
                let mut layers = vec![pointwise("convs.0", i, o, size)];
                for (k, &rate) in rates.iter().enumerate() {
                    layers.push(ConvLayer::conv3x3(
                        &format!("convs.{}", k + 1),
                        batch,
                        i,
                        o,
                        size,
                        ConvGeometry::same_3x3(rate),
                    ));
                }
                let pooling = format!("convs.{}", rates.len() + 1);
                layers.push(pointwise(&pooling, i, o, [1, 1]));
                // The projection over the conv branches, and its pooling part as a bias.
                layers.push(pointwise("project", (1 + rates.len()) * o, o, size));
                layers.push(pointwise("project (pooling part)", o, o, [1, 1]));
                layers
            }
            GraphSpec::Ppm {
                in_channels,
                bins,
                bottleneck_channels,
            } => {
                let stage_channels = in_channels / bins.len().max(1);
                let mut layers: Vec<ConvLayer> = bins
                    .iter()
                    .enumerate()
                    .map(|(k, &bin)| {
                        pointwise(
                            &format!("stages.{k}"),
                            *in_channels,
                            stage_channels,
                            [bin, bin],
                        )
                    })
                    .collect();
                layers.push(ConvLayer::conv3x3(
                    "bottleneck",
                    batch,
                    in_channels + bins.len() * stage_channels,
                    *bottleneck_channels,
                    size,
                    ConvGeometry::same_3x3(1),
                ));
                layers
            }
        }
    }

    /// Arguments of scripts/bench_torch.py for the same graph.
    fn torch_args(&self, batch: usize, [h, w]: [usize; 2]) -> Vec<String> {
        let mut args = vec![
            self.name().to_string(),
            format!("--in-channels={}", self.in_channels()),
            format!("--size={h},{w}"),
            format!("--batch={batch}"),
        ];
        match self {
            GraphSpec::Aspp {
                out_channels,
                rates,
                ..
            } => {
                args.push(format!("--out-channels={out_channels}"));
                args.push(format!("--rates={}", join(rates)));
            }
            GraphSpec::Ppm {
                bins,
                bottleneck_channels,
                ..
            } => {
                args.push(format!("--bins={}", join(bins)));
                args.push(format!("--bottleneck-channels={bottleneck_channels}"));
            }
        }
        args
    }
}

fn join(values: &[usize]) -> String {
    values
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
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

/// One layer's measurement.
#[derive(Clone, Debug)]
pub struct LayerRow {
    pub name: String,
    pub cost: Cost,
    pub time: Stats,
    pub torch: Option<Stats>,
}

/// Everything a graph benchmark measured.
#[derive(Clone, Debug)]
pub struct GraphBench {
    pub title: String,
    pub adapter: String,
    pub clock: Clock,
    pub ceilings: Ceilings,
    pub total: Stats,
    pub total_cost: Cost,
    pub layers: Vec<LayerRow>,
    pub torch: Option<TorchReference>,
}

/// What the PyTorch run reported about itself.
#[derive(Clone, Debug)]
pub struct TorchReference {
    pub version: String,
    pub device: String,
    pub threads: u64,
    pub total: Stats,
    /// PyTorch layers that atrous has no counterpart for (e.g. `cat`), with their times.
    pub extra_layers: Vec<(String, Stats)>,
}

/// The costs of a layer's launches added up; shape and parameters are the dominant launch's
/// (the most FLOPs, then the most bytes), the others' parameters appended.
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
    Cost {
        nominal_flops: costs.iter().map(|c| c.nominal_flops).sum(),
        useful_flops: costs.iter().map(|c| c.useful_flops).sum(),
        bytes: costs.iter().map(|c| c.bytes).sum(),
        shape: dominant.shape.clone(),
        params: params.join(" + "),
    }
}

/// Runs the benchmark; `torch_python` runs scripts/bench_torch.py with that interpreter.
pub fn run(
    ctx: &Context,
    spec: &GraphSpec,
    batch: usize,
    size: [usize; 2],
    timing: &TimingOptions,
    ceilings: Ceilings,
    torch_python: Option<&str>,
) -> Result<GraphBench> {
    if batch == 0 || size.contains(&0) {
        return Err(Error::invalid(
            "bench",
            format!("batch and size must be >= 1, found {batch} and {size:?}"),
        ));
    }
    let graph = spec.build(ctx)?;
    let input_shape = [batch, spec.in_channels(), size[0], size[1]];
    let plan = graph.plan(ctx, input_shape)?;
    let input = Rng::new(3).vec(input_shape.iter().product(), 1.0);
    plan.write_input(ctx, &input)?;
    let layers = plan.layers();
    let segments: Vec<Segment> = layers
        .iter()
        .map(|(name, launches)| {
            Segment::new(name.to_string(), move |pass| {
                for launch in launches.iter() {
                    launch.record(pass);
                }
            })
        })
        .collect();
    let timings = time_segments(ctx, &segments, timing)?;
    let mut rows: Vec<LayerRow> = layers
        .iter()
        .zip(timings.segments)
        .map(|((name, launches), (_, time))| LayerRow {
            name: name.to_string(),
            cost: sum_costs(launches.iter().map(|l| &l.cost)),
            time,
            torch: None,
        })
        .collect();
    let total_cost = sum_costs(rows.iter().map(|r| &r.cost));
    let torch = match torch_python {
        Some(python) => Some(torch_reference(
            python, spec, batch, size, timing, &mut rows,
        )?),
        None => None,
    };
    Ok(GraphBench {
        title: spec.describe(batch, size),
        adapter: ctx.adapter().describe(),
        clock: timings.clock,
        ceilings,
        total: timings.total,
        total_cost,
        layers: rows,
        torch,
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

/// Runs scripts/bench_torch.py on the same graph and merges its per-layer times into `rows`.
fn torch_reference(
    python: &str,
    spec: &GraphSpec,
    batch: usize,
    size: [usize; 2],
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
    let out = Command::new(python)
        .arg(torch_script()?)
        .args(spec.torch_args(batch, size))
        .args([
            format!("--runs={}", timing.runs),
            format!("--warmup={}", timing.warmup),
        ])
        .output()
        .map_err(|e| not_installed(e.to_string()))?;
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
    let mut extra_layers = Vec::new();
    for layer in value["layers"].as_array().ok_or_else(bad)? {
        let name = layer["name"].as_str().ok_or_else(bad)?;
        let stats = stats_from_json(layer).ok_or_else(bad)?;
        match rows.iter_mut().find(|r| r.name == name) {
            Some(row) => row.torch = Some(stats),
            None => extra_layers.push((name.to_string(), stats)),
        }
    }
    Ok(TorchReference {
        version: value["torch_version"].as_str().unwrap_or("?").to_string(),
        device: value["device"].as_str().unwrap_or("?").to_string(),
        threads: value["threads"].as_u64().unwrap_or(0),
        total: stats_from_json(&value["total"]).ok_or_else(bad)?,
        extra_layers,
    })
}

fn gflops(flops: f64, ms: f64) -> f64 {
    flops / (ms * 1e6)
}

impl GraphBench {
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
        if let Some(t) = &self.torch {
            for (name, stats) in &t.extra_layers {
                println!("PyTorch also spends {:.3} ms in `{name}` (atrous writes in place: no such layer)", stats.median_ms);
            }
        }
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
            "reference": self.torch.as_ref().map(|t| json!({
                "torch_version": t.version,
                "device": t.device,
                "threads": t.threads,
                "total_median_ms": t.total.median_ms,
                "extra_layers": t.extra_layers.iter().map(|(n, s)| json!({"name": n, "median_ms": s.median_ms})).collect::<Vec<_>>(),
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
        if let Some(t) = &self.torch {
            for (name, stats) in &t.extra_layers {
                layers.push(PlotLayer {
                    name: name.clone(),
                    atrous_ms: 0.0,
                    torch_ms: Some(stats.median_ms),
                    ceiling_percent: None,
                });
            }
        }
        layers.push(PlotLayer {
            name: "total".into(),
            atrous_ms: self.total.median_ms,
            torch_ms: self.torch.as_ref().map(|t| t.total.median_ms),
            ceiling_percent: Some(self.ceilings.share(&self.total_cost, self.total.median_ms)),
        });
        plot::svg(&self.title, &self.adapter, &layers)
    }
}

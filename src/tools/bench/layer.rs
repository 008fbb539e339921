//! Per-layer micro-benchmarks of the convolutions (`atrous bench conv2d`, `conv3x3`, `conv1x1`,
//! and `convs <model>`, which walks a model's conv nodes): time, nominal and useful GFLOP/s,
//! GB/s and the share of the adapter's measured FMA ceiling, for several kernel configurations
//! of each layer timed in the same runs.
//!
//! Counting:
//! - nominal FLOPs: 2 x C_in x C_out x k^2 x output pixels x N, every tap of every pixel;
//! - useful FLOPs: only the taps that read a real input pixel (padding taps multiply zeros):
//!   2 x C_in x C_out x [`ConvGeometry::live_taps`] x N. For ASPP's dilated 3x3 at 33x33 this
//!   is 77% (rate 6), 57% (rate 12) and 41% (rate 18) of nominal;
//! - bytes: the compulsory traffic, input + weights + bias + output read or written once.
//!
//! All configurations of all layers are recorded into each run, one compute pass each, so
//! every ratio between them comes from the same runs under the same machine load.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::ops::conv2d::{ConvConfig, ConvVariant, Epilogue};
use crate::ops::Conv2d;
use crate::pipeline::Launch;
use crate::reference::compare;
use crate::rng::Rng;
use crate::shape::ConvGeometry;
use crate::tensor::Tensor;
use crate::tools::bench::timing::{time_segments, Clock, Segment, Stats, TimingOptions};

/// One convolution layer to benchmark or tune.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvLayer {
    pub name: String,
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    /// Input (H, W).
    pub size: [usize; 2],
    pub geometry: ConvGeometry,
}

impl ConvLayer {
    pub fn new(
        name: &str,
        batch: usize,
        in_channels: usize,
        out_channels: usize,
        size: [usize; 2],
        geometry: ConvGeometry,
    ) -> Self {
        ConvLayer {
            name: name.to_string(),
            batch,
            in_channels,
            out_channels,
            size,
            geometry,
        }
    }

    /// The layer of a built graph's conv node on an input of `shape`.
    pub fn of(name: &str, conv: &Conv2d, shape: [usize; 4]) -> Self {
        let [n, c, h, w] = shape;
        Self::new(name, n, c, conv.out_channels(), [h, w], conv.geometry())
    }

    pub fn input_shape(&self) -> [usize; 4] {
        [self.batch, self.in_channels, self.size[0], self.size[1]]
    }

    /// `512->256 33x33 d12`, `64->128 129x129 7x7s2 p3` and the like.
    pub fn describe(&self) -> String {
        let [h, w] = self.size;
        let g = &self.geometry;
        let batch = if self.batch > 1 {
            format!(" N{}", self.batch)
        } else {
            String::new()
        };
        let geometry = if g.is_pointwise() {
            " 1x1".to_string()
        } else if g.kernel_size == 3 && g.stride == 1 && g.padding == [g.dilation; 2] {
            format!(" d{}", g.dilation)
        } else {
            let k = g.kernel_name().trim_start_matches("conv").to_string();
            let dilation = if g.dilation > 1 {
                format!(" d{}", g.dilation)
            } else {
                String::new()
            };
            format!(" {k}{dilation} p{}x{}", g.padding[0], g.padding[1])
        };
        format!(
            "{}->{} {h}x{w}{geometry}{batch}",
            self.in_channels, self.out_channels
        )
    }

    fn macs_per_channel_pair(&self, live_only: bool) -> Result<f64> {
        let g = self.geometry;
        let [h, w] = self.size;
        let taps = if live_only {
            g.live_taps(h, w)?
        } else {
            let (oh, ow) = g.out_hw(h, w)?;
            oh * ow * g.kernel_size * g.kernel_size
        };
        Ok(taps as f64 * self.batch as f64)
    }

    /// Every tap of every output pixel, 2 FLOPs per multiply-add.
    pub fn nominal_flops(&self) -> Result<f64> {
        Ok(2.0
            * (self.in_channels * self.out_channels) as f64
            * self.macs_per_channel_pair(false)?)
    }

    /// Only the taps that read a real input pixel.
    pub fn useful_flops(&self) -> Result<f64> {
        Ok(2.0
            * (self.in_channels * self.out_channels) as f64
            * self.macs_per_channel_pair(true)?)
    }

    /// Compulsory traffic: input, weights, bias and output, once each.
    pub fn min_bytes(&self) -> Result<f64> {
        let [h, w] = self.size;
        let (oh, ow) = self.geometry.out_hw(h, w)?;
        let k = self.geometry.kernel_size;
        let elements = self.batch * self.in_channels * h * w
            + self.out_channels * self.in_channels * k * k
            + self.out_channels
            + self.batch * self.out_channels * oh * ow;
        Ok(4.0 * elements as f64)
    }

    /// Parses a configuration for this layer (`all` is handled by the caller).
    pub fn parse_config(&self, text: &str) -> Result<ConvConfig> {
        ConvConfig::parse_for(text, &self.geometry)
    }

    /// Every candidate configuration of this layer's kernel family on `ctx`.
    pub fn candidates(&self, ctx: &Context) -> Vec<ConvConfig> {
        ConvConfig::candidates_for(ctx, &self.geometry, self.in_channels)
    }

    /// The layer as a `Conv2d` with `weights`, run by `config`.
    pub fn conv(&self, weights: crate::ops::ConvWeights, config: ConvConfig) -> Result<Conv2d> {
        Ok(Conv2d::new(&self.name, weights, self.geometry)?.with_config(config))
    }
}

/// A layer prepared to run under one configuration: its buffers, its dispatches (a pack, then
/// the conv, for the packed kernels) and the label of the configuration it resolved to
/// (`auto=conv3x3_packed8:c16p3w8` for `Auto`).
pub struct Prepared {
    pub launches: Vec<Launch>,
    pub output: Tensor,
    pub label: String,
    _packed: Option<Tensor>,
}

impl Prepared {
    /// `conv` on `input` with a ReLU epilogue, every buffer allocated.
    pub fn new(ctx: &Context, conv: &Conv2d, input: &Tensor) -> Result<Prepared> {
        let shape = input.shape();
        let output = Tensor::empty(ctx, conv.name(), conv.out_shape(shape)?)?;
        let resolved = conv.config_for(ctx, shape)?;
        let mut launches = Vec::new();
        let packed = match conv.pack_for(ctx, shape)? {
            Some(packing) => {
                let packed = Tensor::empty(ctx, "packed input", packing.packed_shape(shape))?;
                launches.push(crate::ops::pack_channels::prepare(
                    ctx,
                    input,
                    packing,
                    packed.buffer(),
                )?);
                Some(packed)
            }
            None => None,
        };
        launches.push(conv.prepare(
            ctx,
            input,
            packed.as_ref(),
            (&output).into(),
            &Epilogue::relu(true),
        )?);
        let label = resolved.label(&conv.geometry());
        let label = if conv.config().variant == ConvVariant::Auto {
            format!("auto={label}")
        } else {
            label
        };
        Ok(Prepared {
            launches,
            output,
            label,
            _packed: packed,
        })
    }

    /// The dispatches as one timed segment.
    pub fn segment(&self) -> Segment<'_> {
        Segment::new(self.label.clone(), move |pass| {
            for launch in &self.launches {
                launch.record(pass);
            }
        })
    }

    /// Runs the dispatches once.
    pub fn run(&self, ctx: &Context) -> Result<()> {
        let launches: Vec<&Launch> = self.launches.iter().collect();
        Launch::run_all(ctx, &launches)
    }
}

/// One (layer, configuration) measurement.
#[derive(Clone, Debug)]
pub struct LayerResult {
    pub layer: ConvLayer,
    pub config: String,
    pub time: Stats,
    pub nominal_gflops: f64,
    pub useful_gflops: f64,
    pub gbps: f64,
    /// Relative L2 difference of this configuration's output from the first configuration's
    /// output of the same layer (0 for the first).
    pub rel_diff_to_first: f64,
}

impl LayerResult {
    pub fn to_json(&self, ceiling_gflops: Option<f64>) -> serde_json::Value {
        serde_json::json!({
            "layer": self.layer.name,
            "shape": self.layer.describe(),
            "config": self.config,
            "time": self.time.to_json(),
            "nominal_gflops": self.nominal_gflops,
            "useful_gflops": self.useful_gflops,
            "gbps": self.gbps,
            "percent_of_fma_ceiling": ceiling_gflops.map(|c| 100.0 * self.useful_gflops / c),
            "rel_diff_to_first": self.rel_diff_to_first,
        })
    }
}

/// Times every configuration of every layer in the same runs; see the module documentation.
pub fn bench_layers(
    ctx: &Context,
    layers: &[(ConvLayer, Vec<ConvConfig>)],
    timing: &TimingOptions,
) -> Result<(Clock, Vec<LayerResult>)> {
    let mut rng = Rng::new(7);
    let mut inputs = Vec::new();
    let mut prepared: Vec<Vec<Prepared>> = Vec::new();
    for (layer, configs) in layers {
        if configs.is_empty() {
            return Err(Error::invalid(
                format!("benchmark of {}", layer.name),
                "no kernel configuration given",
            ));
        }
        let shape = layer.input_shape();
        let data = rng.vec(shape.iter().product(), 1.0);
        let input = Tensor::from_slice(ctx, &format!("{} input", layer.name), shape, &data)?;
        let k = layer.geometry.kernel_size;
        let weights = rng.conv_weights(layer.out_channels, layer.in_channels, k, true);
        let mut runs = Vec::new();
        for config in configs {
            let conv = layer.conv(weights.clone(), *config)?;
            runs.push(Prepared::new(ctx, &conv, &input)?);
        }
        inputs.push(input);
        prepared.push(runs);
    }
    let segments: Vec<Segment> = prepared.iter().flatten().map(Prepared::segment).collect();
    let timings = time_segments(ctx, &segments, timing)?;
    let mut times = timings.segments.into_iter().map(|(_, stats)| stats);
    let mut results = Vec::new();
    for ((layer, _), runs) in layers.iter().zip(&prepared) {
        let nominal = layer.nominal_flops()?;
        let useful = layer.useful_flops()?;
        let bytes = layer.min_bytes()?;
        let first = runs[0].output.to_vec(ctx)?;
        let first_f64: Vec<f64> = first.iter().map(|&v| v as f64).collect();
        for run in runs {
            let time = times.next().expect("one timing per segment");
            let seconds = time.median_ms * 1e-3;
            let rel_diff_to_first = compare(&run.output.to_vec(ctx)?, &first_f64).rel_l2;
            results.push(LayerResult {
                layer: layer.clone(),
                config: run.label.clone(),
                nominal_gflops: nominal / seconds * 1e-9,
                useful_gflops: useful / seconds * 1e-9,
                gbps: bytes / seconds * 1e-9,
                time,
                rel_diff_to_first,
            });
        }
    }
    Ok((timings.clock, results))
}

/// Prints the results as a table; `ceiling_gflops` adds the share of the FMA ceiling (useful
/// FLOP/s over the ceiling) and the speed-up over the first configuration of each layer.
pub fn print_table(results: &[LayerResult], ceiling_gflops: Option<f64>) {
    println!(
        "{:<16} {:<22} {:<34} {:>9} {:>9} {:>9} {:>8} {:>8} {:>6} {:>7} {:>7} {:>8}",
        "layer",
        "shape",
        "config",
        "median ms",
        "min ms",
        "max ms",
        "nominal",
        "useful",
        "GB/s",
        "%ceil",
        "speedup",
        "diff"
    );
    let mut first_ms = None;
    let mut last_layer = None;
    for r in results {
        if last_layer != Some(&r.layer.name) {
            first_ms = Some(r.time.median_ms);
            last_layer = Some(&r.layer.name);
        }
        let percent = ceiling_gflops.map_or("-".to_string(), |c| {
            format!("{:.1}", 100.0 * r.useful_gflops / c)
        });
        println!(
            "{:<16} {:<22} {:<34} {:>9.3} {:>9.3} {:>9.3} {:>8.1} {:>8.1} {:>6.2} {:>7} {:>6.2}x {:>8.1e}",
            r.layer.name,
            r.layer.describe(),
            r.config,
            r.time.median_ms,
            r.time.min_ms,
            r.time.max_ms,
            r.nominal_gflops,
            r.useful_gflops,
            r.gbps,
            percent,
            first_ms.unwrap_or(r.time.median_ms) / r.time.median_ms,
            r.rel_diff_to_first,
        );
    }
    println!(
        "nominal/useful: GFLOP/s counting every tap / only taps on real pixels; %ceil: useful over \
         the FMA ceiling; speedup: over the layer's first config; diff: rel L2 to its output"
    );
}

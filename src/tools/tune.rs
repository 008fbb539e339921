//! The autotuner and its cache: for each adapter (name, driver, backend) and layer shape, the
//! kernel configuration that measured fastest, with everything that was tried. `atrous tune`
//! fills it; the command line hands the adapter's winners to the engine
//! ([`Context::with_tuning`](crate::Context::with_tuning)), which otherwise uses measured
//! defaults. The engine never reads this file itself.
//!
//! File: JSON at `$ATROUS_TUNE_CACHE`, else `$XDG_CACHE_HOME/atrous/tune.json`, else
//! `~/.cache/atrous/tune.json`:
//! `{"version": 2, "adapters": {ADAPTER: {SHAPE: {"winner": CONFIG, "median_ms": f,
//!   "tried": [{"config": CONFIG, "median_ms": f | null, "verified": bool, "note": s}]}}}}`
//! Configurations are the kernels' own `Display` strings (parsed back with `FromStr`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use serde_json::{json, Map, Value};

use crate::context::{Context, TuningTable};
use crate::error::{Error, Result};
use crate::reference::{self, compare, HostTensor, REL_L2_TOLERANCE};
use crate::rng::Rng;
use crate::tensor::Tensor;
use crate::tools::bench::layer::{ConvLayer, Prepared};
use crate::tools::bench::timing::{time_segments, TimingOptions};
use crate::tools::bench::{model_conv_layers, SyntheticModelArgs};

/// 2: kernels of every geometry (`conv7x7s2_...`), strided layers in the keys.
const VERSION: u64 = 2;

/// One candidate the tuner tried on one shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Trial {
    pub config: String,
    /// `None` when the candidate failed verification or could not run.
    pub median_ms: Option<f64>,
    pub verified: bool,
    pub note: String,
}

/// The tuner's result for one shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub winner: String,
    pub median_ms: f64,
    pub tried: Vec<Trial>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TuneCache {
    /// adapter key -> shape key -> entry
    pub adapters: BTreeMap<String, BTreeMap<String, Entry>>,
}

/// Where the cache lives unless a path is given.
pub fn default_path() -> PathBuf {
    if let Some(path) = std::env::var_os("ATROUS_TUNE_CACHE") {
        return PathBuf::from(path);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("atrous").join("tune.json")
}

impl TuneCache {
    /// Reads the cache; a missing file is an empty cache, a malformed one an error.
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Error::file(path.display(), e)),
        };
        let bad = |message: &str| {
            Error::file(
                path.display(),
                format!("not an atrous tune cache: {message}"),
            )
        };
        let root: Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
        if root["version"].as_u64() != Some(VERSION) {
            return Err(bad(&format!(
                "expected version {VERSION}, found {}",
                root["version"]
            )));
        }
        let mut cache = Self::default();
        for (adapter, shapes) in root["adapters"]
            .as_object()
            .ok_or_else(|| bad("no adapters"))?
        {
            let shapes = shapes
                .as_object()
                .ok_or_else(|| bad("adapter entry is not an object"))?;
            for (shape, entry) in shapes {
                let parsed =
                    parse_entry(entry).ok_or_else(|| bad(&format!("bad entry for {shape}")))?;
                cache
                    .adapters
                    .entry(adapter.clone())
                    .or_default()
                    .insert(shape.clone(), parsed);
            }
        }
        Ok(cache)
    }

    /// Writes the cache through a temporary file and a rename, so a crash never leaves half a
    /// file behind.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::file(dir.display(), e))?;
        }
        let adapters: Map<String, Value> = self
            .adapters
            .iter()
            .map(|(adapter, shapes)| {
                let shapes: Map<String, Value> = shapes
                    .iter()
                    .map(|(shape, entry)| (shape.clone(), entry_json(entry)))
                    .collect();
                (adapter.clone(), Value::Object(shapes))
            })
            .collect();
        let text = serde_json::to_string_pretty(&json!({"version": VERSION, "adapters": adapters}))
            .expect("JSON of strings and numbers");
        crate::files::write_atomically(path, (text + "\n").as_bytes())
    }

    pub fn lookup(&self, adapter: &str, shape: &str) -> Option<&Entry> {
        self.adapters.get(adapter)?.get(shape)
    }

    /// The winners for `adapter`, as the engine takes them.
    pub fn table(&self, adapter: &str) -> TuningTable {
        self.adapters
            .get(adapter)
            .map(|shapes| {
                shapes
                    .iter()
                    .map(|(shape, entry)| (shape.clone(), entry.winner.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn insert(&mut self, adapter: &str, shape: &str, entry: Entry) {
        self.adapters
            .entry(adapter.to_string())
            .or_default()
            .insert(shape.to_string(), entry);
    }
}

fn parse_entry(value: &Value) -> Option<Entry> {
    let tried = value["tried"]
        .as_array()?
        .iter()
        .map(|t| {
            Some(Trial {
                config: t["config"].as_str()?.to_string(),
                median_ms: t["median_ms"].as_f64(),
                verified: t["verified"].as_bool()?,
                note: t["note"].as_str().unwrap_or_default().to_string(),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Entry {
        winner: value["winner"].as_str()?.to_string(),
        median_ms: value["median_ms"].as_f64()?,
        tried,
    })
}

fn entry_json(entry: &Entry) -> Value {
    json!({
        "winner": entry.winner,
        "median_ms": entry.median_ms,
        "tried": entry.tried.iter().map(|t| json!({
            "config": t.config,
            "median_ms": t.median_ms,
            "verified": t.verified,
            "note": t.note,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("atrous-tune-{}-{name}", std::process::id()))
    }

    #[test]
    fn round_trips_and_misses_cleanly() {
        let path = temp_path("roundtrip.json");
        let mut cache = TuneCache::load(&path).unwrap();
        assert!(cache.lookup("gpu", "conv").is_none());
        let entry = Entry {
            winner: "tiled".into(),
            median_ms: 1.5,
            tried: vec![
                Trial {
                    config: "direct".into(),
                    median_ms: Some(4.0),
                    verified: true,
                    note: String::new(),
                },
                Trial {
                    config: "broken".into(),
                    median_ms: None,
                    verified: false,
                    note: "rel L2 0.3".into(),
                },
            ],
        };
        cache.insert("gpu|driver|Vulkan", "conv3x3 n=1", entry.clone());
        cache.save(&path).unwrap();
        let again = TuneCache::load(&path).unwrap();
        assert_eq!(
            again.lookup("gpu|driver|Vulkan", "conv3x3 n=1"),
            Some(&entry)
        );
        assert!(again.lookup("gpu|driver|Gl", "conv3x3 n=1").is_none());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn malformed_or_foreign_files_are_errors_that_name_the_file() {
        let path = temp_path("bad.json");
        for text in [
            "{not json",
            r#"{"version": 99, "adapters": {}}"#,
            r#"{"version": 2}"#,
        ] {
            std::fs::write(&path, text).unwrap();
            let message = TuneCache::load(&path).unwrap_err().to_string();
            assert!(
                message.contains("bad.json") && message.contains("not an atrous tune cache"),
                "{message}"
            );
        }
        std::fs::remove_file(&path).unwrap();
    }
}

/// One layer's sweep, as `atrous tune` reports it.
#[derive(Clone, Debug)]
pub struct LayerTuning {
    pub layer: String,
    pub key: String,
    pub entry: Entry,
}

/// Sweeps every candidate configuration of each layer on `ctx`: each candidate's output is
/// checked against the float64 reference first (relative L2 <= [`REL_L2_TOLERANCE`]); the
/// verified ones are timed in the same runs and the fastest wins. `progress(done, total, what)`
/// is called before each candidate.
pub fn tune_layers(
    ctx: &Context,
    layers: &[ConvLayer],
    timing: &TimingOptions,
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<Vec<LayerTuning>> {
    let total: usize = layers.iter().map(|l| l.candidates(ctx).len()).sum();
    let mut done = 0;
    let mut results = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        let mut rng = Rng::new(1000 + index as u64);
        let shape = layer.input_shape();
        let data = rng.vec(shape.iter().product(), 1.0);
        let x = Tensor::from_slice(ctx, "tune input", shape, &data)?;
        let k = layer.geometry.kernel_size;
        let weights = rng.conv_weights(layer.out_channels, layer.in_channels, k, true);
        progress(done, total, &format!("{}: float64 reference", layer.name));
        let expected = reference::conv2d(
            &HostTensor::from_f32(shape, &data),
            &weights,
            layer.geometry,
            true,
        );
        let mut key = None;
        let mut trials = Vec::new();
        let mut verified = Vec::new();
        for config in layer.candidates(ctx) {
            let label = config.label(&layer.geometry);
            progress(done, total, &format!("{} {label}", layer.name));
            done += 1;
            let outcome = layer.conv(weights.clone(), config).and_then(|conv| {
                key.get_or_insert_with(|| conv.tune_key(shape));
                let prepared = Prepared::new(ctx, &conv, &x)?;
                prepared.run(ctx)?;
                let rel_l2 = compare(&prepared.output.to_vec(ctx)?, &expected.data).rel_l2;
                Ok((rel_l2, prepared))
            });
            match outcome {
                Ok((rel_l2, prepared)) if rel_l2 <= REL_L2_TOLERANCE => {
                    verified.push((trials.len(), prepared));
                    trials.push(Trial {
                        config: label,
                        median_ms: None,
                        verified: true,
                        note: format!("rel L2 {rel_l2:.1e}"),
                    });
                }
                Ok((rel_l2, _)) => trials.push(Trial {
                    config: label,
                    median_ms: None,
                    verified: false,
                    note: format!("wrong result: rel L2 {rel_l2:.2e}"),
                }),
                Err(error) => trials.push(Trial {
                    config: label,
                    median_ms: None,
                    verified: false,
                    note: error.to_string(),
                }),
            }
        }
        let key = key.ok_or_else(|| {
            Error::invalid(
                "tune",
                format!("{}: no candidate could be built", layer.name),
            )
        })?;
        if verified.is_empty() {
            return Err(Error::invalid(
                "tune",
                format!("{}: no candidate matched the reference", layer.name),
            ));
        }
        progress(
            done,
            total,
            &format!(
                "{}: timing {} verified candidates",
                layer.name,
                verified.len()
            ),
        );
        let segments: Vec<_> = verified.iter().map(|(_, p)| p.segment()).collect();
        let timings = time_segments(ctx, &segments, timing)?;
        for ((trial, _), (_, stats)) in verified.iter().zip(&timings.segments) {
            trials[*trial].median_ms = Some(stats.median_ms);
        }
        let best = trials
            .iter()
            .filter_map(|t| t.median_ms.map(|ms| (ms, t)))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .expect("verified candidates were timed");
        results.push(LayerTuning {
            layer: layer.name.clone(),
            key,
            entry: Entry {
                winner: best.1.config.clone(),
                median_ms: best.0,
                tried: trials.clone(),
            },
        });
    }
    progress(done, total, "done");
    Ok(results)
}

/// `atrous tune --report`: what was tried for each shape on each adapter, and the winner.
pub fn print_report(cache: &TuneCache, path: &Path) {
    println!("tune cache: {}", path.display());
    if cache.adapters.is_empty() {
        println!("(empty: run `atrous tune MODEL` first, e.g. `atrous tune aspp`)");
    }
    for (adapter, shapes) in &cache.adapters {
        println!("\nadapter: {adapter}");
        for (shape, entry) in shapes {
            let verified = entry.tried.iter().filter(|t| t.verified).count();
            println!(
                "  {shape}: winner {} ({:.3} ms); {} tried, {verified} verified",
                entry.winner,
                entry.median_ms,
                entry.tried.len()
            );
            let mut tried: Vec<&Trial> = entry.tried.iter().collect();
            tried.sort_by(|a, b| match (a.median_ms, b.median_ms) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => a.config.cmp(&b.config),
            });
            for trial in tried {
                let ms = trial
                    .median_ms
                    .map_or("-".to_string(), |ms| format!("{ms:.3} ms"));
                let ratio = trial.median_ms.map_or(String::new(), |ms| {
                    format!(" ({:.2}x the winner)", ms / entry.median_ms)
                });
                println!("    {:<28} {ms:>12}{ratio}  {}", trial.config, trial.note);
            }
        }
    }
}

#[derive(Args, Debug)]
pub struct TuneArgs {
    #[command(subcommand)]
    model: Option<TuneModel>,
    /// Print what was tried for each shape and the winner, then exit.
    #[arg(long)]
    report: bool,
}

#[derive(Subcommand, Debug)]
enum TuneModel {
    /// A model of the registry (`atrous models`): `atrous tune aspp --in-channels 512`; its
    /// options are `atrous bench MODEL`'s.
    #[command(external_subcommand)]
    Model(Vec<String>),
}

/// `atrous tune MODEL`'s own command line.
#[derive(Parser, Debug)]
#[command(name = "atrous tune MODEL")]
struct TuneModelCli {
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(crate::tools::run::model_names()))]
    model: String,
    #[command(flatten)]
    model_args: SyntheticModelArgs,
    /// Timed runs per candidate (fewer than a benchmark: dozens of candidates per layer).
    #[arg(long, default_value_t = 5, value_parser = crate::tools::parse_positive)]
    runs: usize,
    #[arg(long, default_value_t = 1)]
    warmup: usize,
}

/// `atrous tune`.
pub fn main(args: TuneArgs) -> Result<ExitCode> {
    let path = default_path();
    if args.report {
        print_report(&TuneCache::load(&path)?, &path);
        return Ok(ExitCode::SUCCESS);
    }
    let Some(TuneModel::Model(argv)) = args.model else {
        eprintln!("error: name a model to tune (`atrous tune aspp`, `atrous tune deeplabv3`) or pass --report");
        return Ok(ExitCode::from(2));
    };
    let cli = match TuneModelCli::try_parse_from(
        std::iter::once("atrous tune".to_string()).chain(argv),
    ) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return Ok(ExitCode::from(if e.use_stderr() { 2 } else { 0 }));
        }
    };
    let spec = cli.model_args.spec(&cli.model, None)?;
    // Read the cache before the long sweep so a malformed file fails fast.
    let mut cache = TuneCache::load(&path)?;
    let ctx = crate::tools::open_context_verbose()?;
    let layers = model_conv_layers(&spec)?;
    let [n, c, h, w] = spec.input_shape;
    eprintln!(
        "tuning the {} distinct convolutions of {} on {n}x{c}x{h}x{w}",
        layers.len(),
        cli.model
    );
    let timing = TimingOptions {
        warmup: cli.warmup,
        runs: cli.runs,
        force_wall_clock: false,
    };
    let total: usize = layers.iter().map(|l| l.candidates(&ctx).len()).sum();
    let bar = indicatif::ProgressBar::new(total as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .expect("a valid template"),
    );
    let results = tune_layers(&ctx, &layers, &timing, |done, _, what| {
        bar.set_position(done as u64);
        bar.set_message(what.to_string());
    })?;
    bar.finish_and_clear();
    let adapter = ctx.adapter().cache_key();
    for result in &results {
        cache.insert(&adapter, &result.key, result.entry.clone());
    }
    cache.save(&path)?;
    println!(
        "{:<32} {:<48} {:<28} {:>10} {:>8}",
        "layer", "shape", "winner", "ms", "tried"
    );
    for r in &results {
        let verified = r.entry.tried.iter().filter(|t| t.verified).count();
        println!(
            "{:<32} {:<48} {:<28} {:>10.3} {:>3}/{:<3}",
            r.layer,
            r.key,
            r.entry.winner,
            r.entry.median_ms,
            verified,
            r.entry.tried.len()
        );
    }
    println!(
        "winners saved to {} (atrous run, segment and bench use them on this adapter)",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

//! The autotuner's cache: for each adapter (name, driver, backend) and layer shape, the kernel
//! configuration that measured fastest, with everything that was tried. `atrous tune` fills it;
//! layers look their shape up when a graph is built and fall back to the defaults without one.
//!
//! File: JSON at `$ATROUS_TUNE_CACHE`, else `$XDG_CACHE_HOME/atrous/tune.json`, else
//! `~/.cache/atrous/tune.json`:
//! `{"version": 1, "adapters": {ADAPTER: {SHAPE: {"winner": CONFIG, "median_ms": f,
//!   "tried": [{"config": CONFIG, "median_ms": f | null, "verified": bool, "note": s}]}}}}`
//! Configurations are the kernels' own `Display` strings (parsed back with `FromStr`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::bench::layer::{ConvConfig, ConvLayer, LayerKind};
use crate::bench::timing::{time_segments, Segment, TimingOptions};
use crate::check::{Rng, REL_L2_TOLERANCE};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::ops::{Conv1x1, Conv3x3, ConvWeights};
use crate::pipeline::Launch;
use crate::reference::{self, compare, HostTensor};
use crate::tensor::Tensor;

const VERSION: u64 = 1;

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
            r#"{"version": 1}"#,
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

/// A convolution of the layer's kind built for one candidate configuration.
enum Candidate {
    Conv3x3(Conv3x3),
    Conv1x1(Conv1x1),
}

impl Candidate {
    fn build(
        ctx: &Context,
        layer: &ConvLayer,
        weights: &ConvWeights,
        config: &ConvConfig,
    ) -> Result<Self> {
        Ok(match (layer.kind, config) {
            (LayerKind::Conv3x3(geometry), ConvConfig::Conv3x3(c)) => Candidate::Conv3x3(
                Conv3x3::with_config(ctx, &layer.name, weights, geometry, true, *c)?,
            ),
            (LayerKind::Conv1x1, ConvConfig::Conv1x1(c)) => {
                Candidate::Conv1x1(Conv1x1::with_config(ctx, &layer.name, weights, true, *c)?)
            }
            _ => return Err(Error::invalid("tune", "configuration for the other kernel")),
        })
    }

    fn tune_key(&self, shape: [usize; 4]) -> String {
        match self {
            Candidate::Conv3x3(c) => c.tune_key(shape),
            Candidate::Conv1x1(c) => c.tune_key(shape),
        }
    }

    fn forward(&self, ctx: &Context, x: &Tensor) -> Result<(Tensor, Launch)> {
        let shape = match self {
            Candidate::Conv3x3(c) => c.out_shape(x)?,
            Candidate::Conv1x1(c) => c.out_shape(x)?,
        };
        let y = Tensor::empty(ctx, "tune output", shape)?;
        let launch = match self {
            Candidate::Conv3x3(c) => c.prepare(ctx, x, (&y).into())?,
            Candidate::Conv1x1(c) => c.prepare(ctx, x, (&y).into())?,
        };
        Launch::run_all(ctx, &[&launch])?;
        Ok((y, launch))
    }
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
        let [h, w] = layer.size;
        let shape = [layer.batch, layer.in_channels, h, w];
        let data = rng.vec(shape.iter().product(), 1.0);
        let x = Tensor::from_slice(ctx, "tune input", shape, &data)?;
        let k = layer.geometry().kernel_size;
        let weights = rng.conv_weights(layer.out_channels, layer.in_channels, k, true);
        progress(done, total, &format!("{}: float64 reference", layer.name));
        let expected = reference::conv2d(
            &HostTensor::from_f32(shape, &data),
            &weights,
            layer.geometry(),
            true,
        );
        let mut key = None;
        let mut trials = Vec::new();
        let mut verified = Vec::new();
        for config in layer.candidates(ctx) {
            progress(done, total, &format!("{} {}", layer.name, config.label()));
            done += 1;
            let outcome = Candidate::build(ctx, layer, &weights, &config).and_then(|candidate| {
                key.get_or_insert_with(|| candidate.tune_key(shape));
                let (y, launch) = candidate.forward(ctx, &x)?;
                Ok((compare(&y.to_vec(ctx)?, &expected.data).rel_l2, launch))
            });
            match outcome {
                Ok((rel_l2, launch)) if rel_l2 <= REL_L2_TOLERANCE => {
                    verified.push((trials.len(), launch));
                    trials.push(Trial {
                        config: config.label(),
                        median_ms: None,
                        verified: true,
                        note: format!("rel L2 {rel_l2:.1e}"),
                    });
                }
                Ok((rel_l2, _)) => trials.push(Trial {
                    config: config.label(),
                    median_ms: None,
                    verified: false,
                    note: format!("wrong result: rel L2 {rel_l2:.2e}"),
                }),
                Err(error) => trials.push(Trial {
                    config: config.label(),
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
        let segments: Vec<Segment> = verified
            .iter()
            .map(|(_, launch)| Segment::launch(launch))
            .collect();
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
        println!("(empty: run `atrous tune aspp` or `atrous tune ppm` first)");
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

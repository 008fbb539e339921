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

use crate::error::{Error, Result};

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

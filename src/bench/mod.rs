//! Measurement: the adapter's own ceilings ([`peak`]), the timing machinery every benchmark
//! shares ([`timing`]) and per-layer micro-benchmarks of the convolutions ([`layer`]).

pub mod graph;
pub mod layer;
pub mod peak;
pub mod timing;

use std::path::Path;

use crate::error::{Error, Result};

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    crate::files::write_atomically(path, (text + "\n").as_bytes())
}

/// Reads the FMA ceiling (`fma_gflops`) from the JSON that `atrous bench peak --json` wrote.
pub fn read_fma_ceiling(path: &Path) -> Result<f64> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path.display(), e))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::file(path.display(), e))?;
    json["fma_gflops"]
        .as_f64()
        .ok_or_else(|| Error::file(path.display(), "no number at key fma_gflops"))
}

//! `atrous tune`: sweeps, verifies, stores winners per adapter and shape, and later runs use
//! them. Each test has its own cache file (ATROUS_TUNE_CACHE).

mod common;

use std::path::{Path, PathBuf};

use common::atrous;

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("atrous-tune-cli-{}-{name}", std::process::id()))
}

/// The environment that points `atrous` at the tune cache `path`.
fn cache_env(path: &Path) -> [(&'static str, &str); 1] {
    [(
        "ATROUS_TUNE_CACHE",
        path.to_str().expect("a UTF-8 temp path"),
    )]
}

const PPM: [&str; 8] = [
    "--in-channels",
    "8",
    "--bottleneck-channels",
    "4",
    "--size",
    "6,5",
    "--bins",
    "2",
];

/// Tune a small PPM, then check the cache, the report, and that a benchmark of the same graph
/// runs each convolution with the cached winner, including a winner edited by hand.
#[test]
fn tuned_winners_are_stored_reported_and_used() {
    let cache = temp("cache.json");
    let peak = temp("peak.json");
    std::fs::write(&peak, r#"{"fma_gflops": 100.0, "copy_gbps": 10.0}"#).unwrap();
    let mut args = vec!["tune", "ppm"];
    args.extend(PPM);
    args.extend(["--runs", "1", "--warmup", "0"]);
    let (code, stdout, stderr) = atrous(&args, &cache_env(&cache));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("stages.0") && stdout.contains("bottleneck"),
        "{stdout}"
    );

    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
    let adapters = json["adapters"].as_object().unwrap();
    assert_eq!(adapters.len(), 1, "one adapter key: {adapters:?}");
    let shapes = adapters
        .values()
        .next()
        .unwrap()
        .as_object()
        .unwrap()
        .clone();
    let key_3x3 = "conv3x3 1x16x6x5 cout=4 dil=1 pad=1,1"; // 8 input + 8 stage channels
    let key_1x1 = "conv1x1 1x8x2x2 cout=8"; // one bin: all 8 channels
    for key in [key_3x3, key_1x1] {
        let entry = &shapes[key];
        assert!(
            entry["tried"].as_array().unwrap().len() >= 2,
            "{key}: {entry}"
        );
        assert!(
            entry["tried"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["verified"] == true),
            "{entry}"
        );
    }

    let (code, report, _) = atrous(&["tune", "--report"], &cache_env(&cache));
    assert_eq!(code, 0);
    assert!(
        report.contains(key_3x3) && report.contains("winner"),
        "{report}"
    );

    // Force a distinctive winner for the 3x3 layer: the benchmark must follow the cache.
    let adapter = adapters.keys().next().unwrap().clone();
    json["adapters"][&adapter][key_3x3]["winner"] = "conv3x3_direct".into();
    std::fs::write(&cache, serde_json::to_string(&json).unwrap()).unwrap();
    let winner_1x1 = shapes[key_1x1]["winner"].as_str().unwrap().to_string();
    let mut args = vec!["bench", "ppm"];
    args.extend(PPM);
    args.extend([
        "--runs",
        "1",
        "--warmup",
        "0",
        "--peak",
        peak.to_str().unwrap(),
    ]);
    let (code, stdout, stderr) = atrous(&args, &cache_env(&cache));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let bottleneck = stdout
        .lines()
        .find(|l| l.starts_with("bottleneck"))
        .unwrap();
    assert!(bottleneck.contains("conv3x3_direct"), "{bottleneck}");
    let stage = stdout.lines().find(|l| l.starts_with("stages.0")).unwrap();
    assert!(stage.contains(&winner_1x1), "{stage}");
    std::fs::remove_file(cache).unwrap();
    std::fs::remove_file(peak).unwrap();
}

#[test]
fn a_corrupt_cache_is_an_error_for_tune_and_a_warning_elsewhere() {
    let cache = temp("corrupt.json");
    std::fs::write(&cache, "{ not json").unwrap();
    let (code, _, stderr) = atrous(&["tune", "--report"], &cache_env(&cache));
    assert_ne!(code, 0);
    assert!(stderr.contains("not an atrous tune cache"), "{stderr}");
    let (code, _, stderr) = atrous(&["check", "--quick"], &cache_env(&cache));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("warning: ignoring the tune cache"),
        "{stderr}"
    );
    std::fs::remove_file(cache).unwrap();
}

/// A cache of the current version (2, src/tools/tune.rs) without its `adapters` is refused for
/// that, not for its version.
#[test]
fn a_cache_without_adapters_is_an_error_that_says_so() {
    let cache = temp("no-adapters.json");
    std::fs::write(&cache, r#"{"version": 2}"#).unwrap();
    let (code, _, stderr) = atrous(&["tune", "--report"], &cache_env(&cache));
    assert_ne!(code, 0);
    assert!(
        stderr.contains("not an atrous tune cache: no adapters"),
        "{stderr}"
    );
    std::fs::remove_file(cache).unwrap();
}

#[test]
fn tune_without_a_graph_is_a_usage_error() {
    let (code, _, stderr) = atrous(&["tune"], &cache_env(&temp("unused.json")));
    assert_eq!(code, 2);
    assert!(stderr.contains("--report"), "{stderr}");
}

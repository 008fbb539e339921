//! `atrous bench aspp|ppm`: the per-layer table, its JSON and chart, and the PyTorch reference's
//! failure mode, on small shapes (the real configurations belong to benchmarks, not tests).

mod common;

use std::path::PathBuf;

use common::atrous;

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("atrous-bench-cli-{}-{name}", std::process::id()))
}

/// Ceilings as `atrous bench peak --json` writes them, so tests skip the sweep.
fn peak_file(test: &str) -> PathBuf {
    let path = temp(&format!("{test}-peak.json"));
    std::fs::write(&path, r#"{"fma_gflops": 100.0, "copy_gbps": 10.0}"#).unwrap();
    path
}

#[test]
fn aspp_bench_reports_every_layer_and_the_total_in_table_json_and_chart() {
    let (json, svg, peak) = (temp("aspp.json"), temp("aspp.svg"), peak_file("aspp"));
    let (code, stdout, stderr) = atrous(
        &[
            "bench",
            "aspp",
            "--in-channels",
            "16",
            "--out-channels",
            "8",
            "--size",
            "9,7",
            "--rates",
            "2,12",
            "--runs",
            "2",
            "--warmup",
            "1",
            "--peak",
            peak.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
            "--plot",
            svg.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    for layer in [
        "convs.0", "convs.1", "convs.2", "convs.3", "project", "total",
    ] {
        assert!(stdout.contains(layer), "no {layer} row:\n{stdout}");
    }
    assert!(
        stdout.contains("useful GF/s") && stdout.contains("% of ceiling"),
        "{stdout}"
    );
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(value["total"]["median_ms"].as_f64().unwrap() > 0.0);
    let layers = value["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 5);
    // Rate 12 on a 9x7 map: only the centre tap reads real pixels.
    let rate12 = &layers[2];
    assert_eq!(rate12["name"], "convs.2");
    let ratio =
        rate12["useful_flops"].as_f64().unwrap() / rate12["nominal_flops"].as_f64().unwrap();
    assert!((ratio - 1.0 / 9.0).abs() < 1e-9, "useful/nominal {ratio}");
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.contains("convs.2") && chart.contains("total"));
    for path in [json, svg, peak] {
        std::fs::remove_file(path).unwrap();
    }
}

#[test]
fn ppm_bench_names_layers_by_module_path() {
    let peak = peak_file("ppm");
    let (code, stdout, stderr) = atrous(
        &[
            "bench",
            "ppm",
            "--in-channels",
            "8",
            "--bottleneck-channels",
            "4",
            "--size",
            "7,7",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--peak",
            peak.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    for layer in ["cat", "stages.0", "stages.3", "bottleneck", "total"] {
        assert!(stdout.contains(layer), "no {layer} row:\n{stdout}");
    }
    std::fs::remove_file(peak).unwrap();
}

#[test]
fn reference_torch_without_pytorch_says_what_to_install() {
    let peak = peak_file("torch");
    let (code, _, stderr) = atrous(
        &[
            "bench",
            "aspp",
            "--in-channels",
            "8",
            "--out-channels",
            "4",
            "--size",
            "5,5",
            "--runs",
            "1",
            "--peak",
            peak.to_str().unwrap(),
            "--reference",
            "torch",
        ],
        &[("ATROUS_PYTHON", "false")],
    );
    assert_ne!(code, 0);
    assert!(
        stderr.contains("PyTorch is not installed") && stderr.contains("pip install torch"),
        "{stderr}"
    );
    std::fs::remove_file(peak).unwrap();
}

#[test]
fn bad_bench_arguments_are_usage_errors() {
    let (code, _, stderr) = atrous(&["bench", "aspp", "--rates", "6,0"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains(">= 1"), "{stderr}");
    let (code, _, stderr) = atrous(&["bench", "ppm", "--size", "60,x"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("H,W"), "{stderr}");
}

/// A whole network, per stage (the default) and per block: rows by module path, the plan's
/// memory, JSON with the total and a record per row.
#[test]
fn network_bench_reports_stages_and_blocks() {
    let (json, peak) = (temp("fcn.json"), peak_file("fcn"));
    let base = [
        "bench",
        "fcn",
        "--depth",
        "18",
        "--num-classes",
        "5",
        "--size",
        "40,33",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--peak",
    ];
    let mut args = base.to_vec();
    args.extend([peak.to_str().unwrap(), "--json", json.to_str().unwrap()]);
    let (code, stdout, stderr) = atrous(&args, &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    for row in [
        "stem",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "classifier",
        "upsample",
        "total",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(row)),
            "no {row} row:\n{stdout}"
        );
    }
    assert!(stdout.contains("plan memory"), "{stdout}");
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(value["total"]["median_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(value["layers"].as_array().unwrap().len(), 7);
    let mut args = base.to_vec();
    args.extend([peak.to_str().unwrap(), "--per", "block"]);
    let (code, stdout, stderr) = atrous(&args, &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    for row in [
        "backbone.layer1.0",
        "backbone.layer1.1",
        "backbone.layer4.1",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(row)),
            "no {row} row:\n{stdout}"
        );
    }
    for path in [json, peak] {
        std::fs::remove_file(path).unwrap();
    }
}

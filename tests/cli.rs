//! The `atrous` binary: `info` and `check` as a user runs them.

mod common;

use common::atrous;

#[test]
fn info_lists_adapters_and_marks_the_chosen_one() {
    let (code, stdout, stderr) = atrous(&["info"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("would use [0]"), "{stdout}");
    assert!(stdout.contains(" * [0] "), "{stdout}");
    assert!(stdout.contains("max storage binding"), "{stdout}");
}

#[test]
fn check_passes_and_its_table_shows_every_op() {
    let (code, stdout, stderr) = atrous(&["check"], &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.starts_with("op "), "{stdout}");
    for op in [
        "conv3x3_direct",
        "conv3x3_tiled",
        "conv1x1_direct",
        "conv1x1_tiled",
        "conv3x3+bn (folded)",
        "conv1x1+bn (folded)",
        "batchnorm",
        "adaptive_avg_pool2d",
        "interpolate",
        "concat",
        "conv7x7s2_",
        "conv3x3s2_",
        "conv1x1s2_",
        "max_pool2d",
        "resize_argmax",
        "+residual",
        "image-bias",
    ] {
        assert!(stdout.contains(op), "no {op} row:\n{stdout}");
    }
    for edge in [
        "dil=36",
        "1x3x1x1",
        "align_corners=true",
        "align_corners=false",
        "out=5x7",
        "1x4x1024x1040",
    ] {
        assert!(stdout.contains(edge), "no {edge} case:\n{stdout}");
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(
        stderr.contains("adapter:"),
        "the adapter in use is not reported: {stderr}"
    );
}

#[test]
fn no_matching_adapter_fails_with_what_to_do() {
    let (code, _, stderr) = atrous(&["check"], &[("WGPU_ADAPTER_NAME", "no-such-gpu-anywhere")]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("WGPU_ADAPTER_NAME=no-such-gpu-anywhere")
            && stderr.contains("Adapters seen"),
        "{stderr}"
    );
    // A backend this build has no adapter for: the message says what to install.
    let (code, _, stderr) = atrous(&["check"], &[("WGPU_BACKEND", "dx12")]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("no GPU adapter found") && stderr.contains("mesa-vulkan-drivers"),
        "{stderr}"
    );
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let (code, _, stderr) = atrous(&["frobnicate"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("Usage"), "{stderr}");
}

/// `atrous models` lists the registry, as a table and as the JSON the scripts read.
#[test]
fn models_lists_the_registry() {
    let (code, stdout, stderr) = atrous(&["models"], &[]);
    assert_eq!(code, 0, "{stderr}");
    for name in [
        "deeplabv3",
        "fcn",
        "pspnet",
        "aspp",
        "deeplab-head",
        "ppm",
        "psp-head",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(name)),
            "no {name}:\n{stdout}"
        );
    }
    let (code, stdout, _) = atrous(&["models", "--json"], &[]);
    assert_eq!(code, 0);
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let deeplab = value["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "deeplabv3")
        .unwrap();
    assert_eq!(deeplab["default_rates"], serde_json::json!([12, 24, 36]));
    assert_eq!(deeplab["default_output_stride"], 8);
}

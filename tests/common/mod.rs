//! Shared by the integration tests: one GPU context per test binary, and comparisons that
//! report the worst element.

#![allow(dead_code)]

use std::sync::OnceLock;

use atrous::reference::{compare, unravel, Comparison};
use atrous::Context;

/// The context every test of a binary shares. With no adapter this fails the test with the
/// message saying what to install; it never skips.
pub fn ctx() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| {
        Context::new().unwrap_or_else(|e| panic!("cannot create a GPU context: {e}"))
    })
}

/// Asserts relative L2 error <= `tolerance`, naming the case and the worst element on failure.
pub fn assert_close(
    case: &str,
    shape: [usize; 4],
    actual: &[f32],
    expected: &[f64],
    tolerance: f64,
) -> Comparison {
    let c = compare(actual, expected);
    assert!(
        c.rel_l2 <= tolerance,
        "{case}: relative L2 error {:.3e} > {tolerance:e}; max abs error {:.3e} at (n, c, h, w) = {:?}: got {}, expected {}",
        c.rel_l2,
        c.max_abs,
        unravel(c.worst_index, shape),
        actual[c.worst_index],
        expected[c.worst_index]
    );
    c
}

/// CRC-32 (ISO-HDLC, zlib's and PNG's): forged PNG chunks need it, and fixtures record it for
/// data too large to commit. Bitwise: tests hash a few hundred kilobytes at most.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// The `atrous` binary, with a tune cache that does not exist: the command-line tests never
/// read the user's (`~/.cache/atrous/tune.json`), whatever `atrous tune` left on this machine.
pub fn atrous_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_atrous"));
    let none = std::env::temp_dir().join(format!(
        "atrous-tests-{}-no-tune-cache.json",
        std::process::id()
    ));
    command.env("ATROUS_TUNE_CACHE", none);
    command
}

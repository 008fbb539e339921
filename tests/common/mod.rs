//! Shared by the integration tests: one GPU context per test binary, comparisons that report
//! the worst element, the `atrous` binary as the command-line tests run it, and temporary
//! directories.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// Runs the `atrous` binary ([`atrous_command`]) with `args` and `env` added to its
/// environment (an `ATROUS_TUNE_CACHE` there replaces the missing one): its exit code (-1 when
/// a signal ended it), stdout and stderr.
pub fn atrous<S: AsRef<OsStr>>(args: &[S], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = atrous_command();
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().expect("run the atrous binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "atrous-test-{}-{name}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn join(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    /// Names of the files in the directory, sorted.
    pub fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .expect("read temp dir")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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

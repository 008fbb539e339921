//! GPU errors become `Result`s: wgpu's default handler would panic on an uncaught error. This
//! file has its own process (and context) because it provokes errors on purpose.

mod common;

use atrous::Error;

#[test]
fn validation_error_inside_a_scope_is_returned_not_panicked() {
    let ctx = common::ctx();
    // MAP_READ may only be combined with COPY_DST: wgpu rejects this buffer.
    let result = ctx.scoped("an invalid buffer", || {
        Ok(ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("invalid"),
            size: 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        }))
    });
    match result {
        Err(Error::Validation { during, message }) => {
            assert_eq!(during, "an invalid buffer");
            assert!(!message.is_empty());
        }
        Err(e) => panic!("expected a validation error, got {e}"),
        Ok(_) => panic!("an invalid buffer was accepted"),
    }
    // The context stays usable.
    ctx.sync().unwrap();
}

#[test]
fn uncaptured_error_is_reported_by_the_next_check() {
    let ctx = common::ctx();
    // No scope: without our handler wgpu would panic here.
    let _buffer = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("invalid, unscoped"),
        size: 16,
        usage: wgpu::BufferUsages::MAP_WRITE | wgpu::BufferUsages::UNIFORM,
        mapped_at_creation: false,
    });
    let error = ctx.check().expect_err("the uncaptured error was lost");
    assert!(matches!(error, Error::Validation { .. }), "{error}");
    // Reported once.
    ctx.check().unwrap();
}

/// After the device is gone, work returns `Error::DeviceLost` (or another GPU error) promptly:
/// no panic and no hang.
#[test]
fn lost_device_is_an_error_not_a_hang() {
    use atrous::ops::{Conv2d, ConvWeights};
    let ctx = atrous::Context::new().unwrap();
    let weights = ConvWeights::new("w", [2, 2, 1, 1], vec![1.0; 4], None).unwrap();
    let conv = Conv2d::new("conv", weights, atrous::shape::ConvGeometry::pointwise()).unwrap();
    let x = atrous::Tensor::from_slice(&ctx, "x", [1, 2, 2, 2], &[1.0; 8]).unwrap();
    ctx.device().destroy();
    let started = std::time::Instant::now();
    let result = conv.forward(&ctx, &x, false).and_then(|y| y.to_vec(&ctx));
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
    match result {
        Err(Error::DeviceLost(message)) => assert!(message.contains("Destroyed"), "{message}"),
        Err(other) => panic!("expected DeviceLost, got {other}"),
        Ok(_) => panic!("work on a destroyed device succeeded"),
    }
}

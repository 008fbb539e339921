//! Criterion benchmarks of the dilated 3x3 convolution on ASPP's shapes (DeepLabV3 at output
//! stride 16: 512 -> 256 channels at 33x33, rates 6, 12, 18), the tiled baseline against the
//! default kernel. The device is synchronized inside the timed region. Throughput is counted in
//! useful FLOPs (taps on real pixels only), so criterion's "elem/s" reads as FLOP/s.
//!
//!     cargo bench --bench conv3x3              # WGPU_BACKEND=vulkan|gl picks the adapter

use std::time::Duration;

use atrous::bench::layer::ConvLayer;
use atrous::check::Rng;
use atrous::ops::conv3x3::{Conv3x3Config, Conv3x3Variant};
use atrous::ops::Conv3x3;
use atrous::pipeline::Launch;
use atrous::shape::ConvGeometry;
use atrous::{Context, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let ctx = Context::new().expect("an adapter (see `atrous info`)");
    let (in_channels, out_channels, size) = (512, 256, [33, 33]);
    let mut rng = Rng::new(1);
    let shape = [1, in_channels, size[0], size[1]];
    let x = Tensor::from_slice(&ctx, "x", shape, &rng.vec(shape.iter().product(), 1.0)).unwrap();
    let weights = rng.conv_weights(out_channels, in_channels, 3, true);
    let mut group = c.benchmark_group("conv3x3");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for rate in [6, 12, 18] {
        let geometry = ConvGeometry::same_3x3(rate);
        let layer = ConvLayer::conv3x3("aspp", 1, in_channels, out_channels, size, geometry);
        group.throughput(Throughput::Elements(layer.useful_flops().unwrap() as u64));
        for config in [Conv3x3Variant::Tiled.into(), Conv3x3Config::default()] {
            let conv =
                Conv3x3::with_config(&ctx, "conv", &weights, geometry, true, config).unwrap();
            let y = Tensor::empty(&ctx, "y", conv.out_shape(&x).unwrap()).unwrap();
            let launch = conv.prepare(&ctx, &x, (&y).into()).unwrap();
            let id = BenchmarkId::new(
                format!("{in_channels}x33x33->{out_channels} d{rate}"),
                conv.config_for(&ctx, x.shape()).unwrap().to_string(),
            );
            group.bench_function(id, |b| {
                b.iter(|| {
                    Launch::run_all(&ctx, &[&launch]).unwrap();
                    ctx.sync().unwrap();
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

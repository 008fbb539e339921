//! Criterion benchmarks of the 1x1 convolution on ASPP's shapes (DeepLabV3 at output stride 16,
//! 33x33: the 1x1 branch 512 -> 256 and the projection 1280 -> 256), the tiled baseline against
//! the default kernel. The device is synchronized inside the timed region; throughput is counted
//! in FLOPs, so criterion's "elem/s" reads as FLOP/s.
//!
//!     cargo bench --bench conv1x1              # WGPU_BACKEND=vulkan|gl picks the adapter

use std::time::Duration;

use atrous::bench::layer::ConvLayer;
use atrous::check::Rng;
use atrous::ops::conv1x1::{Conv1x1Config, Conv1x1Variant};
use atrous::ops::Conv1x1;
use atrous::pipeline::Launch;
use atrous::{Context, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let ctx = Context::new().expect("an adapter (see `atrous info`)");
    let mut rng = Rng::new(2);
    let mut group = c.benchmark_group("conv1x1");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (in_channels, out_channels) in [(512, 256), (1280, 256)] {
        let shape = [1, in_channels, 33, 33];
        let x =
            Tensor::from_slice(&ctx, "x", shape, &rng.vec(shape.iter().product(), 1.0)).unwrap();
        let weights = rng.conv_weights(out_channels, in_channels, 1, true);
        let layer = ConvLayer::conv1x1("aspp", 1, in_channels, out_channels, [33, 33]);
        group.throughput(Throughput::Elements(layer.useful_flops().unwrap() as u64));
        for config in [Conv1x1Variant::Tiled.into(), Conv1x1Config::default()] {
            let conv = Conv1x1::with_config(&ctx, "conv", &weights, true, config).unwrap();
            let y = Tensor::empty(&ctx, "y", conv.out_shape(&x).unwrap()).unwrap();
            let launch = conv.prepare(&ctx, &x, (&y).into()).unwrap();
            let id = BenchmarkId::new(
                format!("{in_channels}x33x33->{out_channels}"),
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

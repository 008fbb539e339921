//! Criterion benchmarks of single convolution layers, the tiled baseline against the default
//! (`auto`) kernel of each: ASPP's dilated 3x3 branches and its 1x1s (DeepLabV3 at output
//! stride 16, 33x33: 512 -> 256 at rates 6, 12, 18; the 1x1 branch 512 -> 256 and the projection
//! 1280 -> 256), and a strided 3x3 (a ResNet bottleneck's stride-2 conv, 128 -> 128 at 65x65).
//!
//! Each layer runs with bias and ReLU, its input channel-packed first when its kernel reads a
//! packed copy; the device is synchronized inside the timed region. Throughput is counted in
//! useful FLOPs (taps on real pixels only), so criterion's "elem/s" reads as FLOP/s.
//!
//!     cargo bench --bench conv2d              # WGPU_BACKEND=vulkan|gl picks the adapter

use std::time::Duration;

use atrous::ops::{ConvConfig, ConvVariant};
use atrous::rng::Rng;
use atrous::shape::ConvGeometry;
use atrous::tools::bench::layer::{ConvLayer, Prepared};
use atrous::{Context, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn layers() -> Vec<ConvLayer> {
    let aspp = |cin, geometry| ConvLayer::new("aspp", 1, cin, 256, [33, 33], geometry);
    let mut layers: Vec<ConvLayer> = [6, 12, 18]
        .into_iter()
        .map(|rate| aspp(512, ConvGeometry::same_3x3(rate)))
        .collect();
    layers.push(aspp(512, ConvGeometry::pointwise()));
    layers.push(aspp(1280, ConvGeometry::pointwise()));
    let strided = ConvGeometry::new(3, 2, 1, 1);
    layers.push(ConvLayer::new("layer2", 1, 128, 128, [65, 65], strided));
    layers
}

fn bench(c: &mut Criterion) {
    let ctx = Context::new().expect("an adapter (see `atrous info`)");
    let mut rng = Rng::new(1);
    let mut group = c.benchmark_group("conv2d");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for layer in layers() {
        let shape = layer.input_shape();
        let x =
            Tensor::from_slice(&ctx, "x", shape, &rng.vec(shape.iter().product(), 1.0)).unwrap();
        let k = layer.geometry.kernel_size;
        let weights = rng.conv_weights(layer.out_channels, layer.in_channels, k, true);
        group.throughput(Throughput::Elements(layer.useful_flops().unwrap() as u64));
        for config in [ConvVariant::Tiled.into(), ConvConfig::AUTO] {
            let conv = layer.conv(weights.clone(), config).unwrap();
            let prepared = Prepared::new(&ctx, &conv, &x).unwrap();
            let id = BenchmarkId::new(layer.describe(), &prepared.label);
            group.bench_function(id, |b| {
                b.iter(|| {
                    prepared.run(&ctx).unwrap();
                    ctx.sync().unwrap();
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

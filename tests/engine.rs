//! The engine's contract beyond numerics: user mistakes are `Err`s that name the tensor and say
//! expected versus found, GPU errors are routed into `Result`s, pipelines are built once, and big
//! dispatches are split over the grid.

mod common;

use atrous::ops::conv2d::{ConvVariant, Epilogue};
use atrous::ops::{self, BatchNorm, BatchNorm2d, Conv2d, ConvWeights};
use atrous::reference::{self, HostTensor};
use atrous::shape::ConvGeometry;
use atrous::{Error, Tensor};

fn message<T>(result: atrous::Result<T>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn tensor(name: &str, shape: [usize; 4]) -> Tensor {
    let len = shape.iter().product();
    Tensor::from_slice(common::ctx(), name, shape, &vec![0.25; len]).unwrap()
}

fn weights(out_c: usize, in_c: usize, k: usize) -> ConvWeights {
    ConvWeights::new(
        "w",
        [out_c, in_c, k, k],
        vec![0.1; out_c * in_c * k * k],
        None,
    )
    .unwrap()
}

#[test]
fn zero_sized_dimension_is_rejected_with_the_tensor_name() {
    let m = message(Tensor::from_slice(
        common::ctx(),
        "features",
        [1, 0, 4, 4],
        &[],
    ));
    assert!(m.contains("features") && m.contains("(1, 0, 4, 4)"), "{m}");
    let m = message(Tensor::empty(common::ctx(), "scratch", [2, 3, 0, 1]));
    assert!(m.contains("scratch") && m.contains(">= 1"), "{m}");
}

#[test]
fn data_length_must_match_the_shape() {
    let m = message(Tensor::from_slice(
        common::ctx(),
        "x",
        [1, 2, 3, 3],
        &[0.0; 17],
    ));
    assert!(
        m.contains("x") && m.contains("18 values") && m.contains("17 values"),
        "{m}"
    );
}

#[test]
fn conv_rejects_an_input_with_the_wrong_channel_count() {
    let ctx = common::ctx();
    let conv = Conv2d::new("aspp.rate6", weights(4, 8, 3), ConvGeometry::same_3x3(6)).unwrap();
    let m = message(conv.forward(ctx, &tensor("features", [1, 5, 9, 9]), false));
    assert!(
        m.contains("aspp.rate6") && m.contains("(N, 8, H, W)") && m.contains("(1, 5, 9, 9)"),
        "{m}"
    );
    let pointwise = Conv2d::new("proj", weights(4, 8, 1), ConvGeometry::pointwise()).unwrap();
    let m = message(pointwise.forward(ctx, &tensor("features", [1, 5, 9, 9]), false));
    assert!(m.contains("(N, 8, H, W)"), "{m}");
}

#[test]
fn conv_weights_with_the_wrong_kernel_or_length_are_rejected() {
    let m = message(Conv2d::new(
        "branch1",
        weights(4, 4, 1),
        ConvGeometry::same_3x3(6),
    ));
    assert!(
        m.contains("branch1") && m.contains("3x3") && m.contains("1x1"),
        "{m}"
    );
    let m = message(Conv2d::new(
        "proj",
        weights(4, 4, 3),
        ConvGeometry::pointwise(),
    ));
    assert!(
        m.contains("proj") && m.contains("1x1 kernel") && m.contains("3x3"),
        "{m}"
    );
    let m = message(ConvWeights::new("head", [4, 2, 3, 3], vec![0.0; 70], None));
    assert!(
        m.contains("head weight") && m.contains("72 values") && m.contains("70"),
        "{m}"
    );
    let m = message(ConvWeights::new(
        "head",
        [4, 2, 3, 3],
        vec![0.0; 72],
        Some(vec![0.0; 3]),
    ));
    assert!(
        m.contains("head bias") && m.contains("(4,)") && m.contains("(3,)"),
        "{m}"
    );
    let m = message(ConvWeights::new("head", [4, 2, 5, 3], vec![0.0; 120], None));
    assert!(m.contains("square kernel") && m.contains("5x3"), "{m}");
}

#[test]
fn dilation_zero_and_kernels_larger_than_the_padded_input_are_errors() {
    let ctx = common::ctx();
    let zero = ConvGeometry::new(3, 1, 0, 0);
    let m = message(Conv2d::new("conv", weights(2, 2, 3), zero));
    assert!(m.contains("dilation") && m.contains(">= 1"), "{m}");
    let zero_stride = ConvGeometry::new(3, 0, 1, 1);
    let m = message(Conv2d::new("conv", weights(2, 2, 3), zero_stride));
    assert!(m.contains("stride") && m.contains(">= 1"), "{m}");
    let unpadded = ConvGeometry::new(3, 1, 0, 6);
    let conv = Conv2d::new("conv", weights(2, 2, 3), unpadded).unwrap();
    let m = message(conv.forward(ctx, &tensor("x", [1, 2, 9, 13]), false));
    assert!(m.contains("span 13") && m.contains("H=9"), "{m}");
}

#[test]
fn batchnorm_parameters_must_have_one_value_per_channel() {
    let ctx = common::ctx();
    let bn = BatchNorm {
        gamma: vec![1.0; 4],
        beta: vec![0.0; 4],
        running_mean: vec![0.0; 3],
        running_var: vec![1.0; 4],
        eps: 1e-5,
    };
    let m = message(BatchNorm2d::new(ctx, "bn1", &bn, false));
    assert!(
        m.contains("bn1 running_mean") && m.contains("(4,)") && m.contains("(3,)"),
        "{m}"
    );
    let m = message(weights(5, 2, 3).fold_batchnorm(&BatchNorm {
        running_mean: vec![0.0; 4],
        ..bn
    }));
    assert!(m.contains("(5,)") && m.contains("(4,)"), "{m}");
    let good = BatchNorm {
        gamma: vec![1.0; 3],
        beta: vec![0.0; 3],
        running_mean: vec![0.0; 3],
        running_var: vec![1.0; 3],
        eps: 1e-5,
    };
    let layer = BatchNorm2d::new(ctx, "bn2", &good, false).unwrap();
    let m = message(layer.forward(ctx, &tensor("features", [1, 4, 2, 2])));
    assert!(m.contains("features") && m.contains("(N, 3, H, W)"), "{m}");
}

#[test]
fn pool_interpolate_and_concat_reject_bad_arguments() {
    let ctx = common::ctx();
    let x = tensor("x", [1, 2, 4, 4]);
    assert!(message(ops::adaptive_avg_pool2d(ctx, &x, [0, 3])).contains("output_size"));
    assert!(message(ops::interpolate(ctx, &x, [5, 0], true)).contains("size"));
    assert!(message(ops::concat(ctx, &[])).contains("at least one"));
    let other = tensor("branch2", [1, 3, 4, 5]);
    let m = message(ops::concat(ctx, &[&x, &other]));
    assert!(
        m.contains("branch2") && m.contains("N=1, H=4, W=4") && m.contains("(1, 3, 4, 5)"),
        "{m}"
    );
}

#[test]
fn an_output_slice_must_fit_the_output_tensor() {
    let ctx = common::ctx();
    let conv = Conv2d::new("branch", weights(4, 2, 1), ConvGeometry::pointwise())
        .unwrap()
        .with_config(ConvVariant::Tiled.into());
    let x = tensor("x", [1, 2, 3, 3]);
    let concat = tensor("concat", [1, 6, 3, 3]);
    let slice = atrous::OutputSlice::channels(&concat, 4);
    let m = message(conv.prepare(ctx, &x, None, slice, &Epilogue::default()));
    assert!(
        m.contains("concat") && m.contains("offset 4") && m.contains("(1, 6, 3, 3)"),
        "{m}"
    );
}

/// A tensor bigger than the device's max storage binding is refused up front, naming the limit,
/// instead of failing validation later.
#[test]
fn tensor_larger_than_the_binding_limit_names_the_limit() {
    let ctx = common::ctx();
    let limit = ctx.max_binding_bytes();
    let elements = (limit / 4 + 1) as usize;
    let h = elements.div_ceil(1024);
    let result = Tensor::empty(ctx, "huge", [1, 1, h, 1024]);
    match result {
        Err(Error::TooLarge {
            what,
            bytes,
            limit: l,
        }) => {
            assert_eq!(what, "huge");
            assert!(bytes > l && l == limit);
        }
        Err(e) => {
            // Past u32 elements the shape check fires first; also a clear error.
            assert!(e.to_string().contains("huge"), "{e}");
        }
        Ok(_) => panic!("a tensor over the binding limit was accepted"),
    }
    let m = message(Tensor::empty(ctx, "huge", [1, 1, h, 1024]));
    assert!(
        m.contains("max_storage_buffer_binding_size") || m.contains("elements"),
        "{m}"
    );
}

#[test]
fn pipelines_are_compiled_once_and_reused() {
    // Its own context: the shared one compiles pipelines for tests running in parallel.
    let ctx = &atrous::Context::new().unwrap();
    let tiled = ConvVariant::Tiled.into();
    let conv = Conv2d::new("c", weights(3, 2, 3), ConvGeometry::same_3x3(2))
        .unwrap()
        .with_config(tiled);
    let x = Tensor::from_slice(ctx, "x", [1, 2, 6, 6], &[0.5; 72]).unwrap();
    conv.forward(ctx, &x, true).unwrap();
    let compiled = ctx.pipelines_compiled();
    for _ in 0..3 {
        conv.forward(ctx, &x, true).unwrap();
    }
    // Another layer of the same family: another dilation, stride and kernel size are
    // parameters of the same pipeline.
    let other = Conv2d::new("d", weights(5, 2, 3), ConvGeometry::same_3x3(7))
        .unwrap()
        .with_config(tiled);
    other.forward(ctx, &x, false).unwrap();
    let stem = Conv2d::new("e", weights(4, 2, 7), ConvGeometry::new(7, 2, 3, 1))
        .unwrap()
        .with_config(tiled);
    stem.forward(ctx, &x, true).unwrap();
    assert_eq!(
        ctx.pipelines_compiled(),
        compiled,
        "a new shape or conv compiled a new pipeline"
    );
}

/// More than 65535 workgroups: the launch uses a two-dimensional grid, and every element is
/// still computed exactly once.
#[test]
fn dispatch_over_65535_workgroups_is_split_and_complete() {
    let ctx = common::ctx();
    let (n, c, h, w) = (1, 3, 1000, 1400); // 4.2 M outputs per channel group of the direct kernel
    let mut rng = atrous::rng::Rng::new(7);
    let data = rng.vec(n * c * h * w, 1.0);
    let x = Tensor::from_slice(ctx, "x", [n, c, h, w], &data).unwrap();
    let weights = rng.conv_weights(3, c, 1, true);
    let conv = Conv2d::new("big", weights.clone(), ConvGeometry::pointwise())
        .unwrap()
        .with_config(ConvVariant::Direct.into());
    let y = Tensor::empty(ctx, "y", [n, 3, h, w]).unwrap();
    let launch = conv
        .prepare(ctx, &x, None, (&y).into(), &Epilogue::default())
        .unwrap();
    assert!(
        launch.grid().1 > 1,
        "grid {:?} was not split",
        launch.grid()
    );
    atrous::pipeline::Launch::run_all(ctx, &[&launch]).unwrap();
    let expected = reference::conv2d(
        &HostTensor::from_f32([n, c, h, w], &data),
        &weights,
        ConvGeometry::pointwise(),
        false,
    );
    common::assert_close(
        "split 1x1",
        [n, 3, h, w],
        &y.to_vec(ctx).unwrap(),
        &expected.data,
        1e-5,
    );
}

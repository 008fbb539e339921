//! Random weights with each model's PyTorch keys and shapes, for benchmarks and tests that run
//! without a weights file. Conv weights are uniform in +-1/sqrt(fan_in); batch norms are near
//! the identity (so a deep network's activations stay finite).

use crate::models::{Settings, Synthetic};
use crate::rng::Rng;

/// Named tensors with their shapes, as `StateDict::from_tensors` takes them.
pub type Tensors = Vec<(String, Vec<usize>, Vec<f32>)>;

struct Writer {
    rng: Rng,
    tensors: Tensors,
}

impl Writer {
    fn new(seed: u64) -> Self {
        Writer {
            rng: Rng::new(seed),
            tensors: Vec::new(),
        }
    }

    fn conv(&mut self, key: &str, out_c: usize, in_c: usize, k: usize, bias: bool) {
        let scale = 1.0 / ((in_c * k * k) as f32).sqrt();
        let weight = self.rng.vec(out_c * in_c * k * k, scale);
        self.tensors
            .push((format!("{key}.weight"), vec![out_c, in_c, k, k], weight));
        if bias {
            let bias = self.rng.vec(out_c, 0.1);
            self.tensors
                .push((format!("{key}.bias"), vec![out_c], bias));
        }
    }

    fn bn(&mut self, key: &str, c: usize) {
        let mut uniform = |lo: f32, hi: f32| (0..c).map(|_| self.rng.uniform(lo, hi)).collect();
        let fields = [
            ("weight", uniform(0.5, 1.0)),
            ("bias", uniform(-0.1, 0.1)),
            ("running_mean", uniform(-0.1, 0.1)),
            ("running_var", uniform(0.5, 1.5)),
        ];
        for (field, values) in fields {
            self.tensors
                .push((format!("{key}.{field}"), vec![c], values));
        }
    }

    fn conv_bn(&mut self, conv: &str, bn: &str, out_c: usize, in_c: usize, k: usize) {
        self.conv(conv, out_c, in_c, k, false);
        self.bn(bn, out_c);
    }

    fn aspp(&mut self, p: &str, in_c: usize, out_c: usize, rates: &[usize]) {
        self.conv_bn(
            &format!("{p}convs.0.0"),
            &format!("{p}convs.0.1"),
            out_c,
            in_c,
            1,
        );
        for i in 1..=rates.len() {
            self.conv_bn(
                &format!("{p}convs.{i}.0"),
                &format!("{p}convs.{i}.1"),
                out_c,
                in_c,
                3,
            );
        }
        let pool = rates.len() + 1;
        self.conv_bn(
            &format!("{p}convs.{pool}.1"),
            &format!("{p}convs.{pool}.2"),
            out_c,
            in_c,
            1,
        );
        let concat = (rates.len() + 2) * out_c;
        self.conv_bn(
            &format!("{p}project.0"),
            &format!("{p}project.1"),
            out_c,
            concat,
            1,
        );
    }

    fn deeplab_head(
        &mut self,
        p: &str,
        in_c: usize,
        out_c: usize,
        classes: usize,
        rates: &[usize],
    ) {
        self.aspp(&format!("{p}0."), in_c, out_c, rates);
        self.conv_bn(&format!("{p}1"), &format!("{p}2"), out_c, out_c, 3);
        self.conv(&format!("{p}4"), classes, out_c, 1, true);
    }

    fn fcn_head(&mut self, p: &str, in_c: usize, inter: usize, classes: usize) {
        self.conv_bn(&format!("{p}0"), &format!("{p}1"), inter, in_c, 3);
        self.conv(&format!("{p}4"), classes, inter, 1, true);
    }

    /// Returns the bottleneck's output channels.
    fn ppm(&mut self, p: &str, in_c: usize, bins: &[usize], out_c: usize) -> usize {
        let stage = in_c / bins.len().max(1);
        for i in 0..bins.len() {
            self.conv_bn(
                &format!("{p}stages.{i}.1"),
                &format!("{p}stages.{i}.2"),
                stage,
                in_c,
                1,
            );
        }
        let concat = in_c + bins.len() * stage;
        self.conv_bn(
            &format!("{p}bottleneck.0"),
            &format!("{p}bottleneck.1"),
            out_c,
            concat,
            3,
        );
        out_c
    }

    /// A ResNet's layers under `p` (stem written by the caller); returns the output channels
    /// of layer3 and layer4.
    fn resnet_layers(
        &mut self,
        p: &str,
        sizes: &Synthetic,
        stem_channels: usize,
    ) -> (usize, usize) {
        let (bottleneck, blocks): (bool, [usize; 4]) = match sizes.depth {
            18 => (false, [2, 2, 2, 2]),
            34 => (false, [3, 4, 6, 3]),
            101 => (true, [3, 4, 23, 3]),
            152 => (true, [3, 8, 36, 3]),
            _ => (true, [3, 4, 6, 3]),
        };
        let expansion = if bottleneck { 4 } else { 1 };
        let mut in_c = stem_channels;
        let mut outs = [0; 4];
        for (layer, &count) in blocks.iter().enumerate() {
            let planes = sizes.base_width << layer;
            let out_c = planes * expansion;
            for block in 0..count {
                let b = format!("{p}layer{}.{block}.", layer + 1);
                if block == 0 && (layer > 0 || in_c != out_c) {
                    self.conv_bn(
                        &format!("{b}downsample.0"),
                        &format!("{b}downsample.1"),
                        out_c,
                        in_c,
                        1,
                    );
                }
                if bottleneck {
                    self.conv_bn(&format!("{b}conv1"), &format!("{b}bn1"), planes, in_c, 1);
                    self.conv_bn(&format!("{b}conv2"), &format!("{b}bn2"), planes, planes, 3);
                    self.conv_bn(&format!("{b}conv3"), &format!("{b}bn3"), out_c, planes, 1);
                } else {
                    self.conv_bn(&format!("{b}conv1"), &format!("{b}bn1"), planes, in_c, 3);
                    self.conv_bn(&format!("{b}conv2"), &format!("{b}bn2"), planes, planes, 3);
                }
                in_c = out_c;
            }
            outs[layer] = out_c;
        }
        (outs[2], outs[3])
    }

    /// torchvision's ResNet under `p` (`backbone.`).
    fn torchvision_resnet(&mut self, p: &str, sizes: &Synthetic) -> (usize, usize) {
        self.conv_bn(
            &format!("{p}conv1"),
            &format!("{p}bn1"),
            sizes.base_width,
            3,
            7,
        );
        self.resnet_layers(p, sizes, sizes.base_width)
    }
}

pub fn aspp(sizes: &Synthetic, s: &Settings, seed: u64) -> Tensors {
    let mut w = Writer::new(seed);
    w.aspp("", sizes.in_channels, sizes.out_channels, &s.rates);
    w.tensors
}

pub fn deeplab_head(sizes: &Synthetic, s: &Settings, seed: u64) -> Tensors {
    let mut w = Writer::new(seed);
    w.deeplab_head(
        "",
        sizes.in_channels,
        sizes.out_channels,
        sizes.num_classes,
        &s.rates,
    );
    w.tensors
}

pub fn ppm(sizes: &Synthetic, s: &Settings, seed: u64) -> Tensors {
    let mut w = Writer::new(seed);
    w.ppm("", sizes.in_channels, &s.bins, sizes.bottleneck_channels);
    w.tensors
}

pub fn psp_head(sizes: &Synthetic, s: &Settings, seed: u64) -> Tensors {
    let mut w = Writer::new(seed);
    let features = w.ppm("0.", sizes.in_channels, &s.bins, sizes.bottleneck_channels);
    w.conv("1", sizes.num_classes, features, 1, true);
    w.tensors
}

pub fn deeplabv3(sizes: &Synthetic, s: &Settings, seed: u64) -> Tensors {
    let mut w = Writer::new(seed);
    let (c3, c4) = w.torchvision_resnet("backbone.", sizes);
    w.deeplab_head(
        "classifier.",
        c4,
        sizes.out_channels,
        sizes.num_classes,
        &s.rates,
    );
    if s.aux {
        w.fcn_head("aux_classifier.", c3, c3 / 4, sizes.num_classes);
    }
    w.tensors
}

pub fn fcn(sizes: &Synthetic, s: &Settings, seed: u64) -> Tensors {
    let mut w = Writer::new(seed);
    let (c3, c4) = w.torchvision_resnet("backbone.", sizes);
    w.fcn_head("classifier.", c4, c4 / 4, sizes.num_classes);
    if s.aux {
        w.fcn_head("aux_classifier.", c3, c3 / 4, sizes.num_classes);
    }
    w.tensors
}

pub fn pspnet(sizes: &Synthetic, s: &Settings, seed: u64) -> Tensors {
    let mut w = Writer::new(seed);
    let width = sizes.base_width;
    let stem_channels = if sizes.deep_stem {
        w.conv_bn("initial.0.0", "initial.0.1", width, 3, 3);
        w.conv_bn("initial.0.3", "initial.0.4", width, width, 3);
        w.conv("initial.0.6", 2 * width, width, 3, false);
        w.bn("initial.1", 2 * width);
        2 * width
    } else {
        w.conv_bn("initial.0", "initial.1", width, 3, 7);
        width
    };
    let (c3, c4) = w.resnet_layers("", sizes, stem_channels);
    let bins = s.bins.len().max(1);
    let features = w.ppm("master_branch.0.", c4, &s.bins, c4 / bins);
    w.conv("master_branch.1", sizes.num_classes, features, 1, true);
    if s.aux {
        w.fcn_head("auxiliary_branch.", c3, c3 / 2, sizes.num_classes);
    }
    w.tensors
}

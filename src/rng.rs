//! A small deterministic random number generator for test data, random weights and benchmark
//! inputs: the same seed gives the same tensors on every machine.

use crate::ops::{BatchNorm, ConvWeights};

/// SplitMix64: small, deterministic, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * unit
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn vec(&mut self, len: usize, scale: f32) -> Vec<f32> {
        (0..len).map(|_| self.uniform(-scale, scale)).collect()
    }

    /// Weights of a `k` x `k` conv, uniform and scaled by 1/sqrt(fan_in) so that outputs stay
    /// O(1) whatever the channel count.
    pub fn conv_weights(&mut self, out_c: usize, in_c: usize, k: usize, bias: bool) -> ConvWeights {
        let scale = 1.0 / ((in_c * k * k) as f32).sqrt();
        let weight = self.vec(out_c * in_c * k * k, scale * 1.7);
        let bias = bias.then(|| self.vec(out_c, 0.5));
        ConvWeights::new("conv", [out_c, in_c, k, k], weight, bias).expect("consistent weights")
    }

    pub fn batchnorm(&mut self, channels: usize, eps: f64) -> BatchNorm {
        BatchNorm {
            gamma: (0..channels)
                .map(|c| self.uniform(0.5, 1.5) * if c % 3 == 0 { -1.0 } else { 1.0 })
                .collect(),
            beta: self.vec(channels, 1.0),
            running_mean: self.vec(channels, 1.0),
            running_var: (0..channels).map(|_| self.uniform(0.1, 2.0)).collect(),
            eps,
        }
    }
}

// The register tile of the register-blocked convolution kernels (the blocked, subgroup and
// packed variants of both convolutions) and their per-pixel input loads: the launchers
// prepend this file (`shader!(..., prelude [...])` in src/pipeline.rs). Each invocation
// accumulates PIX pixels x 4*VEC output channels in registers; both counts are override
// constants, so every `VEC > k` / `PIX > k` condition folds away once the pipeline is created.

// vec4 groups of output channels per invocation (4*VEC channels): 1..8 (2, 4, 6 or 8 for the
// subgroup kernels, whose weight loads come 8 vec4s at a time).
override VEC: u32 = 4u;
// Output pixels per invocation, 1..4.
override PIX: u32 = 1u;
// Accumulators [r * VEC + v]: pixel r < PIX, channels 4v..4v+3 of the block. Indexed by
// constants only, so they stay in registers.
alias Accumulators = array<vec4<f32>, 32>;

// acc[r][4v..4v+3] += x_r * wv for every pixel r < PIX; `v` is a constant at every call.
fn mac_vec4(acc: ptr<function, Accumulators>, v: u32, wv: vec4<f32>, xs: vec4<f32>) {
    (*acc)[v] = fma(vec4<f32>(xs.x), wv, (*acc)[v]);
    if (PIX > 1u) { (*acc)[VEC + v] = fma(vec4<f32>(xs.y), wv, (*acc)[VEC + v]); }
    if (PIX > 2u) { (*acc)[2u * VEC + v] = fma(vec4<f32>(xs.z), wv, (*acc)[2u * VEC + v]); }
    if (PIX > 3u) { (*acc)[3u * VEC + v] = fma(vec4<f32>(xs.w), wv, (*acc)[3u * VEC + v]); }
}

// The PIX pixels' x values for one input channel of the unpacked input `x` (declared by the
// op's parameter file), `shift` past the offsets `o` of channel 0 (or of the tap's channel 0).
fn load_pixels(o: vec4<u32>, shift: u32) -> vec4<f32> {
    var xs = vec4<f32>(x[o.x + shift], 0.0, 0.0, 0.0);
    if (PIX > 1u) { xs.y = x[o.y + shift]; }
    if (PIX > 2u) { xs.z = x[o.z + shift]; }
    if (PIX > 3u) { xs.w = x[o.w + shift]; }
    return xs;
}

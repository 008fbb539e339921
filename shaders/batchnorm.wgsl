// Standalone eval-mode batch normalization as a per-channel affine map, optional fused ReLU:
// y = x * scale[c] + shift[c], with scale = gamma / sqrt(var + eps), shift = beta - mean * scale
// computed in f64 on the host (src/ops/batchnorm.rs). A BN that follows a conv is folded into
// the conv instead and never reaches this kernel.
//
// x: (N, C, H, W)                 contiguous NCHW
// scale, shift: (C,)
// y: (N, out_c_total, H, W)       writes channels [out_c_offset, +C)

// Mirrors `BatchNormParams` in src/ops/batchnorm.rs field for field.
struct Params {
    channels: u32,
    pixels: u32,        // H * W
    out_c_total: u32,
    out_c_offset: u32,
    relu: u32,
    total: u32,         // N * C * H * W
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> shift: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

override WORKGROUP: u32 = 64u;

@compute @workgroup_size(WORKGROUP)
fn batchnorm(@builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let g = (wid.x + wid.y * nwg.x) * WORKGROUP + lid;
    if (g >= p.total) { return; }
    let pixel = g % p.pixels;
    let c = (g / p.pixels) % p.channels;
    let n = g / (p.pixels * p.channels);
    var v = x[g] * scale[c] + shift[c];
    if (p.relu != 0u) { v = max(v, 0.0); }
    y[(n * p.out_c_total + p.out_c_offset + c) * p.pixels + pixel] = v;
}

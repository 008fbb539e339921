// Bilinear interpolation to a given output size, PyTorch's coordinate rules
// (upsample_bilinear2d): with align_corners the corner pixels of input and output coincide,
// src = dst * (in - 1) / (out - 1); without, pixel centres are mapped,
// src = max((dst + 0.5) * in / out - 0.5, 0). The scales arrive precomputed in f32 exactly as
// PyTorch computes them (src/shape.rs, bilinear_scale).
//
// x: (N, C, H_in, W_in)               contiguous NCHW
// y: (N, out_c_total, H_out, W_out)   writes channels [out_c_offset, +C)
//
// Entry points:
//   interpolate       one output element per invocation: four integer divisions each to find
//                     (n, c, oy, ox), which CPU drivers (lavapipe) run one lane at a time.
//   interpolate_rows  one output row per invocation: the divisions and the vertical source are
//                     computed once per row, then the lane walks the row. Same per-element
//                     arithmetic, so bit-identical results.

// Mirrors `InterpolateParams` in src/ops/interpolate.rs field for field.
struct Params {
    channels: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    out_c_total: u32,
    out_c_offset: u32,
    align_corners: u32,
    scale_h: f32,
    scale_w: f32,
    total: u32,        // invocations: N * C * H_out * W_out, or N * C * H_out for interpolate_rows
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

override WORKGROUP: u32 = 64u;

// No source column: forces the first load of a row in interpolate_rows.
const in_w_none: u32 = 0xffffffffu;

// bilinear_source(): shaders/bilinear.wgsl (prepended).
fn source(dst: u32, in_size: u32, scale: f32) -> vec3<f32> {
    return bilinear_source(dst, in_size, scale, p.align_corners != 0u);
}

@compute @workgroup_size(WORKGROUP)
fn interpolate(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let g = (wid.x + wid.y * nwg.x) * WORKGROUP + lid;
    if (g >= p.total) { return; }
    let ox = g % p.out_w;
    let oy = (g / p.out_w) % p.out_h;
    let c = (g / (p.out_w * p.out_h)) % p.channels;
    let n = g / (p.out_w * p.out_h * p.channels);
    let sy = source(oy, p.in_h, p.scale_h);
    let sx = source(ox, p.in_w, p.scale_w);
    let base = (n * p.channels + c) * p.in_h * p.in_w;
    let r0 = base + u32(sy.x) * p.in_w;
    let r1 = base + u32(sy.y) * p.in_w;
    let x0 = u32(sx.x);
    let x1 = u32(sx.y);
    // Same association as PyTorch: h0lambda * (w0lambda * a + w1lambda * b) + h1lambda * (...).
    let top = (1.0 - sx.z) * x[r0 + x0] + sx.z * x[r0 + x1];
    let bottom = (1.0 - sx.z) * x[r1 + x0] + sx.z * x[r1 + x1];
    y[((n * p.out_c_total + p.out_c_offset + c) * p.out_h + oy) * p.out_w + ox] =
        (1.0 - sy.z) * top + sy.z * bottom;
}

@compute @workgroup_size(WORKGROUP)
fn interpolate_rows(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let row = (wid.x + wid.y * nwg.x) * WORKGROUP + lid;
    if (row >= p.total) { return; }
    let plane = row / p.out_h;           // n * C + c
    let oy = row - plane * p.out_h;
    let n = plane / p.channels;
    let c = plane - n * p.channels;
    let sy = source(oy, p.in_h, p.scale_h);
    let base = plane * p.in_h * p.in_w;
    let r0 = base + u32(sy.x) * p.in_w;
    let r1 = base + u32(sy.y) * p.in_w;
    let out_row = ((n * p.out_c_total + p.out_c_offset + c) * p.out_h + oy) * p.out_w;
    // The four source values are reloaded only when the left source column changes: upsampling
    // reuses them across many outputs, and on CPU drivers every load costs ~28 multiply-adds.
    var loaded = in_w_none;
    var a0 = 0.0;
    var a1 = 0.0;
    var b0 = 0.0;
    var b1 = 0.0;
    for (var ox = 0u; ox < p.out_w; ox++) {
        let sx = source(ox, p.in_w, p.scale_w);
        let x0 = u32(sx.x);
        if (x0 != loaded) {
            let x1 = u32(sx.y);
            a0 = x[r0 + x0];
            a1 = x[r0 + x1];
            b0 = x[r1 + x0];
            b1 = x[r1 + x1];
            loaded = x0;
        }
        let top = (1.0 - sx.z) * a0 + sx.z * a1;
        let bottom = (1.0 - sx.z) * b0 + sx.z * b1;
        y[out_row + ox] = (1.0 - sy.z) * top + sy.z * bottom;
    }
}

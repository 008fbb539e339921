// Max pooling with PyTorch's semantics (F.max_pool2d, ceil_mode=False, dilation 1): output
// (oy, ox) is the maximum over the k x k window at (oy * stride - pad, ox * stride - pad); taps
// in the padding are skipped, never compared (PyTorch pads with -inf, so they never win).
// PyTorch requires pad <= k / 2, so every window holds at least one real pixel.
//
// x: (N, C, H, W)                    contiguous NCHW
// y: (N, out_c_total, H_out, W_out)  writes channels [out_c_offset, +C); one element per
//                                    invocation

// Mirrors `MaxPoolParams` in src/ops/max_pool2d.rs field for field.
struct Params {
    channels: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    kernel_size: u32,
    stride: u32,
    padding: u32,
    out_c_total: u32,
    out_c_offset: u32,
    total: u32,       // N * C * H_out * W_out
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

override WORKGROUP: u32 = 64u;

@compute @workgroup_size(WORKGROUP)
fn max_pool2d(@builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let g = (wid.x + wid.y * nwg.x) * WORKGROUP + lid;
    if (g >= p.total) { return; }
    let ox = g % p.out_w;
    let oy = (g / p.out_w) % p.out_h;
    let plane = g / (p.out_w * p.out_h);   // n * C + c
    let c = plane % p.channels;
    let n = plane / p.channels;
    let y0 = i32(oy * p.stride) - i32(p.padding);
    let x0 = i32(ox * p.stride) - i32(p.padding);
    // Clip the window to the input once: padded taps are never read.
    let ky0 = u32(max(-y0, 0));
    let kx0 = u32(max(-x0, 0));
    let ky1 = u32(clamp(i32(p.in_h) - y0, 0, i32(p.kernel_size)));
    let kx1 = u32(clamp(i32(p.in_w) - x0, 0, i32(p.kernel_size)));
    let base = plane * p.in_h * p.in_w;
    var best = bitcast<f32>(0xff800000u); // -inf
    for (var ky = ky0; ky < ky1; ky++) {
        let row = base + u32(y0 + i32(ky)) * p.in_w;
        for (var kx = kx0; kx < kx1; kx++) {
            best = max(best, x[row + u32(x0 + i32(kx))]);
        }
    }
    y[((n * p.out_c_total + p.out_c_offset + c) * p.out_h + oy) * p.out_w + ox] = best;
}

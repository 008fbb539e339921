// Adaptive average pooling to any output size with PyTorch's window rule along each axis:
// output index i averages input [floor(i * in / out), ceil((i + 1) * in / out)). Windows overlap
// when the sizes do not divide and hold a single pixel (repeated) when out > in.
//
// x: (N, C, H, W)               contiguous NCHW
// y: (N, C, H_out, W_out)       one output element per invocation

// Mirrors `PoolParams` in src/ops/adaptive_avg_pool2d.rs field for field.
struct Params {
    planes: u32,      // N * C
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    total: u32,       // N * C * H_out * W_out
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

override WORKGROUP: u32 = 64u;

@compute @workgroup_size(WORKGROUP)
fn adaptive_avg_pool2d(@builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let g = (wid.x + wid.y * nwg.x) * WORKGROUP + lid;
    if (g >= p.total) { return; }
    let ox = g % p.out_w;
    let oy = (g / p.out_w) % p.out_h;
    let plane = g / (p.out_w * p.out_h);
    let y0 = (oy * p.in_h) / p.out_h;
    let y1 = ((oy + 1u) * p.in_h + p.out_h - 1u) / p.out_h;
    let x0 = (ox * p.in_w) / p.out_w;
    let x1 = ((ox + 1u) * p.in_w + p.out_w - 1u) / p.out_w;
    let base = plane * p.in_h * p.in_w;
    var sum = 0.0;
    for (var iy = y0; iy < y1; iy++) {
        for (var ix = x0; ix < x1; ix++) {
            sum += x[base + iy * p.in_w + ix];
        }
    }
    y[g] = sum / f32((y1 - y0) * (x1 - x0));
}

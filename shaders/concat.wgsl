// Channel concatenation, one input per dispatch: copies x into channels
// [out_c_offset, out_c_offset + C) of y. Graphs avoid this op altogether by having each branch
// write into its slice of the concat buffer; it exists for inputs that come from elsewhere.
//
// x: (N, C, H, W)                contiguous NCHW
// y: (N, out_c_total, H, W)

// Mirrors `ConcatParams` in src/ops/concat.rs field for field.
struct Params {
    channels: u32,
    pixels: u32,       // H * W
    out_c_total: u32,
    out_c_offset: u32,
    total: u32,        // N * C * H * W
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

override WORKGROUP: u32 = 64u;

@compute @workgroup_size(WORKGROUP)
fn concat(@builtin(workgroup_id) wid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let g = (wid.x + wid.y * nwg.x) * WORKGROUP + lid;
    if (g >= p.total) { return; }
    let pixel = g % p.pixels;
    let c = (g / p.pixels) % p.channels;
    let n = g / (p.pixels * p.channels);
    y[(n * p.out_c_total + p.out_c_offset + c) * p.pixels + pixel] = x[g];
}

// Channel concatenation, one input per dispatch: copies x into channels
// [out_c_offset, out_c_offset + C) of y. Graphs avoid this op altogether by having each branch
// write into its slice of the concat buffer; it exists for inputs that come from elsewhere.
//
// x: (N, C, H, W)                contiguous NCHW
// y: (N, out_c_total, H, W)
//
// Each sample's block of C * H * W values is contiguous in x and in y, so an element's place in
// y is its place in x shifted by one offset per sample: only the sample index n = g / block is
// needed. Per-lane integer division is scalarized on CPU drivers (lavapipe: one lane at a time,
// ~25 cycles each), which cost more than the copy itself; the quotient is therefore estimated
// with a vector f32 division and corrected to the exact integer quotient (`sample_of`).
//
// Entry points:
//   concat       one f32 per invocation, any shape.
//   concat_vec4  8 consecutive vec4s of one sample per invocation (the last group of a sample
//                may be shorter); needs H * W % 4 == 0, so that every block start in x and y is a
//                multiple of 4. All lengths and offsets below are then in vec4s. A lane copying
//                its own contiguous run is what CPU drivers stream fastest (`copy_blocked` of
//                shaders/peak_copy.wgsl), and it spreads the per-invocation index math over 8.

// Mirrors `ConcatParams` in src/ops/concat.rs field for field.
struct Params {
    block: u32,        // C * H * W: one sample's values (in vec4s for concat_vec4)
    out_block: u32,    // out_c_total * H * W (in vec4s for concat_vec4)
    out_offset: u32,   // out_c_offset * H * W (in vec4s for concat_vec4)
    total: u32,        // invocations: N * block for concat, N * groups for concat_vec4
    groups: u32,       // concat_vec4: ceil(block / 8), the invocations per sample
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// The same buffers seen as vec4s; only concat_vec4 uses them (bindings may alias across entry
// points).
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y4: array<vec4<f32>>;

override WORKGROUP: u32 = 64u;

// Exact g / divisor. The f32 estimate is within 3 * 2^-24 relative of the real quotient, so for
// quotients below 2^22 (the launcher checks N < 2^22) it is off by at most one either way; the
// two integer corrections make it exact. No product below overflows: the launcher checks that
// (N + 1) * block fits in u32.
fn sample_of(g: u32, divisor: u32) -> u32 {
    var n = u32(f32(g) / f32(divisor));
    if (n * divisor > g) { n -= 1u; }
    if ((n + 1u) * divisor <= g) { n += 1u; }
    return n;
}

@compute @workgroup_size(WORKGROUP)
fn concat(@builtin(workgroup_id) wid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let g = (wid.x + wid.y * nwg.x) * WORKGROUP + lid;
    if (g >= p.total) { return; }
    let n = sample_of(g, p.block);
    y[g + n * (p.out_block - p.block) + p.out_offset] = x[g];
}

// Copies vec4 k of the group when it lies inside the sample (k < left); k is a constant, so
// the copies are straight-line code (CPU drivers do not unroll loops).
fn copy_vec4(src: u32, dst: u32, k: u32, left: u32) {
    if (k < left) { y4[dst + k] = x4[src + k]; }
}

@compute @workgroup_size(WORKGROUP)
fn concat_vec4(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let g = (wid.x + wid.y * nwg.x) * WORKGROUP + lid;
    if (g >= p.total) { return; }
    let n = sample_of(g, p.groups);
    let start = (g - n * p.groups) * 8u;
    let left = p.block - start;
    let src = n * p.block + start;
    let dst = n * p.out_block + p.out_offset + start;
    copy_vec4(src, dst, 0u, left);
    copy_vec4(src, dst, 1u, left);
    copy_vec4(src, dst, 2u, left);
    copy_vec4(src, dst, 3u, left);
    copy_vec4(src, dst, 4u, left);
    copy_vec4(src, dst, 5u, left);
    copy_vec4(src, dst, 6u, left);
    copy_vec4(src, dst, 7u, left);
}

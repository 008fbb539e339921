// Peak copy bandwidth of the adapter: dst = src over buffers much larger than the last-level
// cache, so the figure is memory bandwidth, not cache bandwidth. Bytes counted: read + write.
// `atrous bench peak` sweeps the entry points, WORKGROUP and VEC_PER_STEP and reports the best.
//
// Design:
// - vec4 loads and stores (16 bytes per lane per access), the widest WGSL has.
// - copy_strided: a grid-stride loop. At each step the lanes of a workgroup touch consecutive
//   vec4s, the access pattern GPUs coalesce into whole cache lines; VEC_PER_STEP independent
//   vec4s per step (each a whole grid apart) keep several loads in flight per lane.
// - copy_blocked: each invocation copies its own contiguous block. CPU rasterizers run a
//   workgroup's lanes on one core, and a per-lane contiguous block streams through one core's
//   prefetchers; GPUs prefer the strided form. Both are measured; the best is reported.
// - The element count is a multiple of everything in the sweep, so the trip count is the same
//   for every lane and comes from the uniform buffer (a uniform loop), and no lane needs a
//   bounds check (the launcher sizes the buffers so).
// - The VEC_PER_STEP copies of a step are written out, not looped: CPU rasterizers run loops
//   with per-lane masks and do not unroll loops bounded by override constants; the
//   `VEC_PER_STEP > k` conditions are constants and fold away.
//
// src, dst: (count,) vec4<f32>

// Mirrors `PeakCopyParams` in src/tools/bench/peak.rs field for field (16 bytes).
struct Params {
    count: u32,          // vec4 elements in src and dst
    invocations: u32,    // total invocations in the grid
    per_invocation: u32, // vec4s each invocation copies (count / invocations)
    steps: u32,          // per_invocation / VEC_PER_STEP
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

override WORKGROUP: u32 = 64u;
// Independent vec4 copies per loop step (1, 2, 4 or 8).
override VEC_PER_STEP: u32 = 4u;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WORKGROUP + lid;
}

// Copies VEC_PER_STEP vec4s at base, base + stride, ...
fn copy_step(base: u32, stride: u32) {
    { dst[base] = src[base]; }
    if (VEC_PER_STEP > 1u) { dst[base + 1u * stride] = src[base + 1u * stride]; }
    if (VEC_PER_STEP > 2u) { dst[base + 2u * stride] = src[base + 2u * stride]; }
    if (VEC_PER_STEP > 3u) { dst[base + 3u * stride] = src[base + 3u * stride]; }
    if (VEC_PER_STEP > 4u) { dst[base + 4u * stride] = src[base + 4u * stride]; }
    if (VEC_PER_STEP > 5u) { dst[base + 5u * stride] = src[base + 5u * stride]; }
    if (VEC_PER_STEP > 6u) { dst[base + 6u * stride] = src[base + 6u * stride]; }
    if (VEC_PER_STEP > 7u) { dst[base + 7u * stride] = src[base + 7u * stride]; }
}

@compute @workgroup_size(WORKGROUP)
fn copy_strided(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    var base = linear_id(wid, nwg, lid);
    for (var s = 0u; s < p.steps; s++) {
        copy_step(base, p.invocations);
        base += p.invocations * VEC_PER_STEP;
    }
}

@compute @workgroup_size(WORKGROUP)
fn copy_blocked(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    var base = linear_id(wid, nwg, lid) * p.per_invocation;
    for (var s = 0u; s < p.steps; s++) {
        copy_step(base, 1u);
        base += VEC_PER_STEP;
    }
}

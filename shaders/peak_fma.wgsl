// Peak FMA throughput of the adapter: how many fused multiply-adds per second it can retire when
// nothing else is in the way. `atrous bench peak` sweeps WORKGROUP and CHAINS and reports the
// best; the kernels' "% of ceiling" figures are measured against it.
//
// Design, so that the ceiling is honest (a low ceiling flatters every kernel measured against it):
// - CHAINS independent vec4 accumulators per invocation. One FMA chain is latency-bound (4 cycles
//   per FMA on current x86 cores, similar on GPUs); a core with two FMA pipes needs >= 8 FMAs in
//   flight, i.e. >= 2 vec4 chains per SIMD lane group, and more hides the loop overhead. On a GPU
//   the many resident warps give the same latency hiding, so a small CHAINS is enough there.
// - The multiplier and addend come from a uniform buffer, so the compiler cannot fold the chain
//   and, on CPU rasterizers (lavapipe, llvmpipe) that keep uniform values scalar, they sit in a
//   broadcast register: the loop body is nothing but FMAs.
// - The loop body is UNROLL = 8 steps of CHAINS FMAs written out as straight-line code (see
//   `step`), so that the loop's counter, branch and masks are a small fraction of the work.
// - The accumulators converge to b / (1 - a) = 1 (a = 1 - 1e-6, b = 1e-6): no overflow, no
//   denormals, no NaN slow paths.
// - Every lane's result is written out, so no chain is dead code.
//
// Two patterns, both swept:
// - peak_fma: acc[k] = fma(acc[k], a, b), every FMA on its accumulator's dependency chain (the
//   classic peak kernel; where FMA is split into multiply and add, as llvmpipe does, both sit
//   on the chain);
// - peak_fma_accumulate: acc[k] = fma(v[k], y, acc[k]) with y = fma(y, a, b) once per step:
//   only the add is on each accumulator's chain, as in a convolution.
// Work per invocation: iterations * UNROLL * CHAINS vec4 FMAs (+ UNROLL vec4 FMAs per iteration
// for y in the second), 8 FLOPs each (4 lanes x 2).
//
// out: (total invocations,) f32, one sum per invocation (meaningless; keeps the work alive)

// Mirrors `PeakFmaParams` in src/tools/bench/peak.rs field for field (48 bytes).
struct Params {
    iterations: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    a: vec4<f32>,
    b: vec4<f32>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

override WORKGROUP: u32 = 64u;
// Independent vec4 accumulators per invocation (1..16).
override CHAINS: u32 = 8u;

// One FMA on each of the first CHAINS accumulators. Written out, not a loop: CPU rasterizers
// run every loop with per-lane masks (a blend per loop-carried value per iteration) and do not
// unroll loops bounded by override constants, so the body must be straight-line code. The
// `CHAINS > k` conditions are constants once the pipeline is created and fold away.
fn step(acc: ptr<function, array<vec4<f32>, 16>>, a: vec4<f32>, b: vec4<f32>) {
    (*acc)[0] = fma((*acc)[0], a, b);
    if (CHAINS > 1u) { (*acc)[1] = fma((*acc)[1], a, b); }
    if (CHAINS > 2u) { (*acc)[2] = fma((*acc)[2], a, b); }
    if (CHAINS > 3u) { (*acc)[3] = fma((*acc)[3], a, b); }
    if (CHAINS > 4u) { (*acc)[4] = fma((*acc)[4], a, b); }
    if (CHAINS > 5u) { (*acc)[5] = fma((*acc)[5], a, b); }
    if (CHAINS > 6u) { (*acc)[6] = fma((*acc)[6], a, b); }
    if (CHAINS > 7u) { (*acc)[7] = fma((*acc)[7], a, b); }
    if (CHAINS > 8u) { (*acc)[8] = fma((*acc)[8], a, b); }
    if (CHAINS > 9u) { (*acc)[9] = fma((*acc)[9], a, b); }
    if (CHAINS > 10u) { (*acc)[10] = fma((*acc)[10], a, b); }
    if (CHAINS > 11u) { (*acc)[11] = fma((*acc)[11], a, b); }
    if (CHAINS > 12u) { (*acc)[12] = fma((*acc)[12], a, b); }
    if (CHAINS > 13u) { (*acc)[13] = fma((*acc)[13], a, b); }
    if (CHAINS > 14u) { (*acc)[14] = fma((*acc)[14], a, b); }
    if (CHAINS > 15u) { (*acc)[15] = fma((*acc)[15], a, b); }
}

@compute @workgroup_size(WORKGROUP)
fn peak_fma(@builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let g = (wid.x + wid.y * nwg.x) * WORKGROUP + lid;
    let seed = f32(lid) * 1e-3;
    var acc: array<vec4<f32>, 16>;
    acc[0] = vec4<f32>(seed + 0.0, 0.25, 0.5, 0.75);
    acc[1] = vec4<f32>(seed + 1.0, 0.25, 0.5, 0.75);
    acc[2] = vec4<f32>(seed + 2.0, 0.25, 0.5, 0.75);
    acc[3] = vec4<f32>(seed + 3.0, 0.25, 0.5, 0.75);
    acc[4] = vec4<f32>(seed + 4.0, 0.25, 0.5, 0.75);
    acc[5] = vec4<f32>(seed + 5.0, 0.25, 0.5, 0.75);
    acc[6] = vec4<f32>(seed + 6.0, 0.25, 0.5, 0.75);
    acc[7] = vec4<f32>(seed + 7.0, 0.25, 0.5, 0.75);
    acc[8] = vec4<f32>(seed + 8.0, 0.25, 0.5, 0.75);
    acc[9] = vec4<f32>(seed + 9.0, 0.25, 0.5, 0.75);
    acc[10] = vec4<f32>(seed + 10.0, 0.25, 0.5, 0.75);
    acc[11] = vec4<f32>(seed + 11.0, 0.25, 0.5, 0.75);
    acc[12] = vec4<f32>(seed + 12.0, 0.25, 0.5, 0.75);
    acc[13] = vec4<f32>(seed + 13.0, 0.25, 0.5, 0.75);
    acc[14] = vec4<f32>(seed + 14.0, 0.25, 0.5, 0.75);
    acc[15] = vec4<f32>(seed + 15.0, 0.25, 0.5, 0.75);
    let a = p.a;
    let b = p.b;
    // UNROLL = 8 steps per iteration.
    for (var i = 0u; i < p.iterations; i++) {
        step(&acc, a, b);
        step(&acc, a, b);
        step(&acc, a, b);
        step(&acc, a, b);
        step(&acc, a, b);
        step(&acc, a, b);
        step(&acc, a, b);
        step(&acc, a, b);
    }
    var sum = acc[0];
    if (CHAINS > 1u) { sum += acc[1]; }
    if (CHAINS > 2u) { sum += acc[2]; }
    if (CHAINS > 3u) { sum += acc[3]; }
    if (CHAINS > 4u) { sum += acc[4]; }
    if (CHAINS > 5u) { sum += acc[5]; }
    if (CHAINS > 6u) { sum += acc[6]; }
    if (CHAINS > 7u) { sum += acc[7]; }
    if (CHAINS > 8u) { sum += acc[8]; }
    if (CHAINS > 9u) { sum += acc[9]; }
    if (CHAINS > 10u) { sum += acc[10]; }
    if (CHAINS > 11u) { sum += acc[11]; }
    if (CHAINS > 12u) { sum += acc[12]; }
    if (CHAINS > 13u) { sum += acc[13]; }
    if (CHAINS > 14u) { sum += acc[14]; }
    if (CHAINS > 15u) { sum += acc[15]; }
    out[g] = dot(sum, vec4<f32>(1.0));
}

// acc[k] += v[k] * y for the first CHAINS accumulators: the multiply is off the dependency chain
// (y is the same for all of them), only the add is on it, as in a convolution's inner loop.
fn accumulate(acc: ptr<function, array<vec4<f32>, 16>>, v: ptr<function, array<vec4<f32>, 16>>,
              y: vec4<f32>) {
    { (*acc)[0] = fma((*v)[0], y, (*acc)[0]); }
    if (CHAINS > 1u) { (*acc)[1] = fma((*v)[1], y, (*acc)[1]); }
    if (CHAINS > 2u) { (*acc)[2] = fma((*v)[2], y, (*acc)[2]); }
    if (CHAINS > 3u) { (*acc)[3] = fma((*v)[3], y, (*acc)[3]); }
    if (CHAINS > 4u) { (*acc)[4] = fma((*v)[4], y, (*acc)[4]); }
    if (CHAINS > 5u) { (*acc)[5] = fma((*v)[5], y, (*acc)[5]); }
    if (CHAINS > 6u) { (*acc)[6] = fma((*v)[6], y, (*acc)[6]); }
    if (CHAINS > 7u) { (*acc)[7] = fma((*v)[7], y, (*acc)[7]); }
    if (CHAINS > 8u) { (*acc)[8] = fma((*v)[8], y, (*acc)[8]); }
    if (CHAINS > 9u) { (*acc)[9] = fma((*v)[9], y, (*acc)[9]); }
    if (CHAINS > 10u) { (*acc)[10] = fma((*v)[10], y, (*acc)[10]); }
    if (CHAINS > 11u) { (*acc)[11] = fma((*v)[11], y, (*acc)[11]); }
    if (CHAINS > 12u) { (*acc)[12] = fma((*v)[12], y, (*acc)[12]); }
    if (CHAINS > 13u) { (*acc)[13] = fma((*v)[13], y, (*acc)[13]); }
    if (CHAINS > 14u) { (*acc)[14] = fma((*v)[14], y, (*acc)[14]); }
    if (CHAINS > 15u) { (*acc)[15] = fma((*v)[15], y, (*acc)[15]); }
}

// The second pattern: y follows its own short recurrence (one vec4 FMA per step, also counted)
// and every accumulator adds v[k] * y. Its one FMA chain of latency is shared by all CHAINS
// accumulators, whose own chains are only adds.
@compute @workgroup_size(WORKGROUP)
fn peak_fma_accumulate(@builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let g = (wid.x + wid.y * nwg.x) * WORKGROUP + lid;
    let seed = f32(lid) * 1e-3;
    var acc: array<vec4<f32>, 16>;
    var v: array<vec4<f32>, 16>;
    v[0] = vec4<f32>(seed + 0.0, 0.25, 0.5, 0.75);
    v[1] = vec4<f32>(seed + 1.0, 0.25, 0.5, 0.75);
    v[2] = vec4<f32>(seed + 2.0, 0.25, 0.5, 0.75);
    v[3] = vec4<f32>(seed + 3.0, 0.25, 0.5, 0.75);
    v[4] = vec4<f32>(seed + 4.0, 0.25, 0.5, 0.75);
    v[5] = vec4<f32>(seed + 5.0, 0.25, 0.5, 0.75);
    v[6] = vec4<f32>(seed + 6.0, 0.25, 0.5, 0.75);
    v[7] = vec4<f32>(seed + 7.0, 0.25, 0.5, 0.75);
    v[8] = vec4<f32>(seed + 8.0, 0.25, 0.5, 0.75);
    v[9] = vec4<f32>(seed + 9.0, 0.25, 0.5, 0.75);
    v[10] = vec4<f32>(seed + 10.0, 0.25, 0.5, 0.75);
    v[11] = vec4<f32>(seed + 11.0, 0.25, 0.5, 0.75);
    v[12] = vec4<f32>(seed + 12.0, 0.25, 0.5, 0.75);
    v[13] = vec4<f32>(seed + 13.0, 0.25, 0.5, 0.75);
    v[14] = vec4<f32>(seed + 14.0, 0.25, 0.5, 0.75);
    v[15] = vec4<f32>(seed + 15.0, 0.25, 0.5, 0.75);
    let a = p.a;
    let b = p.b;
    var y = vec4<f32>(0.5);
    for (var i = 0u; i < p.iterations; i++) {
        y = fma(y, a, b);
        accumulate(&acc, &v, y);
        y = fma(y, a, b);
        accumulate(&acc, &v, y);
        y = fma(y, a, b);
        accumulate(&acc, &v, y);
        y = fma(y, a, b);
        accumulate(&acc, &v, y);
        y = fma(y, a, b);
        accumulate(&acc, &v, y);
        y = fma(y, a, b);
        accumulate(&acc, &v, y);
        y = fma(y, a, b);
        accumulate(&acc, &v, y);
        y = fma(y, a, b);
        accumulate(&acc, &v, y);
    }
    var sum = acc[0];
    if (CHAINS > 1u) { sum += acc[1]; }
    if (CHAINS > 2u) { sum += acc[2]; }
    if (CHAINS > 3u) { sum += acc[3]; }
    if (CHAINS > 4u) { sum += acc[4]; }
    if (CHAINS > 5u) { sum += acc[5]; }
    if (CHAINS > 6u) { sum += acc[6]; }
    if (CHAINS > 7u) { sum += acc[7]; }
    if (CHAINS > 8u) { sum += acc[8]; }
    if (CHAINS > 9u) { sum += acc[9]; }
    if (CHAINS > 10u) { sum += acc[10]; }
    if (CHAINS > 11u) { sum += acc[11]; }
    if (CHAINS > 12u) { sum += acc[12]; }
    if (CHAINS > 13u) { sum += acc[13]; }
    if (CHAINS > 14u) { sum += acc[14]; }
    if (CHAINS > 15u) { sum += acc[15]; }
    out[g] = dot(sum + y, vec4<f32>(1.0));
}

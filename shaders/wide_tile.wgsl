// The register tile of the kernels with 64-bit loads (conv2d_packed8.wgsl,
// conv1x1_packed8.wgsl): the inner loop over groups of 8 input channels, the input read as
// vec4<u64>s of 8 packed channels and the weights dealt out one vec4<u64> per lane per round,
// shared through subgroup broadcasts. The launchers prepend this file after register_tile.wgsl;
// the kernel declares `w` and `x8` (both array<vec4<u64>>).
//
// x8: (N, ceil(C_in / 8), H, W) of 8 floats, as vec4<u64> (pack_channels.wgsl with PACK = 8):
//     channel 8g + k of a pixel is float k of its group g, zeros past C_in; for a strided 1x1,
//     (H, W) are the output's (the copy keeps every stride-th pixel)
// w: per block of 4*VEC output channels (and tap), per group of 8 input channels, VEC / 2
//    rounds of one vec4<u64> per lane (`ConvWeights::packed_wide` in src/ops/mod.rs): the group's
//    8*VEC weight vec4s g = c*VEC + v (input channel c, output channels 4v..4v+3) sit at round
//    g / 16, lane g % 8, in the even floats (g / 8 even) or the odd ones.
//
// Why 64-bit loads: on lavapipe a per-lane buffer load is a loop over the lanes with a bounds
// test and a branch per component (~35 instructions per lane for a vec4), whatever the width
// of the components. A vec4<u64> brings 8 floats for the cost of a vec4<f32>'s 4, and the
// loads, not the multiply-adds, bound these kernels (BENCHMARKS.md). Splitting a u64 into two
// floats is a shift and two truncations per 8 lanes. On GPUs it is a 32-byte load.
//
// Per group an invocation does PIX loads of x8, VEC/2 loads of w, 8*VEC vec4 broadcasts and
// 32*VEC*PIX FMAs. VEC is 2, 4 or 8.

// The floats in the low and high halves of four u64s (memory order: low first).
fn low_floats(v: vec4<u64>) -> vec4<f32> {
    return bitcast<vec4<f32>>(vec4<u32>(v));
}

fn high_floats(v: vec4<u64>) -> vec4<f32> {
    return bitcast<vec4<f32>>(vec4<u32>(v >> vec4<u32>(32u)));
}

// A group's weights as lane `lane` loaded them: q[k] is weight vec4 8k + lane (round k / 2,
// even floats for even k).
alias WideWeights = array<vec4<f32>, 8>;

fn load_weights(wi: u32, lane: u32) -> WideWeights {
    var q: WideWeights;
    let r0 = w[wi + lane];
    q[0] = low_floats(r0);
    q[1] = high_floats(r0);
    if (VEC > 2u) {
        let r1 = w[wi + 8u + lane];
        q[2] = low_floats(r1);
        q[3] = high_floats(r1);
    }
    if (VEC > 4u) {
        let r2 = w[wi + 16u + lane];
        let r3 = w[wi + 24u + lane];
        q[4] = low_floats(r2);
        q[5] = high_floats(r2);
        q[6] = low_floats(r3);
        q[7] = high_floats(r3);
    }
    return q;
}

// Input channel `c` (0..7, a constant at every call) of the group: its weight vec4s
// g = c*VEC + v are q[g / 8] of lane g % 8. Lane indices of broadcasts must be constants, so
// each VEC spells its lanes out; `c % k` folds away with `c`.
fn mac_channel(acc: ptr<function, Accumulators>, xs: vec4<f32>, q: ptr<function, WideWeights>,
               c: u32) {
    if (VEC == 2u) {
        let wq = (*q)[c / 4u];
        let half = c % 4u;
        if (half == 0u) {
            mac_vec4(acc, 0u, subgroupBroadcast(wq, 0u), xs);
            mac_vec4(acc, 1u, subgroupBroadcast(wq, 1u), xs);
        } else if (half == 1u) {
            mac_vec4(acc, 0u, subgroupBroadcast(wq, 2u), xs);
            mac_vec4(acc, 1u, subgroupBroadcast(wq, 3u), xs);
        } else if (half == 2u) {
            mac_vec4(acc, 0u, subgroupBroadcast(wq, 4u), xs);
            mac_vec4(acc, 1u, subgroupBroadcast(wq, 5u), xs);
        } else {
            mac_vec4(acc, 0u, subgroupBroadcast(wq, 6u), xs);
            mac_vec4(acc, 1u, subgroupBroadcast(wq, 7u), xs);
        }
    }
    if (VEC == 4u) {
        let wq = (*q)[c / 2u];
        if (c % 2u == 0u) {
            mac_vec4(acc, 0u, subgroupBroadcast(wq, 0u), xs);
            mac_vec4(acc, 1u, subgroupBroadcast(wq, 1u), xs);
            mac_vec4(acc, 2u, subgroupBroadcast(wq, 2u), xs);
            mac_vec4(acc, 3u, subgroupBroadcast(wq, 3u), xs);
        } else {
            mac_vec4(acc, 0u, subgroupBroadcast(wq, 4u), xs);
            mac_vec4(acc, 1u, subgroupBroadcast(wq, 5u), xs);
            mac_vec4(acc, 2u, subgroupBroadcast(wq, 6u), xs);
            mac_vec4(acc, 3u, subgroupBroadcast(wq, 7u), xs);
        }
    }
    if (VEC == 8u) {
        let wq = (*q)[c];
        mac_vec4(acc, 0u, subgroupBroadcast(wq, 0u), xs);
        mac_vec4(acc, 1u, subgroupBroadcast(wq, 1u), xs);
        mac_vec4(acc, 2u, subgroupBroadcast(wq, 2u), xs);
        mac_vec4(acc, 3u, subgroupBroadcast(wq, 3u), xs);
        mac_vec4(acc, 4u, subgroupBroadcast(wq, 4u), xs);
        mac_vec4(acc, 5u, subgroupBroadcast(wq, 5u), xs);
        mac_vec4(acc, 6u, subgroupBroadcast(wq, 6u), xs);
        mac_vec4(acc, 7u, subgroupBroadcast(wq, 7u), xs);
    }
}

// All `groups` groups of 8 input channels at one offset (a k x k tap, or the 1x1's only one):
// x8 offsets `o_start` of group 0 per pixel, groups `plane` apart; weights from `wi_start`,
// 4*VEC vec4<u64>s per group (offsets in vec4<u64>s).
fn mac_groups(acc: ptr<function, Accumulators>, o_start: vec4<u32>, wi_start: u32, lane: u32,
              groups: u32, plane: u32) {
    var o = o_start;
    var wi = wi_start;
    for (var i = 0u; i < groups; i++) {
        var q = load_weights(wi, lane);
        let x0 = x8[o.x];
        var x1 = vec4<u64>();
        var x2 = vec4<u64>();
        var x3 = vec4<u64>();
        if (PIX > 1u) { x1 = x8[o.y]; }
        if (PIX > 2u) { x2 = x8[o.z]; }
        if (PIX > 3u) { x3 = x8[o.w]; }
        // Channel 2j is float j of the low halves, channel 2j + 1 of the high ones.
        let e0 = low_floats(x0);
        let e1 = low_floats(x1);
        let e2 = low_floats(x2);
        let e3 = low_floats(x3);
        let d0 = high_floats(x0);
        let d1 = high_floats(x1);
        let d2 = high_floats(x2);
        let d3 = high_floats(x3);
        mac_channel(acc, vec4<f32>(e0.x, e1.x, e2.x, e3.x), &q, 0u);
        mac_channel(acc, vec4<f32>(d0.x, d1.x, d2.x, d3.x), &q, 1u);
        mac_channel(acc, vec4<f32>(e0.y, e1.y, e2.y, e3.y), &q, 2u);
        mac_channel(acc, vec4<f32>(d0.y, d1.y, d2.y, d3.y), &q, 3u);
        mac_channel(acc, vec4<f32>(e0.z, e1.z, e2.z, e3.z), &q, 4u);
        mac_channel(acc, vec4<f32>(d0.z, d1.z, d2.z, d3.z), &q, 5u);
        mac_channel(acc, vec4<f32>(e0.w, e1.w, e2.w, e3.w), &q, 6u);
        mac_channel(acc, vec4<f32>(d0.w, d1.w, d2.w, d3.w), &q, 7u);
        o += vec4<u32>(plane);
        wi += 4u * VEC;
    }
}

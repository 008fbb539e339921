// What the subgroup convolution kernels (conv2d_subgroup.wgsl, conv1x1_subgroup.wgsl) add to
// the register tile of register_tile.wgsl: weight loads by lanes 0..7 and their broadcasts. The
// launchers prepend both files to each kernel's source (`shader!(..., prelude [...])` in
// src/pipeline.rs); the kernel declares `w`, a vec4 weight array in the blocked layout, and
// WORKGROUP.

// The weights of 4 input channels (16*VEC floats = 4*VEC vec4s), loaded by lanes 0..7 of the
// subgroup 8 vec4s at a time: q[k] holds vec4 8k + lane % 8. Each vec4 is one per-lane load and
// then four output channels' weights for every lane after a broadcast.
alias WeightLoads = array<vec4<f32>, 4>;

fn load_weights(wi: u32, lane: u32) -> WeightLoads {
    var q: WeightLoads;
    q[0] = w[wi + lane];
    if (VEC > 2u) { q[1] = w[wi + 8u + lane]; }
    if (VEC > 4u) { q[2] = w[wi + 16u + lane]; }
    if (VEC > 6u) { q[3] = w[wi + 24u + lane]; }
    return q;
}

// Input channel 0 of a group of 4: its 4*VEC weights are vec4s 0*VEC.. of the group's
// weights, which lanes 0..7 loaded 8 vec4s at a time into `q` (lane indices must be literals).
fn mac_step0(acc: ptr<function, Accumulators>, xs: vec4<f32>, q: ptr<function, WeightLoads>) {
    if (VEC == 2u) {
        mac_vec4(acc, 0u, subgroupBroadcast((*q)[0], 0u), xs);
        mac_vec4(acc, 1u, subgroupBroadcast((*q)[0], 1u), xs);
    }
    if (VEC == 4u) {
        mac_vec4(acc, 0u, subgroupBroadcast((*q)[0], 0u), xs);
        mac_vec4(acc, 1u, subgroupBroadcast((*q)[0], 1u), xs);
        mac_vec4(acc, 2u, subgroupBroadcast((*q)[0], 2u), xs);
        mac_vec4(acc, 3u, subgroupBroadcast((*q)[0], 3u), xs);
    }
    if (VEC == 6u) {
        mac_vec4(acc, 0u, subgroupBroadcast((*q)[0], 0u), xs);
        mac_vec4(acc, 1u, subgroupBroadcast((*q)[0], 1u), xs);
        mac_vec4(acc, 2u, subgroupBroadcast((*q)[0], 2u), xs);
        mac_vec4(acc, 3u, subgroupBroadcast((*q)[0], 3u), xs);
        mac_vec4(acc, 4u, subgroupBroadcast((*q)[0], 4u), xs);
        mac_vec4(acc, 5u, subgroupBroadcast((*q)[0], 5u), xs);
    }
    if (VEC == 8u) {
        mac_vec4(acc, 0u, subgroupBroadcast((*q)[0], 0u), xs);
        mac_vec4(acc, 1u, subgroupBroadcast((*q)[0], 1u), xs);
        mac_vec4(acc, 2u, subgroupBroadcast((*q)[0], 2u), xs);
        mac_vec4(acc, 3u, subgroupBroadcast((*q)[0], 3u), xs);
        mac_vec4(acc, 4u, subgroupBroadcast((*q)[0], 4u), xs);
        mac_vec4(acc, 5u, subgroupBroadcast((*q)[0], 5u), xs);
        mac_vec4(acc, 6u, subgroupBroadcast((*q)[0], 6u), xs);
        mac_vec4(acc, 7u, subgroupBroadcast((*q)[0], 7u), xs);
    }
}

// Input channel 1 of a group of 4: its 4*VEC weights are vec4s 1*VEC.. of the group's
// weights, which lanes 0..7 loaded 8 vec4s at a time into `q` (lane indices must be literals).
fn mac_step1(acc: ptr<function, Accumulators>, xs: vec4<f32>, q: ptr<function, WeightLoads>) {
    if (VEC == 2u) {
        mac_vec4(acc, 0u, subgroupBroadcast((*q)[0], 2u), xs);
        mac_vec4(acc, 1u, subgroupBroadcast((*q)[0], 3u), xs);
    }
    if (VEC == 4u) {
        mac_vec4(acc, 0u, subgroupBroadcast((*q)[0], 4u), xs);
        mac_vec4(acc, 1u, subgroupBroadcast((*q)[0], 5u), xs);
        mac_vec4(acc, 2u, subgroupBroadcast((*q)[0], 6u), xs);
        mac_vec4(acc, 3u, subgroupBroadcast((*q)[0], 7u), xs);
    }
    if (VEC == 6u) {
        mac_vec4(acc, 0u, subgroupBroadcast((*q)[0], 6u), xs);
        mac_vec4(acc, 1u, subgroupBroadcast((*q)[0], 7u), xs);
        mac_vec4(acc, 2u, subgroupBroadcast((*q)[1], 0u), xs);
        mac_vec4(acc, 3u, subgroupBroadcast((*q)[1], 1u), xs);
        mac_vec4(acc, 4u, subgroupBroadcast((*q)[1], 2u), xs);
        mac_vec4(acc, 5u, subgroupBroadcast((*q)[1], 3u), xs);
    }
    if (VEC == 8u) {
        mac_vec4(acc, 0u, subgroupBroadcast((*q)[1], 0u), xs);
        mac_vec4(acc, 1u, subgroupBroadcast((*q)[1], 1u), xs);
        mac_vec4(acc, 2u, subgroupBroadcast((*q)[1], 2u), xs);
        mac_vec4(acc, 3u, subgroupBroadcast((*q)[1], 3u), xs);
        mac_vec4(acc, 4u, subgroupBroadcast((*q)[1], 4u), xs);
        mac_vec4(acc, 5u, subgroupBroadcast((*q)[1], 5u), xs);
        mac_vec4(acc, 6u, subgroupBroadcast((*q)[1], 6u), xs);
        mac_vec4(acc, 7u, subgroupBroadcast((*q)[1], 7u), xs);
    }
}

// Input channel 2 of a group of 4: its 4*VEC weights are vec4s 2*VEC.. of the group's
// weights, which lanes 0..7 loaded 8 vec4s at a time into `q` (lane indices must be literals).
fn mac_step2(acc: ptr<function, Accumulators>, xs: vec4<f32>, q: ptr<function, WeightLoads>) {
    if (VEC == 2u) {
        mac_vec4(acc, 0u, subgroupBroadcast((*q)[0], 4u), xs);
        mac_vec4(acc, 1u, subgroupBroadcast((*q)[0], 5u), xs);
    }
    if (VEC == 4u) {
        mac_vec4(acc, 0u, subgroupBroadcast((*q)[1], 0u), xs);
        mac_vec4(acc, 1u, subgroupBroadcast((*q)[1], 1u), xs);
        mac_vec4(acc, 2u, subgroupBroadcast((*q)[1], 2u), xs);
        mac_vec4(acc, 3u, subgroupBroadcast((*q)[1], 3u), xs);
    }
    if (VEC == 6u) {
        mac_vec4(acc, 0u, subgroupBroadcast((*q)[1], 4u), xs);
        mac_vec4(acc, 1u, subgroupBroadcast((*q)[1], 5u), xs);
        mac_vec4(acc, 2u, subgroupBroadcast((*q)[1], 6u), xs);
        mac_vec4(acc, 3u, subgroupBroadcast((*q)[1], 7u), xs);
        mac_vec4(acc, 4u, subgroupBroadcast((*q)[2], 0u), xs);
        mac_vec4(acc, 5u, subgroupBroadcast((*q)[2], 1u), xs);
    }
    if (VEC == 8u) {
        mac_vec4(acc, 0u, subgroupBroadcast((*q)[2], 0u), xs);
        mac_vec4(acc, 1u, subgroupBroadcast((*q)[2], 1u), xs);
        mac_vec4(acc, 2u, subgroupBroadcast((*q)[2], 2u), xs);
        mac_vec4(acc, 3u, subgroupBroadcast((*q)[2], 3u), xs);
        mac_vec4(acc, 4u, subgroupBroadcast((*q)[2], 4u), xs);
        mac_vec4(acc, 5u, subgroupBroadcast((*q)[2], 5u), xs);
        mac_vec4(acc, 6u, subgroupBroadcast((*q)[2], 6u), xs);
        mac_vec4(acc, 7u, subgroupBroadcast((*q)[2], 7u), xs);
    }
}

// Input channel 3 of a group of 4: its 4*VEC weights are vec4s 3*VEC.. of the group's
// weights, which lanes 0..7 loaded 8 vec4s at a time into `q` (lane indices must be literals).
fn mac_step3(acc: ptr<function, Accumulators>, xs: vec4<f32>, q: ptr<function, WeightLoads>) {
    if (VEC == 2u) {
        mac_vec4(acc, 0u, subgroupBroadcast((*q)[0], 6u), xs);
        mac_vec4(acc, 1u, subgroupBroadcast((*q)[0], 7u), xs);
    }
    if (VEC == 4u) {
        mac_vec4(acc, 0u, subgroupBroadcast((*q)[1], 4u), xs);
        mac_vec4(acc, 1u, subgroupBroadcast((*q)[1], 5u), xs);
        mac_vec4(acc, 2u, subgroupBroadcast((*q)[1], 6u), xs);
        mac_vec4(acc, 3u, subgroupBroadcast((*q)[1], 7u), xs);
    }
    if (VEC == 6u) {
        mac_vec4(acc, 0u, subgroupBroadcast((*q)[2], 2u), xs);
        mac_vec4(acc, 1u, subgroupBroadcast((*q)[2], 3u), xs);
        mac_vec4(acc, 2u, subgroupBroadcast((*q)[2], 4u), xs);
        mac_vec4(acc, 3u, subgroupBroadcast((*q)[2], 5u), xs);
        mac_vec4(acc, 4u, subgroupBroadcast((*q)[2], 6u), xs);
        mac_vec4(acc, 5u, subgroupBroadcast((*q)[2], 7u), xs);
    }
    if (VEC == 8u) {
        mac_vec4(acc, 0u, subgroupBroadcast((*q)[3], 0u), xs);
        mac_vec4(acc, 1u, subgroupBroadcast((*q)[3], 1u), xs);
        mac_vec4(acc, 2u, subgroupBroadcast((*q)[3], 2u), xs);
        mac_vec4(acc, 3u, subgroupBroadcast((*q)[3], 3u), xs);
        mac_vec4(acc, 4u, subgroupBroadcast((*q)[3], 4u), xs);
        mac_vec4(acc, 5u, subgroupBroadcast((*q)[3], 5u), xs);
        mac_vec4(acc, 6u, subgroupBroadcast((*q)[3], 6u), xs);
        mac_vec4(acc, 7u, subgroupBroadcast((*q)[3], 7u), xs);
    }
}

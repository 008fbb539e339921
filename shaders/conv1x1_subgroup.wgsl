// 1x1 convolution (a GEMM over channels), optional bias and fused ReLU: the register-blocked
// kernel with weights shared through subgroup broadcasts. Needs the subgroup feature (subgroups
// of >= 8 invocations, a multiple of 8); a separate module from shaders/conv1x1.wgsl so that
// one compiles on adapters without subgroups.
//
// x: (N, C_in, H, W)                   contiguous NCHW
// w: (ceil(C_out / (4 VEC)), C_in, VEC) of vec4 — for one block of 4*VEC output channels, the
//    weights of consecutive input channels are consecutive, 4*VEC floats each
// bias: (C_out,), or (N, C_out) when bias_stride = C_out; a zero buffer when the conv has none
// y: (N, out_c_total, H, W)            this conv writes channels [out_c_offset, +C_out)
//
// A workgroup owns one block of 4*VEC output channels and a run of WORKGROUP*PIX consecutive
// pixels of one image; each invocation accumulates PIX pixels (WORKGROUP apart) x 4*VEC
// channels. Lanes 0..7 each load a different vec4 of weights (8 vec4s = 32 weights) and
// subgroupBroadcast hands each vec4 to every lane; see shaders/conv3x3_subgroup.wgsl for why.
// Per 4 input channels an invocation does 4*PIX loads of x, VEC/2 vec4 loads of w, 4*VEC vec4
// broadcasts and 16*VEC*PIX FMAs.

// Mirrors `Conv1x1Params` in src/ops/conv1x1.rs field for field (shared with conv1x1.wgsl).
struct Params {
    batch: u32,
    in_channels: u32,
    pixels: u32,          // H * W
    out_channels: u32,
    out_c_total: u32,
    out_c_offset: u32,
    relu: u32,
    pixel_tiles: u32,     // (tiled variant, unused here)
    channel_groups: u32,  // (tiled variant, unused here)
    total: u32,           // workgroups that do work
    bias_stride: u32,     // 0: bias is (C_out,); C_out: bias is (N, C_out), one row per image
    block_tiles: u32,     // ceil(pixels / (WORKGROUP * PIX))
    channel_blocks: u32,  // ceil(out_channels / (4 * VEC))
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

override WORKGROUP: u32 = 8u;

fn activate(v: f32) -> f32 {
    return select(v, max(v, 0.0), p.relu != 0u);
}

// vec4 groups of output channels per invocation (4*VEC channels): 2, 4, 6 or 8 (8..32 channels).
override VEC: u32 = 2u;
// Output pixels per invocation, 1..4.
override PIX: u32 = 2u;
// Accumulators [r * VEC + v]: pixel r < PIX, channels 4v..4v+3 of the block.
alias Accumulators = array<vec4<f32>, 32>;

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

// acc[r][4v..4v+3] += x_r * wv for every pixel r < PIX; `v` is a constant at every call.
fn mac_vec4(acc: ptr<function, Accumulators>, v: u32, wv: vec4<f32>, xs: vec4<f32>) {
    (*acc)[v] = fma(vec4<f32>(xs.x), wv, (*acc)[v]);
    if (PIX > 1u) { (*acc)[VEC + v] = fma(vec4<f32>(xs.y), wv, (*acc)[VEC + v]); }
    if (PIX > 2u) { (*acc)[2u * VEC + v] = fma(vec4<f32>(xs.z), wv, (*acc)[2u * VEC + v]); }
    if (PIX > 3u) { (*acc)[3u * VEC + v] = fma(vec4<f32>(xs.w), wv, (*acc)[3u * VEC + v]); }
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

// Writes channels 4v..4v+3 of one pixel (if it exists) with bias and activation.
fn store_vec4(n: u32, block: u32, pixel: u32, a: vec4<f32>, v: u32) {
    if (pixel >= p.pixels) { return; }
    for (var j = 0u; j < 4u; j++) {
        let co = block * 4u * VEC + 4u * v + j;
        if (co < p.out_channels) {
            y[(n * p.out_c_total + p.out_c_offset + co) * p.pixels + pixel] =
                    activate(a[j] + bias[n * p.bias_stride + co]);
        }
    }
}

// Writes pixel r's accumulators. `r` is a constant at every call, so every index into `acc` is
// one: the accumulators stay in registers.
fn store_pixel(n: u32, block: u32, pixel: u32, acc: ptr<function, Accumulators>, r: u32) {
    store_vec4(n, block, pixel, (*acc)[r * VEC], 0u);
    store_vec4(n, block, pixel, (*acc)[r * VEC + 1u], 1u);
    if (VEC > 2u) { store_vec4(n, block, pixel, (*acc)[r * VEC + 2u], 2u); }
    if (VEC > 3u) { store_vec4(n, block, pixel, (*acc)[r * VEC + 3u], 3u); }
    if (VEC > 4u) { store_vec4(n, block, pixel, (*acc)[r * VEC + 4u], 4u); }
    if (VEC > 5u) { store_vec4(n, block, pixel, (*acc)[r * VEC + 5u], 5u); }
    if (VEC > 6u) { store_vec4(n, block, pixel, (*acc)[r * VEC + 6u], 6u); }
    if (VEC > 7u) { store_vec4(n, block, pixel, (*acc)[r * VEC + 7u], 7u); }
}

// The pixels' x values for one input channel, `shift` past channel 0's offsets.
fn load_pixels(o: vec4<u32>, shift: u32) -> vec4<f32> {
    var xs = vec4<f32>(x[o.x + shift], 0.0, 0.0, 0.0);
    if (PIX > 1u) { xs.y = x[o.y + shift]; }
    if (PIX > 2u) { xs.z = x[o.z + shift]; }
    if (PIX > 3u) { xs.w = x[o.w + shift]; }
    return xs;
}

@compute @workgroup_size(WORKGROUP)
fn conv1x1_subgroup(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32,
                    @builtin(subgroup_invocation_id) sg_lane: u32) {
    let group = wid.x + wid.y * nwg.x;
    if (group >= p.total) { return; }
    let lane = sg_lane % 8u;
    // Pixel runs vary fastest: consecutive workgroups share a block of weights.
    let tile = group % p.block_tiles;
    let block = (group / p.block_tiles) % p.channel_blocks;
    let n = group / (p.block_tiles * p.channel_blocks);
    let first = tile * WORKGROUP * PIX;

    // Lanes past the last pixel read the last pixel and do not store.
    let pixels = min(vec4<u32>(first + lid) + vec4<u32>(0u, 1u, 2u, 3u) * WORKGROUP,
                     vec4<u32>(p.pixels - 1u));
    var o = vec4<u32>(n * p.in_channels * p.pixels) + pixels;
    var wi = block * p.in_channels * VEC;
    var acc: Accumulators;
    let unrolled = p.in_channels / 4u;
    let plane = p.pixels;
    for (var i = 0u; i < unrolled; i++) {
        var q = load_weights(wi, lane);
        mac_step0(&acc, load_pixels(o, 0u), &q);
        mac_step1(&acc, load_pixels(o, plane), &q);
        mac_step2(&acc, load_pixels(o, 2u * plane), &q);
        mac_step3(&acc, load_pixels(o, 3u * plane), &q);
        o += vec4<u32>(4u * plane);
        wi += 4u * VEC;
    }
    // The last C_in % 4 channels: one vec4 load per lane covers one channel's weights.
    for (var ci = unrolled * 4u; ci < p.in_channels; ci++) {
        var q = WeightLoads(w[wi + lane], vec4<f32>(), vec4<f32>(), vec4<f32>());
        mac_step0(&acc, load_pixels(o, 0u), &q);
        o += vec4<u32>(plane);
        wi += VEC;
    }

    store_pixel(n, block, first + lid, &acc, 0u);
    if (PIX > 1u) { store_pixel(n, block, first + WORKGROUP + lid, &acc, 1u); }
    if (PIX > 2u) { store_pixel(n, block, first + 2u * WORKGROUP + lid, &acc, 2u); }
    if (PIX > 3u) { store_pixel(n, block, first + 3u * WORKGROUP + lid, &acc, 3u); }
}

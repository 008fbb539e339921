// 1x1 convolution (a GEMM over channels), optional bias and fused ReLU: the register-blocked
// kernel with weights shared through subgroup broadcasts. Needs the subgroup feature (subgroups
// of >= 8 invocations, a multiple of 8); a separate module from shaders/conv1x1.wgsl so that
// one compiles on adapters without subgroups.
//
// x: (N, C_in, H, W)                   contiguous NCHW
// w: (ceil(C_out / (4 VEC)), C_in, 4 VEC) — for one block of 4*VEC output channels, the
//    weights of consecutive input channels are consecutive, 4*VEC floats each
// bias: (C_out,), or (N, C_out) when bias_stride = C_out; a zero buffer when the conv has none
// y: (N, out_c_total, H, W)            this conv writes channels [out_c_offset, +C_out)
//
// A workgroup owns one block of 4*VEC output channels and a run of WORKGROUP*PIX consecutive
// pixels of one image; each invocation accumulates PIX pixels (WORKGROUP apart) x 4*VEC
// channels. Each lane loads a different weight (lane % 8 of a group of 8 channels) and
// subgroupBroadcast hands all eight to every lane; see shaders/conv3x3_subgroup.wgsl for why.
// Per input channel an invocation does PIX loads of x, VEC/2 loads of w, 4*VEC broadcasts and
// 4*VEC*PIX FMAs.

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
@group(0) @binding(2) var<storage, read> w: array<f32>;
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
// Groups of 8 output channels: one weight load and eight broadcasts each.
override GROUPS: u32 = VEC / 2u;
// Accumulators [r * VEC + v]: pixel r < PIX, channels 4v..4v+3 of the block.
alias Accumulators = array<vec4<f32>, 32>;

// The eight weights that lanes 0..7 of the subgroup loaded, as two vec4s in every lane.
fn broadcast_lo(wv: f32) -> vec4<f32> {
    return vec4<f32>(subgroupBroadcast(wv, 0u), subgroupBroadcast(wv, 1u),
                     subgroupBroadcast(wv, 2u), subgroupBroadcast(wv, 3u));
}
fn broadcast_hi(wv: f32) -> vec4<f32> {
    return vec4<f32>(subgroupBroadcast(wv, 4u), subgroupBroadcast(wv, 5u),
                     subgroupBroadcast(wv, 6u), subgroupBroadcast(wv, 7u));
}

// acc[r][channels 8g..8g+7] += x_r * w for every pixel r < PIX; `wv` holds weight (lane % 8)
// of the group in each lane. `g` is a constant at every call.
fn mac_group(acc: ptr<function, Accumulators>, g: u32, wv: f32, xs: vec4<f32>) {
    let lo = broadcast_lo(wv);
    let hi = broadcast_hi(wv);
    let v = 2u * g;
    (*acc)[v] = fma(vec4<f32>(xs.x), lo, (*acc)[v]);
    (*acc)[v + 1u] = fma(vec4<f32>(xs.x), hi, (*acc)[v + 1u]);
    if (PIX > 1u) {
        (*acc)[VEC + v] = fma(vec4<f32>(xs.y), lo, (*acc)[VEC + v]);
        (*acc)[VEC + v + 1u] = fma(vec4<f32>(xs.y), hi, (*acc)[VEC + v + 1u]);
    }
    if (PIX > 2u) {
        (*acc)[2u * VEC + v] = fma(vec4<f32>(xs.z), lo, (*acc)[2u * VEC + v]);
        (*acc)[2u * VEC + v + 1u] = fma(vec4<f32>(xs.z), hi, (*acc)[2u * VEC + v + 1u]);
    }
    if (PIX > 3u) {
        (*acc)[3u * VEC + v] = fma(vec4<f32>(xs.w), lo, (*acc)[3u * VEC + v]);
        (*acc)[3u * VEC + v + 1u] = fma(vec4<f32>(xs.w), hi, (*acc)[3u * VEC + v + 1u]);
    }
}

// One input channel: the pixels' x values and the weights of 4*VEC channels from `wi`.
fn mac_channel(acc: ptr<function, Accumulators>, xs: vec4<f32>, wi: u32, lane: u32) {
    mac_group(acc, 0u, w[wi + lane], xs);
    if (GROUPS > 1u) { mac_group(acc, 1u, w[wi + 8u + lane], xs); }
    if (GROUPS > 2u) { mac_group(acc, 2u, w[wi + 16u + lane], xs); }
    if (GROUPS > 3u) { mac_group(acc, 3u, w[wi + 24u + lane], xs); }
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
    let cb = 4u * VEC;
    var wi = block * p.in_channels * cb;
    var acc: Accumulators;
    let unrolled = p.in_channels / 4u;
    let plane = p.pixels;
    for (var i = 0u; i < unrolled; i++) {
        mac_channel(&acc, load_pixels(o, 0u), wi, lane);
        mac_channel(&acc, load_pixels(o, plane), wi + cb, lane);
        mac_channel(&acc, load_pixels(o, 2u * plane), wi + 2u * cb, lane);
        mac_channel(&acc, load_pixels(o, 3u * plane), wi + 3u * cb, lane);
        o += vec4<u32>(4u * plane);
        wi += 4u * cb;
    }
    for (var ci = unrolled * 4u; ci < p.in_channels; ci++) {
        mac_channel(&acc, load_pixels(o, 0u), wi, lane);
        o += vec4<u32>(plane);
        wi += cb;
    }

    store_pixel(n, block, first + lid, &acc, 0u);
    if (PIX > 1u) { store_pixel(n, block, first + WORKGROUP + lid, &acc, 1u); }
    if (PIX > 2u) { store_pixel(n, block, first + 2u * WORKGROUP + lid, &acc, 2u); }
    if (PIX > 3u) { store_pixel(n, block, first + 3u * WORKGROUP + lid, &acc, 3u); }
}

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

// Register tile, weight loads and broadcasts: shaders/register_tile.wgsl and
// shaders/subgroup_tile.wgsl (prepended).

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

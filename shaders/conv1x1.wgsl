// 1x1 convolution: a GEMM over channels, y[n, co, p] = sum_ci w[co, ci] * x[n, ci, p] + bias[co],
// with p the flattened pixel index. Optional fused ReLU.
//
// x: (N, C_in, H, W)                  contiguous NCHW
// y: (N, out_c_total, H, W)           this conv writes channels [out_c_offset, +C_out)
// conv1x1_direct: w (C_out, C_in)     PyTorch's layout, one output element per invocation
// conv1x1_tiled:  w (ceil(C_out/4), C_in) of vec4: 4 output channels side by side; each
//                 invocation computes 4 channels x TILE_P consecutive pixels.
// bias: (C_out,), or (N, C_out) when bias_stride = C_out (a graph folding a per-image constant
//       branch into this conv); a zero buffer when the conv has none

// Mirrors `Conv1x1Params` in src/ops/conv1x1.rs field for field.
struct Params {
    batch: u32,
    in_channels: u32,
    pixels: u32,          // H * W
    out_channels: u32,
    out_c_total: u32,
    out_c_offset: u32,
    relu: u32,
    pixel_tiles: u32,     // ceil(pixels / TILE_P) (tiled variant)
    channel_groups: u32,  // ceil(out_channels / 4) (tiled variant)
    total: u32,           // invocations that do work (direct, tiled); workgroups (blocked)
    bias_stride: u32,     // 0: bias is (C_out,); C_out: bias is (N, C_out), one row per image
    block_tiles: u32,     // ceil(pixels / (WORKGROUP * PIX)) (blocked variant)
    channel_blocks: u32,  // ceil(out_channels / (4 * VEC)) (blocked variant)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// Declared as vec4 for the tiled variant; the direct variant indexes scalars out of it.
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

override WORKGROUP: u32 = 64u;
const TILE_P: u32 = 4u;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WORKGROUP + lid;
}

fn activate(v: f32) -> f32 {
    return select(v, max(v, 0.0), p.relu != 0u);
}

fn out_index(n: u32, co: u32, pixel: u32) -> u32 {
    return (n * p.out_c_total + p.out_c_offset + co) * p.pixels + pixel;
}

@compute @workgroup_size(WORKGROUP)
fn conv1x1_direct(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let g = linear_id(wid, nwg, lid);
    if (g >= p.total) { return; }
    let pixel = g % p.pixels;
    let co = (g / p.pixels) % p.out_channels;
    let n = g / (p.pixels * p.out_channels);
    var acc = 0.0;
    for (var ci = 0u; ci < p.in_channels; ci++) {
        let wi = co * p.in_channels + ci;
        acc += x[(n * p.in_channels + ci) * p.pixels + pixel] * w[wi / 4u][wi % 4u];
    }
    y[out_index(n, co, pixel)] = activate(acc + bias[n * p.bias_stride + co]);
}

@compute @workgroup_size(WORKGROUP)
fn conv1x1_tiled(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let g = linear_id(wid, nwg, lid);
    if (g >= p.total) { return; }
    // Neighbouring invocations share a channel group (same weights) and walk along the pixels.
    let tile = g % p.pixel_tiles;
    let group = (g / p.pixel_tiles) % p.channel_groups;
    let n = g / (p.pixel_tiles * p.channel_groups);
    let p0 = tile * TILE_P;
    let last = p.pixels - 1u;

    var acc: array<vec4<f32>, TILE_P>;
    for (var ci = 0u; ci < p.in_channels; ci++) {
        let wv = w[group * p.in_channels + ci];
        let plane = (n * p.in_channels + ci) * p.pixels;
        for (var t = 0u; t < TILE_P; t++) {
            // Past the last pixel the clamped read is discarded at the store below.
            acc[t] += x[plane + min(p0 + t, last)] * wv;
        }
    }
    for (var t = 0u; t < TILE_P; t++) {
        let pixel = p0 + t;
        if (pixel >= p.pixels) { break; }
        for (var j = 0u; j < 4u; j++) {
            let co = group * 4u + j;
            if (co >= p.out_channels) { break; }
            y[out_index(n, co, pixel)] = activate(acc[t][j] + bias[n * p.bias_stride + co]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// conv1x1_blocked: a register-blocked GEMM.
//
// w: (ceil(C_out / (4 VEC)), C_in, VEC) of vec4 — for one block of 4*VEC output channels, the
//    weights of consecutive input channels are consecutive, 4*VEC floats each.
//
// A workgroup owns one block of 4*VEC output channels and a run of WORKGROUP*PIX consecutive
// pixels of one image; each invocation accumulates PIX pixels (WORKGROUP apart) x 4*VEC channels
// in registers. The weight address depends on the workgroup alone (uniform: one load broadcast
// to every lane on CPU rasterizers, one cache line on GPUs). Per input channel an invocation
// does PIX loads of x, VEC vec4 loads of w and 4*VEC*PIX FMAs.

// Register tile and mac_vec4: shaders/register_tile.wgsl (prepended).

// One input channel: the pixels' x values `xs` and the 4*VEC weights from vec4 index `wi`.
fn mac_channel(acc: ptr<function, Accumulators>, xs: vec4<f32>, wi: u32) {
    mac_vec4(acc, 0u, w[wi], xs);
    if (VEC > 1u) { mac_vec4(acc, 1u, w[wi + 1u], xs); }
    if (VEC > 2u) { mac_vec4(acc, 2u, w[wi + 2u], xs); }
    if (VEC > 3u) { mac_vec4(acc, 3u, w[wi + 3u], xs); }
    if (VEC > 4u) { mac_vec4(acc, 4u, w[wi + 4u], xs); }
    if (VEC > 5u) { mac_vec4(acc, 5u, w[wi + 5u], xs); }
    if (VEC > 6u) { mac_vec4(acc, 6u, w[wi + 6u], xs); }
    if (VEC > 7u) { mac_vec4(acc, 7u, w[wi + 7u], xs); }
}

// The pixels' x values for one input channel, `shift` past channel 0's offsets.
fn load_pixels(o: vec4<u32>, shift: u32) -> vec4<f32> {
    var xs = vec4<f32>(x[o.x + shift], 0.0, 0.0, 0.0);
    if (PIX > 1u) { xs.y = x[o.y + shift]; }
    if (PIX > 2u) { xs.z = x[o.z + shift]; }
    if (PIX > 3u) { xs.w = x[o.w + shift]; }
    return xs;
}

// Writes channels 4v..4v+3 of one pixel (if it exists) with bias and activation.
fn store_vec4(n: u32, block: u32, pixel: u32, a: vec4<f32>, v: u32) {
    if (pixel >= p.pixels) { return; }
    for (var j = 0u; j < 4u; j++) {
        let co = (block * VEC + v) * 4u + j;
        if (co < p.out_channels) {
            y[out_index(n, co, pixel)] = activate(a[j] + bias[n * p.bias_stride + co]);
        }
    }
}

// Writes pixel r's accumulators; `r` is a constant at every call.
fn store_pixel(n: u32, block: u32, pixel: u32, acc: ptr<function, Accumulators>, r: u32) {
    store_vec4(n, block, pixel, (*acc)[r * VEC], 0u);
    if (VEC > 1u) { store_vec4(n, block, pixel, (*acc)[r * VEC + 1u], 1u); }
    if (VEC > 2u) { store_vec4(n, block, pixel, (*acc)[r * VEC + 2u], 2u); }
    if (VEC > 3u) { store_vec4(n, block, pixel, (*acc)[r * VEC + 3u], 3u); }
    if (VEC > 4u) { store_vec4(n, block, pixel, (*acc)[r * VEC + 4u], 4u); }
    if (VEC > 5u) { store_vec4(n, block, pixel, (*acc)[r * VEC + 5u], 5u); }
    if (VEC > 6u) { store_vec4(n, block, pixel, (*acc)[r * VEC + 6u], 6u); }
    if (VEC > 7u) { store_vec4(n, block, pixel, (*acc)[r * VEC + 7u], 7u); }
}

@compute @workgroup_size(WORKGROUP)
fn conv1x1_blocked(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * nwg.x;
    if (group >= p.total) { return; }
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
    // Unrolled by 4: lavapipe runs every loop with per-lane masks, a blend per loop-carried
    // value per iteration.
    for (var i = 0u; i < unrolled; i++) {
        mac_channel(&acc, load_pixels(o, 0u), wi);
        mac_channel(&acc, load_pixels(o, plane), wi + VEC);
        mac_channel(&acc, load_pixels(o, 2u * plane), wi + 2u * VEC);
        mac_channel(&acc, load_pixels(o, 3u * plane), wi + 3u * VEC);
        o += vec4<u32>(4u * plane);
        wi += 4u * VEC;
    }
    for (var ci = unrolled * 4u; ci < p.in_channels; ci++) {
        mac_channel(&acc, load_pixels(o, 0u), wi);
        o += vec4<u32>(plane);
        wi += VEC;
    }

    store_pixel(n, block, first + lid, &acc, 0u);
    if (PIX > 1u) { store_pixel(n, block, first + WORKGROUP + lid, &acc, 1u); }
    if (PIX > 2u) { store_pixel(n, block, first + 2u * WORKGROUP + lid, &acc, 2u); }
    if (PIX > 3u) { store_pixel(n, block, first + 3u * WORKGROUP + lid, &acc, 3u); }
}

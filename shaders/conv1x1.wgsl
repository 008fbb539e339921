// 1x1 convolution of stride 1: a GEMM over channels, y[n, co, p] = sum_ci w[co, ci] * x[n, ci, p]
// with p the flattened pixel index, then the shared epilogue (bias, residual, ReLU). (A strided
// 1x1 reaches conv1x1_packed8 only, on a copy packed at its stride: p is then the output pixel.)
//
// conv1x1_direct: w (C_out, C_in)     PyTorch's layout, one output element per invocation
// conv1x1_tiled:  w (ceil(C_out/4), C_in) of vec4: 4 output channels side by side; each
//                 invocation computes 4 channels x TILE_P consecutive pixels.
// x, y, bias, residual, the parameters and the epilogue: shaders/conv_params.wgsl; the blocked
// kernel's pixel split and stores: shaders/conv1x1_tile.wgsl (both prepended).
// In every 1x1 kernel image n's weights start (p.first_point + n) * p.w_image_stride elements
// in: 0 for a convolution; the Winograd GEMM (src/ops/conv2d/winograd.rs) gives each of its
// images, the transform's (point, part of C_in) blocks, weights of their own.

// Declared as vec4 for the tiled variant; the direct variant indexes scalars out of it.
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;

override WORKGROUP: u32 = 64u;
const TILE_P: u32 = 4u;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WORKGROUP + lid;
}

@compute @workgroup_size(WORKGROUP)
fn conv1x1_direct(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let g = linear_id(wid, nwg, lid);
    if (g >= p.total) { return; }
    let pixel = g % p.out_pixels;
    let co = (g / p.out_pixels) % p.out_channels;
    let n = g / (p.out_pixels * p.out_channels);
    var acc = 0.0;
    for (var ci = 0u; ci < p.in_channels; ci++) {
        let wi = (p.first_point + n) * p.w_image_stride + co * p.in_channels + ci;
        acc += x[(n * p.in_channels + ci) * p.out_pixels + pixel] * w[wi / 4u][wi % 4u];
    }
    store_output(n, co, pixel, acc);
}

@compute @workgroup_size(WORKGROUP)
fn conv1x1_tiled(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let g = linear_id(wid, nwg, lid);
    if (g >= p.total) { return; }
    // Neighbouring invocations share a channel group (same weights) and walk along the pixels.
    let tile = g % p.tiles;
    let group = (g / p.tiles) % p.channel_groups;
    let n = g / (p.tiles * p.channel_groups);
    let p0 = tile * TILE_P;
    let last = p.out_pixels - 1u;

    var acc: array<vec4<f32>, TILE_P>;
    for (var ci = 0u; ci < p.in_channels; ci++) {
        let wv = w[(p.first_point + n) * p.w_image_stride + group * p.in_channels + ci];
        let plane = (n * p.in_channels + ci) * p.out_pixels;
        for (var t = 0u; t < TILE_P; t++) {
            // Past the last pixel the clamped read is discarded at the store below.
            acc[t] += x[plane + min(p0 + t, last)] * wv;
        }
    }
    for (var t = 0u; t < TILE_P; t++) {
        let pixel = p0 + t;
        if (pixel >= p.out_pixels) { break; }
        for (var j = 0u; j < 4u; j++) {
            let co = group * 4u + j;
            if (co >= p.out_channels) { break; }
            store_output(n, co, pixel, acc[t][j]);
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

@compute @workgroup_size(WORKGROUP)
fn conv1x1_blocked(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * nwg.x;
    if (group >= p.total) { return; }
    let t = block_tile(group, lid);
    var o = vec4<u32>(t.n * p.in_channels * p.out_pixels) + t.pixels;
    var wi = (p.first_point + t.n) * p.w_image_stride + t.block * p.in_channels * VEC;
    var acc: Accumulators;
    let unrolled = p.in_channels / 4u;
    let plane = p.out_pixels;
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

    store_tile(t, lid, &acc);
}

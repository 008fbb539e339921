// k x k convolution, any stride, dilation and padding, with the shared epilogue (bias per
// channel or per image, residual, ReLU): the kernels for every geometry but the stride-1 1x1
// (conv1x1.wgsl's GEMMs).
//
// x: (N, C_in, H, W)                       contiguous NCHW
// y: (N, out_c_total, H_out, W_out)        this conv writes channels [out_c_offset, +C_out)
// conv2d_direct: w (C_out, C_in, k, k)     PyTorch's layout, one output element per invocation
// conv2d_tiled:  w (ceil(C_out/4), C_in, k*k) of vec4: the 4 output channels of a group side by
//                side, so one vector load feeds 4 accumulators; each invocation computes
//                4 channels x TILE_W consecutive pixels of one output row.
// bias, residual: shaders/conv_params.wgsl
//
// Output pixel (oy, ox) reads input (oy * stride - pad_h + ky * dilation, ox * stride - pad_w +
// kx * dilation) for tap (ky, kx). Coordinates are signed and every tap is checked against
// [0, H) x [0, W) explicitly: a tap in the padding contributes 0. The kernel size is a runtime
// parameter: one pipeline serves the 7x7 stem, the 3x3s and the strided 1x1s; in the blocked
// kernels the tap loops are outside the channel loops, where their bound costs nothing.

// Parameters, x, bias, y, residual and the epilogue store_output(): shaders/conv_params.wgsl
// (prepended). Weights are declared as vec4 for the tiled variant; the direct variant indexes
// scalars out of them (the launcher pads the buffer to a multiple of 4).
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;

override WORKGROUP: u32 = 64u;
// Output pixels per invocation in the tiled variant.
const TILE_W: u32 = 4u;

// Linear invocation index over a grid that may be split in two dimensions (see pipeline::grid).
fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WORKGROUP + lid;
}

@compute @workgroup_size(WORKGROUP)
fn conv2d_direct(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let g = linear_id(wid, nwg, lid);
    if (g >= p.total) { return; }
    let ox = g % p.out_w;
    let oy = (g / p.out_w) % p.out_h;
    let co = (g / (p.out_w * p.out_h)) % p.out_channels;
    let n = g / (p.out_w * p.out_h * p.out_channels);
    let in_h = i32(p.in_h);
    let in_w = i32(p.in_w);
    let k = i32(p.kernel_size);
    let dil = i32(p.dilation);
    let y0 = i32(oy * p.stride) - i32(p.pad_h);
    let x0 = i32(ox * p.stride) - i32(p.pad_w);
    var acc = 0.0;
    for (var ci = 0u; ci < p.in_channels; ci++) {
        let plane = (n * p.in_channels + ci) * p.in_h * p.in_w;
        for (var ky = 0; ky < k; ky++) {
            let iy = y0 + ky * dil;
            if (iy < 0 || iy >= in_h) { continue; }
            for (var kx = 0; kx < k; kx++) {
                let ix = x0 + kx * dil;
                if (ix < 0 || ix >= in_w) { continue; }
                let wi = ((co * p.in_channels + ci) * p.kernel_size + u32(ky)) * p.kernel_size
                    + u32(kx);
                let wv = w[wi / 4u][wi % 4u];
                acc += x[plane + u32(iy) * p.in_w + u32(ix)] * wv;
            }
        }
    }
    store_output(n, co, oy * p.out_w + ox, acc);
}

@compute @workgroup_size(WORKGROUP)
fn conv2d_tiled(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let g = linear_id(wid, nwg, lid);
    if (g >= p.total) { return; }
    // Neighbouring invocations share a channel group (same weights) and walk along a row.
    let tile = g % p.tiles;
    let oy = (g / p.tiles) % p.out_h;
    let group = (g / (p.tiles * p.out_h)) % p.channel_groups;
    let n = g / (p.tiles * p.out_h * p.channel_groups);
    let ox0 = tile * TILE_W;
    let in_h = i32(p.in_h);
    let in_w = i32(p.in_w);
    let k = i32(p.kernel_size);
    let taps = p.kernel_size * p.kernel_size;
    let dil = i32(p.dilation);
    let stride = i32(p.stride);
    let y0 = i32(oy * p.stride) - i32(p.pad_h);
    let x0 = i32(ox0 * p.stride) - i32(p.pad_w);

    var acc: array<vec4<f32>, TILE_W>;
    for (var ci = 0u; ci < p.in_channels; ci++) {
        let plane = (n * p.in_channels + ci) * p.in_h * p.in_w;
        let wbase = (group * p.in_channels + ci) * taps;
        for (var ky = 0; ky < k; ky++) {
            let iy = y0 + ky * dil;
            // A row wholly in the padding contributes nothing.
            if (iy < 0 || iy >= in_h) { continue; }
            let row = plane + u32(iy) * p.in_w;
            for (var kx = 0; kx < k; kx++) {
                let wv = w[wbase + u32(ky * k + kx)];
                let ix0 = x0 + kx * dil;
                for (var t = 0u; t < TILE_W; t++) {
                    let ix = ix0 + i32(t) * stride;
                    let inside = ix >= 0 && ix < in_w;
                    let v = x[row + u32(clamp(ix, 0, in_w - 1))];
                    acc[t] += select(0.0, v, inside) * wv;
                }
            }
        }
    }
    for (var t = 0u; t < TILE_W; t++) {
        let ox = ox0 + t;
        if (ox >= p.out_w) { break; }
        for (var j = 0u; j < 4u; j++) {
            let co = group * 4u + j;
            if (co >= p.out_channels) { break; }
            store_output(n, co, oy * p.out_w + ox, acc[t][j]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// conv2d_blocked: register-blocked, tap-pruned.
//
// w: (ceil(C_out / (4 VEC)), k*k, C_in, VEC) of vec4 — for one block of 4*VEC output channels
//    and one tap, the weights of consecutive input channels are consecutive, 4*VEC floats each.
//
// A workgroup owns one block of 4*VEC output channels and a run of up to WORKGROUP*PIX output
// pixels of one image, cut within one tap region (shaders/pixel_runs.wgsl); each invocation
// accumulates PIX pixels (WORKGROUP apart) x 4*VEC channels in registers. Everything the tap
// loop decides depends on the workgroup alone, so it is uniform: the weight loads are the same
// address in every lane (CPU rasterizers load them once and broadcast; GPUs serve them from one
// cache line), and a tap is live for the whole run or for none, so dead taps are skipped
// without divergence and live ones read x with no checks.
// Per (tap, input channel) an invocation does PIX loads of x, VEC vec4 loads of w and
// 4*VEC*PIX FMAs.
//
// Written for CPU rasterizers as much as for GPUs: lavapipe runs every loop with per-lane masks
// (one blend per loop-carried value per iteration) and does not unroll loops bounded by override
// constants, so the register tile is straight-line code whose `VEC > k` / `PIX > 1` conditions
// are constants once the pipeline is created and fold away, accumulators are indexed by
// constants only (so they live in registers), and the input-channel loop is unrolled by 4.

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

// All input channels of one tap: x offsets `o` of channel 0 per pixel, weights from vec4
// index `wi`. load_pixels: shaders/register_tile.wgsl; the stores: shaders/pixel_runs.wgsl
// (both prepended).
fn tap_blocked(acc: ptr<function, Accumulators>, o_start: vec4<u32>, wi_start: u32) {
    let plane = p.in_h * p.in_w;
    var o = o_start;
    var wi = wi_start;
    let unrolled = p.in_channels / 4u;
    for (var i = 0u; i < unrolled; i++) {
        mac_channel(acc, load_pixels(o, 0u), wi);
        mac_channel(acc, load_pixels(o, plane), wi + VEC);
        mac_channel(acc, load_pixels(o, 2u * plane), wi + 2u * VEC);
        mac_channel(acc, load_pixels(o, 3u * plane), wi + 3u * VEC);
        o += vec4<u32>(4u * plane);
        wi += 4u * VEC;
    }
    for (var ci = unrolled * 4u; ci < p.in_channels; ci++) {
        mac_channel(acc, load_pixels(o, 0u), wi);
        o += vec4<u32>(plane);
        wi += VEC;
    }
}

@compute @workgroup_size(WORKGROUP)
fn conv2d_blocked(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * nwg.x;
    if (group >= p.total) { return; }
    let t = run_tile(group, lid);
    let in_w = i32(p.in_w);
    let x_image = t.n * p.in_channels * p.in_h * p.in_w;
    let k = i32(p.kernel_size);
    let dil = i32(p.dilation);
    var acc: Accumulators;

    for (var ky = 0; ky < k; ky++) {
        let dy = ky * dil - i32(p.pad_h);
        for (var kx = 0; kx < k; kx++) {
            let dx = kx * dil - i32(p.pad_w);
            // Live for every pixel of the run or for none.
            if (!tap_live(t.run, dy, dx)) { continue; }
            // The tap's input for each pixel: (oy * stride + dy, ox * stride + dx), all inside.
            let o = vec4<u32>(x_image) + t.pixel.xy_in + vec4<u32>(u32(dy * in_w + dx));
            let tap_index = t.block * p.kernel_size * p.kernel_size + u32(ky * k + kx);
            tap_blocked(&acc, o, tap_index * p.in_channels * VEC);
        }
    }

    store_run(t, lid, &acc);
}

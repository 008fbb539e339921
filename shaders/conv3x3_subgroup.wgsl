// Dilated 3x3 convolution, stride 1, any padding, optional bias and fused ReLU: the
// register-blocked, tap-pruned kernel with weights shared through subgroup broadcasts.
// Needs the subgroup feature (subgroups of >= 8 invocations, a multiple of 8); it is a separate
// module from shaders/conv3x3.wgsl so that one compiles on adapters without subgroups.
//
// x: (N, C_in, H, W)                   contiguous NCHW (conv3x3_subgroup)
// x4: (N, ceil(C_in / 4), H, W) of vec4 channel-packed copy (conv3x3_packed; pack_channels.wgsl),
//    with w then laid out for C_in rounded up to 4 (zeros past C_in)
// w: (ceil(C_out / (4 VEC)), 9, C_in, VEC) of vec4 — for one block of 4*VEC output channels and
//    one tap, the weights of consecutive input channels are consecutive, 4*VEC floats each
// bias: (C_out,) (a zero buffer when the conv has none)
// y: (N, out_c_total, H_out, W_out)    this conv writes channels [out_c_offset, +C_out)
//
// Work split as in conv3x3_blocked: a workgroup owns one block of 4*VEC output channels and a
// run of WORKGROUP*PIX consecutive output pixels of one image; each invocation accumulates PIX
// pixels (WORKGROUP apart) x 4*VEC channels. Every decision of the tap loop depends on the
// workgroup alone (uniform); taps wholly in the padding for the whole run are skipped, taps
// wholly inside are read without checks, the others read a clamped address and select 0.
//
// Why subgroups: lavapipe (Mesa 25) scalarizes a buffer load only when its offset is a
// compile-time constant; any other load, even one whose address is the same in every lane,
// costs a per-lane loop of ~17 cycles per 8 lanes, against half a cycle for a multiply-add of
// 8 lanes. So lanes 0..7 each load a *different* vec4 of weights (8 vec4s = 32 weights, e.g.
// two input channels of a 16-channel block) and subgroupBroadcast hands each vec4 to every
// lane: one load per 32 weights instead of one per weight (a vec4 also costs less per element
// than four scalar loads in lavapipe's per-lane loop). On GPUs the broadcast is a register
// shuffle and the load one cache line.
// Per 4 input channels of one tap an invocation does 4*PIX loads of x (PIX vec4 loads when
// packed, ~2.7x cheaper per channel on lavapipe), VEC/2 vec4 loads of w,
// 4*VEC vec4 broadcasts and 16*VEC*PIX FMAs. The register tile is straight-line code
// (conditions on override constants fold away) and the input-channel loop is unrolled by 4;
// see shaders/conv3x3.wgsl for why.

// Mirrors `Conv3x3Params` in src/ops/conv3x3.rs field for field (shared with conv3x3.wgsl).
struct Params {
    batch: u32,
    in_channels: u32,
    in_h: u32,
    in_w: u32,
    out_channels: u32,
    out_h: u32,
    out_w: u32,
    dilation: u32,
    pad_h: u32,
    pad_w: u32,
    out_c_total: u32,
    out_c_offset: u32,
    relu: u32,
    tiles_w: u32,        // (tiled variant, unused here)
    channel_groups: u32, // (tiled variant, unused here)
    total: u32,          // workgroups that do work
    out_pixels: u32,     // out_h * out_w
    pixel_tiles: u32,    // ceil(out_pixels / (WORKGROUP * PIX))
    channel_blocks: u32, // ceil(out_channels / (4 * VEC))
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
// The input again, channel-packed (N, ceil(C_in / 4), H, W) of vec4, for conv3x3_packed.
@group(0) @binding(5) var<storage, read> x4: array<vec4<f32>>;

override WORKGROUP: u32 = 8u;

fn activate(v: f32) -> f32 {
    return select(v, max(v, 0.0), p.relu != 0u);
}

// Register tile, weight loads and broadcasts: shaders/subgroup_tile.wgsl (prepended).

// Writes channels 4v..4v+3 of one pixel (if it exists) with bias and activation.
fn store_vec4(n: u32, block: u32, pixel: u32, a: vec4<f32>, v: u32) {
    if (pixel >= p.out_pixels) { return; }
    for (var j = 0u; j < 4u; j++) {
        let co = block * 4u * VEC + 4u * v + j;
        if (co < p.out_channels) {
            y[((n * p.out_c_total + p.out_c_offset + co) * p.out_h + pixel / p.out_w) * p.out_w
                  + pixel % p.out_w] = activate(a[j] + bias[co]);
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

// x at `offset`, or 0 where the tap is in the padding (`masked` is a constant at each call).
fn load_x(offset: u32, inside: bool, masked: bool) -> f32 {
    let v = x[offset];
    if (masked) {
        return select(0.0, v, inside);
    }
    return v;
}

// The pixels' x values for one input channel, `shift` past the tap's channel-0 offsets.
fn load_pixels(o: vec4<u32>, inside: vec4<bool>, shift: u32, masked: bool) -> vec4<f32> {
    var xs = vec4<f32>(load_x(o.x + shift, inside.x, masked), 0.0, 0.0, 0.0);
    if (PIX > 1u) { xs.y = load_x(o.y + shift, inside.y, masked); }
    if (PIX > 2u) { xs.z = load_x(o.z + shift, inside.z, masked); }
    if (PIX > 3u) { xs.w = load_x(o.w + shift, inside.w, masked); }
    return xs;
}

// Packed input: x4 at `offset`, or 0 where the tap is in the padding.
fn load_x4(offset: u32, inside: bool, masked: bool) -> vec4<f32> {
    let v = x4[offset];
    if (masked) {
        return select(vec4<f32>(0.0), v, inside);
    }
    return v;
}

// As `tap` on the channel-packed input: one vec4 load per pixel covers 4 input channels.
// `o_start` holds the pixels' offsets in vec4s for channel group 0.
fn tap_packed(acc: ptr<function, Accumulators>, o_start: vec4<u32>, inside: vec4<bool>,
              wi_start: u32, lane: u32, masked: bool) {
    let plane = p.in_h * p.in_w;
    var o = o_start;
    var wi = wi_start;
    let groups = (p.in_channels + 3u) / 4u;
    for (var i = 0u; i < groups; i++) {
        // Zero-padded past C_in in both x4 and the weights.
        var q = load_weights(wi, lane);
        let x0 = load_x4(o.x, inside.x, masked);
        var x1 = vec4<f32>();
        var x2 = vec4<f32>();
        var x3 = vec4<f32>();
        if (PIX > 1u) { x1 = load_x4(o.y, inside.y, masked); }
        if (PIX > 2u) { x2 = load_x4(o.z, inside.z, masked); }
        if (PIX > 3u) { x3 = load_x4(o.w, inside.w, masked); }
        mac_step0(acc, vec4<f32>(x0.x, x1.x, x2.x, x3.x), &q);
        mac_step1(acc, vec4<f32>(x0.y, x1.y, x2.y, x3.y), &q);
        mac_step2(acc, vec4<f32>(x0.z, x1.z, x2.z, x3.z), &q);
        mac_step3(acc, vec4<f32>(x0.w, x1.w, x2.w, x3.w), &q);
        o += vec4<u32>(plane);
        wi += 4u * VEC;
    }
}

// All input channels of one tap: x offsets `o` of channel 0 per pixel, weights from `wi`.
fn tap(acc: ptr<function, Accumulators>, o_start: vec4<u32>, inside: vec4<bool>, wi_start: u32,
       lane: u32, masked: bool) {
    let plane = p.in_h * p.in_w;
    var o = o_start;
    var wi = wi_start;
    let unrolled = p.in_channels / 4u;
    for (var i = 0u; i < unrolled; i++) {
        var q = load_weights(wi, lane);
        mac_step0(acc, load_pixels(o, inside, 0u, masked), &q);
        mac_step1(acc, load_pixels(o, inside, plane, masked), &q);
        mac_step2(acc, load_pixels(o, inside, 2u * plane, masked), &q);
        mac_step3(acc, load_pixels(o, inside, 3u * plane, masked), &q);
        o += vec4<u32>(4u * plane);
        wi += 4u * VEC;
    }
    // The last C_in % 4 channels: one vec4 load per lane covers one channel's weights.
    for (var ci = unrolled * 4u; ci < p.in_channels; ci++) {
        var q = WeightLoads(w[wi + lane], vec4<f32>(), vec4<f32>(), vec4<f32>());
        mac_step0(acc, load_pixels(o, inside, 0u, masked), &q);
        o += vec4<u32>(plane);
        wi += VEC;
    }
}

@compute @workgroup_size(WORKGROUP)
fn conv3x3_subgroup(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32,
                    @builtin(subgroup_invocation_id) sg_lane: u32) {
    conv(wid, nwg, lid, sg_lane, false);
}

// The same kernel on the channel-packed input x4.
@compute @workgroup_size(WORKGROUP)
fn conv3x3_packed(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32,
                  @builtin(subgroup_invocation_id) sg_lane: u32) {
    conv(wid, nwg, lid, sg_lane, true);
}

// `packed` is a literal at both calls: the other input path folds away.
fn conv(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, sg_lane: u32, packed: bool) {
    let group = wid.x + wid.y * nwg.x;
    if (group >= p.total) { return; }
    let lane = sg_lane % 8u;
    // Pixel runs vary fastest: consecutive workgroups share a block of weights.
    let tile = group % p.pixel_tiles;
    let block = (group / p.pixel_tiles) % p.channel_blocks;
    let n = group / (p.pixel_tiles * p.channel_blocks);

    // The run of output pixels [first, last] and the rows and columns it covers (uniform).
    let first = tile * WORKGROUP * PIX;
    let last = min(first + WORKGROUP * PIX, p.out_pixels) - 1u;
    let oy_first = i32(first / p.out_w);
    let oy_last = i32(last / p.out_w);
    // A run within one row covers [ox_first, ox_last]; one that wraps is given all columns
    // (the hull: safe both for "any tap live" and, being a superset, for "all taps live").
    var ox_first = i32(first % p.out_w);
    var ox_last = i32(last % p.out_w);
    if (oy_last != oy_first) {
        ox_first = 0;
        ox_last = i32(p.out_w) - 1;
    }

    // This invocation's pixels (WORKGROUP apart); lanes past the end compute the last pixel
    // and do not store.
    let pixels = min(vec4<u32>(first + lid) + vec4<u32>(0u, 1u, 2u, 3u) * WORKGROUP,
                     vec4<u32>(p.out_pixels - 1u));
    let oy = vec4<i32>(pixels / p.out_w);
    let ox = vec4<i32>(pixels % p.out_w);

    let in_h = i32(p.in_h);
    let in_w = i32(p.in_w);
    // Offset of image n, channel (group) 0: in floats, or in vec4s when packed.
    var x_image = n * p.in_channels * p.in_h * p.in_w;
    if (packed) {
        x_image = n * ((p.in_channels + 3u) / 4u) * p.in_h * p.in_w;
    }
    let dil = i32(p.dilation);
    var acc: Accumulators;

    for (var ky = 0; ky < 3; ky++) {
        let dy = ky * dil - i32(p.pad_h);
        // Every row of the run reads padding for this ky: skip the three taps.
        if (oy_last + dy < 0 || oy_first + dy >= in_h) { continue; }
        let rows_inside = oy_first + dy >= 0 && oy_last + dy < in_h;
        for (var kx = 0; kx < 3; kx++) {
            let dx = kx * dil - i32(p.pad_w);
            if (ox_last + dx < 0 || ox_first + dx >= in_w) { continue; }
            let all_inside = rows_inside && ox_first + dx >= 0 && ox_last + dx < in_w;
            let iy = oy + vec4<i32>(dy);
            let ix = ox + vec4<i32>(dx);
            let inside = (iy >= vec4<i32>(0)) & (iy < vec4<i32>(in_h)) & (ix >= vec4<i32>(0))
                & (ix < vec4<i32>(in_w));
            let o = vec4<u32>(x_image) + vec4<u32>(clamp(iy, vec4<i32>(0), vec4<i32>(in_h - 1)))
                * p.in_w + vec4<u32>(clamp(ix, vec4<i32>(0), vec4<i32>(in_w - 1)));
            // Packed weights run over C_in rounded up to 4 (zeros past C_in).
            var cin = p.in_channels;
            if (packed) {
                cin = (cin + 3u) / 4u * 4u;
            }
            let wi = (block * 9u + u32(ky * 3 + kx)) * cin * VEC;
            if (packed) {
                if (all_inside) {
                    tap_packed(&acc, o, inside, wi, lane, false);
                } else {
                    tap_packed(&acc, o, inside, wi, lane, true);
                }
            } else if (all_inside) {
                tap(&acc, o, inside, wi, lane, false);
            } else {
                tap(&acc, o, inside, wi, lane, true);
            }
        }
    }

    store_pixel(n, block, first + lid, &acc, 0u);
    if (PIX > 1u) { store_pixel(n, block, first + WORKGROUP + lid, &acc, 1u); }
    if (PIX > 2u) { store_pixel(n, block, first + 2u * WORKGROUP + lid, &acc, 2u); }
    if (PIX > 3u) { store_pixel(n, block, first + 3u * WORKGROUP + lid, &acc, 3u); }
}

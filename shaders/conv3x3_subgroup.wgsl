// Dilated 3x3 convolution, stride 1, any padding, optional bias and fused ReLU: the
// register-blocked, tap-pruned kernel with weights shared through subgroup broadcasts.
// Needs the subgroup feature (subgroups of >= 8 invocations, a multiple of 8); it is a separate
// module from shaders/conv3x3.wgsl so that one compiles on adapters without subgroups.
//
// x: (N, C_in, H, W)                   contiguous NCHW
// w: (ceil(C_out / (4 VEC)), 9, C_in, 4 VEC) — for one block of 4*VEC output channels and one
//    tap, the weights of consecutive input channels are consecutive, 4*VEC floats each
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
// 8 lanes. So each lane loads a *different* weight (lane % 8 of a group of 8 channels) and
// subgroupBroadcast hands all eight to every lane: one load per 8 weights instead of one per
// weight. On GPUs the broadcast is a register shuffle and the load one cache line.
// Per (tap, input channel) an invocation does PIX loads of x, VEC/2 loads of w, 4*VEC
// broadcasts and 4*VEC*PIX FMAs. The register tile is straight-line code (conditions on
// override constants fold away) and the input-channel loop is unrolled by 4; see
// shaders/conv3x3.wgsl for why.

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

// All input channels of one tap: x offsets `o` of channel 0 per pixel, weights from `wi`.
fn tap(acc: ptr<function, Accumulators>, o_start: vec4<u32>, inside: vec4<bool>, wi_start: u32,
       lane: u32, masked: bool) {
    let plane = p.in_h * p.in_w;
    let cb = 4u * VEC;
    var o = o_start;
    var wi = wi_start;
    let unrolled = p.in_channels / 4u;
    for (var i = 0u; i < unrolled; i++) {
        mac_channel(acc, load_pixels(o, inside, 0u, masked), wi, lane);
        mac_channel(acc, load_pixels(o, inside, plane, masked), wi + cb, lane);
        mac_channel(acc, load_pixels(o, inside, 2u * plane, masked), wi + 2u * cb, lane);
        mac_channel(acc, load_pixels(o, inside, 3u * plane, masked), wi + 3u * cb, lane);
        o += vec4<u32>(4u * plane);
        wi += 4u * cb;
    }
    for (var ci = unrolled * 4u; ci < p.in_channels; ci++) {
        mac_channel(acc, load_pixels(o, inside, 0u, masked), wi, lane);
        o += vec4<u32>(plane);
        wi += cb;
    }
}

@compute @workgroup_size(WORKGROUP)
fn conv3x3_subgroup(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32,
                    @builtin(subgroup_invocation_id) sg_lane: u32) {
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
    let x_image = n * p.in_channels * p.in_h * p.in_w;
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
            let wi = (block * 9u + u32(ky * 3 + kx)) * p.in_channels * 4u * VEC;
            if (all_inside) {
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

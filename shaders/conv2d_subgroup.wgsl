// k x k convolution, any stride, dilation and padding, with the shared epilogue: the
// register-blocked, tap-pruned kernel with weights shared through subgroup broadcasts. Needs
// the subgroup feature (subgroups of >= 8 invocations, a multiple of 8); it is a separate
// module from shaders/conv2d.wgsl so that one compiles on adapters without subgroups.
//
// x: (N, C_in, H, W)                   contiguous NCHW (conv2d_subgroup)
// x4: (N, ceil(C_in / 4), H, W) of vec4 channel-packed copy (conv2d_packed; pack_channels.wgsl),
//    with w then laid out for C_in rounded up to 4 (zeros past C_in)
// w: (ceil(C_out / (4 VEC)), k*k, C_in, VEC) of vec4 — for one block of 4*VEC output channels
//    and one tap, the weights of consecutive input channels are consecutive, 4*VEC floats each
// bias, residual, y: shaders/conv_params.wgsl
// runs: (pixel_tiles,) of vec4<u32>  one run of output pixels per workgroup (pixel_runs.wgsl)
//
// Work split: a workgroup owns one block of 4*VEC output channels and a run of up to
// WORKGROUP*PIX output pixels of one image; each invocation accumulates PIX pixels (WORKGROUP
// apart) x 4*VEC channels. The runs never cross a tap region: the launcher cuts the map into
// rectangles whose pixels all read the same taps from real input (`ConvGeometry::tap_regions`,
// 9 for DeepLab's 3x3 with padding = dilation) and each region into runs. So every tap is live
// for all pixels of a run or for none: dead taps are skipped (pruning is exact: the
// multiply-adds done are the useful ones, plus the idle lanes of each region's last run) and
// live ones load without bounds tests or masks.
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
// see shaders/conv2d.wgsl for why.

// Parameters, x, bias, y, residual and store_output(): shaders/conv_params.wgsl (prepended).
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;
// The input again, channel-packed (N, ceil(C_in / 4), H, W) of vec4, for conv2d_packed.
@group(0) @binding(6) var<storage, read> x4: array<vec4<f32>>;

override WORKGROUP: u32 = 8u;

// Register tile, load_pixels, weight loads and broadcasts: shaders/register_tile.wgsl and
// shaders/subgroup_tile.wgsl; runs and the stores: shaders/pixel_runs.wgsl (all prepended).

// As `tap` on the channel-packed input: one vec4 load per pixel covers 4 input channels.
// `o_start` holds the pixels' offsets in vec4s for channel group 0.
fn tap_packed(acc: ptr<function, Accumulators>, o_start: vec4<u32>, wi_start: u32, lane: u32) {
    let plane = p.in_h * p.in_w;
    var o = o_start;
    var wi = wi_start;
    let groups = (p.in_channels + 3u) / 4u;
    for (var i = 0u; i < groups; i++) {
        // Zero-padded past C_in in both x4 and the weights.
        var q = load_weights(wi, lane);
        let x0 = x4[o.x];
        var x1 = vec4<f32>();
        var x2 = vec4<f32>();
        var x3 = vec4<f32>();
        if (PIX > 1u) { x1 = x4[o.y]; }
        if (PIX > 2u) { x2 = x4[o.z]; }
        if (PIX > 3u) { x3 = x4[o.w]; }
        mac_step0(acc, vec4<f32>(x0.x, x1.x, x2.x, x3.x), &q);
        mac_step1(acc, vec4<f32>(x0.y, x1.y, x2.y, x3.y), &q);
        mac_step2(acc, vec4<f32>(x0.z, x1.z, x2.z, x3.z), &q);
        mac_step3(acc, vec4<f32>(x0.w, x1.w, x2.w, x3.w), &q);
        o += vec4<u32>(plane);
        wi += 4u * VEC;
    }
}

// All input channels of one tap: x offsets `o` of channel 0 per pixel, weights from `wi`.
fn tap(acc: ptr<function, Accumulators>, o_start: vec4<u32>, wi_start: u32, lane: u32) {
    let plane = p.in_h * p.in_w;
    var o = o_start;
    var wi = wi_start;
    let unrolled = p.in_channels / 4u;
    for (var i = 0u; i < unrolled; i++) {
        var q = load_weights(wi, lane);
        mac_step0(acc, load_pixels(o, 0u), &q);
        mac_step1(acc, load_pixels(o, plane), &q);
        mac_step2(acc, load_pixels(o, 2u * plane), &q);
        mac_step3(acc, load_pixels(o, 3u * plane), &q);
        o += vec4<u32>(4u * plane);
        wi += 4u * VEC;
    }
    // The last C_in % 4 channels: one vec4 load per lane covers one channel's weights.
    for (var ci = unrolled * 4u; ci < p.in_channels; ci++) {
        var q = WeightLoads(w[wi + lane], vec4<f32>(), vec4<f32>(), vec4<f32>());
        mac_step0(acc, load_pixels(o, 0u), &q);
        o += vec4<u32>(plane);
        wi += VEC;
    }
}

@compute @workgroup_size(WORKGROUP)
fn conv2d_subgroup(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32,
                   @builtin(subgroup_invocation_id) sg_lane: u32) {
    conv(wid, nwg, lid, sg_lane, false);
}

// The same kernel on the channel-packed input x4.
@compute @workgroup_size(WORKGROUP)
fn conv2d_packed(@builtin(workgroup_id) wid: vec3<u32>,
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
    let t = run_tile(group, lid);
    let in_w = i32(p.in_w);
    // Offset of image n, channel (group) 0: in floats, or in vec4s when packed.
    var x_image = t.n * p.in_channels * p.in_h * p.in_w;
    if (packed) {
        x_image = t.n * ((p.in_channels + 3u) / 4u) * p.in_h * p.in_w;
    }
    // Packed weights run over C_in rounded up to 4 (zeros past C_in).
    var cin = p.in_channels;
    if (packed) {
        cin = (cin + 3u) / 4u * 4u;
    }
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
            let wi = tap_index * cin * VEC;
            if (packed) {
                tap_packed(&acc, o, wi, lane);
            } else {
                tap(&acc, o, wi, lane);
            }
        }
    }

    store_run(t, lid, &acc);
}

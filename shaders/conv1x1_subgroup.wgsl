// 1x1 convolution (a GEMM over channels) with the shared epilogue: the register-blocked
// kernel with weights shared through subgroup broadcasts. Needs the subgroup feature (subgroups
// of >= 8 invocations, a multiple of 8); a separate module from shaders/conv1x1.wgsl so that
// one compiles on adapters without subgroups.
//
// w: (ceil(C_out / (4 VEC)), C_in, VEC) of vec4 — for one block of 4*VEC output channels, the
//    weights of consecutive input channels are consecutive, 4*VEC floats each
// x, y, bias, residual, the parameters and the epilogue: shaders/conv_params.wgsl (prepended)
//
// A workgroup owns one block of 4*VEC output channels and a run of WORKGROUP*PIX consecutive
// pixels of one image; each invocation accumulates PIX pixels (WORKGROUP apart) x 4*VEC
// channels. Lanes 0..7 each load a different vec4 of weights (8 vec4s = 32 weights) and
// subgroupBroadcast hands each vec4 to every lane; see shaders/conv2d_subgroup.wgsl for why.
// Per 4 input channels an invocation does 4*PIX loads of x, VEC/2 vec4 loads of w, 4*VEC vec4
// broadcasts and 16*VEC*PIX FMAs.

@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;

override WORKGROUP: u32 = 8u;

// Register tile, weight loads and broadcasts: shaders/register_tile.wgsl and
// shaders/subgroup_tile.wgsl; pixel split and stores: shaders/conv1x1_tile.wgsl (all
// prepended).

@compute @workgroup_size(WORKGROUP)
fn conv1x1_subgroup(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32,
                    @builtin(subgroup_invocation_id) sg_lane: u32) {
    let group = wid.x + wid.y * nwg.x;
    if (group >= p.total) { return; }
    let lane = sg_lane % 8u;
    let t = block_tile(group, lid);
    var o = vec4<u32>(t.n * p.in_channels * p.out_pixels) + t.pixels;
    var wi = (p.first_point + t.n) * p.w_image_stride + t.block * p.in_channels * VEC;
    var acc: Accumulators;
    let unrolled = p.in_channels / 4u;
    let plane = p.out_pixels;
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

    store_tile(t, lid, &acc);
}

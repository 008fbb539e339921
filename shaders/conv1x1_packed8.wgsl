// 1x1 convolution (a GEMM over channels) with the shared epilogue: the subgroup kernel of
// conv1x1_subgroup.wgsl with every load 64 bits wide, 8 input channels at a time, on a
// channel-packed copy of the input. Needs subgroups (of >= 8 invocations, a multiple of 8) and
// 64-bit integers in shaders (wgpu's SHADER_INT64), hence its own module.
//
// x8: (N, ceil(C_in / 8), H, W) of vec4<u64>, 8 packed channels per pixel (wide_tile.wgsl)
// w: (ceil(C_out / (4 VEC)), ceil(C_in / 8), VEC / 2, 8) of vec4<u64> — per block of 4*VEC
//    output channels and group of 8 input channels, the rounds of wide_tile.wgsl
//    (`ConvWeights::packed_wide`)
// x, y, bias, residual, the parameters and the epilogue: shaders/conv_params.wgsl (prepended);
// `x`, the unpacked input, is bound but unread here.
//
// Work split and stores: as conv1x1_subgroup.wgsl (conv1x1_tile.wgsl). The inner
// loop over groups of 8 input channels, and why 64-bit loads pay: shaders/wide_tile.wgsl
// (prepended).

@group(0) @binding(2) var<storage, read> w: array<vec4<u64>>;
@group(0) @binding(6) var<storage, read> x8: array<vec4<u64>>;

override WORKGROUP: u32 = 8u;

@compute @workgroup_size(WORKGROUP)
fn conv1x1_packed8(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32,
                   @builtin(subgroup_invocation_id) sg_lane: u32) {
    let group = wid.x + wid.y * nwg.x;
    if (group >= p.total) { return; }
    let t = block_tile(group, lid);
    let groups = p.in_channels / 8u;
    var acc: Accumulators;
    let wi = (p.first_point + t.n) * p.w_image_stride + t.block * groups * 4u * VEC;
    mac_groups(&acc, vec4<u32>(t.n * groups * p.out_pixels) + t.pixels, wi, sg_lane % 8u,
               groups, p.out_pixels);
    store_tile(t, lid, &acc);
}

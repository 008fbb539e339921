// k x k convolution, any stride, dilation and padding, with the shared epilogue: the packed
// subgroup kernel of conv2d_subgroup.wgsl with every load 64 bits wide, 8 input channels at a
// time. Needs subgroups (of >= 8 invocations, a multiple of 8) and 64-bit integers in shaders
// (wgpu's SHADER_INT64), hence its own module.
//
// x8: (N, ceil(C_in / 8), H, W) of vec4<u64>, 8 packed channels per pixel (wide_tile.wgsl)
// w: (ceil(C_out / (4 VEC)), k*k, ceil(C_in / 8), VEC / 2, 8) of vec4<u64> — per block of
//    4*VEC output channels, tap and group of 8 input channels, the rounds of wide_tile.wgsl
//    (`ConvWeights::packed_wide`)
// bias, residual, y: shaders/conv_params.wgsl
// runs: (pixel_tiles,) of vec4<u32>    one run of output pixels per workgroup (pixel_runs.wgsl)
//
// Work split, runs and tap pruning: as conv2d_subgroup.wgsl. The inner loop over groups of 8
// input channels, and why 64-bit loads pay: shaders/wide_tile.wgsl (prepended).

// Parameters, bias, y, residual and store_output(): shaders/conv_params.wgsl (prepended); its
// `x`, the unpacked input, is bound but unread here (register_tile.wgsl's load_pixels is not
// called).
@group(0) @binding(2) var<storage, read> w: array<vec4<u64>>;
@group(0) @binding(6) var<storage, read> x8: array<vec4<u64>>;

override WORKGROUP: u32 = 8u;

@compute @workgroup_size(WORKGROUP)
fn conv2d_packed8(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32,
                  @builtin(subgroup_invocation_id) sg_lane: u32) {
    let group = wid.x + wid.y * nwg.x;
    if (group >= p.total) { return; }
    let lane = sg_lane % 8u;
    let t = run_tile(group, lid);
    let in_w = i32(p.in_w);
    let groups = p.in_channels / 8u;
    let x_image = t.n * groups * p.in_h * p.in_w;
    let k = i32(p.kernel_size);
    let dil = i32(p.dilation);
    var acc: Accumulators;

    for (var ky = 0; ky < k; ky++) {
        let dy = ky * dil - i32(p.pad_h);
        for (var kx = 0; kx < k; kx++) {
            let dx = kx * dil - i32(p.pad_w);
            // Live for every pixel of the run or for none.
            if (!tap_live(t.run, dy, dx)) { continue; }
            let o = vec4<u32>(x_image) + t.pixel.xy_in + vec4<u32>(u32(dy * in_w + dx));
            let tap_index = t.block * p.kernel_size * p.kernel_size + u32(ky * k + kx);
            let wi = tap_index * groups * 4u * VEC;
            mac_groups(&acc, o, wi, lane, groups, p.in_h * p.in_w);
        }
    }

    store_run(t, lid, &acc);
}

// Channel packing: NCHW -> (N, ceil(C / PACK), H', W', PACK), channel PACK*g + j in float j of
// its pixel's group g, zeros past C, keeping every S-th pixel of each axis for a stride S (pixel
// (y, x) of the copy is (S y, S x) of the input: a strided 1x1 conv reads only those). The
// layout of the packed convolution kernels, where one load per pixel brings PACK input
// channels: a vec4<f32> for conv2d_packed (PACK = 4; on lavapipe a per-lane vec4 load costs
// ~1.5x a scalar one, so it is ~2.7x cheaper per channel), a vec4<u64> for the packed8 kernels
// (PACK = 8).
//
// x: (N, C, H, W)                         contiguous NCHW
// y: (N, ceil(C / PACK), H', W', PACK)    contiguous, i.e. an NCHW tensor (N, C/PACK, H', PACK*W')
//    with (H', W') = (ceil(H / S), ceil(W / S))
//
// A workgroup covers WORKGROUP pixels of one packed plane (n, g), so the plane index is
// uniform; lanes divide only to find a strided copy's source row.

// Mirrors `PackParams` in src/ops/pack_channels.rs field for field.
struct Params {
    channels: u32,    // C
    groups: u32,      // ceil(C / PACK)
    plane: u32,       // H' * W'
    plane_tiles: u32, // ceil(H' * W' / WORKGROUP)
    total: u32,       // workgroups that do work: N * groups * plane_tiles
    stride: u32,      // S
    in_plane: u32,    // H * W
    in_w: u32,        // W
    out_w: u32,       // W'
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<f32>>;

override WORKGROUP: u32 = 64u;
// Channels per packed group: 4 or 8 (two vec4s per pixel).
override PACK: u32 = 4u;

@compute @workgroup_size(WORKGROUP)
fn pack_channels(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * nwg.x;
    if (group >= p.total) { return; }
    let plane_index = group / p.plane_tiles; // n * groups + g
    let pixel = (group % p.plane_tiles) * WORKGROUP + lid;
    if (pixel >= p.plane) { return; }
    let n = plane_index / p.groups;
    let c = (plane_index % p.groups) * PACK;
    let out = (plane_index * p.plane + pixel) * (PACK / 4u);
    var in_pixel = pixel;
    if (p.stride != 1u) {
        let row = pixel / p.out_w;
        in_pixel = (row * p.in_w + pixel - row * p.out_w) * p.stride;
    }
    for (var k = 0u; k < PACK; k += 4u) {
        let src = (n * p.channels + c + k) * p.in_plane + in_pixel;
        var v = vec4<f32>();
        if (c + k < p.channels) { v.x = x[src]; }
        if (c + k + 1u < p.channels) { v.y = x[src + p.in_plane]; }
        if (c + k + 2u < p.channels) { v.z = x[src + 2u * p.in_plane]; }
        if (c + k + 3u < p.channels) { v.w = x[src + 3u * p.in_plane]; }
        y[out + k / 4u] = v;
    }
}

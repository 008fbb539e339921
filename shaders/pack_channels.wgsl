// Channel packing: NCHW -> (N, ceil(C / 4), H, W) of vec4, channel 4g + j in component j,
// zeros past C. The layout of the packed convolution kernels (conv3x3_packed), where one vec4
// load per pixel brings 4 input channels: on lavapipe a per-lane vec4 load costs ~1.5x a scalar
// one, so it is ~2.7x cheaper per channel.
//
// x: (N, C, H, W)                  contiguous NCHW
// y: (N, ceil(C / 4), H, W) vec4   contiguous, i.e. an NCHW tensor of shape (N, C4, H, 4W)
//
// A workgroup covers WORKGROUP pixels of one packed plane (n, g), so the plane index is
// uniform and no lane divides.

// Mirrors `PackParams` in src/ops/pack_channels.rs field for field.
struct Params {
    channels: u32,    // C
    groups: u32,      // ceil(C / 4)
    plane: u32,       // H * W
    plane_tiles: u32, // ceil(H * W / WORKGROUP)
    total: u32,       // workgroups that do work: N * groups * plane_tiles
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<f32>>;

override WORKGROUP: u32 = 64u;

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
    let c = (plane_index % p.groups) * 4u;
    let src = (n * p.channels + c) * p.plane + pixel;
    var v = vec4<f32>(x[src], 0.0, 0.0, 0.0);
    if (c + 1u < p.channels) { v.y = x[src + p.plane]; }
    if (c + 2u < p.channels) { v.z = x[src + 2u * p.plane]; }
    if (c + 3u < p.channels) { v.w = x[src + 3u * p.plane]; }
    y[plane_index * p.plane + pixel] = v;
}

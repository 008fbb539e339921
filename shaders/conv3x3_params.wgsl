// What every 3x3 convolution kernel file shares (conv3x3.wgsl, conv3x3_subgroup.wgsl,
// conv3x3_packed8.wgsl): the parameters, the bindings whose type is the same in all of them,
// and the activation. The launchers prepend this file first (`shader!(..., prelude [...])` in
// src/pipeline.rs); each kernel file declares its weights `w` (binding 2) and any packed input.
//
// x: (N, C_in, H, W)                   contiguous NCHW
// bias: (C_out,)                       a zero buffer when the conv has none
// y: (N, out_c_total, H_out, W_out)    this conv writes channels [out_c_offset, +C_out)
// runs: (pixel_tiles,) of vec4<u32>    the tap-pruned kernels' runs of pixels, one per workgroup
//                                      (shaders/pixel_runs.wgsl); direct and tiled leave it unread

// Mirrors `Conv3x3Params` in src/ops/conv3x3.rs field for field.
struct Params {
    batch: u32,
    in_channels: u32,    // C_in; rounded up to 8 for conv3x3_packed8 (its packed copy's count)
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
    tiles_w: u32,        // ceil(out_w / TILE_W) (tiled variant)
    channel_groups: u32, // ceil(out_channels / 4) (tiled variant)
    total: u32,          // invocations that do work (direct, tiled); workgroups (the others)
    out_pixels: u32,     // out_h * out_w
    pixel_tiles: u32,    // runs of pixels, entries of `runs` (tap-pruned variants)
    channel_blocks: u32, // ceil(out_channels / (4 * VEC)) (tap-pruned variants)
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> runs: array<vec4<u32>>;

fn activate(v: f32) -> f32 {
    return select(v, max(v, 0.0), p.relu != 0u);
}

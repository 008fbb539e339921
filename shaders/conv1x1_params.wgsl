// What every 1x1 convolution kernel file shares (conv1x1.wgsl, conv1x1_subgroup.wgsl,
// conv1x1_packed8.wgsl): the parameters, the bindings whose type is the same in all of them,
// the activation, and the register-blocked kernels' pixel split and stores. The
// launchers prepend this file after register_tile.wgsl (`shader!(..., prelude [...])` in
// src/pipeline.rs); each kernel file declares its weights `w` (binding 2), any packed input and
// WORKGROUP.
//
// x: (N, C_in, H, W)                  contiguous NCHW
// y: (N, out_c_total, H, W)           this conv writes channels [out_c_offset, +C_out)
// bias: (C_out,), or (N, C_out) when bias_stride = C_out (a graph folding a per-image constant
//       branch into this conv); a zero buffer when the conv has none

// Mirrors `Conv1x1Params` in src/ops/conv1x1.rs field for field.
struct Params {
    batch: u32,
    in_channels: u32,     // C_in; rounded up to 8 for conv1x1_packed8 (its packed copy's count)
    pixels: u32,          // H * W
    out_channels: u32,
    out_c_total: u32,
    out_c_offset: u32,
    relu: u32,
    pixel_tiles: u32,     // ceil(pixels / TILE_P) (tiled variant)
    channel_groups: u32,  // ceil(out_channels / 4) (tiled variant)
    total: u32,           // invocations that do work (direct, tiled); workgroups (the others)
    bias_stride: u32,     // 0: bias is (C_out,); C_out: bias is (N, C_out), one row per image
    block_tiles: u32,     // ceil(pixels / (WORKGROUP * PIX)) (register-blocked variants)
    channel_blocks: u32,  // ceil(out_channels / (4 * VEC)) (register-blocked variants)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

fn activate(v: f32) -> f32 {
    return select(v, max(v, 0.0), p.relu != 0u);
}

fn out_index(n: u32, co: u32, pixel: u32) -> u32 {
    return (n * p.out_c_total + p.out_c_offset + co) * p.pixels + pixel;
}

// ---------------------------------------------------------------------------------------------
// The register-blocked kernels (blocked, subgroup, packed8): a workgroup owns one block of
// 4*VEC output channels and a run of WORKGROUP*PIX consecutive pixels of one image; each
// invocation accumulates PIX pixels (WORKGROUP apart) x 4*VEC channels in registers.

struct BlockTile {
    n: u32,
    block: u32,
    first: u32,         // the run's first pixel
    pixels: vec4<u32>,  // the invocation's pixels, clamped to the last one
}

// Workgroup `group`'s image, block and run, and invocation `lid`'s pixels in it. Pixel runs
// vary fastest: consecutive workgroups share a block of weights. Lanes past the last pixel read
// the last pixel and do not store.
fn block_tile(group: u32, lid: u32) -> BlockTile {
    let tile = group % p.block_tiles;
    let first = tile * WORKGROUP * PIX;
    let pixels = min(vec4<u32>(first + lid) + vec4<u32>(0u, 1u, 2u, 3u) * WORKGROUP,
                     vec4<u32>(p.pixels - 1u));
    return BlockTile(group / (p.block_tiles * p.channel_blocks),
                     (group / p.block_tiles) % p.channel_blocks, first, pixels);
}

// Writes channels 4v..4v+3 of one pixel (if it exists) with bias and activation.
fn store_vec4(n: u32, block: u32, pixel: u32, a: vec4<f32>, v: u32) {
    if (pixel >= p.pixels) { return; }
    for (var j = 0u; j < 4u; j++) {
        let co = (block * VEC + v) * 4u + j;
        if (co < p.out_channels) {
            y[out_index(n, co, pixel)] = activate(a[j] + bias[n * p.bias_stride + co]);
        }
    }
}

// Writes pixel r's accumulators. `r` is a constant at every call, so every index into `acc` is
// one: the accumulators stay in registers.
fn store_pixel(n: u32, block: u32, pixel: u32, acc: ptr<function, Accumulators>, r: u32) {
    store_vec4(n, block, pixel, (*acc)[r * VEC], 0u);
    if (VEC > 1u) { store_vec4(n, block, pixel, (*acc)[r * VEC + 1u], 1u); }
    if (VEC > 2u) { store_vec4(n, block, pixel, (*acc)[r * VEC + 2u], 2u); }
    if (VEC > 3u) { store_vec4(n, block, pixel, (*acc)[r * VEC + 3u], 3u); }
    if (VEC > 4u) { store_vec4(n, block, pixel, (*acc)[r * VEC + 4u], 4u); }
    if (VEC > 5u) { store_vec4(n, block, pixel, (*acc)[r * VEC + 5u], 5u); }
    if (VEC > 6u) { store_vec4(n, block, pixel, (*acc)[r * VEC + 6u], 6u); }
    if (VEC > 7u) { store_vec4(n, block, pixel, (*acc)[r * VEC + 7u], 7u); }
}

// Writes the accumulators of invocation `lid`'s pixels of tile `t`.
fn store_tile(t: BlockTile, lid: u32, acc: ptr<function, Accumulators>) {
    store_pixel(t.n, t.block, t.first + lid, acc, 0u);
    if (PIX > 1u) { store_pixel(t.n, t.block, t.first + WORKGROUP + lid, acc, 1u); }
    if (PIX > 2u) { store_pixel(t.n, t.block, t.first + 2u * WORKGROUP + lid, acc, 2u); }
    if (PIX > 3u) { store_pixel(t.n, t.block, t.first + 3u * WORKGROUP + lid, acc, 3u); }
}

// What every convolution kernel file shares (conv2d.wgsl, conv2d_subgroup.wgsl,
// conv2d_packed8.wgsl, conv1x1.wgsl, conv1x1_subgroup.wgsl, conv1x1_packed8.wgsl,
// winograd.wgsl): the parameters, the bindings whose type is the same in all of them, and the
// one epilogue every kernel ends with. The launcher prepends this file first
// (`shader!(..., prelude [...])` in src/pipeline.rs); each kernel file declares its binding 2
// (the weights `w`; winograd.wgsl's scratch) and any of 5 (runs, tiles) and 6 (packed input).
//
// x: (N, C_in, H, W)                   contiguous NCHW
// bias: (C_out,), or (N, C_out) when bias_stride = C_out (one row per image: ASPP folds its
//       pooling branch into the projection this way); a zero buffer when the conv has none
// residual: (N, C_out, H_out, W_out)   added before the activation when has_residual != 0
//                                      (ResNet's identity), else unread
// y: (N, out_c_total, H_out, W_out)    this conv writes channels [out_c_offset, +C_out)

// Mirrors `ConvParams` in src/ops/conv2d/mod.rs field for field (32 x u32 = 128 bytes).
struct Params {
    batch: u32,
    in_channels: u32,    // C_in; rounded up to 8 for the packed8 kernels (their packed copy's count)
    in_h: u32,
    in_w: u32,
    out_channels: u32,
    out_h: u32,
    out_w: u32,
    out_pixels: u32,     // H_out * W_out
    kernel_size: u32,    // k of a k x k kernel (the conv2d* kernels)
    stride: u32,
    dilation: u32,
    pad_h: u32,
    pad_w: u32,
    out_c_total: u32,
    out_c_offset: u32,
    relu: u32,
    bias_stride: u32,    // 0: bias is (C_out,); C_out: bias is (N, C_out)
    has_residual: u32,
    total: u32,          // invocations that do work (direct, tiled, Winograd's transforms);
                         // workgroups (the register-blocked kernels)
    tiles: u32,          // tiled variants: pixel tiles per output row (conv2d), per map (conv1x1)
    channel_groups: u32, // ceil(C_out / 4) (tiled variants)
    pixel_tiles: u32,    // register-blocked variants: runs of pixels (conv2d), pixel blocks (conv1x1)
    channel_blocks: u32, // ceil(C_out / (4 * VEC)) (register-blocked variants)
    tile_group: u32,     // pixel tiles run for every block before the next ones (work_split)
    // Winograd (src/ops/conv2d/winograd.rs, shaders/winograd.wgsl):
    w_image_stride: u32, // 1x1 kernels: weights of image n start (first_point + n) * this (in
                         // the kernel's weight elements) in: the Winograd GEMM's images are the
                         // transform's (point, part of C_in) blocks, each with its own weights;
                         // 0 otherwise
    first_tile: u32,     // the chunk's first tile (n-major over the tile table's rows x columns)
    row_tiles: u32,      // tile rows per image (the tile table's first entries)
    col_tiles: u32,      // tile columns per image (the table's next entries)
    chunk_tiles: u32,    // tiles in the chunk: the GEMM's pixels, the planes' stride
    first_point: u32,    // input transform: the range's first point; GEMM: its first block's
                         // place in the bound weight buffer
    point_count: u32,    // input transform: points in the range (V's planes)
    parts: u32,          // output transform: M's planes per point (parts of C_in, added)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(7) var<storage, read> residual: array<f32>;

// The register-blocked kernels' work split: workgroup `group`'s image, block of output channels
// and pixel tile, as (n, block, tile). Pixel tiles come in groups of `tile_group`, and a group
// runs for every block of channels before the next group starts: its input stays in cache while
// the blocks' weights stream through. (Block-major order streams the whole input once per
// block: a 2048-channel 65x65 map is 35 MB, past the CPU caches of lavapipe, and that halves
// the kernels' speed; src/ops/conv2d/mod.rs sizes the groups.) The last group of an image may
// be narrower.
fn work_split(group: u32) -> vec3<u32> {
    let per_image = p.pixel_tiles * p.channel_blocks;
    let n = group / per_image;
    let g = group - n * per_image;
    let first = (g / (p.tile_group * p.channel_blocks)) * p.tile_group;
    let width = min(p.tile_group, p.pixel_tiles - first);
    let local = g - first * p.channel_blocks;
    return vec3<u32>(n, local / width, first + local % width);
}

// The epilogue: y = relu?(acc + bias + residual) for output channel `co` of image `n` at
// `pixel` (flat index in the output map). One pass, one write: a ResNet block's add and ReLU
// cost no kernel and no extra round trip through memory.
fn store_output(n: u32, co: u32, pixel: u32, acc: f32) {
    var v = acc + bias[n * p.bias_stride + co];
    if (p.has_residual != 0u) {
        v += residual[(n * p.out_channels + co) * p.out_pixels + pixel];
    }
    y[(n * p.out_c_total + p.out_c_offset + co) * p.out_pixels + pixel] =
        select(v, max(v, 0.0), p.relu != 0u);
}

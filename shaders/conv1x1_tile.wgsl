// The register-blocked 1x1 kernels' pixel split and stores (conv1x1.wgsl's blocked,
// conv1x1_subgroup.wgsl, conv1x1_packed8.wgsl). The launcher prepends this file after
// conv_params.wgsl (`p`, `store_output`) and register_tile.wgsl; the kernel declares WORKGROUP.
//
// A workgroup owns one block of 4*VEC output channels and a run of WORKGROUP*PIX consecutive
// pixels of one image; each invocation accumulates PIX pixels (WORKGROUP apart) x 4*VEC channels
// in registers. A 1x1 conv of stride 1 keeps the map size, so input and output pixels share
// their flat index (p.out_pixels).

struct BlockTile {
    n: u32,
    block: u32,
    first: u32,         // the run's first pixel
    pixels: vec4<u32>,  // the invocation's pixels, clamped to the last one
}

// Workgroup `group`'s image, block and run (work_split: shaders/conv_params.wgsl), and
// invocation `lid`'s pixels in it. Lanes past the last pixel read the last pixel and do not
// store.
fn block_tile(group: u32, lid: u32) -> BlockTile {
    let split = work_split(group);
    let first = split.z * WORKGROUP * PIX;
    let pixels = min(vec4<u32>(first + lid) + vec4<u32>(0u, 1u, 2u, 3u) * WORKGROUP,
                     vec4<u32>(p.out_pixels - 1u));
    return BlockTile(split.x, split.y, first, pixels);
}

// Writes channels 4v..4v+3 of one pixel (if it exists) through the epilogue.
fn store_vec4(n: u32, block: u32, pixel: u32, a: vec4<f32>, v: u32) {
    if (pixel >= p.out_pixels) { return; }
    for (var j = 0u; j < 4u; j++) {
        let co = (block * VEC + v) * 4u + j;
        if (co < p.out_channels) {
            store_output(n, co, pixel, a[j]);
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

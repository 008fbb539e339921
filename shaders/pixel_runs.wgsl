// Runs of output pixels cut per tap region, with the stores that follow them, shared
// by the tap-pruned 3x3 kernels (conv3x3.wgsl's blocked, conv3x3_subgroup.wgsl,
// conv3x3_packed8.wgsl). The launchers prepend this file after conv3x3_params.wgsl (`p`, `x`,
// `bias`, `y`, `activate`) and register_tile.wgsl; the kernel declares WORKGROUP.
//
// A run is up to WORKGROUP*PIX pixels of one rectangle of the output whose pixels all read the
// same taps from real input (`ConvGeometry::tap_regions`; src/ops/conv3x3.rs `pixel_runs`
// builds the table): vec4<u32>(y0, x0, w | h << 16, start), the rectangle's pixels start..
// in row-major order. So a tap is live for every pixel of a run or for none, and the region's
// first row and column decide which.

// An invocation's PIX pixels of a run.
struct RunPixels {
    flat: vec4<u32>,   // oy * W_out + ox
    xy_in: vec4<u32>,  // oy * W_in + ox
    live: vec4<bool>,  // inside the region (lanes past its end repeat its last pixel)
}

// The pixels (WORKGROUP apart) of invocation `lid` in `run`.
fn run_pixels(run: vec4<u32>, lid: u32) -> RunPixels {
    let region_w = run.z & 0xffffu;
    let area = region_w * (run.z >> 16u);
    let local = vec4<u32>(run.w + lid) + vec4<u32>(0u, 1u, 2u, 3u) * WORKGROUP;
    let q = min(local, vec4<u32>(area - 1u));
    let oy = vec4<u32>(run.x) + q / region_w;
    let ox = vec4<u32>(run.y) + q % region_w;
    return RunPixels(oy * p.out_w + ox, oy * p.in_w + ox, local < vec4<u32>(area));
}

// A workgroup's image, block of output channels and run, with invocation `lid`'s pixels in it.
struct RunTile {
    n: u32,
    block: u32,
    run: vec4<u32>,
    pixel: RunPixels,
}

// Workgroup `group`'s tile. Pixel runs vary fastest: consecutive workgroups share a block of
// weights.
fn run_tile(group: u32, lid: u32) -> RunTile {
    let run = runs[group % p.pixel_tiles];
    return RunTile(group / (p.pixel_tiles * p.channel_blocks),
                   (group / p.pixel_tiles) % p.channel_blocks, run, run_pixels(run, lid));
}

// Whether a tap at offset (dy, dx) reads real input for the run's region.
fn tap_live(run: vec4<u32>, dy: i32, dx: i32) -> bool {
    let iy = i32(run.x) + dy;
    let ix = i32(run.y) + dx;
    return iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w);
}

// Writes channels 4v..4v+3 of output pixel `pixel` (flat index in the map), if `live`, with
// bias and activation.
fn store_vec4(n: u32, block: u32, pixel: u32, live: bool, a: vec4<f32>, v: u32) {
    if (!live) { return; }
    for (var j = 0u; j < 4u; j++) {
        let co = (block * VEC + v) * 4u + j;
        if (co < p.out_channels) {
            y[(n * p.out_c_total + p.out_c_offset + co) * p.out_pixels + pixel] =
                activate(a[j] + bias[co]);
        }
    }
}

// Writes pixel r's accumulators. `r` is a constant at every call, so every index into `acc` is
// one: the accumulators stay in registers.
fn store_pixel(n: u32, block: u32, pixel: u32, live: bool, acc: ptr<function, Accumulators>,
               r: u32) {
    store_vec4(n, block, pixel, live, (*acc)[r * VEC], 0u);
    if (VEC > 1u) { store_vec4(n, block, pixel, live, (*acc)[r * VEC + 1u], 1u); }
    if (VEC > 2u) { store_vec4(n, block, pixel, live, (*acc)[r * VEC + 2u], 2u); }
    if (VEC > 3u) { store_vec4(n, block, pixel, live, (*acc)[r * VEC + 3u], 3u); }
    if (VEC > 4u) { store_vec4(n, block, pixel, live, (*acc)[r * VEC + 4u], 4u); }
    if (VEC > 5u) { store_vec4(n, block, pixel, live, (*acc)[r * VEC + 5u], 5u); }
    if (VEC > 6u) { store_vec4(n, block, pixel, live, (*acc)[r * VEC + 6u], 6u); }
    if (VEC > 7u) { store_vec4(n, block, pixel, live, (*acc)[r * VEC + 7u], 7u); }
}

// Writes the accumulators of invocation `lid`'s pixels of tile `t`. The pixels are recomputed
// from the run rather than kept live through the tap loops (registers are scarce there).
fn store_run(t: RunTile, lid: u32, acc: ptr<function, Accumulators>) {
    let out = run_pixels(t.run, lid);
    store_pixel(t.n, t.block, out.flat.x, out.live.x, acc, 0u);
    if (PIX > 1u) { store_pixel(t.n, t.block, out.flat.y, out.live.y, acc, 1u); }
    if (PIX > 2u) { store_pixel(t.n, t.block, out.flat.z, out.live.z, acc, 2u); }
    if (PIX > 3u) { store_pixel(t.n, t.block, out.flat.w, out.live.w, acc, 3u); }
}

// Runs of output pixels cut per tap region, with the stores that follow them, shared by the
// tap-pruned k x k kernels (conv2d.wgsl's blocked, conv2d_subgroup.wgsl, conv2d_packed8.wgsl).
// The launcher prepends this file after conv_params.wgsl (`p`, `x`, `store_output`) and
// register_tile.wgsl; the kernel declares WORKGROUP.
//
// A run is up to WORKGROUP*PIX pixels of one rectangle of the output whose pixels all read the
// same taps from real input (`ConvGeometry::tap_regions`; src/ops/conv2d/mod.rs `pixel_runs`
// builds the table): vec4<u32>(y0, x0, w | h << 16, start), the rectangle's pixels start..
// in row-major order. So a tap is live for every pixel of a run or for none, and the region's
// first row and column decide which.
//
// runs: (pixel_tiles,) of vec4<u32>   one run per workgroup
@group(0) @binding(5) var<storage, read> runs: array<vec4<u32>>;

// An invocation's PIX pixels of a run.
struct RunPixels {
    flat: vec4<u32>,   // oy * W_out + ox
    xy_in: vec4<u32>,  // the input pixel tap (0, 0) would read without padding: the output
                       // pixel times the stride, (oy * stride) * W_in + ox * stride
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
    return RunPixels(oy * p.out_w + ox, (oy * p.in_w + ox) * p.stride, local < vec4<u32>(area));
}

// A workgroup's image, block of output channels and run, with invocation `lid`'s pixels in it.
struct RunTile {
    n: u32,
    block: u32,
    run: vec4<u32>,
    pixel: RunPixels,
}

// Workgroup `group`'s tile (work_split: shaders/conv_params.wgsl).
fn run_tile(group: u32, lid: u32) -> RunTile {
    let split = work_split(group);
    let run = runs[split.z];
    return RunTile(split.x, split.y, run, run_pixels(run, lid));
}

// Whether a tap at offset (dy, dx) from the strided pixel reads real input for the run's region.
fn tap_live(run: vec4<u32>, dy: i32, dx: i32) -> bool {
    let iy = i32(run.x * p.stride) + dy;
    let ix = i32(run.y * p.stride) + dx;
    return iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w);
}

// Writes channels 4v..4v+3 of output pixel `pixel` (flat index in the map), if `live`, through
// the epilogue.
fn store_vec4(n: u32, block: u32, pixel: u32, live: bool, a: vec4<f32>, v: u32) {
    if (!live) { return; }
    for (var j = 0u; j < 4u; j++) {
        let co = (block * VEC + v) * 4u + j;
        if (co < p.out_channels) {
            store_output(n, co, pixel, a[j]);
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

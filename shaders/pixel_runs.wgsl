// Runs of output pixels cut per tap region, shared by the tap-pruned 3x3 kernels
// (conv3x3.wgsl's blocked, conv3x3_subgroup.wgsl). The launchers prepend this file; the kernel
// declares `p` (with out_w and in_w) and WORKGROUP.
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

// Whether a tap at offset (dy, dx) reads real input for the run's region.
fn tap_live(run: vec4<u32>, dy: i32, dx: i32) -> bool {
    let iy = i32(run.x) + dy;
    let ix = i32(run.y) + dx;
    return iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w);
}

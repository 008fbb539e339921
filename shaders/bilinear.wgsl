// PyTorch's bilinear source coordinates (upsample_bilinear2d, area_pixel_compute_source_index),
// shared by the kernels that resize (interpolate.wgsl, resize_argmax.wgsl): with align_corners
// the corner pixels of input and output coincide, src = dst * scale with scale = (in - 1) /
// (out - 1); without, pixel centres are mapped, src = max((dst + 0.5) * scale - 0.5, 0) with
// scale = in / out. Scales arrive precomputed in f32 exactly as PyTorch computes them
// (src/shape.rs, bilinear_scale). Returns (i0, i1) and the weight of i1 along one axis.
fn bilinear_source(dst: u32, in_size: u32, scale: f32, align_corners: bool) -> vec3<f32> {
    var src: f32;
    if (align_corners) {
        src = scale * f32(dst);
    } else {
        src = max(scale * (f32(dst) + 0.5) - 0.5, 0.0);
    }
    let i0 = min(u32(src), in_size - 1u);
    let i1 = min(i0 + 1u, in_size - 1u);
    let lambda = clamp(src - f32(i0), 0.0, 1.0);
    return vec3<f32>(f32(i0), f32(i1), lambda);
}

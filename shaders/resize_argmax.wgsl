// The class map of segmentation logits at another size: bilinear resize (align_corners=False,
// PyTorch's coordinates and association, as shaders/interpolate.wgsl) followed by the argmax
// over channels, in one pass, so the resized logits are never written: a photo of 4000 x 3000
// with 21 classes would need a 1 GB tensor. Ties go to the lower class, as torch.argmax.
//
// x: (C, H_in, W_in)                 one image's logits, contiguous
// y: ceil(H_out * W_out / 4) of u32  class indices (< 256) packed 4 per word, pixel i in byte
//                                    i % 4 (little-endian: the bytes are the class map)
//
// Each invocation computes 4 consecutive pixels of the flat output (one word), so no two
// invocations write one word.

// Mirrors `ResizeArgmaxParams` in src/ops/resize_argmax.rs field for field.
struct Params {
    channels: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    scale_h: f32,
    scale_w: f32,
    words: u32,        // ceil(H_out * W_out / 4): the invocations that do work
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;

override WORKGROUP: u32 = 64u;

// The class of output pixel `pixel` (flat index): its bilinear logit for every channel, the
// first maximum.
fn class_of(pixel: u32) -> u32 {
    let oy = pixel / p.out_w;
    let ox = pixel - oy * p.out_w;
    let sy = bilinear_source(oy, p.in_h, p.scale_h, false);
    let sx = bilinear_source(ox, p.in_w, p.scale_w, false);
    let r0 = u32(sy.x) * p.in_w;
    let r1 = u32(sy.y) * p.in_w;
    let x0 = u32(sx.x);
    let x1 = u32(sx.y);
    let plane = p.in_h * p.in_w;
    var best = 0u;
    var best_value = 0.0;
    for (var c = 0u; c < p.channels; c++) {
        let base = c * plane;
        let top = (1.0 - sx.z) * x[base + r0 + x0] + sx.z * x[base + r0 + x1];
        let bottom = (1.0 - sx.z) * x[base + r1 + x0] + sx.z * x[base + r1 + x1];
        let v = (1.0 - sy.z) * top + sy.z * bottom;
        if (c == 0u || v > best_value) {
            best = c;
            best_value = v;
        }
    }
    return best;
}

@compute @workgroup_size(WORKGROUP)
fn resize_argmax(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let word = (wid.x + wid.y * nwg.x) * WORKGROUP + lid;
    if (word >= p.words) { return; }
    let pixels = p.out_h * p.out_w;
    var packed = 0u;
    for (var k = 0u; k < 4u; k++) {
        let pixel = word * 4u + k;
        if (pixel < pixels) {
            packed = packed | (class_of(pixel) << (8u * k));
        }
    }
    y[word] = packed;
}

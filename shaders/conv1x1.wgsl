// 1x1 convolution: a GEMM over channels, y[n, co, p] = sum_ci w[co, ci] * x[n, ci, p] + bias[co],
// with p the flattened pixel index. Optional fused ReLU.
//
// x: (N, C_in, H, W)                  contiguous NCHW
// y: (N, out_c_total, H, W)           this conv writes channels [out_c_offset, +C_out)
// conv1x1_direct: w (C_out, C_in)     PyTorch's layout, one output element per invocation
// conv1x1_tiled:  w (ceil(C_out/4), C_in) of vec4: 4 output channels side by side; each
//                 invocation computes 4 channels x TILE_P consecutive pixels.
// bias: (C_out,), or (N, C_out) when bias_stride = C_out (a graph folding a per-image constant
//       branch into this conv); a zero buffer when the conv has none

// Mirrors `Conv1x1Params` in src/ops/conv1x1.rs field for field.
struct Params {
    batch: u32,
    in_channels: u32,
    pixels: u32,          // H * W
    out_channels: u32,
    out_c_total: u32,
    out_c_offset: u32,
    relu: u32,
    pixel_tiles: u32,     // ceil(pixels / TILE_P) (tiled variant)
    channel_groups: u32,  // ceil(out_channels / 4) (tiled variant)
    total: u32,           // invocations that do work (direct, tiled); workgroups (blocked)
    bias_stride: u32,     // 0: bias is (C_out,); C_out: bias is (N, C_out), one row per image
    block_tiles: u32,     // ceil(pixels / (WORKGROUP * PIX)) (blocked variant)
    channel_blocks: u32,  // ceil(out_channels / (4 * VEC)) (blocked variant)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// Declared as vec4 for the tiled variant; the direct variant indexes scalars out of it.
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

override WORKGROUP: u32 = 64u;
const TILE_P: u32 = 4u;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WORKGROUP + lid;
}

fn activate(v: f32) -> f32 {
    return select(v, max(v, 0.0), p.relu != 0u);
}

fn out_index(n: u32, co: u32, pixel: u32) -> u32 {
    return (n * p.out_c_total + p.out_c_offset + co) * p.pixels + pixel;
}

@compute @workgroup_size(WORKGROUP)
fn conv1x1_direct(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let g = linear_id(wid, nwg, lid);
    if (g >= p.total) { return; }
    let pixel = g % p.pixels;
    let co = (g / p.pixels) % p.out_channels;
    let n = g / (p.pixels * p.out_channels);
    var acc = 0.0;
    for (var ci = 0u; ci < p.in_channels; ci++) {
        let wi = co * p.in_channels + ci;
        acc += x[(n * p.in_channels + ci) * p.pixels + pixel] * w[wi / 4u][wi % 4u];
    }
    y[out_index(n, co, pixel)] = activate(acc + bias[n * p.bias_stride + co]);
}

@compute @workgroup_size(WORKGROUP)
fn conv1x1_tiled(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let g = linear_id(wid, nwg, lid);
    if (g >= p.total) { return; }
    // Neighbouring invocations share a channel group (same weights) and walk along the pixels.
    let tile = g % p.pixel_tiles;
    let group = (g / p.pixel_tiles) % p.channel_groups;
    let n = g / (p.pixel_tiles * p.channel_groups);
    let p0 = tile * TILE_P;
    let last = p.pixels - 1u;

    var acc: array<vec4<f32>, TILE_P>;
    for (var ci = 0u; ci < p.in_channels; ci++) {
        let wv = w[group * p.in_channels + ci];
        let plane = (n * p.in_channels + ci) * p.pixels;
        for (var t = 0u; t < TILE_P; t++) {
            // Past the last pixel the clamped read is discarded at the store below.
            acc[t] += x[plane + min(p0 + t, last)] * wv;
        }
    }
    for (var t = 0u; t < TILE_P; t++) {
        let pixel = p0 + t;
        if (pixel >= p.pixels) { break; }
        for (var j = 0u; j < 4u; j++) {
            let co = group * 4u + j;
            if (co >= p.out_channels) { break; }
            y[out_index(n, co, pixel)] = activate(acc[t][j] + bias[n * p.bias_stride + co]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// conv1x1_blocked: a register-blocked GEMM.
//
// w: (ceil(C_out / (4 VEC)), C_in, VEC) of vec4 — for one block of 4*VEC output channels, the
//    weights of consecutive input channels are consecutive, 4*VEC floats each.
//
// A workgroup owns one block of 4*VEC output channels and a run of WORKGROUP*PIX consecutive
// pixels of one image; each invocation accumulates PIX pixels (WORKGROUP apart) x 4*VEC channels
// in registers. The weight address depends on the workgroup alone (uniform: one load broadcast
// to every lane on CPU rasterizers, one cache line on GPUs). Per input channel an invocation
// does PIX loads of x, VEC vec4 loads of w and 4*VEC*PIX FMAs.

// vec4 groups of output channels per invocation (4*VEC channels), 1..8.
override VEC: u32 = 4u;
// Pixels per invocation, 1..4.
override PIX: u32 = 1u;
const MAX_VEC: u32 = 8u;
const MAX_PIX: u32 = 4u;

@compute @workgroup_size(WORKGROUP)
fn conv1x1_blocked(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * nwg.x;
    if (group >= p.total) { return; }
    // Pixel runs vary fastest: consecutive workgroups share a block of weights.
    let tile = group % p.block_tiles;
    let block = (group / p.block_tiles) % p.channel_blocks;
    let n = group / (p.block_tiles * p.channel_blocks);
    let first = tile * WORKGROUP * PIX;

    // Lanes past the last pixel read the last pixel and do not store.
    var offset: array<u32, MAX_PIX>;
    for (var r = 0u; r < PIX; r++) {
        offset[r] = n * p.in_channels * p.pixels + min(first + r * WORKGROUP + lid, p.pixels - 1u);
    }
    var acc: array<vec4<f32>, MAX_PIX * MAX_VEC>; // [r * VEC + v]
    var wi = block * p.in_channels * VEC;
    for (var ci = 0u; ci < p.in_channels; ci++) {
        var xv: array<f32, MAX_PIX>;
        for (var r = 0u; r < PIX; r++) {
            xv[r] = x[offset[r]];
            offset[r] += p.pixels;
        }
        for (var v = 0u; v < VEC; v++) {
            let wv = w[wi + v];
            for (var r = 0u; r < PIX; r++) {
                acc[r * VEC + v] = fma(vec4<f32>(xv[r]), wv, acc[r * VEC + v]);
            }
        }
        wi += VEC;
    }

    for (var r = 0u; r < PIX; r++) {
        let pixel = first + r * WORKGROUP + lid;
        if (pixel >= p.pixels) { break; }
        for (var v = 0u; v < VEC; v++) {
            for (var j = 0u; j < 4u; j++) {
                let co = (block * VEC + v) * 4u + j;
                if (co < p.out_channels) {
                    y[out_index(n, co, pixel)] =
                        activate(acc[r * VEC + v][j] + bias[n * p.bias_stride + co]);
                }
            }
        }
    }
}

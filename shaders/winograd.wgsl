// Winograd F(m x m, 3 x 3) for 3x3 convolutions of stride 1 and any dilation: the input and
// output transforms around the GEMM (a 1x1 kernel). See src/ops/conv2d/winograd.rs for the
// method (residue classes of the dilation, chunks of tiles) and the launcher.
//
// x: (N, C_in, H, W)                          contiguous NCHW
// scratch, winograd_input writes V: (P, C_in', T) for the P = p.point_count points from
//    p.first_point on (points xi = i * a + j, a = m + 2), T = p.chunk_tiles, C_in' =
//    p.total / T (the parts of C_in, each rounded up to PACK); with PACK = 8 the GEMM's
//    packed layout (P, C_in' / 8, T, 8), zeros past C_in
// scratch, winograd_output reads M: (a^2, parts, C_out, T), the GEMM's products of each point
//    and part of C_in (p.parts), summed here
// y, bias, residual and the epilogue store_output(): shaders/conv_params.wgsl (prepended)
// tiles: (p.row_tiles + p.col_tiles,) u32: the tiles' first output rows, then first columns
//
// Tile t of the chunk is tile p.first_tile + t of the layer: image n, tile row r, tile column
// q, n-major. It covers outputs (tiles[r] + i d, tiles[row_tiles + q] + j d) for i, j < m and
// reads inputs (tiles[r] - pad_h + i d, tiles[row_tiles + q] - pad_w + j d) for i, j < a,
// with d the dilation; reads outside the map are zeros. Tiles past the layer's last (the last
// chunk may be short) transform to zeros and store nothing.

@group(0) @binding(2) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(5) var<storage, read> tiles: array<u32>;

override WORKGROUP: u32 = 64u;
// Channels packed together in V: 1 (planes) or 8 (the packed8 GEMM's layout).
override PACK: u32 = 1u;

// The transforms, spelled out so that every index is a constant and the tiles stay in
// registers (lavapipe keeps an array indexed at run time in memory, one access per lane).
// The matrices are src/ops/conv2d/winograd.rs's; its tests check them against a direct
// correlation.

// F(2x2, 3x3), points 0, 1, -1: B^T and A^T on one column.
fn bt4(d: array<f32, 4>) -> array<f32, 4> {
    return array<f32, 4>(d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]);
}

fn at4(m: array<f32, 4>) -> array<f32, 2> {
    return array<f32, 2>(m[0] + m[1] + m[2], m[1] - m[2] - m[3]);
}

// F(3x3, 3x3), points 0, 1, -1, 2.
fn bt5(d: array<f32, 5>) -> array<f32, 5> {
    return array<f32, 5>(
        2.0 * (d[0] - d[2]) + d[3] - d[1],
        d[3] - d[2] - 2.0 * d[1],
        d[3] - 3.0 * d[2] + 2.0 * d[1],
        d[3] - d[1],
        d[4] - d[2] + 2.0 * (d[1] - d[3]),
    );
}

fn at5(m: array<f32, 5>) -> array<f32, 3> {
    let a = m[1] + m[2];
    return array<f32, 3>(m[0] + a + m[3], m[1] - m[2] + 2.0 * m[3], a + 4.0 * m[3] + m[4]);
}

// F(4x4, 3x3), points 0, 1, -1, 2, -2.
fn bt6(d: array<f32, 6>) -> array<f32, 6> {
    return array<f32, 6>(
        4.0 * d[0] - 5.0 * d[2] + d[4],
        d[3] + d[4] - 4.0 * (d[1] + d[2]),
        d[4] - d[3] + 4.0 * (d[1] - d[2]),
        d[4] - d[2] + 2.0 * (d[3] - d[1]),
        d[4] - d[2] + 2.0 * (d[1] - d[3]),
        4.0 * d[1] - 5.0 * d[3] + d[5],
    );
}

fn at6(m: array<f32, 6>) -> array<f32, 4> {
    let a = m[1] + m[2];
    let b = m[1] - m[2];
    let c = m[3] + m[4];
    let d = m[3] - m[4];
    return array<f32, 4>(m[0] + a + c, b + 2.0 * d, a + 4.0 * c, b + 8.0 * d + m[5]);
}

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WORKGROUP + lid;
}

// Tile `local` of the chunk: (n, tile row, tile column); n = p.batch past the layer's last.
fn tile_of(local: u32) -> vec3<u32> {
    let tile = p.first_tile + local;
    let per_image = p.row_tiles * p.col_tiles;
    let n = min(tile / per_image, p.batch);
    let within = tile % per_image;
    return vec3<u32>(n, within / p.col_tiles, within % p.col_tiles);
}

// An input transform invocation: channel c of tile `local`, where its inputs start and its
// outputs go. Every division is done here, once: lavapipe divides integers lane by lane.
struct InputTile {
    live: bool,   // a real tile and a real channel (else its V is zeros)
    plane: u32,   // x's offset of (n, c)
    y0: i32,      // the tile's first input row and column (may be in the padding)
    x0: i32,
    out: u32,     // V's offset of (first point of the range, c, local)
    step: u32,    // V's stride between points
}

fn input_tile(g: u32) -> InputTile {
    let local = g % p.chunk_tiles;
    let c = g / p.chunk_tiles;
    let t = tile_of(local);
    let live = t.x < p.batch && c < p.in_channels;
    let y0 = i32(tiles[t.y]) - i32(p.pad_h);
    let x0 = i32(tiles[p.row_tiles + t.z]) - i32(p.pad_w);
    let plane = (min(t.x, p.batch - 1u) * p.in_channels + c) * p.in_h * p.in_w;
    let groups = p.total / p.chunk_tiles / PACK;
    let out = ((c / PACK) * p.chunk_tiles + local) * PACK + c % PACK;
    return InputTile(live, plane, y0, x0, out, groups * p.chunk_tiles * PACK);
}

// Input (row a, column b) of the tile, 0 outside the map.
fn input_at(t: InputTile, a: u32, b: u32) -> f32 {
    let iy = t.y0 + i32(a * p.dilation);
    let ix = t.x0 + i32(b * p.dilation);
    let inside = t.live && iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w);
    if (!inside) { return 0.0; }
    return x[t.plane + u32(iy) * p.in_w + u32(ix)];
}

// Writes point (i, j) of V if it is in this dispatch's range (V holds one range of points).
fn store_point(t: InputTile, alpha: u32, i: u32, j: u32, v: f32) {
    let k = i * alpha + j - p.first_point;
    if (k >= p.point_count) { return; }
    scratch[t.out + k * t.step] = v;
}

// One invocation per (input channel, tile): its inputs d to V = B^T d B.
@compute @workgroup_size(WORKGROUP)
fn winograd_input_f2(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let g = linear_id(wid, nwg, lid);
    if (g >= p.total) { return; }
    let t = input_tile(g);
    // Columns first: e[b] = B^T d[., b].
    var e: array<array<f32, 4>, 4>;
    for (var b = 0u; b < 4u; b++) {
        let col = bt4(array<f32, 4>(input_at(t, 0u, b), input_at(t, 1u, b), input_at(t, 2u, b),
                                    input_at(t, 3u, b)));
        for (var i = 0u; i < 4u; i++) { e[i][b] = col[i]; }
    }
    for (var i = 0u; i < 4u; i++) {
        let row = bt4(e[i]);
        for (var j = 0u; j < 4u; j++) { store_point(t, 4u, i, j, row[j]); }
    }
}

@compute @workgroup_size(WORKGROUP)
fn winograd_input_f3(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let g = linear_id(wid, nwg, lid);
    if (g >= p.total) { return; }
    let t = input_tile(g);
    var e: array<array<f32, 5>, 5>;
    for (var b = 0u; b < 5u; b++) {
        let col = bt5(array<f32, 5>(input_at(t, 0u, b), input_at(t, 1u, b), input_at(t, 2u, b),
                                    input_at(t, 3u, b), input_at(t, 4u, b)));
        for (var i = 0u; i < 5u; i++) { e[i][b] = col[i]; }
    }
    for (var i = 0u; i < 5u; i++) {
        let row = bt5(e[i]);
        for (var j = 0u; j < 5u; j++) { store_point(t, 5u, i, j, row[j]); }
    }
}

@compute @workgroup_size(WORKGROUP)
fn winograd_input_f4(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let g = linear_id(wid, nwg, lid);
    if (g >= p.total) { return; }
    let t = input_tile(g);
    var e: array<array<f32, 6>, 6>;
    for (var b = 0u; b < 6u; b++) {
        let col = bt6(array<f32, 6>(input_at(t, 0u, b), input_at(t, 1u, b), input_at(t, 2u, b),
                                    input_at(t, 3u, b), input_at(t, 4u, b), input_at(t, 5u, b)));
        for (var i = 0u; i < 6u; i++) { e[i][b] = col[i]; }
    }
    for (var i = 0u; i < 6u; i++) {
        let row = bt6(e[i]);
        for (var j = 0u; j < 6u; j++) { store_point(t, 6u, i, j, row[j]); }
    }
}

// An output transform invocation: channel co of tile `local`.
struct OutputTile {
    local: u32,
    co: u32,
    n: u32,
    y0: u32,
    x0: u32,
}

fn output_tile(g: u32) -> OutputTile {
    let local = g % p.chunk_tiles;
    let t = tile_of(local);
    return OutputTile(local, g / p.chunk_tiles, t.x, tiles[t.y], tiles[p.row_tiles + t.z]);
}

// M's point (i, j) for the invocation's channel and tile: the sum of its parts of C_in.
fn product_at(t: OutputTile, alpha: u32, i: u32, j: u32) -> f32 {
    let first = (i * alpha + j) * p.parts;
    var sum = 0.0;
    for (var part = 0u; part < p.parts; part++) {
        sum += scratch[((first + part) * p.out_channels + t.co) * p.chunk_tiles + t.local];
    }
    return sum;
}

// Output (i, j) of the tile through the epilogue, if it is on the map.
fn store_tile_output(t: OutputTile, i: u32, j: u32, v: f32) {
    let oy = t.y0 + i * p.dilation;
    let ox = t.x0 + j * p.dilation;
    if (oy < p.out_h && ox < p.out_w) {
        store_output(t.n, t.co, oy * p.out_w + ox, v);
    }
}

// One invocation per (output channel, tile): its M to Y = A^T M A, stored.
@compute @workgroup_size(WORKGROUP)
fn winograd_output_f2(@builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let g = linear_id(wid, nwg, lid);
    if (g >= p.total) { return; }
    let t = output_tile(g);
    if (t.n >= p.batch) { return; }
    var e: array<array<f32, 4>, 2>;
    for (var b = 0u; b < 4u; b++) {
        let col = at4(array<f32, 4>(product_at(t, 4u, 0u, b), product_at(t, 4u, 1u, b),
                                    product_at(t, 4u, 2u, b), product_at(t, 4u, 3u, b)));
        for (var i = 0u; i < 2u; i++) { e[i][b] = col[i]; }
    }
    for (var i = 0u; i < 2u; i++) {
        let row = at4(e[i]);
        for (var j = 0u; j < 2u; j++) { store_tile_output(t, i, j, row[j]); }
    }
}

@compute @workgroup_size(WORKGROUP)
fn winograd_output_f3(@builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let g = linear_id(wid, nwg, lid);
    if (g >= p.total) { return; }
    let t = output_tile(g);
    if (t.n >= p.batch) { return; }
    var e: array<array<f32, 5>, 3>;
    for (var b = 0u; b < 5u; b++) {
        let col = at5(array<f32, 5>(product_at(t, 5u, 0u, b), product_at(t, 5u, 1u, b),
                                    product_at(t, 5u, 2u, b), product_at(t, 5u, 3u, b),
                                    product_at(t, 5u, 4u, b)));
        for (var i = 0u; i < 3u; i++) { e[i][b] = col[i]; }
    }
    for (var i = 0u; i < 3u; i++) {
        let row = at5(e[i]);
        for (var j = 0u; j < 3u; j++) { store_tile_output(t, i, j, row[j]); }
    }
}

@compute @workgroup_size(WORKGROUP)
fn winograd_output_f4(@builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let g = linear_id(wid, nwg, lid);
    if (g >= p.total) { return; }
    let t = output_tile(g);
    if (t.n >= p.batch) { return; }
    var e: array<array<f32, 6>, 4>;
    for (var b = 0u; b < 6u; b++) {
        let col = at6(array<f32, 6>(product_at(t, 6u, 0u, b), product_at(t, 6u, 1u, b),
                                    product_at(t, 6u, 2u, b), product_at(t, 6u, 3u, b),
                                    product_at(t, 6u, 4u, b), product_at(t, 6u, 5u, b)));
        for (var i = 0u; i < 4u; i++) { e[i][b] = col[i]; }
    }
    for (var i = 0u; i < 4u; i++) {
        let row = at6(e[i]);
        for (var j = 0u; j < 4u; j++) { store_tile_output(t, i, j, row[j]); }
    }
}

//! Photos in and out of `atrous segment`: PNG and JPEG decoding that agrees with Pillow, the
//! preprocessing of torchvision's DeepLabV3 weights reproduced bit for bit, and the PASCAL VOC
//! class-map and overlay outputs.
//!
//! Pixel layouts used throughout:
//! * [`RgbImage::pixels`]: 8-bit RGB, interleaved, row-major, top row first, no row padding:
//!   channel `c` of pixel `(x, y)` is `pixels[(y * width + x) * 3 + c]`.
//! * Tensors: `f32`, NCHW with N = 1 and C = 3 in R, G, B order: element `(c, y, x)` is at
//!   `(c * height + y) * width + x`.
//! * Class maps: one `u8` class index per pixel, row-major like the image.
//!
//! The reference is what a PyTorch user writes:
//! `weights.transforms()(Image.open(p).convert("RGB"))`. Matching it bit for bit, not just
//! closely, means a difference between atrous' logits and PyTorch's can only come from the
//! network, never from getting the photo in.
//!
//! How Pillow 13 turns each PNG into RGB (modes from `_MODES` in src/PIL/PngImagePlugin.py,
//! unpackers in src/libImaging/Unpack.c, conversions in src/libImaging/Convert.c):
//!
//! | PNG                      | Pillow mode (rawmode)  | to RGB                                   |
//! |--------------------------|------------------------|------------------------------------------|
//! | grey 1/2/4-bit           | `1` / `L` (`L;2`,`L;4`)| value × 255, 85 or 17, replicated        |
//! | grey 8-bit               | `L`                    | replicated (`l2rgb`)                     |
//! | grey 16-bit (± tRNS)     | `I;16` (`I;16B`)       | `min(v, 255)`: clipped, not scaled (`I16_RGB`) |
//! | grey+alpha 8-bit         | `LA`                   | grey replicated, alpha dropped (`la2rgb`)|
//! | grey+alpha 16-bit        | `RGBA` (`LA;16B`)      | high byte of grey, alpha dropped         |
//! | RGB 8 / 16-bit (± tRNS)  | `RGB` (`RGB;16B`)      | 16-bit: high byte of each sample         |
//! | RGBA 8 / 16-bit          | `RGBA` (`RGBA;16B`)    | alpha dropped, no compositing (`rgba2rgb`)|
//! | palette 1/2/4/8-bit      | `P` (`P;1`, ...)       | palette lookup, tRNS alphas dropped; entries past PLTE are black (`p2rgb`) |
//!
//! No gamma, sRGB or ICC chunk is applied and EXIF orientation is ignored, as in Pillow.
//!
//! JPEG: Pillow's libjpeg-turbo gives `L` (replicated) or `RGB`; here zune-jpeg (inside the
//! `image` crate) decodes, equal up to IDCT and chroma-upsampling rounding (a mean of about 0.25
//! per sample on a 4:2:0 photo, see the tests). CMYK/YCCK JPEGs, which Pillow opens as `CMYK`,
//! are converted by zune's own formula and may differ more.
//!
//! PNG goes through the png crate directly rather than `image`, whose decoder turns 16-bit grey
//! with a tRNS chunk into 16-bit grey+alpha, two files Pillow treats differently (clip vs high
//! byte).

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::Path;

use ::image::{ColorType, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};

use crate::error::{Error, Result};
use crate::files::write_atomically;

/// The most pixels a photo may have: 64 Mi (8192 × 8192). Checked on the header, before any
/// pixel memory is allocated, so a forged or absurd file costs nothing; the largest accepted
/// photo needs at most 256 MiB while decoding (4 bytes a pixel) and 192 MiB as RGB.
pub const MAX_PIXELS: u64 = 1 << 26;

/// Files longer than this are refused before being read. The largest legitimate one, a
/// [`MAX_PIXELS`] 16-bit RGBA PNG stored without compression, is 512 MiB and a bit.
const MAX_FILE_BYTES: u64 = 1 << 30;

/// What the decoders may allocate for themselves besides the output pixels (the png crate
/// counts its row buffers and decompressed metadata chunks, `image` its JPEG buffers): as much
/// as a maximum-size 16-bit RGBA image could need, so only forged files hit it.
const MAX_DECODER_BYTES: u64 = MAX_PIXELS * 8;

/// ImageNet statistics of torchvision's DeepLabV3 weights. torchvision turns the Python floats
/// (doubles) into a float32 tensor, so each value is the double rounded to f32; writing
/// `0.485_f64 as f32` rounds the same way a direct f32 literal might not.
const MEAN: [f32; 3] = [0.485_f64 as f32, 0.456_f64 as f32, 0.406_f64 as f32];
const STD: [f32; 3] = [0.229_f64 as f32, 0.224_f64 as f32, 0.225_f64 as f32];

/// An 8-bit RGB photo; see the module documentation for the layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl RgbImage {
    /// The fields are public, so every consumer re-checks that they agree instead of indexing
    /// out of bounds.
    fn check(&self, what: &str) -> Result<usize> {
        let count = self.width.checked_mul(self.height);
        match count.and_then(|n| n.checked_mul(3)) {
            Some(len) if len == self.pixels.len() && len > 0 => Ok(count.unwrap_or(0)),
            _ => Err(Error::invalid(
                what,
                format!(
                    "expected a non-empty {} x {} RGB image ({} x {} x 3 bytes), found {} bytes",
                    self.width,
                    self.height,
                    self.width,
                    self.height,
                    self.pixels.len()
                ),
            )),
        }
    }
}

// ---------------------------------------------------------------- decoding

/// Reads and decodes a PNG or JPEG file (the format is taken from the content, as Pillow does,
/// not from the extension).
pub fn open_rgb(path: &Path) -> Result<RgbImage> {
    let fail = |message: String| Error::file(path.display(), message);
    let file = File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let len = file
        .metadata()
        .map_err(|e| fail(format!("cannot read: {e}")))?
        .len();
    if len > MAX_FILE_BYTES {
        return Err(fail(format!(
            "is {len} bytes, more than the {MAX_FILE_BYTES} bytes accepted for a photo"
        )));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // `take` keeps a file that grows while being read within the limit too.
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(fail(format!(
            "is more than the {MAX_FILE_BYTES} bytes accepted for a photo"
        )));
    }
    decode_rgb(&path.display().to_string(), &bytes)
}

/// Decodes a PNG or JPEG held in memory into RGB exactly as Pillow's
/// `Image.open(p).convert("RGB")` does (JPEG: up to IDCT rounding, see the tests). `name` is
/// the file name used in error messages.
pub fn decode_rgb(name: &str, bytes: &[u8]) -> Result<RgbImage> {
    const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.starts_with(PNG_SIGNATURE) {
        decode_png(name, bytes)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        decode_jpeg(name, bytes)
    } else {
        Err(Error::file(
            name,
            format!(
                "expected a PNG or JPEG image, found {}",
                describe_content(bytes)
            ),
        ))
    }
}

/// Names the format of a file we cannot read, so the user knows what to convert.
fn describe_content(bytes: &[u8]) -> String {
    let known: [(&[u8], &str); 6] = [
        (b"GIF8", "a GIF image"),
        (b"BM", "a BMP image"),
        (b"II*\0", "a TIFF image"),
        (b"MM\0*", "a TIFF image"),
        (b"\x89PNG", "a damaged PNG signature"),
        (b"\0\0\0\x0cjP  ", "a JPEG 2000 image"),
    ];
    if bytes.is_empty() {
        return "an empty file".into();
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return "a WebP image".into();
    }
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return "an ISO media file (HEIF/AVIF?)".into();
    }
    if let Some((_, what)) = known.iter().find(|(magic, _)| bytes.starts_with(magic)) {
        return (*what).into();
    }
    let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("a file starting with bytes {}", head.join(" "))
}

/// Refuses images without pixels or over [`MAX_PIXELS`]; called on header dimensions only.
fn check_size(name: &str, width: u32, height: u32) -> Result<()> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels == 0 {
        return Err(Error::file(
            name,
            format!("expected an image with pixels, found a {width} x {height} header"),
        ));
    }
    if pixels > MAX_PIXELS {
        return Err(Error::file(
            name,
            format!(
                "image is {width} x {height} = {pixels} pixels, more than the limit of \
                 {MAX_PIXELS} pixels (64 Mi, e.g. 8192 x 8192); scale it down first"
            ),
        ));
    }
    Ok(())
}

/// How the decoder's raw samples become RGB.
#[derive(Clone, Copy)]
enum Samples {
    Gray8,
    GrayAlpha8,
    Rgb8,
    Rgba8,
    /// Big-endian 16-bit grey, clipped the way Pillow's `I16_RGB` does.
    Gray16Clipped,
}

impl Samples {
    fn bytes_per_pixel(self) -> usize {
        match self {
            Samples::Gray8 => 1,
            Samples::GrayAlpha8 | Samples::Gray16Clipped => 2,
            Samples::Rgb8 => 3,
            Samples::Rgba8 => 4,
        }
    }
}

/// Converts `pixels` raw samples at the start of `buf` into RGB in the same buffer, so the
/// decode needs one allocation of max(raw, RGB) bytes instead of both. `buf` holds at least
/// `pixels * max(3, bytes_per_pixel)` bytes.
fn to_rgb_in_place(buf: &mut [u8], pixels: usize, samples: Samples) {
    match samples {
        Samples::Rgb8 => {}
        // Shrinking: walking forward, each write lands before every unread sample.
        Samples::Rgba8 => {
            for i in 0..pixels {
                buf.copy_within(4 * i..4 * i + 3, 3 * i);
            }
        }
        // Growing: walking backward, each write lands after every unread sample (3i >= 2i).
        Samples::Gray8 => {
            for i in (0..pixels).rev() {
                let v = buf[i];
                buf[3 * i..3 * i + 3].fill(v);
            }
        }
        Samples::GrayAlpha8 => {
            for i in (0..pixels).rev() {
                let v = buf[2 * i];
                buf[3 * i..3 * i + 3].fill(v);
            }
        }
        Samples::Gray16Clipped => {
            for i in (0..pixels).rev() {
                let (high, low) = (buf[2 * i], buf[2 * i + 1]);
                let v = if high == 0 { low } else { 255 };
                buf[3 * i..3 * i + 3].fill(v);
            }
        }
    }
}

/// Decodes into a buffer sized for both the raw samples and the RGB result, then converts.
fn decode_into_rgb(
    name: &str,
    width: u32,
    height: u32,
    samples: Samples,
    raw_len: usize,
    read: impl FnOnce(&mut [u8]) -> Result<()>,
) -> Result<RgbImage> {
    let (width, height) = (width as usize, height as usize);
    // check_size bounded width * height by MAX_PIXELS, so none of this overflows.
    let pixels = width * height;
    if raw_len != pixels * samples.bytes_per_pixel() {
        return Err(Error::file(
            name,
            format!(
                "decoder reported {raw_len} bytes of samples for a {width} x {height} image, \
                 expected {}",
                pixels * samples.bytes_per_pixel()
            ),
        ));
    }
    let mut buf = vec![0u8; raw_len.max(pixels * 3)];
    read(&mut buf[..raw_len])?;
    to_rgb_in_place(&mut buf, pixels, samples);
    buf.truncate(pixels * 3);
    Ok(RgbImage {
        width,
        height,
        pixels: buf,
    })
}

fn decode_png(name: &str, bytes: &[u8]) -> Result<RgbImage> {
    use png::{BitDepth, ColorType as Png, Transformations};
    let corrupt = |e: png::DecodingError| match e {
        png::DecodingError::LimitsExceeded => Error::file(
            name,
            format!("PNG needs more than the {MAX_DECODER_BYTES} bytes of decoder memory allowed"),
        ),
        e => Error::file(name, format!("corrupt or truncated PNG: {e}")),
    };
    let limits = png::Limits {
        bytes: usize::try_from(MAX_DECODER_BYTES).unwrap_or(usize::MAX),
    };
    let mut decoder = png::Decoder::new_with_limits(Cursor::new(bytes), limits);
    let header = decoder.read_header_info().map_err(corrupt)?;
    let (width, height) = (header.width, header.height);
    check_size(name, width, height)?;
    // Pillow clips 16-bit grey but keeps the high byte of every other 16-bit sample, so 16-bit
    // grey is read raw (without EXPAND, which would add an alpha channel for tRNS and so make
    // it indistinguishable from grey+alpha) and the rest through the png crate's STRIP_16,
    // which keeps the high byte.
    let gray16 = header.color_type == Png::Grayscale && header.bit_depth == BitDepth::Sixteen;
    decoder.set_transformations(if gray16 {
        Transformations::IDENTITY
    } else {
        Transformations::EXPAND | Transformations::STRIP_16
    });
    let mut reader = decoder.read_info().map_err(corrupt)?;
    let samples = match reader.output_color_type() {
        (Png::Grayscale, BitDepth::Sixteen) if gray16 => Samples::Gray16Clipped,
        (Png::Grayscale, BitDepth::Eight) => Samples::Gray8,
        (Png::GrayscaleAlpha, BitDepth::Eight) => Samples::GrayAlpha8,
        (Png::Rgb, BitDepth::Eight) => Samples::Rgb8,
        (Png::Rgba, BitDepth::Eight) => Samples::Rgba8,
        (color, depth) => {
            return Err(Error::file(
                name,
                format!(
                    "PNG decoder produced {color:?} samples of {depth:?} bits, expected 8-bit \
                     grey, grey+alpha, RGB or RGBA"
                ),
            ))
        }
    };
    let raw_len = reader.output_buffer_size().ok_or_else(|| {
        Error::file(
            name,
            format!("a {width} x {height} PNG does not fit in memory"),
        )
    })?;
    decode_into_rgb(name, width, height, samples, raw_len, |buf| {
        let frame = reader.next_frame(buf).map_err(corrupt)?;
        // The first frame is the IDAT image, which Pillow also shows for an APNG; the format
        // makes it canvas-sized, which is checked here rather than assumed.
        if (frame.width, frame.height) != (width, height) {
            return Err(Error::file(
                name,
                format!(
                    "expected a first frame of {width} x {height}, found {} x {}",
                    frame.width, frame.height
                ),
            ));
        }
        Ok(())
    })
}

/// Whether a JPEG's data runs to its end-of-image marker. zune-jpeg, as `image` configures it,
/// fills the missing part of a truncated file with grey and reports success; Pillow refuses
/// such a file ("image file is truncated"), and so do we. The marker segments are walked up to
/// the first scan (skipping APPn payloads, which may hold a thumbnail with its own EOI), then
/// EOI is searched for in the rest: inside entropy-coded data 0xFF is always followed by 0x00
/// or a restart marker, so FF D9 there is the real end. Trailing bytes after EOI are allowed,
/// as in Pillow. Anything malformed is left for the decoder to report.
fn jpeg_reaches_end(bytes: &[u8]) -> bool {
    let mut pos = 2; // after SOI
    loop {
        let Some(&first) = bytes.get(pos) else {
            return false;
        };
        if first != 0xFF {
            return true;
        }
        while bytes.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&marker) = bytes.get(pos) else {
            return false;
        };
        pos += 1;
        match marker {
            0xD9 => return true,
            0xDA => return bytes[pos..].windows(2).any(|w| w == [0xFF, 0xD9]),
            0x01 | 0xD0..=0xD7 => {}
            _ => {
                let Some(len) = bytes.get(pos..pos + 2) else {
                    return false;
                };
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                if len < 2 {
                    return true;
                }
                pos += len;
            }
        }
    }
}

fn decode_jpeg(name: &str, bytes: &[u8]) -> Result<RgbImage> {
    let image_error = |e: ImageError| match e {
        ImageError::Limits(e) => Error::file(
            name,
            format!("JPEG exceeds the decoding limits ({MAX_PIXELS} pixels): {e}"),
        ),
        e => Error::file(name, format!("corrupt or truncated JPEG: {e}")),
    };
    let side = u32::try_from(MAX_PIXELS).unwrap_or(u32::MAX);
    let mut limits = Limits::default();
    limits.max_image_width = Some(side);
    limits.max_image_height = Some(side);
    limits.max_alloc = Some(MAX_DECODER_BYTES);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), ImageFormat::Jpeg);
    reader.limits(limits);
    // into_decoder parses the headers only; nothing is allocated for pixels yet.
    let decoder = reader.into_decoder().map_err(image_error)?;
    let (width, height) = decoder.dimensions();
    check_size(name, width, height)?;
    // Pillow's libjpeg gives L for greyscale and RGB for YCbCr; zune-jpeg (behind image)
    // converts CMYK/YCCK to RGB itself, with its own formula, where Pillow would go through
    // mode CMYK first: those rare print files may differ slightly.
    let samples = match decoder.color_type() {
        ColorType::L8 => Samples::Gray8,
        ColorType::La8 => Samples::GrayAlpha8,
        ColorType::Rgb8 => Samples::Rgb8,
        ColorType::Rgba8 => Samples::Rgba8,
        other => {
            return Err(Error::file(
                name,
                format!("JPEG decoder produced {other:?} samples, expected 8-bit grey or RGB"),
            ))
        }
    };
    if !jpeg_reaches_end(bytes) {
        return Err(Error::file(
            name,
            "truncated JPEG: expected an end-of-image marker after the image data, found none",
        ));
    }
    let raw_len = usize::try_from(decoder.total_bytes()).unwrap_or(usize::MAX);
    decode_into_rgb(name, width, height, samples, raw_len, |buf| {
        decoder.read_image(buf).map_err(image_error)
    })
}

// ---------------------------------------------------------------- preprocessing

/// The size torchvision's `resize(img, [shorter_side])` produces for a `width` × `height` image
/// (`_compute_resized_output_size`): the shorter side becomes `shorter_side`, the longer
/// `int(shorter_side * long / short)`, truncated. Returns `(width, height)`; `(0, 0)` if a side
/// is 0.
pub fn resized_size(width: usize, height: usize, shorter_side: usize) -> (usize, usize) {
    if width == 0 || height == 0 {
        return (0, 0);
    }
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    // Python multiplies exact integers and then divides in double precision, which f64 matches
    // while the product stays below 2^53 (any larger size is refused later anyway).
    let product = shorter_side as u128 * long as u128;
    let new_long = (product as f64 / short as f64) as usize;
    if width <= height {
        (shorter_side, new_long)
    } else {
        (new_long, shorter_side)
    }
}

/// One output sample's filter taps: the first input index and the fixed-point weights.
struct Taps {
    start: Vec<usize>,
    /// `weights[offsets[i]..offsets[i + 1]]` belong to output `i`.
    offsets: Vec<usize>,
    weights: Vec<i32>,
}

impl Taps {
    fn get(&self, i: usize) -> (usize, &[i32]) {
        (
            self.start[i],
            &self.weights[self.offsets[i]..self.offsets[i + 1]],
        )
    }
}

/// Pillow's fixed-point precision for 8-bit resampling (`PRECISION_BITS` in Resample.c): 32 bits
/// less 8 for the value and 2 for filters that overshoot.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's `precompute_coeffs` followed by `normalize_coeffs_8bpc`, for the triangle filter of
/// `Image.BILINEAR` over the whole input (box 0..in_size). Every operation and its order follow
/// the C code, doubles included, so the integer weights come out identical.
fn bilinear_taps(in_size: usize, out_size: usize) -> Taps {
    // Pillow's box is a C float: in_size rounds to f32 before the division.
    let scale = f64::from(in_size as f32) / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // the triangle's support is 1
    let inv_filterscale = 1.0 / filterscale;
    let mut taps = Taps {
        start: Vec::with_capacity(out_size),
        offsets: Vec::with_capacity(out_size + 1),
        weights: Vec::new(),
    };
    let mut w = Vec::new();
    taps.offsets.push(0);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C's (int) truncates toward zero; `as` does too (and saturates). Capping xmin at
        // in_size changes nothing Pillow computes (such an output has no taps) but keeps the
        // slicing in bounds when in_size is not a whole f32 (sides over 2^24).
        let xmin = ((center - support + 0.5) as i64).clamp(0, in_size as i64);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
        let count = (xmax - xmin).max(0) as usize;
        w.clear();
        let mut total = 0.0;
        for x in 0..count {
            let t = ((x as i64 + xmin) as f64 - center + 0.5) * inv_filterscale;
            let t = t.abs();
            let v = if t < 1.0 { 1.0 - t } else { 0.0 };
            w.push(v);
            total += v;
        }
        if total != 0.0 {
            for v in &mut w {
                *v /= total;
            }
        }
        let one = f64::from(1u32 << PRECISION_BITS);
        taps.weights.extend(w.iter().map(|&v| {
            if v < 0.0 {
                (-0.5 + v * one) as i32
            } else {
                (0.5 + v * one) as i32
            }
        }));
        taps.start.push(xmin as usize);
        taps.offsets.push(taps.weights.len());
    }
    taps
}

/// Pillow's `clip8`: drops the fraction of a fixed-point sum and clamps to a byte.
fn clip8(sum: i64) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's rounding offset: half of one in fixed point.
const HALF: i64 = 1 << (PRECISION_BITS - 1);

/// Pillow's `ImagingResampleHorizontal_8bpc` for RGB: rows `rows` of `src` (`src_w` wide) to
/// `taps.start.len()` columns.
fn horizontal_pass(src: &[u8], src_w: usize, rows: std::ops::Range<usize>, taps: &Taps) -> Vec<u8> {
    let out_w = taps.start.len();
    let mut out = vec![0u8; rows.len() * out_w * 3];
    for (y, row) in rows.zip(out.chunks_exact_mut(out_w * 3)) {
        let line = &src[y * src_w * 3..(y + 1) * src_w * 3];
        for (xx, px) in row.chunks_exact_mut(3).enumerate() {
            let (start, k) = taps.get(xx);
            let mut sum = [HALF; 3];
            for (s, &k) in line[start * 3..].chunks_exact(3).zip(k) {
                for c in 0..3 {
                    sum[c] += i64::from(s[c]) * i64::from(k);
                }
            }
            for c in 0..3 {
                px[c] = clip8(sum[c]);
            }
        }
    }
    out
}

/// Pillow's `ImagingResampleVertical_8bpc` for RGB: `src` (`width` wide, its first row being
/// input row `first_row`) to `taps.start.len()` rows.
fn vertical_pass(src: &[u8], width: usize, first_row: usize, taps: &Taps) -> Vec<u8> {
    let stride = width * 3;
    let mut out = vec![0u8; taps.start.len() * stride];
    let mut sum = vec![0i64; stride];
    for (yy, row) in out.chunks_exact_mut(stride).enumerate() {
        let (start, k) = taps.get(yy);
        sum.fill(HALF);
        for (i, &k) in k.iter().enumerate() {
            let y = start + i - first_row;
            for (s, &v) in sum.iter_mut().zip(&src[y * stride..(y + 1) * stride]) {
                *s += i64::from(v) * i64::from(k);
            }
        }
        for (o, &s) in row.iter_mut().zip(&sum) {
            *o = clip8(s);
        }
    }
    out
}

/// Resizes exactly as Pillow 13's `Image.resize((width, height), Image.BILINEAR)` does on an RGB
/// image (what torchvision's resize does to a PIL image): a triangle filter stretched by the
/// scale when shrinking (antialiasing), fixed-point weights, one pass per axis whose size
/// changes, each rounded to 8 bits. The order of the passes changes the rounding, so it follows
/// Pillow's `ImagingResampleInner`: horizontal first (over only the rows the vertical pass
/// reads), except when the height shrinks by more than twice as many pixels as the width does
/// (Pillow 13, python-pillow/Pillow#9549; earlier Pillow always went horizontal first).
pub fn resize_bilinear(img: &RgbImage, width: usize, height: usize) -> Result<RgbImage> {
    img.check("image to resize")?;
    if width == 0 || height == 0 {
        return Err(Error::invalid(
            "resize",
            format!("expected a target size of at least 1 x 1, found {width} x {height}"),
        ));
    }
    let pixels = width as u64 * height as u64;
    if pixels > MAX_PIXELS {
        return Err(Error::invalid(
            "resize",
            format!(
                "target {width} x {height} = {pixels} pixels is more than the limit of \
                 {MAX_PIXELS} pixels"
            ),
        ));
    }
    let (in_w, in_h) = (img.width, img.height);
    let need_horizontal = width != in_w;
    let need_vertical = height != in_h;
    // Sizes are bounded by MAX_PIXELS, so the i64 arithmetic is exact.
    let vertical_first = height < in_h && (in_h - height) as i64 > 2 * (in_w as i64 - width as i64);
    let pixels = match (need_horizontal, need_vertical) {
        (false, false) => img.pixels.clone(),
        (true, false) => horizontal_pass(&img.pixels, in_w, 0..in_h, &bilinear_taps(in_w, width)),
        (false, true) => vertical_pass(&img.pixels, in_w, 0, &bilinear_taps(in_h, height)),
        (true, true) if vertical_first => {
            let mid = vertical_pass(&img.pixels, in_w, 0, &bilinear_taps(in_h, height));
            horizontal_pass(&mid, in_w, 0..height, &bilinear_taps(in_w, width))
        }
        (true, true) => {
            let vertical = bilinear_taps(in_h, height);
            // Like Pillow, the horizontal pass only covers the rows the vertical pass reads.
            let first = vertical.start[0];
            let (last_start, last) = vertical.get(height - 1);
            let rows = first..last_start + last.len();
            let mid = horizontal_pass(&img.pixels, in_w, rows, &bilinear_taps(in_w, width));
            vertical_pass(&mid, width, first, &vertical)
        }
    };
    Ok(RgbImage {
        width,
        height,
        pixels,
    })
}

/// `normalize(convert_image_dtype(v, torch.float), mean, std)` for every byte value, per
/// channel. torchvision divides the float32 value by 255 (a true division, not a multiplication
/// by 1/255, which differs in 126 of 256 values), then subtracts the float32 mean and divides
/// by the float32 std, each rounded to f32.
fn normalize_table() -> [[f32; 256]; 3] {
    let mut table = [[0.0f32; 256]; 3];
    for (c, row) in table.iter_mut().enumerate() {
        for (v, out) in row.iter_mut().enumerate() {
            let x = v as f32 / 255.0f32;
            *out = (x - MEAN[c]) / STD[c];
        }
    }
    table
}

/// The image as a CHW float32 tensor, normalised exactly as torchvision's
/// `convert_image_dtype(pil_to_tensor(img), torch.float)` then `normalize(mean, std)` with the
/// ImageNet mean and std of the DeepLabV3 weights.
pub fn normalize(img: &RgbImage) -> Result<Vec<f32>> {
    let plane = img.check("image to normalize")?;
    let table = normalize_table();
    let mut out = vec![0.0f32; plane * 3];
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, px) in img.pixels.chunks_exact(3).enumerate() {
        r[i] = table[0][usize::from(px[0])];
        g[i] = table[1][usize::from(px[1])];
        b[i] = table[2][usize::from(px[2])];
    }
    Ok(out)
}

/// `DeepLabV3_ResNet50_Weights.DEFAULT.transforms(resize_size=shorter_side)` applied to the
/// PIL image of `img`: resize the shorter side to `shorter_side` (520 is the weights' default),
/// then normalise. Returns the NCHW shape `[1, 3, height, width]` and the tensor.
pub fn preprocess(img: &RgbImage, shorter_side: usize) -> Result<([usize; 4], Vec<f32>)> {
    img.check("image to preprocess")?;
    if shorter_side == 0 {
        return Err(Error::invalid(
            "resize",
            "expected a shorter side of at least 1 pixel, found 0",
        ));
    }
    let (width, height) = resized_size(img.width, img.height, shorter_side);
    // torchvision returns the image untouched when the size does not change.
    let tensor = if (width, height) == (img.width, img.height) {
        normalize(img)?
    } else {
        normalize(&resize_bilinear(img, width, height)?)?
    };
    Ok(([1, 3, height, width], tensor))
}

// ---------------------------------------------------------------- outputs

/// The 21 PASCAL VOC classes in the order of torchvision's VOC-trained segmentation models
/// (torchvision calls class 0 `__background__`).
pub const VOC_CLASSES: [&str; 21] = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

/// The PASCAL VOC colour map, the one the dataset's own label PNGs carry: the bits of each
/// index are dealt out in turn to R, G and B from the most significant bit down, so nearby
/// classes get distinct colours (1 dark red, 2 dark green, 15 person pink, 255 "void" cream).
pub fn voc_palette() -> [[u8; 3]; 256] {
    let mut palette = [[0u8; 3]; 256];
    for (i, colour) in palette.iter_mut().enumerate() {
        let mut index = i;
        for bit in (0..8).rev() {
            for (c, channel) in colour.iter_mut().enumerate() {
                *channel |= (((index >> c) & 1) as u8) << bit;
            }
            index >>= 3;
        }
    }
    palette
}

fn check_class_map(what: &str, width: usize, height: usize, classes: &[u8]) -> Result<()> {
    match width.checked_mul(height) {
        Some(n) if n == classes.len() && n > 0 => Ok(()),
        _ => Err(Error::invalid(
            what,
            format!(
                "expected a non-empty {width} x {height} class map ({width} x {height} bytes), \
                 found {} bytes",
                classes.len()
            ),
        )),
    }
}

/// Writes a class map as an 8-bit indexed PNG carrying the VOC palette, the format of the VOC
/// dataset's own label files: viewers show colours, and the pixel values are the class indices
/// (`np.array(Image.open(p))`). Written through a temporary file and a rename, so a failure
/// never leaves a partial file.
pub fn write_class_png(path: &Path, width: usize, height: usize, classes: &[u8]) -> Result<()> {
    check_class_map("class map", width, height, classes)?;
    let fail = |message: String| Error::file(path.display(), message);
    let (w, h) = match (u32::try_from(width), u32::try_from(height)) {
        (Ok(w), Ok(h)) => (w, h),
        _ => return Err(fail(format!("{width} x {height} is too large for a PNG"))),
    };
    let palette: Vec<u8> = voc_palette().iter().flatten().copied().collect();
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, w, h);
    encoder.set_color(png::ColorType::Indexed);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_palette(palette);
    encoder
        .write_header()
        .and_then(|mut writer| {
            writer.write_image_data(classes)?;
            writer.finish()
        })
        .map_err(|e| fail(format!("cannot encode PNG: {e}")))?;
    write_atomically(path, &bytes)
}

/// Blends the VOC colour of each pixel's class over the photo, `alpha` being the colour's
/// weight (0.5 is the usual), rounding to nearest; class 0 (background) keeps the photo as is.
/// `classes` must have the photo's size.
pub fn overlay(photo: &RgbImage, classes: &[u8], alpha: f32) -> Result<RgbImage> {
    photo.check("photo to overlay")?;
    check_class_map("class map", photo.width, photo.height, classes)?;
    if !(0.0..=1.0).contains(&alpha) {
        return Err(Error::invalid(
            "overlay alpha",
            format!("expected a value in 0..=1, found {alpha}"),
        ));
    }
    let palette = voc_palette();
    let mut pixels = photo.pixels.clone();
    for (px, &class) in pixels.chunks_exact_mut(3).zip(classes) {
        if class == 0 {
            continue;
        }
        let colour = palette[usize::from(class)];
        for (p, &c) in px.iter_mut().zip(&colour) {
            // `as u8` saturates, so the blend can never wrap.
            *p = (f32::from(*p) * (1.0 - alpha) + f32::from(c) * alpha).round() as u8;
        }
    }
    Ok(RgbImage {
        width: photo.width,
        height: photo.height,
        pixels,
    })
}

/// Whether [`write_rgb`] writes `path` as a JPEG (`.jpg`, `.jpeg`) or a PNG (`.png`); any
/// other name is an error.
pub fn is_jpeg_name(path: &Path) -> Result<bool> {
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match extension.as_deref() {
        Some("png") => Ok(false),
        Some("jpg" | "jpeg") => Ok(true),
        Some(other) => Err(Error::file(
            path.display(),
            format!("expected a .png, .jpg or .jpeg file name, found extension .{other}"),
        )),
        None => Err(Error::file(
            path.display(),
            "expected a .png, .jpg or .jpeg file name, found no extension",
        )),
    }
}

/// Writes an RGB image as PNG or JPEG (quality 90) according to the extension of `path`
/// (`.png`, `.jpg`, `.jpeg`, any case), through a temporary file and a rename.
pub fn write_rgb(path: &Path, img: &RgbImage) -> Result<()> {
    let fail = |message: String| Error::file(path.display(), message);
    let jpeg = is_jpeg_name(path)?;
    img.check("image to write")?;
    let (w, h) = match (u32::try_from(img.width), u32::try_from(img.height)) {
        (Ok(w), Ok(h)) => (w, h),
        _ => {
            return Err(fail(format!(
                "{} x {} is too large to write",
                img.width, img.height
            )))
        }
    };
    let mut bytes = Vec::new();
    if jpeg {
        ::image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
            .encode(&img.pixels, w, h, ::image::ExtendedColorType::Rgb8)
            .map_err(|e| fail(format!("cannot encode JPEG: {e}")))?;
    } else {
        let mut encoder = png::Encoder::new(&mut bytes, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder
            .write_header()
            .and_then(|mut writer| {
                writer.write_image_data(&img.pixels)?;
                writer.finish()
            })
            .map_err(|e| fail(format!("cannot encode PNG: {e}")))?;
    }
    write_atomically(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_starts_like_voc() {
        let p = voc_palette();
        assert_eq!(p[0], [0, 0, 0]);
        assert_eq!(p[1], [128, 0, 0]);
        assert_eq!(p[2], [0, 128, 0]);
        assert_eq!(p[3], [128, 128, 0]);
        assert_eq!(p[15], [192, 128, 128]); // person
        assert_eq!(p[20], [0, 64, 128]); // tvmonitor
        assert_eq!(p[255], [224, 224, 192]); // void
    }

    #[test]
    fn resized_size_follows_torchvision() {
        assert_eq!(resized_size(160, 120, 64), (85, 64));
        assert_eq!(resized_size(120, 160, 64), (64, 85));
        assert_eq!(resized_size(160, 120, 520), (693, 520));
        assert_eq!(resized_size(100, 100, 7), (7, 7));
        assert_eq!(resized_size(0, 10, 7), (0, 0));
    }

    #[test]
    fn in_place_conversions_do_not_overlap() {
        let mut buf = vec![10, 20, 30, 0, 0, 0, 0, 0, 0];
        to_rgb_in_place(&mut buf, 3, Samples::Gray8);
        assert_eq!(buf, [10, 10, 10, 20, 20, 20, 30, 30, 30]);
        let mut buf = vec![0, 7, 1, 0, 0, 255, 0, 0, 0];
        to_rgb_in_place(&mut buf, 3, Samples::Gray16Clipped);
        assert_eq!(buf, [7, 7, 7, 255, 255, 255, 255, 255, 255]);
        let mut buf = vec![1, 2, 3, 4, 5, 6, 7, 8];
        to_rgb_in_place(&mut buf, 2, Samples::Rgba8);
        assert_eq!(&buf[..6], [1, 2, 3, 5, 6, 7]);
    }
}

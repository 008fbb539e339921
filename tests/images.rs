//! The photo side of `atrous segment` against Pillow and torchvision, through the fixtures of
//! `python scripts/make_image_fixtures.py` in tests/fixtures/images/ (see that script for what
//! each file is). Expected decodes are read with the png crate directly, not with the code
//! under test.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use atrous::image::{self as img, RgbImage};
use safetensors::SafeTensors;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images")
}

fn read(name: &str) -> Vec<u8> {
    let path = fixtures().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; regenerate with `python scripts/make_image_fixtures.py`",
            path.display()
        )
    })
}

/// The fixture file's metadata, after checking its format and version.
struct Manifest {
    bytes: Vec<u8>,
    metadata: std::collections::HashMap<String, String>,
}

impl Manifest {
    fn load() -> Manifest {
        let bytes = read("images.safetensors");
        let (_, meta) = SafeTensors::read_metadata(&bytes).expect("images.safetensors header");
        let metadata = meta
            .metadata()
            .clone()
            .expect("images.safetensors has no metadata");
        assert_eq!(metadata["format"], "atrous-image-fixtures");
        assert_eq!(
            metadata["version"], "1",
            "regenerate the fixtures and update this test"
        );
        Manifest { bytes, metadata }
    }

    fn json(&self, key: &str) -> Value {
        serde_json::from_str(&self.metadata[key]).unwrap()
    }

    fn tensor(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor(name).unwrap();
        assert_eq!(t.dtype(), safetensors::Dtype::F32);
        let values = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        (t.shape().to_vec(), values)
    }
}

/// An 8-bit RGB PNG written by Pillow, decoded by the png crate with no transformation.
fn expected_rgb(name: &str) -> RgbImage {
    let bytes = read(name);
    let decoder = png::Decoder::new(std::io::Cursor::new(&bytes[..]));
    let mut reader = decoder.read_info().unwrap();
    let info = reader.info();
    assert_eq!(
        (info.color_type, info.bit_depth),
        (png::ColorType::Rgb, png::BitDepth::Eight),
        "{name}: expected files are 8-bit RGB"
    );
    let (width, height) = (info.width as usize, info.height as usize);
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut pixels).unwrap();
    assert_eq!(pixels.len(), width * height * 3);
    RgbImage {
        width,
        height,
        pixels,
    }
}

fn open(name: &str) -> RgbImage {
    img::open_rgb(&fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Where two same-sized images differ most, for failure messages.
fn first_difference(a: &RgbImage, b: &RgbImage) -> String {
    match a.pixels.iter().zip(&b.pixels).position(|(x, y)| x != y) {
        Some(i) => {
            let (p, c) = (i / 3, i % 3);
            format!(
                "first difference at x={} y={} channel {c}: {} vs {}",
                p % a.width,
                p / a.width,
                a.pixels[i],
                b.pixels[i]
            )
        }
        None => "no difference".into(),
    }
}

#[test]
fn png_modes_decode_exactly_as_pillow_converts_them() {
    let manifest = Manifest::load();
    let cases = manifest.json("cases");
    let mut modes = HashSet::new();
    let mut checked = 0;
    for case in cases.as_array().unwrap() {
        if !case["exact"].as_bool().unwrap() {
            continue;
        }
        let (file, expected) = (
            case["file"].as_str().unwrap(),
            case["expected"].as_str().unwrap(),
        );
        let actual = open(file);
        let expected = expected_rgb(expected);
        assert_eq!(
            (actual.width, actual.height),
            (expected.width, expected.height),
            "{file}: size"
        );
        assert!(
            actual.pixels == expected.pixels,
            "{file} ({}): decode differs from Pillow's convert(\"RGB\"): {}",
            case["note"],
            first_difference(&actual, &expected)
        );
        modes.insert(case["pil_mode"].as_str().unwrap().to_string());
        checked += 1;
    }
    // Every Pillow mode a PNG can open as is covered.
    for mode in ["1", "L", "I;16", "LA", "RGB", "RGBA", "P"] {
        assert!(modes.contains(mode), "no PNG fixture opens as mode {mode}");
    }
    assert!(checked >= 16, "only {checked} PNG cases");
}

/// zune-jpeg (behind `image`) and Pillow's libjpeg-turbo agree on the format but not on every
/// rounding: their integer IDCTs differ by 1 now and then, and for 4:2:0 colour zune upsamples
/// the chroma in two passes rounded to 8 bits each where libjpeg-turbo's "fancy" upsampling
/// rounds once (their YCbCr -> RGB conversions agree exactly on this file). Measured against
/// Pillow 13 / libjpeg-turbo 3.2 with zune-jpeg 0.5.15:
///   photo.jpg (colour, 4:2:0, q90): max 4, mean 0.253 per sample (13.5% of samples off by 1-2)
///   gray.jpg (greyscale, q90):      max 1, mean 0.008
///   progressive.jpg (same photo):   as photo.jpg (both decoders give the baseline result)
/// The bounds leave a little room for other decoder versions; a real bug (swapped channels, a
/// chroma offset, a wrong colour matrix) moves the mean by whole units.
#[test]
fn jpeg_decodes_within_rounding_of_pillow() {
    let manifest = Manifest::load();
    let mut measured = Vec::new();
    for case in manifest.json("cases").as_array().unwrap() {
        if case["exact"].as_bool().unwrap() {
            continue;
        }
        let file = case["file"].as_str().unwrap();
        let actual = open(file);
        let expected = expected_rgb(case["expected"].as_str().unwrap());
        assert_eq!(
            (actual.width, actual.height),
            (expected.width, expected.height)
        );
        let diffs: Vec<u32> = actual
            .pixels
            .iter()
            .zip(&expected.pixels)
            .map(|(&a, &b)| u32::from(a.abs_diff(b)))
            .collect();
        let max = diffs.iter().copied().max().unwrap();
        let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
        let mut histogram = [0usize; 6];
        for &d in &diffs {
            histogram[(d as usize).min(5)] += 1;
        }
        eprintln!(
            "{file}: max difference {max}, mean {mean:.4}, histogram of |diff| 0..5+ {histogram:?}"
        );
        measured.push((file.to_string(), max, mean));
    }
    for (file, max, mean) in measured {
        assert!(max <= 6 && mean <= 0.4, "{file}: max {max}, mean {mean}");
    }
}

/// Shrinking to shorter side 64, enlarging to 200, and a size Pillow 13 resizes vertically first.
#[test]
fn resize_matches_pillow_bilinear_byte_for_byte() {
    let manifest = Manifest::load();
    let photo = open("photo.png");
    let resizes = manifest.json("resize");
    for r in resizes.as_array().unwrap() {
        let size = (
            r["width"].as_u64().unwrap() as usize,
            r["height"].as_u64().unwrap() as usize,
        );
        if let Some(short) = r["shorter_side"].as_u64() {
            assert_eq!(
                img::resized_size(photo.width, photo.height, short as usize),
                size
            );
        }
        let actual = img::resize_bilinear(&photo, size.0, size.1).unwrap();
        let expected = expected_rgb(r["file"].as_str().unwrap());
        assert!(
            actual == expected,
            "resize to {size:?}: {}",
            first_difference(&actual, &expected)
        );
    }
}

#[test]
fn normalize_matches_torchvision_bit_for_bit() {
    let manifest = Manifest::load();
    let (shape, table) = manifest.tensor("normalize");
    assert_eq!(shape, [3, 256]);
    // One row holding every byte value in every channel.
    let ramp = RgbImage {
        width: 256,
        height: 1,
        pixels: (0..=255u8).flat_map(|v| [v, v, v]).collect(),
    };
    let actual = img::normalize(&ramp).unwrap();
    for (i, (a, e)) in actual.iter().zip(&table).enumerate() {
        assert_eq!(
            a.to_bits(),
            e.to_bits(),
            "channel {} value {}: {a} vs torchvision {e}",
            i / 256,
            i % 256
        );
    }
}

#[test]
fn preprocess_matches_torchvision_transforms() {
    let manifest = Manifest::load();
    let photo = open("photo.png");

    let (shape, expected) = manifest.tensor("preprocess.64");
    let (actual_shape, actual) = img::preprocess(&photo, 64).unwrap();
    assert_eq!(actual_shape.to_vec(), shape);
    let same = actual
        .iter()
        .zip(&expected)
        .filter(|(a, e)| a.to_bits() == e.to_bits())
        .count();
    assert_eq!(same, expected.len(), "preprocess at 64: elements differ");

    // The weights' default 520 is too big to store; its CRC-32 is.
    let big = manifest.json("preprocess.520");
    let (actual_shape, actual) = img::preprocess(&photo, 520).unwrap();
    let shape: Vec<usize> = big["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(actual_shape.to_vec(), shape);
    let bytes: Vec<u8> = actual.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(
        u64::from(common::crc32(&bytes)),
        big["crc32"].as_u64().unwrap(),
        "preprocess at 520 differs from torchvision"
    );
}

#[test]
fn preprocess_keeps_an_image_already_at_size() {
    let photo = open("photo.png");
    let (shape, tensor) = img::preprocess(&photo, 120).unwrap();
    assert_eq!(shape, [1, 3, 120, 160]);
    assert_eq!(tensor, img::normalize(&photo).unwrap());
}

fn temp_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("images-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn class_png_round_trips_as_indexed_voc() {
    let dir = temp_dir("class-png");
    let (w, h) = (37, 23);
    let mut classes: Vec<u8> = (0..w * h).map(|i| (i * 7 % 23) as u8).collect();
    classes[5] = 255; // VOC's void label
    let path = dir.join("classes.png");
    img::write_class_png(&path, w, h, &classes).unwrap();

    let bytes = std::fs::read(&path).unwrap();
    let mut decoder = png::Decoder::new(std::io::Cursor::new(&bytes[..]));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().unwrap();
    let info = reader.info();
    assert_eq!(info.color_type, png::ColorType::Indexed);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    assert_eq!((info.width, info.height), (w as u32, h as u32));
    let palette: Vec<u8> = img::voc_palette().iter().flatten().copied().collect();
    assert_eq!(info.palette.as_deref(), Some(&palette[..]));
    assert!(info.trns.is_none());
    let mut indices = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut indices).unwrap();
    assert_eq!(indices, classes);

    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["classes.png"]);

    let err = img::write_class_png(&path, w, h, &classes[1..])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("37 x 23") && err.contains(&format!("{}", w * h - 1)),
        "{err}"
    );
}

#[test]
fn voc_classes_and_palette() {
    assert_eq!(img::VOC_CLASSES.len(), 21);
    assert_eq!(img::VOC_CLASSES[0], "background");
    assert_eq!(img::VOC_CLASSES[15], "person");
    assert_eq!(img::VOC_CLASSES[20], "tvmonitor");
    let p = img::voc_palette();
    // The palette the VOC dataset ships: the first classes and "void".
    assert_eq!(
        &p[..4],
        &[[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    );
    assert_eq!(p[8], [64, 0, 0]); // cat
    assert_eq!(p[15], [192, 128, 128]); // person
    assert_eq!(p[255], [224, 224, 192]); // void
    let distinct: HashSet<_> = p.iter().collect();
    assert_eq!(distinct.len(), 256);
}

#[test]
fn overlay_blends_classes_and_keeps_background() {
    let photo = RgbImage {
        width: 3,
        height: 1,
        pixels: vec![10, 20, 30, 200, 100, 51, 255, 255, 255],
    };
    let out = img::overlay(&photo, &[0, 15, 1], 0.5).unwrap();
    // person is (192, 128, 128), aeroplane (128, 0, 0); halves round away from zero.
    assert_eq!(out.pixels, [10, 20, 30, 196, 114, 90, 192, 128, 128]);
    assert_eq!(img::overlay(&photo, &[3, 3, 3], 0.0).unwrap(), photo);
    assert!(img::overlay(&photo, &[0, 1], 0.5).is_err());
    assert!(img::overlay(&photo, &[0, 1, 2], f32::NAN).is_err());
    assert!(img::overlay(&photo, &[0, 1, 2], 1.5).is_err());
}

#[test]
fn write_rgb_by_extension() {
    let dir = temp_dir("write-rgb");
    let photo = open("photo.png");
    for name in ["out.png", "OUT.PNG"] {
        img::write_rgb(&dir.join(name), &photo).unwrap();
        assert_eq!(open_path(&dir.join(name)), photo, "{name}");
    }
    for name in ["out.jpg", "out.JPEG"] {
        img::write_rgb(&dir.join(name), &photo).unwrap();
        let back = open_path(&dir.join(name));
        assert_eq!((back.width, back.height), (photo.width, photo.height));
        let mean = back
            .pixels
            .iter()
            .zip(&photo.pixels)
            .map(|(&a, &b)| f64::from(a.abs_diff(b)))
            .sum::<f64>()
            / photo.pixels.len() as f64;
        assert!(mean < 4.0, "{name}: quality 90 JPEG mean error {mean}");
    }
    for name in ["out.bmp", "out"] {
        let err = img::write_rgb(&dir.join(name), &photo)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(".png, .jpg or .jpeg") && err.contains(name),
            "{err}"
        );
        assert!(!dir.join(name).exists());
    }
}

fn open_path(path: &Path) -> RgbImage {
    img::open_rgb(path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn invalid_arguments_are_errors() {
    let photo = open("photo.png");
    assert!(img::resize_bilinear(&photo, 0, 10).is_err());
    let err = img::resize_bilinear(&photo, 100_000, 100_000)
        .unwrap_err()
        .to_string();
    assert!(err.contains("67108864"), "{err}");
    assert!(img::preprocess(&photo, 0).is_err());
    // A very elongated photo whose resize would be huge is refused, not allocated.
    let strip = RgbImage {
        width: 1,
        height: 5000,
        pixels: vec![0; 15000],
    };
    assert!(img::preprocess(&strip, 520).is_err());
    let broken = RgbImage {
        width: 4,
        height: 4,
        pixels: vec![0; 47],
    };
    assert!(img::normalize(&broken).is_err());
    assert!(img::resize_bilinear(&broken, 2, 2).is_err());
    assert!(img::preprocess(&broken, 2).is_err());
    assert!(img::overlay(&broken, &[0; 16], 0.5).is_err());
    let overflow = RgbImage {
        width: usize::MAX,
        height: 2,
        pixels: vec![],
    };
    assert!(img::normalize(&overflow).is_err());
}

// ---------------------------------------------------------------- hostile input

/// A small deterministic generator (xorshift64*) so the fuzz cases are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn unknown_and_empty_files_name_what_was_expected() {
    for (bytes, found) in [
        (&b""[..], "an empty file"),
        (b"GIF89a......", "a GIF image"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "a WebP image"),
        (b"hello world", "68 65 6c 6c 6f 20 77 6f"),
    ] {
        let err = img::decode_rgb("x.png", bytes).unwrap_err().to_string();
        assert!(err.starts_with("x.png: "), "{err}");
        assert!(
            err.contains("expected a PNG or JPEG image") && err.contains(found),
            "{err}"
        );
    }
    let err = img::open_rgb(Path::new("no/such/photo.png"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no/such/photo.png") && err.contains("cannot open"),
        "{err}"
    );
}

/// Every cut is refused, as Pillow refuses them ("image file is truncated"), except a PNG that
/// lost at most the 4-byte CRC of its final IEND chunk. (Pillow also decodes a PNG missing its
/// whole IEND chunk once the pixels are complete; the png crate does not, which is stricter.)
#[test]
fn truncated_files_are_errors_not_panics() {
    for name in [
        "photo.png",
        "rgb8_adam7_gama.png",
        "palette4_short.png",
        "gray16.png",
        "photo.jpg",
        "gray.jpg",
        "progressive.jpg",
    ] {
        let bytes = read(name);
        let mut cuts: Vec<usize> = (0..bytes.len()).step_by(61).collect();
        cuts.extend(bytes.len().saturating_sub(40)..bytes.len());
        for cut in cuts {
            match img::decode_rgb(name, &bytes[..cut]) {
                Err(e) => assert!(e.to_string().starts_with(&format!("{name}: ")), "{e}"),
                Ok(_) => assert!(
                    name.ends_with(".png") && cut + 4 >= bytes.len(),
                    "{name} cut to {cut} of {} bytes decoded",
                    bytes.len()
                ),
            }
        }
    }
}

/// A JPEG whose entropy-coded data is complete may be followed by other bytes (some cameras
/// append data); Pillow ignores them, and so do we.
#[test]
fn jpeg_with_trailing_bytes_decodes() {
    let mut bytes = read("photo.jpg");
    let clean = img::decode_rgb("photo.jpg", &bytes).unwrap();
    bytes.extend(b"trailing data\xff\xd8");
    assert_eq!(img::decode_rgb("photo.jpg", &bytes).unwrap(), clean);
}

#[test]
fn random_and_corrupted_bytes_are_errors_not_panics() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Pure noise, with and without a valid signature in front.
    for i in 0..300 {
        let len = (rng.next() % 4096) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let prefix: &[u8] = match i % 3 {
            0 => b"\x89PNG\r\n\x1a\n",
            1 => &[0xFF, 0xD8, 0xFF],
            _ => &[],
        };
        bytes.splice(0..0, prefix.iter().copied());
        let _ = img::decode_rgb("noise", &bytes);
    }
    // Real files with a few bytes changed: whatever comes out, nothing panics.
    for name in [
        "photo.png",
        "gray16.png",
        "palette_trns.png",
        "la16.png",
        "photo.jpg",
        "gray.jpg",
        "progressive.jpg",
    ] {
        let original = read(name);
        for _ in 0..150 {
            let mut bytes = original.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() % bytes.len() as u64) as usize;
                bytes[at] = rng.next() as u8;
            }
            if let Ok(image) = img::decode_rgb(name, &bytes) {
                assert_eq!(image.pixels.len(), image.width * image.height * 3);
            }
        }
    }
}

/// A PNG signature and an IHDR chunk with any size, and nothing else.
fn png_header(width: u32, height: u32, depth: u8, color: u8) -> Vec<u8> {
    let mut data = Vec::new();
    data.extend(b"IHDR");
    data.extend(width.to_be_bytes());
    data.extend(height.to_be_bytes());
    data.extend([depth, color, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(13u32.to_be_bytes());
    out.extend(&data);
    out.extend(common::crc32(&data).to_be_bytes());
    out
}

#[test]
fn headers_without_pixels_are_refused() {
    for (w, h) in [(0, 10), (10, 0), (0, 0)] {
        let err = img::decode_rgb("empty.png", &png_header(w, h, 8, 2))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("empty.png: "), "{err}");
    }
    // A valid header with no image data.
    let err = img::decode_rgb("nodata.png", &png_header(10, 10, 8, 2))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("nodata.png: "), "{err}");
}

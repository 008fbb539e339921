//! `atrous segment` against torchvision on a real photo: the fixture
//! `segment_deeplabv3_photo_resize64` of scripts/make_network_fixtures.py holds a narrow
//! DeepLabV3 with VOC's 21 classes (batch norms calibrated), the tensor torchvision's own
//! preprocessing preset makes of tests/fixtures/images/photo.png, the logits the model returns
//! for it, and the class map at the photo's size. The preprocessed tensor must be equal bit for
//! bit, the logits within relative L2 1e-4, the class map equal wherever PyTorch's top two
//! logits differ by more than 1e-4. Then the command line, directories of photos, and every
//! way a run can be wrong.

mod common;
mod network_fixtures;

use std::path::{Path, PathBuf};

use atrous::graph::StateDict;
use atrous::image;
use atrous::models::{Model, ModelOptions};
use common::{atrous, TempDir};

const CASE: &str = "segment_deeplabv3_photo_resize64";

fn photo_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images/photo.png")
}

struct Expected {
    preprocessed: Vec<f32>,
    logits: (Vec<usize>, Vec<f32>),
    classes: Vec<u8>,
    decisive: Vec<u8>,
}

fn expected() -> Expected {
    let file = StateDict::open(network_fixtures::path(CASE, "expected"), "").unwrap();
    let bytes = |key: &str| {
        let (dtype, shape) = file.info(key).expect("fixture tensor");
        assert_eq!(dtype, safetensors::Dtype::U8);
        let len = shape.iter().product::<usize>();
        let raw = std::fs::read(network_fixtures::path(CASE, "expected")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&raw).unwrap();
        let data = st.tensor(key).unwrap().data().to_vec();
        assert_eq!(data.len(), len);
        data
    };
    let logits = file.tensor("output").unwrap();
    Expected {
        preprocessed: file.tensor("preprocessed").unwrap().data,
        logits: (logits.shape, logits.data),
        classes: bytes("classes"),
        decisive: bytes("decisive"),
    }
}

fn model() -> Model {
    let weights = StateDict::open(network_fixtures::path(CASE, "weights"), "").unwrap();
    let options = ModelOptions {
        rates: Some(vec![2, 4, 7]),
        ..Default::default()
    };
    Model::load("deeplabv3", &weights, &options).unwrap()
}

/// Class maps agree at every decisive pixel; returns how many pixels differ in all.
fn assert_same_classes(what: &str, actual: &[u8], expected: &Expected) -> usize {
    assert_eq!(actual.len(), expected.classes.len(), "{what}: size");
    let mut differ = 0;
    for (i, (&a, &e)) in actual.iter().zip(&expected.classes).enumerate() {
        if a != e {
            differ += 1;
            assert_eq!(
                expected.decisive[i], 0,
                "{what}: pixel {i} is class {a}, PyTorch's {e} by a clear margin"
            );
        }
    }
    differ
}

/// The library path: preprocessing bit for bit, logits, class map.
#[test]
fn segment_matches_torchvision_on_a_real_photo() {
    let expected = expected();
    let photo = image::open_rgb(&photo_path()).unwrap();
    let (shape, tensor) = image::preprocess(&photo, 64).unwrap();
    assert_eq!(shape, [1, 3, 64, 85]);
    assert_eq!(
        tensor, expected.preprocessed,
        "preprocessing differs from torchvision's"
    );
    let model = model();
    let result = atrous::tools::segment::segment(common::ctx(), &model, &photo, 64, true).unwrap();
    let logits = result.logits.unwrap();
    assert_eq!(logits.shape.to_vec(), expected.logits.0);
    let reference: Vec<f64> = expected.logits.1.iter().map(|&v| v as f64).collect();
    common::assert_close("logits", logits.shape, &logits.data, &reference, 1e-4);
    let differ = assert_same_classes("class map", &result.classes, &expected);
    eprintln!(
        "class map: {differ} of {} pixels differ",
        expected.classes.len()
    );
    let distinct: std::collections::BTreeSet<u8> = result.classes.iter().copied().collect();
    assert!(distinct.len() >= 3, "a trivial class map: {distinct:?}");
}

/// Reads an 8-bit indexed PNG: (width, height, indices, palette).
fn read_indexed(path: &Path) -> (u32, u32, Vec<u8>, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let info = reader.info().clone();
    assert_eq!(
        info.color_type,
        png::ColorType::Indexed,
        "{}",
        path.display()
    );
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let mut data = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut data).unwrap();
    let palette = info.palette.unwrap().into_owned();
    (info.width, info.height, data, palette)
}

fn os(args: &[&str]) -> Vec<std::ffi::OsString> {
    args.iter().map(Into::into).collect()
}

/// Through the binary: the class map as an indexed PNG with the VOC palette at the photo's
/// size, the overlay, the logits file, and the classes printed with VOC's names.
#[test]
fn segment_command_writes_the_class_map_overlay_and_logits() {
    let expected = expected();
    let dir = TempDir::new("segment");
    let weights = network_fixtures::path(CASE, "weights");
    let photo = photo_path();
    let (mask, overlay, logits) = (
        dir.join("mask.png"),
        dir.join("overlay.jpg"),
        dir.join("l.safetensors"),
    );
    let mut args = os(&["segment", "deeplabv3", "--rates", "2,4,7", "--resize", "64"]);
    for (flag, path) in [
        ("--weights", &weights),
        ("--image", &photo),
        ("--output", &mask),
        ("--overlay", &overlay),
        ("--logits", &logits),
    ] {
        args.push(flag.into());
        args.push(path.into());
    }
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let (code, stdout, stderr) = atrous(&refs, &[]);
    assert!(code == 0, "{stderr}");
    assert!(
        stdout.contains("background") && stdout.contains('%'),
        "{stdout}"
    );
    let (w, h, classes, palette) = read_indexed(&mask);
    let photo_image = image::open_rgb(&photo).unwrap();
    assert_eq!(
        (w as usize, h as usize),
        (photo_image.width, photo_image.height)
    );
    let voc: Vec<u8> = image::voc_palette().iter().flatten().copied().collect();
    assert_eq!(palette, voc);
    assert_same_classes("mask.png", &classes, &expected);
    let blended = image::open_rgb(&overlay).unwrap();
    assert_eq!(
        (blended.width, blended.height),
        (photo_image.width, photo_image.height)
    );
    let (shape, data) = atrous::tools::run::read_input(&logits).unwrap();
    assert_eq!(shape.to_vec(), expected.logits.0);
    let reference: Vec<f64> = expected.logits.1.iter().map(|&v| v as f64).collect();
    common::assert_close("logits file", shape, &data, &reference, 1e-4);
    assert_eq!(dir.files(), ["l.safetensors", "mask.png", "overlay.jpg"]);
}

/// A directory of photos gives a directory of class maps, one per photo, named after it.
#[test]
fn segment_command_takes_a_directory_of_photos() {
    let dir = TempDir::new("segment-dir");
    let photos = dir.join("photos");
    std::fs::create_dir(&photos).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images");
    for name in ["photo.png", "photo.jpg", "gray8.png"] {
        let target = name.replace('.', "_")
            + if name.ends_with("jpg") {
                ".jpg"
            } else {
                ".png"
            };
        std::fs::copy(source.join(name), photos.join(target)).unwrap();
    }
    std::fs::write(photos.join("notes.txt"), "not a photo").unwrap();
    let masks = dir.join("masks");
    let weights = network_fixtures::path(CASE, "weights");
    let mut args = os(&["segment", "deeplabv3", "--rates", "2,4,7", "--resize", "48"]);
    for (flag, path) in [
        ("--weights", &weights),
        ("--image", &photos),
        ("--output", &masks),
    ] {
        args.push(flag.into());
        args.push(path.into());
    }
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let (code, stdout, stderr) = atrous(&refs, &[]);
    assert!(code == 0, "{stderr}");
    let mut written: Vec<String> = std::fs::read_dir(&masks)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, ["gray8_png.png", "photo_jpg.png", "photo_png.png"]);
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
}

/// Each way a segment run can be wrong ends with an error that names the problem, and leaves
/// no output file behind.
#[test]
fn segment_errors_name_the_problem() {
    let dir = TempDir::new("segment-errors");
    let weights = network_fixtures::path(CASE, "weights");
    let photo = photo_path();
    let mask = dir.join("mask.png");
    let run = |model: &[&str], image: &Path, output: &Path, needles: &[&str]| {
        let mut args = os(&["segment"]);
        args.extend(model.iter().map(Into::into));
        for (flag, path) in [
            ("--weights", weights.as_path()),
            ("--image", image),
            ("--output", output),
        ] {
            args.push(flag.into());
            args.push(path.into());
        }
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let (code, _, stderr) = atrous(&refs, &[]);
        assert!(code != 0, "succeeded: {args:?}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        for needle in needles {
            assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
        }
    };
    let deeplab = ["deeplabv3", "--rates", "2,4,7"];
    run(&deeplab, &dir.join("missing.png"), &mask, &["missing.png"]);
    let text = dir.join("notes.png");
    std::fs::write(&text, "hello").unwrap();
    run(
        &deeplab,
        &text,
        &mask,
        &["notes.png", "expected a PNG or JPEG"],
    );
    // A header claiming 100000 x 100000 pixels: refused before decoding, the limit named.
    let huge = dir.join("huge.png");
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(common::crc32(&ihdr).to_be_bytes());
    std::fs::write(&huge, png).unwrap();
    run(
        &deeplab,
        &huge,
        &mask,
        &["huge.png", &image::MAX_PIXELS.to_string()],
    );
    run(
        &deeplab,
        &photo,
        &dir.join("no/such/dir/mask.png"),
        &["does not exist"],
    );
    run(
        &["deeplabv3", "--rates", "2,4,7", "--resize", "0"],
        &photo,
        &mask,
        &["--resize"],
    );
    // A head reads feature maps, not photos; weights of another model say which one fits.
    run(
        &["aspp", "--rates", "1"],
        &photo,
        &mask,
        &["no ASPP", "run deeplabv3"],
    );
    run(
        &["pspnet"],
        &photo,
        &mask,
        &["no PSPNet", "a whole DeepLabV3"],
    );
    // segment maps the main head only.
    run(
        &["deeplabv3", "--rates", "2,4,7", "--aux"],
        &photo,
        &mask,
        &["--aux", "atrous run --aux"],
    );
    // An overlay it cannot write is refused before the mask is written.
    let overlay = dir.join("overlay.bmp");
    let overlay = overlay.to_str().unwrap();
    run(
        &["deeplabv3", "--rates", "2,4,7", "--overlay", overlay],
        &photo,
        &mask,
        &["overlay.bmp", "extension .bmp"],
    );
    // Never over a photo it reads, never one file for two outputs.
    let own = dir.join("own.png");
    std::fs::copy(&photo, &own).unwrap();
    run(&deeplab, &own, &own, &["own.png", "overwrite the photo"]);
    let mask_str = mask.to_str().unwrap();
    run(
        &["deeplabv3", "--rates", "2,4,7", "--overlay", mask_str],
        &photo,
        &mask,
        &["mask.png", "written twice"],
    );
    // Two photos of one name in a directory would share their class map's name.
    let photos = dir.join("twins");
    std::fs::create_dir(&photos).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images");
    std::fs::copy(source.join("photo.png"), photos.join("a.png")).unwrap();
    std::fs::copy(source.join("photo.jpg"), photos.join("a.jpg")).unwrap();
    run(
        &deeplab,
        &photos,
        &dir.join("masks"),
        &["a.png", "written twice", "a.jpg"],
    );
    assert!(!dir.join("masks").exists(), "a directory was made");
    let mut left: Vec<String> = dir.files();
    left.retain(|f| !["notes.png", "huge.png", "own.png", "twins"].contains(&f.as_str()));
    assert!(left.is_empty(), "left behind: {left:?}");
}

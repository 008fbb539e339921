//! Photos over the pixel limit are refused from their header, before any pixel memory is
//! allocated. A binary of its own: the counting allocator sees every allocation of the
//! process, so no other test may run beside this one.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use atrous::image as img;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(live, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most the process's live heap grew while `f` ran.
fn peak_growth<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst) - before)
}

fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut data = b"IHDR".to_vec();
    data.extend(width.to_be_bytes());
    data.extend(height.to_be_bytes());
    data.extend([8, 2, 0, 0, 0]); // 8-bit RGB
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(13u32.to_be_bytes());
    out.extend(&data);
    out.extend(common::crc32(&data).to_be_bytes());
    // An IDAT would follow; the decoder must stop before wanting it.
    out
}

/// The fixture JPEG with its frame header claiming 65535 x 65535: real tables, forged size.
fn forged_jpeg() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/images/photo.jpg"
    );
    let mut bytes = std::fs::read(path).unwrap();
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline SOF0 marker");
    // FFC0, length (2), precision (1), height (2), width (2).
    bytes[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    bytes
}

#[test]
fn oversized_headers_are_refused_without_allocating() {
    assert_eq!(img::MAX_PIXELS, 67_108_864);
    let limit = img::MAX_PIXELS.to_string();
    let cases = [
        ("huge.png", png_header(100_000, 100_000), "100000 x 100000"),
        ("wide.png", png_header(u32::MAX >> 1, 1), "2147483647 x 1"),
        // One past the limit.
        ("edge.png", png_header(8192, 8193), "8192 x 8193"),
        ("huge.jpg", forged_jpeg(), "65535 x 65535"),
    ];
    for (name, bytes, size) in cases {
        let (result, growth) = peak_growth(|| img::decode_rgb(name, &bytes));
        let err = result.expect_err(name).to_string();
        assert!(
            err.starts_with(&format!("{name}: ")) && err.contains(size) && err.contains(&limit),
            "{err}"
        );
        // Header parsing and the message only; the JPEG decoder also copies its input.
        assert!(
            growth < 1 << 20,
            "{name}: {growth} bytes allocated while refusing it"
        );
    }

    // Through a file too: reading it costs its length, not its claimed pixels.
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("huge-header.png");
    std::fs::write(&path, png_header(100_000, 100_000)).unwrap();
    let (result, growth) = peak_growth(|| img::open_rgb(&path));
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains(&limit) && err.contains("huge-header.png"),
        "{err}"
    );
    assert!(growth < 1 << 20, "{growth} bytes allocated");
}

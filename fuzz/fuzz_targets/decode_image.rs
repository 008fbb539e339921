//! Arbitrary bytes as a photo: decoding (PNG, JPEG, anything else refused) and, for what
//! decodes, torchvision's preprocessing at a small size. The decoder refuses images over
//! atrous::image::MAX_PIXELS from their header, so no input makes it allocate beyond that.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(photo) = atrous::image::decode_rgb("fuzz", data) {
        assert_eq!(photo.pixels.len(), photo.width * photo.height * 3);
        // A small shorter side keeps the resize cheap whatever the photo's size.
        let _ = atrous::image::preprocess(&photo, 17);
    }
});

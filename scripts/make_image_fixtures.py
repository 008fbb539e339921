#!/usr/bin/env python3
"""Generate the photo fixtures of `atrous segment`: tests/fixtures/images/.

What it makes
-------------
One small real photo (a 160x120 crop of scikit-image's bundled sample
``chelsea``) re-saved in every PNG flavour a user may hand us, plus a JPEG,
each paired with what Pillow makes of it, and the reference output of the
preprocessing that torchvision's DeepLabV3 weights prescribe.

    photo.png                 the photo, 8-bit RGB
    <case>.png / <case>.jpg   the photo re-saved (see CASES below)
    <case>.rgb.png            Image.open(<case>).convert("RGB"), saved as
                              8-bit RGB PNG: the decode atrous must reproduce
                              (omitted where it equals an earlier file; the
                              metadata names the file to compare with)
    resize_64.png             photo.resize((85, 64), Image.BILINEAR)
    resize_200.png            photo.resize((266, 200), Image.BILINEAR)
    resize_150x40.png         photo.resize((150, 40), Image.BILINEAR): a resize
                              Pillow 13 does vertical pass first
    images.safetensors        torchvision's numbers (below) and the case list

Only Pillow and torchvision compute expected values; nothing here
re-implements a conversion, a resize or a normalisation. Files that Pillow
cannot write (16-bit RGB, 16-bit LA/RGBA, 2/4-bit grey, a palette shorter
than its indices, an interlaced PNG) are written by the tiny PNG encoder
below, which only packs samples into the format; Pillow then decodes them.

images.safetensors
------------------
__metadata__ (string -> string):
    "format"               "atrous-image-fixtures"
    "version"              "1"
    "pillow_version", "torch_version", "torchvision_version"
    "cases"                JSON list of {"file", "expected", "pil_mode",
                           "exact", "note"}; "expected" names the RGB8 PNG
                           equal to convert("RGB") of "file"; "exact" is
                           false for JPEG, whose decoders may differ by IDCT
                           and upsampling rounding
    "resize"               JSON list of {"shorter_side", "width", "height",
                           "file"}: the size torchvision computes for
                           resize([shorter_side]) of the photo (shorter_side
                           null: a size given directly) and the PNG holding
                           Pillow's bilinear resize to it
    "preprocess.520"       JSON {"shape": [1, 3, H, W], "crc32": N}: CRC-32
                           (zlib) of the little-endian float32 bytes of
                           DeepLabV3_ResNet50_Weights.DEFAULT.transforms()
                           applied to the photo (too big to store)
Tensors (float32):
    "normalize"            [3, 256]: normalize(convert_image_dtype(v)) for
                           every uint8 v, channel by channel, with the mean
                           and std of the DeepLabV3 weights
    "preprocess.64"        [1, 3, 64, 85]: the same transforms with
                           resize_size=64 (what `--resize 64` means)

Regenerating
------------
    python scripts/make_image_fixtures.py   # any venv with torch,
                    # torchvision, safetensors, Pillow, scikit-image, numpy

Options: --out DIR (default tests/fixtures/images in the repository). The
output is reproducible byte for byte for given Pillow (zlib, libjpeg-turbo)
and torch builds. Pillow 13 or later is required: Pillow 13 changed the order
of the two resize passes for some sizes, which changes rounding.
"""

import argparse
import hashlib
import json
import os
import struct
import sys
import warnings
import zlib

import numpy as np
import PIL
import skimage.data
import torch
import torchvision
import torchvision.transforms.functional as TF
from PIL import Image
from safetensors.torch import save_file
from torchvision.models.segmentation import DeepLabV3_ResNet50_Weights

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join("tests", "fixtures", "images")


def canonicalize_header(path):
    """Re-emits the safetensors JSON header with sorted keys, as make_fixtures.py does:
    safetensors writes __metadata__ in hash order, which would change the file's bytes
    from run to run. Data offsets are relative to the header's end, so only the header
    changes (space-padded to a multiple of 8 bytes, as safetensors pads it)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + blob[8 + n :])


# ---------------------------------------------------------------- tiny PNG encoder


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _pack_rows(samples, bit_depth):
    """(H, W, C) integer samples -> list of PNG scanlines (without filter byte)."""
    h, w, c = samples.shape
    if bit_depth == 16:
        return [samples[y].astype(">u2").tobytes() for y in range(h)]
    if bit_depth == 8:
        return [samples[y].astype(np.uint8).tobytes() for y in range(h)]
    assert c == 1, "sub-byte depths exist only for grey and palette"
    per_byte = 8 // bit_depth
    rows = []
    for y in range(h):
        vals = samples[y, :, 0].astype(np.uint8)
        assert vals.max(initial=0) < (1 << bit_depth)
        pad = (-w) % per_byte
        vals = np.concatenate([vals, np.zeros(pad, np.uint8)]).reshape(-1, per_byte)
        packed = np.zeros(vals.shape[0], np.uint8)
        for i in range(per_byte):
            packed |= vals[:, i] << (8 - bit_depth * (i + 1))
        rows.append(packed.tobytes())
    return rows


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(path, samples, bit_depth, color_type, plte=None, trns=None, interlace=False, extra=()):
    """Writes samples (H, W, C) as a PNG, every scanline with filter type 0."""
    h, w, _ = samples.shape
    if interlace:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += b"".join(b"\0" + r for r in _pack_rows(sub, bit_depth))
    else:
        raw = b"".join(b"\0" + r for r in _pack_rows(samples, bit_depth))
    out = b"\x89PNG\r\n\x1a\n"
    out += _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, int(interlace)))
    for kind, data in extra:
        out += _chunk(kind, data)
    if plte is not None:
        out += _chunk(b"PLTE", bytes(plte))
    if trns is not None:
        out += _chunk(b"tRNS", bytes(trns))
    out += _chunk(b"IDAT", zlib.compress(raw, 9))
    out += _chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(out)


# ---------------------------------------------------------------- the cases


def photo():
    # scikit-image ships chelsea.png inside the package: no download.
    a = skimage.data.chelsea()[60:180, 150:310]  # the eyes and nose, 160x120
    assert a.shape == (120, 160, 3) and a.dtype == np.uint8
    return np.ascontiguousarray(a)


def make_cases(out, rgb):
    """Writes every source file; returns [(file, note)]."""
    h, w, _ = rgb.shape
    yy, xx = np.mgrid[0:h, 0:w]
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    # Alpha varies across the image and is 0 in places, where a compositing
    # decoder would change the colour; Pillow's convert("RGB") just drops it.
    alpha = ((xx * 255) // (w - 1)).astype(np.uint8)
    alpha[: h // 4] = 0
    # A low byte that differs from the high byte, so "take the high byte" and
    # "round v / 257" give different answers.
    def to16(v):
        v = v.astype(np.uint16)
        return (v << 8) | (255 - v)

    cases = []

    def add(name, note):
        cases.append((name, note))

    Image.fromarray(rgb).save(os.path.join(out, "photo.png"))
    add("photo.png", "8-bit RGB (Pillow)")

    Image.fromarray(gray).save(os.path.join(out, "gray8.png"))
    add("gray8.png", "8-bit grey (Pillow)")

    # Pillow opens 16-bit grey as mode I;16 and convert("RGB") clips each value
    # to 255 (it does not scale): the top half holds photo-sized values (all
    # clip), the bottom half values below 256 (pass through), one row 256.
    g16 = to16(gray)
    g16[h // 2 :] = gray[h // 2 :]
    g16[h // 2] = 256
    write_png(os.path.join(out, "gray16.png"), g16[..., None], 16, 0)
    add("gray16.png", "16-bit grey: mode I;16, clipped to 255")

    g16t = g16.copy()
    write_png(os.path.join(out, "gray16_trns.png"), g16t[..., None], 16, 0, trns=struct.pack(">H", int(g16t[0, 0])))
    add("gray16_trns.png", "16-bit grey with tRNS: still I;16 and clipped, transparency ignored")

    write_png(os.path.join(out, "rgb16.png"), to16(rgb), 16, 2)
    add("rgb16.png", "16-bit RGB: rawmode RGB;16B keeps the high byte")

    Image.fromarray(np.dstack([rgb, alpha])).save(os.path.join(out, "rgba8.png"))
    add("rgba8.png", "8-bit RGBA, alpha 0 in places: alpha dropped, no compositing")

    write_png(os.path.join(out, "rgba16.png"), np.dstack([to16(rgb), to16(alpha)]), 16, 6)
    add("rgba16.png", "16-bit RGBA: rawmode RGBA;16B keeps the high bytes, alpha dropped")

    Image.fromarray(np.dstack([gray, alpha]), "LA").save(os.path.join(out, "la8.png"))
    add("la8.png", "8-bit grey + alpha: mode LA, alpha dropped")

    write_png(os.path.join(out, "la16.png"), np.dstack([to16(gray), to16(alpha)]), 16, 4)
    add("la16.png", "16-bit grey + alpha: opened as RGBA via LA;16B (high byte), unlike 16-bit grey")

    # Palette with a tRNS chunk of per-entry alphas: convert("RGB") looks the
    # indices up in the palette and drops the alphas.
    pal = Image.fromarray(rgb).quantize(256, dither=Image.Dither.NONE)
    trns = bytes((i * 7) % 256 for i in range(200))
    pal.save(os.path.join(out, "palette_trns.png"), transparency=trns)
    add("palette_trns.png", "8-bit palette with tRNS alphas: alpha dropped")

    # 4-bit palette whose PLTE has 12 entries while pixels use indices up to
    # 15: Pillow's palette memory is zero beyond the PLTE entries, so those
    # pixels are black.
    idx = (gray // 16)[..., None]
    plte = []
    for i in range(12):
        plte += [(i * 23) % 256, (i * 71 + 40) % 256, (255 - i * 19) % 256]
    write_png(os.path.join(out, "palette4_short.png"), idx, 4, 3, plte=plte)
    add("palette4_short.png", "4-bit palette, indices beyond the 12 PLTE entries: black")

    Image.fromarray(gray).convert("1").save(os.path.join(out, "gray1.png"))
    add("gray1.png", "1-bit grey (Pillow, dithered): mode 1, 0 or 255")

    write_png(os.path.join(out, "gray2.png"), (gray // 64)[..., None], 2, 0)
    add("gray2.png", "2-bit grey: rawmode L;2, times 85")

    write_png(os.path.join(out, "gray4_trns.png"), (gray // 16)[..., None], 4, 0, trns=struct.pack(">H", 3))
    add("gray4_trns.png", "4-bit grey with tRNS: rawmode L;4, times 17, transparency ignored")

    write_png(os.path.join(out, "rgb8_trns.png"), rgb, 8, 2, trns=struct.pack(">HHH", *[int(v) for v in rgb[0, 0]]))
    add("rgb8_trns.png", "8-bit RGB with a tRNS colour: transparency ignored")

    # Interlaced, with a gAMA chunk Pillow does not apply.
    write_png(os.path.join(out, "rgb8_adam7_gama.png"), rgb, 8, 2, interlace=True,
              extra=[(b"gAMA", struct.pack(">I", 100000))])
    add("rgb8_adam7_gama.png", "8-bit RGB, Adam7 interlaced, gAMA 1.0 (ignored)")

    Image.fromarray(rgb).save(os.path.join(out, "photo.jpg"), quality=90)
    add("photo.jpg", "baseline JPEG, quality 90, 4:2:0 (Pillow defaults)")

    Image.fromarray(gray).save(os.path.join(out, "gray.jpg"), quality=90)
    add("gray.jpg", "baseline greyscale JPEG, quality 90")

    Image.fromarray(rgb).save(os.path.join(out, "progressive.jpg"), quality=90, progressive=True)
    add("progressive.jpg", "progressive JPEG, quality 90, 4:2:0: several scans")

    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=None, help=f"output directory (default {DEFAULT_OUT} in the repo)")
    args = ap.parse_args()
    out = args.out if args.out is not None else os.path.join(REPO_ROOT, DEFAULT_OUT)
    if int(PIL.__version__.split(".")[0]) < 13:
        sys.exit(f"Pillow {PIL.__version__}: need Pillow 13 or later, whose resize pass order atrous follows")
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)

    rgb = photo()
    cases = make_cases(out, rgb)

    # Expected decodes, deduplicated: the first file holding each distinct RGB
    # result is the one the tests compare with.
    seen = {}  # sha256 of RGB bytes -> file name
    seen[hashlib.sha256(rgb.tobytes()).hexdigest()] = "photo.png"
    listed = []
    for name, note in cases:
        with Image.open(os.path.join(out, name)) as im, warnings.catch_warnings():
            # Pillow warns that a palette with per-entry alphas "should be
            # converted to RGBA"; dropping them is exactly what we test.
            warnings.simplefilter("ignore", UserWarning)
            mode = im.mode
            conv = np.asarray(im.convert("RGB"))
        assert conv.shape == rgb.shape, (name, conv.shape)
        key = hashlib.sha256(conv.tobytes()).hexdigest()
        if key not in seen:
            expected = name.rsplit(".", 1)[0] + ".rgb.png"
            Image.fromarray(conv).save(os.path.join(out, expected))
            seen[key] = expected
        listed.append({
            "file": name,
            "expected": seen[key],
            "pil_mode": mode,
            "exact": not name.endswith(".jpg"),
            "note": note,
        })

    # Resizes, through torchvision's own functional resize on the PIL image,
    # checked against Pillow's resize with the size torchvision computes.
    pil = Image.fromarray(rgb)
    resizes = []
    for short in (64, 200):
        h, w = TF._compute_resized_output_size((pil.height, pil.width), [short])
        via_tv = TF.resize(pil, [short], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        via_pil = pil.resize((w, h), Image.BILINEAR)
        assert np.array_equal(np.asarray(via_tv), np.asarray(via_pil))
        name = f"resize_{short}.png"
        via_pil.save(os.path.join(out, name))
        resizes.append({"shorter_side": short, "width": w, "height": h, "file": name})
    # Pillow 13 runs the vertical pass first when the height loses more than
    # twice as many pixels as the width (160x120 -> 150x40: 80 > 2 * 10); the
    # passes round differently, so this order is tested too.
    name = "resize_150x40.png"
    pil.resize((150, 40), Image.BILINEAR).save(os.path.join(out, name))
    resizes.append({"shorter_side": None, "width": 150, "height": 40, "file": name})

    weights = DeepLabV3_ResNet50_Weights.DEFAULT
    preset = weights.transforms()  # resize_size=520, bilinear, antialias
    mean, std = preset.mean, preset.std

    v = torch.arange(256, dtype=torch.uint8).view(1, 1, 256).expand(3, 1, 256).contiguous()
    table = TF.normalize(TF.convert_image_dtype(v, torch.float), mean=mean, std=std).view(3, 256)

    small = weights.transforms(resize_size=64)(pil).unsqueeze(0).contiguous()
    big = preset(pil).unsqueeze(0).contiguous()
    assert small.shape == (1, 3, 64, 85), small.shape
    big_crc = zlib.crc32(big.numpy().astype("<f4").tobytes())

    tensors = {"normalize": table.contiguous(), "preprocess.64": small}
    metadata = {
        "format": "atrous-image-fixtures",
        "version": "1",
        "pillow_version": PIL.__version__,
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "cases": json.dumps(listed),
        "resize": json.dumps(resizes),
        "preprocess.520": json.dumps({"shape": list(big.shape), "crc32": big_crc}),
    }
    path = os.path.join(out, "images.safetensors")
    save_file(tensors, path, metadata=metadata)
    canonicalize_header(path)

    total = 0
    for f in sorted(os.listdir(out)):
        total += os.path.getsize(os.path.join(out, f))
    print(f"wrote {out}")
    print(f"  cases: {len(listed)}, distinct expected decodes: {len(seen)}")
    print(f"  files: {len(os.listdir(out))}, {total} bytes ({total / 1024:.1f} KiB)")
    print(f"  Pillow {PIL.__version__}, torch {torch.__version__}, torchvision {torchvision.__version__}")


if __name__ == "__main__":
    main()

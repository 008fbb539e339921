#!/usr/bin/env python3
"""Generate golden graph fixtures for atrous: tests/fixtures/graphs/.

What it makes
-------------
For each case, PyTorch's own modules in eval mode compute the output of a
whole context head on a random input:

    aspp          torchvision.models.segmentation.deeplabv3.ASPP
    deeplab_head  torchvision.models.segmentation.deeplabv3.DeepLabHead
    ppm           PPM, PSPNet's pyramid pooling module (defined below)
    psp_head      nn.Sequential(PPM, nn.Conv2d(out_bottleneck, num_classes, 1))

Batch-norm statistics and affine parameters are random (some gammas negative),
so folding BN into the convs is really exercised. Heads with a "size" resize
their logits with F.interpolate(bilinear, align_corners=False).

File layout (what the Rust tests read)
--------------------------------------
Three safetensors files per case NAME in tests/fixtures/graphs/, each exactly
what `atrous run` reads or writes:

    NAME.weights.safetensors   the module's state_dict, PyTorch key names
                               (num_batches_tracked included, int64)
    NAME.input.safetensors     one f32 tensor "input", NCHW
    NAME.expected.safetensors  one f32 tensor "output", NCHW: PyTorch's result

Every file's __metadata__ holds:
    "format"   "atrous-graph-fixtures"
    "version"  "1"         (the tests refuse any other: regenerate, then bump)
    "case"     NAME
    "role"     "weights" | "input" | "expected"
The weights file also holds:
    "config"   JSON: {"graph": "aspp"|"deeplab_head"|"ppm"|"psp_head",
                      "rates": [...] or "bins": [...], "size": [H, W] or null,
                      "dtype": the dtype of the stored floating weights}
    "torch_version"

Weights are stored in float32 except where a case says otherwise (f64, f16,
bf16, to exercise conversion on load); the weights are rounded to that dtype
before PyTorch computes the expected output, so the output is exact for the
stored weights.

Regenerating
------------
    .venv/bin/python scripts/make_graph_fixtures.py   # or any venv with
                                 # torch, torchvision, safetensors

Options: --out DIR (default tests/fixtures/graphs in the repository). Every
case seeds torch with CRC32 of its name and torch runs single-threaded, so the
files are reproducible for a given torch build and CPU type.
"""

import argparse
import json
import os
import zlib

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabHead

# Shared helpers of the single-op fixture script (same directory).
from make_fixtures import bn_params, canonicalize_header

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join("tests", "fixtures", "graphs")
FORMAT = "atrous-graph-fixtures"
VERSION = "1"

DTYPES = {"f32": torch.float32, "f64": torch.float64, "f16": torch.float16, "bf16": torch.bfloat16}


class PPM(nn.Module):
    """PSPNet's pyramid pooling module (eval-mode semantics)."""

    def __init__(self, in_channels, bins, out_bottleneck):
        super().__init__()
        out = in_channels // len(bins)
        self.stages = nn.ModuleList(
            [
                nn.Sequential(
                    nn.AdaptiveAvgPool2d(b),
                    nn.Conv2d(in_channels, out, 1, bias=False),
                    nn.BatchNorm2d(out),
                    nn.ReLU(inplace=True),
                )
                for b in bins
            ]
        )
        self.bottleneck = nn.Sequential(
            nn.Conv2d(in_channels + len(bins) * out, out_bottleneck, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_bottleneck),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        h, w = x.shape[-2:]
        features = [x] + [
            F.interpolate(stage(x), size=(h, w), mode="bilinear", align_corners=True)
            for stage in self.stages
        ]
        return self.bottleneck(torch.cat(features, dim=1))


def randomize_batchnorms(module):
    """Random running statistics and affine parameters in every BatchNorm2d."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            gamma, beta, mean, var = bn_params(m.num_features)
            m.weight.data.copy_(gamma)
            m.bias.data.copy_(beta)
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.fill_(int(torch.randint(1, 1000, ()).item()))


def round_weights(module, dtype):
    """Rounds every floating parameter and buffer to `dtype` (kept as float32 in the module)."""
    for t in module.state_dict().values():
        if t.is_floating_point():
            t.copy_(t.to(dtype).float())


def save(path, tensors, metadata):
    save_file(tensors, path, metadata=metadata)
    canonicalize_header(path)


def make_case(out_dir, name, graph, module, input_shape, config, dtype="f32", size=None):
    torch.manual_seed(zlib.crc32(name.encode("ascii")))
    module = module()
    randomize_batchnorms(module)
    round_weights(module, DTYPES[dtype])
    module.eval()
    x = torch.randn(*input_shape, dtype=torch.float32)
    with torch.no_grad():
        y = module(x)
        if size is not None:
            y = F.interpolate(y, size=tuple(size), mode="bilinear", align_corners=False)
    assert torch.isfinite(y).all(), name

    common = {"format": FORMAT, "version": VERSION, "case": name}
    weights = {
        k: (v.to(DTYPES[dtype]) if v.is_floating_point() else v).detach().clone().contiguous()
        for k, v in module.state_dict().items()
    }
    config = dict(config, graph=graph, size=size, dtype=dtype)
    save(
        os.path.join(out_dir, f"{name}.weights.safetensors"),
        weights,
        dict(common, role="weights", config=json.dumps(config, sort_keys=True),
             torch_version=torch.__version__),
    )
    save(os.path.join(out_dir, f"{name}.input.safetensors"), {"input": x.contiguous()},
         dict(common, role="input"))
    save(os.path.join(out_dir, f"{name}.expected.safetensors"), {"output": y.contiguous()},
         dict(common, role="expected"))
    return name


def build(out_dir):
    cases = []

    def add(*args, **kwargs):
        cases.append(make_case(out_dir, *args, **kwargs))

    # ASPP: odd H != W, N up to 3, rates larger than the map, any number of rates, output
    # channel counts that are not multiples of 4, weights in every floating dtype.
    add("aspp_r6-12-18_n2_c16to12_h13w11", "aspp",
        lambda: ASPP(16, [6, 12, 18], 12), (2, 16, 13, 11), {"rates": [6, 12, 18]})
    add("aspp_r12-24-36_n3_c24to16_h9w7_f64", "aspp",
        lambda: ASPP(24, [12, 24, 36], 16), (3, 24, 9, 7), {"rates": [12, 24, 36]}, dtype="f64")
    add("aspp_r1-2-3-5_n1_c20to10_h17w15_bf16", "aspp",
        lambda: ASPP(20, [1, 2, 3, 5], 10), (1, 20, 17, 15), {"rates": [1, 2, 3, 5]},
        dtype="bf16")
    # No rates at all: only the 1x1 and the pooling branch (torchvision accepts atrous_rates=[]).
    add("aspp_no-rates_n1_c16to8_h7w5", "aspp",
        lambda: ASPP(16, [], 8), (1, 16, 7, 5), {"rates": []})
    # DeepLabHead: torchvision fixes 256 channels; f16 weights keep the file near 2 MB.
    add("deeplab_head_r12-24-36_n2_c16_cls5_h11w9_size21x17_f16", "deeplab_head",
        lambda: DeepLabHead(16, 5, [12, 24, 36]), (2, 16, 11, 9), {"rates": [12, 24, 36]},
        dtype="f16", size=[21, 17])
    # PPM: bins 1,2,3,6 on 60x60 and on maps smaller than 6x6.
    add("ppm_b1-2-3-6_n1_c16to12_h60w60", "ppm",
        lambda: PPM(16, [1, 2, 3, 6], 12), (1, 16, 60, 60), {"bins": [1, 2, 3, 6]})
    add("ppm_b1-2-3-6_n3_c24to20_h5w4", "ppm",
        lambda: PPM(24, [1, 2, 3, 6], 20), (3, 24, 5, 4), {"bins": [1, 2, 3, 6]})
    # PSP head, with and without resizing the logits.
    add("psp_head_b1-2-3-6_n2_c32_cls5_h7w9", "psp_head",
        lambda: nn.Sequential(PPM(32, [1, 2, 3, 6], 24), nn.Conv2d(24, 5, 1)),
        (2, 32, 7, 9), {"bins": [1, 2, 3, 6]})
    add("psp_head_b1-2-3_n1_c18_cls3_h13w11_size27x23", "psp_head",
        lambda: nn.Sequential(PPM(18, [1, 2, 3], 16), nn.Conv2d(16, 3, 1)),
        (1, 18, 13, 11), {"bins": [1, 2, 3]}, size=[27, 23])
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=None, help=f"output directory (default {DEFAULT_OUT})")
    args = ap.parse_args()
    out_dir = args.out if args.out is not None else os.path.join(REPO_ROOT, DEFAULT_OUT)
    os.makedirs(out_dir, exist_ok=True)

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    cases = build(out_dir)

    total = 0
    for name in cases:
        for role in ("weights", "input", "expected"):
            total += os.path.getsize(os.path.join(out_dir, f"{name}.{role}.safetensors"))
    print(f"wrote {len(cases)} cases ({3 * len(cases)} files, {total / 1024:.1f} KiB) to {out_dir}")
    for name in cases:
        print(f"  {name}")
    print(f"  torch: {torch.__version__}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Time PyTorch on the same graphs and layers that `atrous bench` times.

`atrous bench ... --reference torch` runs this script and merges its JSON into its own table;
it can also be run by hand. Layers are PyTorch's own modules, named as in the state_dict
(`convs.0`, `convs.1`, ..., `project`; `stages.0`, ..., `bottleneck`), plus `cat`, the
concatenation that torch materializes between them (atrous writes branches in place instead).

    python scripts/bench_torch.py aspp --in-channels 2048 --out-channels 256 --size 33,33 --rates 6,12,18
    python scripts/bench_torch.py ppm --in-channels 2048 --size 60,60 --bins 1,2,3,6

Output (stdout, or --json FILE): {"torch_version", "device", "threads", "runs", "warmup",
"total": {"median_ms", "min_ms", "max_ms"}, "layers": [{"name", "median_ms", "min_ms", "max_ms"}]}.
Each time is the median of --runs runs after --warmup runs, synchronized on CUDA. On CUDA, TF32
is off so that the comparison is f32 against f32.
"""

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


class PPM(nn.Module):
    """PSPNet's pyramid pooling module: per bin, pool + 1x1 conv + BN + ReLU + bilinear
    (align_corners=True) back; concat with the input; 3x3 bottleneck conv + BN + ReLU."""

    def __init__(self, in_channels, bins, bottleneck_channels=512):
        super().__init__()
        out = in_channels // len(bins)
        self.bins = bins
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(b),
                nn.Conv2d(in_channels, out, 1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            )
            for b in bins
        )
        self.bottleneck = nn.Sequential(
            nn.Conv2d(in_channels + len(bins) * out, bottleneck_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(bottleneck_channels),
            nn.ReLU(inplace=True),
        )

    def stage(self, i, x):
        h, w = x.shape[-2:]
        return F.interpolate(self.stages[i](x), size=(h, w), mode="bilinear", align_corners=True)

    def forward(self, x):
        feats = [x] + [self.stage(i, x) for i in range(len(self.stages))]
        return self.bottleneck(torch.cat(feats, dim=1))


def layers_aspp(module, x):
    """(name, thunk) per layer of torchvision's ASPP, each on its real input."""
    with torch.no_grad():
        branches = [conv(x) for conv in module.convs]
        cat = torch.cat(branches, dim=1)
    named = [(f"convs.{i}", (lambda conv=conv: conv(x))) for i, conv in enumerate(module.convs)]
    named.append(("cat", lambda: torch.cat(branches, dim=1)))
    named.append(("project", lambda: module.project(cat)))
    return named


def layers_ppm(module, x):
    with torch.no_grad():
        feats = [x] + [module.stage(i, x) for i in range(len(module.stages))]
        cat = torch.cat(feats, dim=1)
    named = [(f"stages.{i}", (lambda i=i: module.stage(i, x))) for i in range(len(module.stages))]
    named.append(("cat", lambda: torch.cat(feats, dim=1)))
    named.append(("bottleneck", lambda: module.bottleneck(cat)))
    return named


def timed(fn, runs, warmup, sync):
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        sync()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            fn()
            sync()
            times.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times)}


def randomize_batchnorm(module):
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("graph", choices=["aspp", "ppm"])
    ap.add_argument("--in-channels", type=int, default=2048)
    ap.add_argument("--out-channels", type=int, default=256, help="ASPP output channels")
    ap.add_argument("--bottleneck-channels", type=int, default=512, help="PPM bottleneck channels")
    ap.add_argument("--size", default=None, help="H,W (default 33,33 for aspp, 60,60 for ppm)")
    ap.add_argument("--rates", default="6,12,18")
    ap.add_argument("--bins", default="1,2,3,6")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--json", default=None, help="write the result here instead of stdout")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        sync = torch.cuda.synchronize
    else:
        sync = lambda: None
    torch.manual_seed(0)
    size = args.size or ("33,33" if args.graph == "aspp" else "60,60")
    h, w = (int(v) for v in size.split(","))
    if args.graph == "aspp":
        from torchvision.models.segmentation.deeplabv3 import ASPP

        rates = [int(r) for r in args.rates.split(",")]
        module = ASPP(args.in_channels, rates, args.out_channels)
        make_layers = layers_aspp
    else:
        bins = [int(b) for b in args.bins.split(",")]
        module = PPM(args.in_channels, bins, args.bottleneck_channels)
        make_layers = layers_ppm
    randomize_batchnorm(module)
    module = module.eval().to(device)
    x = torch.randn(args.batch, args.in_channels, h, w, device=device)

    result = {
        "torch_version": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "runs": args.runs,
        "warmup": args.warmup,
        "total": timed(lambda: module(x), args.runs, args.warmup, sync),
        "layers": [
            {"name": name, **timed(fn, args.runs, args.warmup, sync)}
            for name, fn in make_layers(module, x)
        ],
    }
    text = json.dumps(result, indent=1)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    else:
        sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()

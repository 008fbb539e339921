#!/usr/bin/env python3
"""Time PyTorch on the models and module groups that `atrous bench` times.

`atrous bench ... --reference torch` writes a JSON spec, runs this script on it and merges its
JSON into its own table; it can also be run by hand:

    python scripts/bench_torch.py --spec SPEC.json [--device cpu|cuda] [--threads N] [--json OUT]

SPEC:
    {"model": NAME, "options": {...}, "input_shape": [N, C, H, W], "runs": R, "warmup": W,
     "rows": [{"name": ROW, "modules": ["module.path", ...]}, ...]}

NAME and its options (all optional; defaults given):
    aspp          torchvision ASPP: in_channels 2048, out_channels 256, rates [6, 12, 18]
    deeplab-head  torchvision DeepLabHead: in_channels 2048, num_classes 21,
                  rates [12, 24, 36], size null
    ppm           PPM of scripts/pspnet.py: in_channels 2048, bottleneck_channels 512,
                  bins [1, 2, 3, 6] (stage channels in_channels // len(bins))
    psp-head      nn.Sequential(PPM, nn.Conv2d(bottleneck_channels, num_classes, 1)): ppm's
                  options, num_classes 21, size null
    deeplabv3     torchvision deeplabv3_resnet50/101: depth 50|101, num_classes 21, aux true,
                  output_stride 8|16, rates [12, 24, 36]
    fcn           torchvision fcn_resnet50/101: depth 50|101, num_classes 21, aux true,
                  output_stride 8|16
    pspnet        scripts/pspnet.py: depth 50|101, num_classes 21, aux true, stem "deep"|"7x7",
                  bins [1, 2, 3, 6]
Heads take C, H, W from input_shape (C must equal in_channels); "size": [H, W] resizes their
logits (bilinear, align_corners=False). Whole models take a 3-channel input_shape; output
stride 16 rebuilds torchvision's backbone with replace_stride_with_dilation [False, False,
True]. Module paths are those of the model's state_dict keys (`convs.0`, `project`;
`stages.0`, `bottleneck`; `0.convs.1` in deeplab-head; `backbone.layer3`, `classifier.0` in
deeplabv3; `layer4`, `master_branch.0` in pspnet). Batch-norm statistics are calibrated on
random data (a few train-mode passes), which only keeps activations at sane magnitudes: timing
only, no trained weights.

Output (stdout, or --json OUT):
    {"torch_version", "device", "threads", "runs", "warmup",
     "total": {"median_ms", "min_ms", "max_ms"},
     "rows": [{"name", "median_ms", "min_ms", "max_ms"}, ...]}
total times the plain forward of the whole model (eval, no_grad, no hooks): median, min and
max of R runs after W warmup runs. Then R more runs (after W warmup runs) with a forward
pre-hook and hook on every listed module time the rows: a row's time in one run is the sum of
the time spent inside its modules (a module nested in another of the same row counts once; a
module called several times counts every call; a container that is never called itself, such
as an nn.ModuleList like `stages`, stands for the modules in it). A row whose module list is
empty, or whose modules never ran, has null times. A path that is not a module of the model is an error. On
CUDA the hooks synchronize and TF32 is off for matmul and cuDNN, so the comparison is f32
against f32. --threads sets torch's intra-op threads (default: torch's own).
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pspnet import PPM, calibrate_batchnorm, pspnet_resnet50, pspnet_resnet101  # noqa: E402

DEFAULTS = {
    "aspp": {"in_channels": 2048, "out_channels": 256, "rates": [6, 12, 18]},
    "deeplab-head": {"in_channels": 2048, "num_classes": 21, "rates": [12, 24, 36], "size": None},
    "ppm": {"in_channels": 2048, "bottleneck_channels": 512, "bins": [1, 2, 3, 6]},
    "psp-head": {"in_channels": 2048, "bottleneck_channels": 512, "bins": [1, 2, 3, 6],
                 "num_classes": 21, "size": None},
    "deeplabv3": {"depth": 50, "num_classes": 21, "aux": True, "output_stride": 8,
                  "rates": [12, 24, 36]},
    "fcn": {"depth": 50, "num_classes": 21, "aux": True, "output_stride": 8},
    "pspnet": {"depth": 50, "num_classes": 21, "aux": True, "stem": "deep", "bins": [1, 2, 3, 6]},
}
HEADS = ("aspp", "deeplab-head", "ppm", "psp-head")


def fail(message):
    sys.exit(f"bench_torch.py: {message}")


class Resized(nn.Sequential):
    """A head whose logits are resized to `size`; an nn.Sequential subclass so that the module
    paths stay the head's own."""

    def __init__(self, head, size):
        super().__init__(*head.children())
        self.size = tuple(size) if size else None

    def forward(self, x):
        y = super().forward(x)
        if self.size is not None:
            y = F.interpolate(y, size=self.size, mode="bilinear", align_corners=False)
        return y


def resnet_segmentation(kind, o):
    from torchvision.models import segmentation
    from torchvision.models.segmentation.deeplabv3 import DeepLabHead, _deeplabv3_resnet
    from torchvision.models.segmentation.fcn import _fcn_resnet
    from torchvision.models import resnet50, resnet101

    if o["depth"] not in (50, 101):
        fail(f"{kind}: depth must be 50 or 101, not {o['depth']}")
    if o["output_stride"] == 8:
        # torchvision's own constructor, exactly as its users get it.
        model = getattr(segmentation, f"{kind}_resnet{o['depth']}")(
            weights=None, weights_backbone=None, num_classes=o["num_classes"], aux_loss=o["aux"])
    elif o["output_stride"] == 16:
        backbone = {50: resnet50, 101: resnet101}[o["depth"]](
            weights=None, replace_stride_with_dilation=[False, False, True])
        assemble = _deeplabv3_resnet if kind == "deeplabv3" else _fcn_resnet
        model = assemble(backbone, o["num_classes"], o["aux"])
    else:
        fail(f"{kind}: output_stride must be 8 or 16, not {o['output_stride']}")
    if kind == "deeplabv3" and list(o["rates"]) != [12, 24, 36]:
        model.classifier = DeepLabHead(2048, o["num_classes"], o["rates"])
    return model


def build(name, o, input_shape):
    """The model and whether it takes images (else features of in_channels channels)."""
    if name in HEADS and input_shape[1] != o["in_channels"]:
        fail(f"{name}: input_shape has {input_shape[1]} channels, in_channels is {o['in_channels']}")
    if name not in HEADS and input_shape[1] != 3:
        fail(f"{name}: input_shape must have 3 channels, not {input_shape[1]}")
    if name == "aspp":
        from torchvision.models.segmentation.deeplabv3 import ASPP

        return ASPP(o["in_channels"], o["rates"], o["out_channels"])
    if name == "deeplab-head":
        from torchvision.models.segmentation.deeplabv3 import DeepLabHead

        return Resized(DeepLabHead(o["in_channels"], o["num_classes"], o["rates"]), o["size"])
    if name == "ppm":
        return PPM(o["in_channels"], o["bins"], o["bottleneck_channels"])
    if name == "psp-head":
        return Resized(nn.Sequential(PPM(o["in_channels"], o["bins"], o["bottleneck_channels"]),
                                     nn.Conv2d(o["bottleneck_channels"], o["num_classes"], 1)),
                       o["size"])
    if name in ("deeplabv3", "fcn"):
        return resnet_segmentation(name, o)
    if name == "pspnet":
        if o["depth"] not in (50, 101):
            fail(f"pspnet: depth must be 50 or 101, not {o['depth']}")
        make = pspnet_resnet50 if o["depth"] == 50 else pspnet_resnet101
        return make(o["num_classes"], o["stem"], tuple(o["bins"]), o["aux"])
    fail(f"unknown model {name!r} (one of {', '.join(DEFAULTS)})")


def summary(times):
    if not times:
        return {"median_ms": None, "min_ms": None, "max_ms": None}
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times)}


def time_total(model, x, runs, warmup, sync):
    for _ in range(warmup):
        model(x)
    sync()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model(x)
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return summary(times)


class RowTimer:
    """Forward pre/post hooks that add the time spent inside a row's modules to the row's
    total for the current run. A depth counter per row keeps nested modules of the same row
    from counting twice."""

    def __init__(self, sync):
        self.sync = sync
        self.depth = {}
        self.start = {}
        self.elapsed = {}  # row index -> ms in the current run
        self.ran = set()  # rows whose modules ran at least once

    def hook(self, module, row):
        def pre(_module, _args):
            if self.depth[row] == 0:
                self.sync()
                self.start[row] = time.perf_counter()
            self.depth[row] += 1

        def post(_module, _args, _output):
            self.depth[row] -= 1
            if self.depth[row] == 0:
                self.sync()
                self.elapsed[row] += (time.perf_counter() - self.start[row]) * 1e3
                self.ran.add(row)

        self.depth[row] = 0
        self.elapsed[row] = 0.0
        return [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]


def callable_modules(module):
    """The module, or for a container that is never called itself (nn.ModuleList,
    nn.ModuleDict: no forward of its own) the callable modules inside it."""
    if type(module).forward is not nn.Module.forward:
        return [module]
    return [m for child in module.children() for m in callable_modules(child)]


def where_to_look(model, path):
    def names(m):
        return ", ".join(name for name, _ in m.named_children()) or "(none)"

    text = f"top-level children: {names(model)}"
    parent, prefix = model, []
    for part in path.split(".")[:-1]:
        if part not in dict(parent.named_children()):
            break
        parent = getattr(parent, part)
        prefix.append(part)
    if prefix:
        text += f"; children of {'.'.join(prefix)!r}: {names(parent)}"
    return text


def time_rows(model, x, rows, runs, warmup, sync):
    timer = RowTimer(sync)
    handles = []
    for i, row in enumerate(rows):
        for path in row["modules"]:
            try:
                module = model.get_submodule(path)
            except AttributeError:
                fail(f"row {row['name']!r}: no module {path!r} in the model "
                     f"({where_to_look(model, path)})")
            for target in callable_modules(module):
                handles += timer.hook(target, i)
    per_row = [[] for _ in rows]
    for run in range(warmup + runs):
        for i in timer.elapsed:
            timer.elapsed[i] = 0.0
        model(x)
        sync()
        if run >= warmup:
            for i in timer.elapsed:
                per_row[i].append(timer.elapsed[i])
    for h in handles:
        h.remove()
    return [
        {"name": row["name"], **summary(per_row[i] if i in timer.ran else [])}
        for i, row in enumerate(rows)
    ]


def load_spec(path):
    with open(path) as f:
        spec = json.load(f)
    for key in ("model", "input_shape", "rows"):
        if key not in spec:
            fail(f"{path}: spec lacks {key!r}")
    name = spec["model"]
    if name not in DEFAULTS:
        fail(f"unknown model {name!r} (one of {', '.join(DEFAULTS)})")
    options = spec.get("options") or {}
    unknown = sorted(set(options) - set(DEFAULTS[name]))
    if unknown:
        fail(f"{name}: unknown options {unknown} (known: {sorted(DEFAULTS[name])})")
    if len(spec["input_shape"]) != 4:
        fail(f"input_shape must be [N, C, H, W], not {spec['input_shape']}")
    for row in spec["rows"]:
        if "name" not in row or not isinstance(row.get("modules", []), list):
            fail(f"bad row {row!r}: want {{\"name\": ..., \"modules\": [...]}}")
    return name, dict(DEFAULTS[name], **options), spec


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spec", required=True, help="JSON spec (see the docstring)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--json", default=None, help="write the result here instead of stdout")
    args = ap.parse_args()

    name, options, spec = load_spec(args.spec)
    runs, warmup = int(spec.get("runs", 7)), int(spec.get("warmup", 2))
    rows = [{"name": r["name"], "modules": list(r.get("modules", []))} for r in spec["rows"]]
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        sync = torch.cuda.synchronize
    else:
        sync = lambda: None  # noqa: E731
    torch.manual_seed(0)
    n, c, h, w = spec["input_shape"]
    model = build(name, options, spec["input_shape"])
    # Small calibration batches: two images (ASPP's pooling branch normalizes 1x1 maps and
    # needs more than one value per channel) at no more than 64x64.
    cal_shape = (2, c, min(h, 64), min(w, 64))
    calibrate_batchnorm(model, lambda: torch.randn(*cal_shape), batches=2)
    model = model.eval().to(device)
    x = torch.randn(n, c, h, w, device=device)

    with torch.no_grad():
        total = time_total(model, x, runs, warmup, sync)
        row_times = time_rows(model, x, rows, runs, warmup, sync)
    result = {
        "torch_version": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "runs": runs,
        "warmup": warmup,
        "total": total,
        "rows": row_times,
    }
    text = json.dumps(result, indent=1)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    else:
        sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()

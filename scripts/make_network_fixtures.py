#!/usr/bin/env python3
"""Generate golden whole-network fixtures for atrous: tests/fixtures/networks/.

What it makes
-------------
For each case, a narrow but complete segmentation network computes its logits on a random
image batch, in eval mode:

    deeplabv3  torchvision.models.segmentation.deeplabv3.DeepLabV3: IntermediateLayerGetter
               over a ResNet, DeepLabHead-shaped classifier (ASPP with few channels),
               FCNHead auxiliary classifier
    fcn        torchvision.models.segmentation.fcn.FCN: the same backbone, FCNHead classifier
               and auxiliary classifier
    pspnet     PSPNet from scripts/pspnet.py (7x7 or deep stem, Bottleneck or BasicBlock)

The ResNets are torchvision's, only narrower: any stem width and planes per layer, 1-2 blocks
per layer, layers built by torchvision's own ResNet._make_layer (so stride, dilation and
downsample follow torchvision exactly). Output stride 8 is replace_stride_with_dilation
[False, True, True], 16 is [False, False, True]; PSPNet is always 8.

Weights are initialized as torchvision initializes them, batch-norm affine parameters are
random (some gammas negative, so folding BN is really exercised), and the batch-norm running
statistics are calibrated: cumulative averages over 8 batches of random normal images in
train mode (everything else in eval mode). Uncalibrated random statistics compound through
~20 layers into logits that are constant or explode, and then a test would pass on nearly any
engine output. Each case asserts that its logits change by a relative L2 of at least
MIN_SENSITIVITY between its input and an unrelated random input, and prints that figure.

File layout (what the Rust tests read)
--------------------------------------
Three safetensors files per case NAME in tests/fixtures/networks/:

    NAME.weights.safetensors   the model's state_dict, PyTorch key names
                               (num_batches_tracked included, int64), float32
    NAME.input.safetensors     one f32 tensor "input", N x 3 x H x W
    NAME.expected.safetensors  "output": forward(input)["out"], N x k x H x W;
                               "aux": forward(input)["aux"] when the model has aux

Every file's __metadata__ holds:
    "format"   "atrous-network-fixtures"
    "version"  "1"         (the tests refuse any other: regenerate, then bump)
    "case"     NAME
    "role"     "weights" | "input" | "expected"
The weights file also holds:
    "config"   JSON, sorted keys: {"model": "deeplabv3"|"fcn"|"pspnet", "aux": bool,
               "block": "bottleneck"|"basic", "layers": [b1, b2, b3, b4],
               "num_classes": k, "dtype": "f32"}, plus
               deeplabv3: "output_stride": 8|16, "rates": [...]
               fcn:       "output_stride": 8|16
               pspnet:    "stem": "7x7"|"deep", "bins": [...]
    "torch_version"
Channel counts are not in the config: they are the weights' shapes.

Keys, as the model's state_dict names them:
    deeplabv3, fcn  backbone.conv1, backbone.bn1, backbone.layer1.0.conv1 .. (the
                    IntermediateLayerGetter is a ModuleDict of the ResNet's children, so there
                    is no `body.` level, and no avgpool / fc: it stops after layer4);
                    classifier.0.convs.{0..}, classifier.0.project.0/1, classifier.1/2/4
                    (deeplabv3) or classifier.0/1/4 (fcn); aux_classifier.0/1/4
    pspnet          initial.*, layer1..4, master_branch.0/1, auxiliary_branch.0/1/4
                    (see scripts/pspnet.py)

Dilation (what an engine must reproduce): block 0 of a dilated layer keeps the previous
layer's dilation (torchvision's _make_layer); the blocks after it take the layer's. A
Bottleneck's only dilated conv is conv2 (padding = dilation). torchvision's BasicBlock refuses
dilation > 1, so PSPNet's dilated BasicBlock (scripts/pspnet.py) dilates conv1 with the
block's dilation and conv2 with the layer's: in block 0 of layer3, conv1 1 and conv2 2.

Regenerating
------------
    python scripts/make_network_fixtures.py      # any venv with torch, torchvision, safetensors

Options: --out DIR (default tests/fixtures/networks in the repository). Every case seeds
torch with CRC32 of its name and torch runs single-threaded with deterministic algorithms, so
the files are reproducible for a given torch build and CPU type.

Full-size models, for manual checks (never committed):

    python scripts/make_network_fixtures.py --full fcn_resnet50 --size 520,520 --out /tmp/f

MODEL is deeplabv3_resnet50, deeplabv3_resnet101, fcn_resnet50, fcn_resnet101 (torchvision's
constructors, weights=None, weights_backbone=None, num_classes=21, aux_loss=True),
pspnet_resnet50 or pspnet_resnet101 (deep stem, 21 classes). Batch norm is calibrated on
random 2x3x128x128 batches; the expected output is computed at --size (--batch images). The
same three files, with the case name MODEL_nN_hHwW.
"""

import argparse
import json
import os
import time
import zlib

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from torchvision.models import segmentation
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.resnet import ResNet
from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabV3
from torchvision.models.segmentation.fcn import FCN, FCNHead

# Shared helpers of the single-op fixture script and the PSPNet definition (same directory).
from make_fixtures import bn_params, canonicalize_header
from pspnet import BLOCKS, PSPNet, calibrate_batchnorm, pspnet_resnet50, pspnet_resnet101, \
    resnet_layers

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join("tests", "fixtures", "networks")
FORMAT = "atrous-network-fixtures"
VERSION = "1"

MIN_SENSITIVITY = 0.2
CALIBRATION_BATCHES = 8
CALIBRATION_BATCH_SIZE = 4  # > 1: ASPP's pooling branch normalizes 1x1 maps
DILATION = {8: [False, True, True], 16: [False, False, True]}


class NarrowResNet(ResNet):
    """torchvision's ResNet with any stem width and planes per layer. Only the children
    IntermediateLayerGetter takes (it stops after layer4), in ResNet's order."""

    def __init__(self, block, layers, widths, stem_channels, replace_stride_with_dilation):
        nn.Module.__init__(self)
        self.conv1 = nn.Conv2d(3, stem_channels, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        (self.layer1, self.layer2, self.layer3, self.layer4), self.channels = resnet_layers(
            block, layers, widths, stem_channels, replace_stride_with_dilation)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def narrow_segmentation(model, block, layers, widths, stem_channels, output_stride, aux,
                        num_classes, rates=None, aspp_channels=None):
    """DeepLabV3 or FCN as torchvision's _deeplabv3_resnet / _fcn_resnet assemble them, on a
    NarrowResNet and with heads sized to it."""
    backbone = NarrowResNet(BLOCKS[block], layers, widths, stem_channels, DILATION[output_stride])
    c3, c = backbone.channels[2], backbone.channels[3]
    return_layers = {"layer4": "out"}
    if aux:
        return_layers["layer3"] = "aux"
    body = IntermediateLayerGetter(backbone, return_layers=return_layers)
    aux_classifier = FCNHead(c3, num_classes) if aux else None
    if model == "deeplabv3":
        # DeepLabHead with its fixed 256 channels replaced, same indices.
        classifier = nn.Sequential(
            ASPP(c, rates, out_channels=aspp_channels),
            nn.Conv2d(aspp_channels, aspp_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(aspp_channels),
            nn.ReLU(),
            nn.Conv2d(aspp_channels, num_classes, 1),
        )
        return DeepLabV3(body, classifier, aux_classifier)
    return FCN(body, FCNHead(c, num_classes), aux_classifier)


def randomize_bn_affine(model):
    """Random gamma (some negative) and beta; the running statistics come from calibration."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            gamma, beta, _, _ = bn_params(m.num_features)
            m.weight.data.copy_(gamma)
            m.bias.data.copy_(beta)


def save(path, tensors, metadata):
    save_file(tensors, path, metadata=metadata)
    canonicalize_header(path)


def rel_l2(a, b):
    return ((a - b).norm() / a.norm()).item()


def write_case(out_dir, name, model, x, config):
    """Runs `model` (eval, calibrated) on x and writes the three files; returns the outputs."""
    with torch.no_grad():
        result = model(x)
    common = {"format": FORMAT, "version": VERSION, "case": name}
    weights = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    assert all(v.dtype in (torch.float32, torch.int64) for v in weights.values()), name
    save(os.path.join(out_dir, f"{name}.weights.safetensors"), weights,
         dict(common, role="weights", config=json.dumps(config, sort_keys=True),
              torch_version=torch.__version__))
    save(os.path.join(out_dir, f"{name}.input.safetensors"), {"input": x.contiguous()},
         dict(common, role="input"))
    expected = {"output": result["out"].contiguous()}
    if config["aux"]:
        expected["aux"] = result["aux"].contiguous()
    assert set(result) == ({"out", "aux"} if config["aux"] else {"out"}), (name, set(result))
    for k, v in expected.items():
        assert torch.isfinite(v).all(), (name, k)
    save(os.path.join(out_dir, f"{name}.expected.safetensors"), expected,
         dict(common, role="expected"))
    return result


def make_case(out_dir, name, build, config, shape):
    torch.manual_seed(zlib.crc32(name.encode("ascii")))
    model = build()
    randomize_bn_affine(model)
    n, _, h, w = shape
    calibrate_batchnorm(model, lambda: torch.randn(CALIBRATION_BATCH_SIZE, 3, h, w),
                        CALIBRATION_BATCHES)
    x = torch.randn(*shape)
    other = torch.randn(*shape)
    config = dict(config, dtype="f32")
    result = write_case(out_dir, name, model, x, config)
    with torch.no_grad():
        result_other = model(other)
    figures = {k: rel_l2(result[k], result_other[k]) for k in result}
    out = result["out"]
    print(f"  {name}: output std {out.std().item():.3f}, input sensitivity "
          + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))
    assert figures["out"] >= MIN_SENSITIVITY, (name, figures)
    return name


def build(out_dir):
    cases = []

    def seg(name, model, block, layers, widths, stem, os_, aux, k, shape, rates=None, aspp=None):
        config = {"model": model, "aux": aux, "block": block, "layers": layers,
                  "num_classes": k, "output_stride": os_}
        if model == "deeplabv3":
            config["rates"] = rates
        cases.append(make_case(
            out_dir, name,
            lambda: narrow_segmentation(model, block, layers, widths, stem, os_, aux, k,
                                        rates, aspp),
            config, shape))

    def psp(name, block, layers, widths, stem, stem_channels, bins, aux, k, shape):
        config = {"model": "pspnet", "aux": aux, "block": block, "layers": layers,
                  "num_classes": k, "stem": stem, "bins": bins}
        cases.append(make_case(
            out_dir, name,
            lambda: PSPNet(k, block, layers, widths, stem, bins, aux, stem_channels=stem_channels),
            config, shape))

    # Layer maps at OS8 are 5x6 here: rate 7 reaches past them, 2 and 4 do not. layer3 and
    # layer4 have two blocks, so dilations 2 and 4 also appear outside block 0.
    seg("deeplabv3_bottleneck_os8_aux_n2_h37w45", "deeplabv3", "bottleneck", [1, 1, 2, 2],
        [4, 8, 12, 16], 8, 8, True, 5, (2, 3, 37, 45), rates=[2, 4, 7], aspp=16)
    # torchvision's OS16 rates on a 4x3 map: every dilated tap but the centre lies in padding.
    seg("deeplabv3_bottleneck_os16_n1_h64w48", "deeplabv3", "bottleneck", [1, 2, 1, 2],
        [6, 8, 10, 12], 8, 16, False, 4, (1, 3, 64, 48), rates=[6, 12, 18], aspp=12)
    seg("fcn_bottleneck_os8_aux_n2_h41w35", "fcn", "bottleneck", [2, 1, 1, 2],
        [4, 8, 12, 16], 8, 8, True, 3, (2, 3, 41, 35))
    seg("fcn_bottleneck_os16_n1_h50w62", "fcn", "bottleneck", [1, 1, 2, 2],
        [4, 6, 8, 12], 8, 16, False, 4, (1, 3, 50, 62))
    psp("pspnet_7x7_bottleneck_b1-2-3-6_aux_n2_h49w41", "bottleneck", [1, 1, 2, 2],
        [4, 8, 12, 16], "7x7", 8, [1, 2, 3, 6], True, 5, (2, 3, 49, 41))
    # Three bins: C // len(bins) is not C // 4, and 24 // 3 leaves no remainder to hide.
    psp("pspnet_deep_basic_b1-3-6_n1_h45w39", "basic", [1, 1, 2, 2],
        [8, 12, 16, 24], "deep", (4, 4, 8), [1, 3, 6], False, 4, (1, 3, 45, 39))
    psp("pspnet_deep_bottleneck_b1-2-3-6_aux_n1_h57w63", "bottleneck", [2, 1, 1, 2],
        [4, 8, 12, 16], "deep", (4, 4, 8), [1, 2, 3, 6], True, 3, (1, 3, 57, 63))
    cases.append(segment_case(out_dir))
    return cases


def segment_case(out_dir):
    """`atrous segment` against torchvision: a narrow DeepLabV3 with VOC's 21 classes on the real
    photo of tests/fixtures/images, preprocessed by torchvision's own SemanticSegmentation
    preset (what DeepLabV3_ResNet50_Weights.DEFAULT.transforms() builds) with a shorter side of
    64 instead of 520 to keep the files small (the image tests check 520). The expected file
    holds the preprocessed tensor, the logits at network size, and the class map at the photo's
    size (F.interpolate bilinear, align_corners=False, then argmax) with a mask of the pixels
    whose top two logits differ by more than 1e-4 (elsewhere float rounding may pick either)."""
    from PIL import Image
    from torchvision.transforms._presets import SemanticSegmentation

    name = "segment_deeplabv3_photo_resize64"
    torch.manual_seed(zlib.crc32(name.encode("ascii")))
    path = os.path.join(REPO_ROOT, "tests", "fixtures", "images", "photo.png")
    photo = Image.open(path).convert("RGB")
    x = SemanticSegmentation(resize_size=64)(photo).unsqueeze(0)
    model = narrow_segmentation("deeplabv3", "bottleneck", [1, 1, 2, 2], [4, 8, 12, 16], 8, 8,
                                False, 21, [2, 4, 7], 16)
    randomize_bn_affine(model)
    calibrate_batchnorm(model, lambda: torch.randn(CALIBRATION_BATCH_SIZE, 3, *x.shape[2:]),
                        CALIBRATION_BATCHES)
    with torch.no_grad():
        logits = model(x)["out"]
        resized = F.interpolate(logits, size=(photo.height, photo.width), mode="bilinear",
                                align_corners=False)
    top2 = resized.topk(2, dim=1).values
    classes = resized.argmax(1)[0].to(torch.uint8)
    decisive = ((top2[:, 0] - top2[:, 1]) > 1e-4)[0].to(torch.uint8)
    counts = torch.bincount(classes.flatten().long(), minlength=21)
    found = (counts > 0.01 * classes.numel()).sum().item()
    assert found >= 3, f"{name}: only {found} classes over 1% of the photo; pick another seed"
    config = {"model": "deeplabv3", "aux": False, "block": "bottleneck", "layers": [1, 1, 2, 2],
              "num_classes": 21, "output_stride": 8, "rates": [2, 4, 7], "dtype": "f32",
              "resize": 64, "image": "images/photo.png"}
    common = {"format": FORMAT, "version": VERSION, "case": name}
    weights = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save(os.path.join(out_dir, f"{name}.weights.safetensors"), weights,
         dict(common, role="weights", config=json.dumps(config, sort_keys=True),
              torch_version=torch.__version__))
    save(os.path.join(out_dir, f"{name}.expected.safetensors"),
         {"preprocessed": x.contiguous(), "output": logits.contiguous(),
          "classes": classes.contiguous(), "decisive": decisive.contiguous()},
         dict(common, role="expected"))
    print(f"  {name}: input {tuple(x.shape)}, logits {tuple(logits.shape)}, {found} classes over "
          f"1%, {100 * decisive.float().mean().item():.2f}% of pixels decisive")
    return name


FULL = {
    "deeplabv3_resnet50": ("deeplabv3", [3, 4, 6, 3]),
    "deeplabv3_resnet101": ("deeplabv3", [3, 4, 23, 3]),
    "fcn_resnet50": ("fcn", [3, 4, 6, 3]),
    "fcn_resnet101": ("fcn", [3, 4, 23, 3]),
    "pspnet_resnet50": ("pspnet", [3, 4, 6, 3]),
    "pspnet_resnet101": ("pspnet", [3, 4, 23, 3]),
}


def full(model_name, size, batch, out_dir):
    kind, layers = FULL[model_name]
    h, w = size
    name = f"{model_name}_n{batch}_h{h}w{w}"
    torch.manual_seed(zlib.crc32(name.encode("ascii")))
    t0 = time.perf_counter()
    if kind == "pspnet":
        model = {"pspnet_resnet50": pspnet_resnet50,
                 "pspnet_resnet101": pspnet_resnet101}[model_name](num_classes=21, stem="deep")
        config = {"stem": "deep", "bins": [1, 2, 3, 6]}
    else:
        model = getattr(segmentation, model_name)(weights=None, weights_backbone=None,
                                                  num_classes=21, aux_loss=True)
        # torchvision's segmentation ResNets are all output stride 8, DeepLabHead's default rates.
        config = {"output_stride": 8}
        if kind == "deeplabv3":
            config["rates"] = [12, 24, 36]
    config.update(model=kind, aux=True, block="bottleneck", layers=layers, num_classes=21,
                  dtype="f32")
    randomize_bn_affine(model)
    t1 = time.perf_counter()
    calibrate_batchnorm(model, lambda: torch.randn(2, 3, 128, 128), 4)
    t2 = time.perf_counter()
    x = torch.randn(batch, 3, h, w)
    result = write_case(out_dir, name, model, x, config)
    t3 = time.perf_counter()
    with torch.no_grad():
        result_other = model(torch.randn(batch, 3, h, w))
    print(f"{name}: build {t1 - t0:.1f} s, calibrate {t2 - t1:.1f} s, forward + save "
          f"{t3 - t2:.1f} s; output std {result['out'].std().item():.3f}, input sensitivity "
          f"{rel_l2(result['out'], result_other['out']):.3f}")
    print(f"wrote {out_dir}/{name}.{{weights,input,expected}}.safetensors")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=None, help=f"output directory (default {DEFAULT_OUT})")
    ap.add_argument("--full", choices=sorted(FULL), default=None,
                    help="write one full-size model instead of the fixtures (needs --out)")
    ap.add_argument("--size", default=None, help="H,W of the --full input")
    ap.add_argument("--batch", type=int, default=1, help="N of the --full input")
    args = ap.parse_args()

    torch.use_deterministic_algorithms(True)
    if args.full:
        if args.out is None or args.size is None:
            ap.error("--full needs --out and --size (full-size fixtures are never committed)")
        os.makedirs(args.out, exist_ok=True)
        full(args.full, [int(v) for v in args.size.split(",")], args.batch, args.out)
        return

    out_dir = args.out if args.out is not None else os.path.join(REPO_ROOT, DEFAULT_OUT)
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    print("cases (relative L2 change of the logits for an unrelated input):")
    cases = build(out_dir)

    total = 0
    for name in cases:
        size = sum(os.path.getsize(os.path.join(out_dir, f"{name}.{role}.safetensors"))
                   for role in ("weights", "input", "expected")
                   if os.path.exists(os.path.join(out_dir, f"{name}.{role}.safetensors")))
        total += size
        print(f"  {name}: {size / 1024:.1f} KiB")
    print(f"wrote {len(cases)} cases ({3 * len(cases)} files, {total / 1024:.1f} KiB) to {out_dir}")
    print(f"  torch: {torch.__version__}")


if __name__ == "__main__":
    main()

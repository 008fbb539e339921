"""PSPNet (Zhao et al., "Pyramid Scene Parsing Network") as PyTorch modules, for atrous's
fixtures and benchmarks.

Importable module (scripts/make_network_fixtures.py and scripts/bench_torch.py use it); the
layout is the classic PyTorch PSPNet (the "pytorch-segmentation" one: `initial`, `layer1` ..
`layer4`, `master_branch`, `auxiliary_branch`) on a dilated ResNet with output stride 8.

    from pspnet import pspnet_resnet50, PSPNet
    model = pspnet_resnet50(num_classes=21, stem="deep").eval()
    out = model(x)          # {"out": N x 21 x H x W, "aux": N x 21 x H x W}

state_dict keys
---------------
    initial.0           stem "7x7": Conv2d(3, S, 7, stride 2, padding 3, bias=False)
                        stem "deep": Sequential(conv3x3 s2 (3->S1) .0, BN .1, ReLU .2,
                                                conv3x3 (S1->S2) .3, BN .4, ReLU .5,
                                                conv3x3 (S2->S3) .6), all bias=False
    initial.1           BatchNorm2d of the stem's output, then ReLU (.2), MaxPool(3, 2, 1) (.3)
    layer1 .. layer4    torchvision ResNet layers built by torchvision's own ResNet._make_layer
                        with replace_stride_with_dilation=[False, True, True]: layer3 dilation 2,
                        layer4 dilation 4, block 0 of a dilated layer keeps the previous
                        dilation. Blocks: torchvision's Bottleneck / BasicBlock; a dilated
                        BasicBlock is DilatedBasicBlock below (same attribute names)
    master_branch.0     PPM: stages.i = (AdaptiveAvgPool2d(b), Conv2d(C, C//len(bins), 1), BN,
                        ReLU), bottleneck = (Conv2d(C + len(bins)*(C//len(bins)), C//len(bins),
                        3, padding 1), BN, ReLU, Dropout2d(0.1)); stages upsampled bilinear,
                        align_corners=True
    master_branch.1     Conv2d(C//len(bins), num_classes, 1) with bias
    auxiliary_branch    (aux=True) Conv2d(C3, C3//2, 3, padding 1) .0, BN .1, ReLU .2,
                        Dropout2d(0.1) .3, Conv2d(C3//2, num_classes, 1) .4 with bias

C and C3 are layer4's and layer3's output channels. With 4 bins C//len(bins) is the seed's
m_out_sz // 4; the general formula keeps PPM and classifier consistent for other bin counts.
Both outputs are resized to the input with bilinear, align_corners=False.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet, conv3x3

BLOCKS = {"bottleneck": Bottleneck, "basic": BasicBlock}
TORCHVISION_WIDTHS = (64, 128, 256, 512)
DEEP_STEM = (64, 64, 128)


class DilatedBasicBlock(BasicBlock):
    """torchvision's BasicBlock with dilated 3x3s (torchvision's refuses dilation > 1).

    conv1 (which carries the stride) takes `dilation`, the block's own: the previous layer's
    for block 0 of a dilated layer, as torchvision's _make_layer passes it. conv2 takes
    `conv2_dilation`, the layer's, so only the first 3x3 of a dilated layer lags behind
    (as in the dilated residual networks of Yu et al.). Padding equals dilation in both.
    """

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64,
                 dilation=1, norm_layer=None, conv2_dilation=None):
        # BasicBlock.__init__ would raise on dilation > 1; the attributes are set as it does.
        nn.Module.__init__(self)
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64")
        self.conv1 = conv3x3(inplanes, planes, stride, dilation=dilation)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, dilation=conv2_dilation or dilation)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride


class _DilatedBasicBlockFor:
    """Stands in for the block class in _make_layer: that passes one dilation per block, and
    conv2 of a dilated BasicBlock needs the layer's as well."""

    expansion = BasicBlock.expansion

    def __init__(self, layer_dilation):
        self.layer_dilation = layer_dilation

    def __call__(self, *args, **kwargs):
        return DilatedBasicBlock(*args, conv2_dilation=self.layer_dilation, **kwargs)


class _LayerMaker(ResNet):
    """Only the state ResNet._make_layer reads, so that narrow layers use torchvision's own
    stride, dilation and downsample logic (ResNet.__init__ fixes 64 stem channels and the
    64..512 planes)."""

    def __init__(self, inplanes, norm_layer=nn.BatchNorm2d):
        nn.Module.__init__(self)
        self._norm_layer = norm_layer
        self.inplanes = inplanes
        self.dilation = 1
        self.groups = 1
        self.base_width = 64


def resnet_layers(block, layers, widths, inplanes, replace_stride_with_dilation):
    """layer1 .. layer4 of a ResNet with any stem width (`inplanes`) and any planes per layer,
    built by torchvision's ResNet._make_layer. Returns (list of 4 nn.Sequential, out channels
    of each layer)."""
    if isinstance(block, str):
        block = BLOCKS[block]
    assert len(layers) == 4 and len(widths) == 4 and len(replace_stride_with_dilation) == 3
    maker = _LayerMaker(inplanes)
    built, channels = [], []
    for i, (planes, blocks) in enumerate(zip(widths, layers)):
        stride = 1 if i == 0 else 2
        dilate = i > 0 and replace_stride_with_dilation[i - 1]
        layer_dilation = maker.dilation * stride if dilate else maker.dilation
        b = block
        if block is BasicBlock and layer_dilation > 1:
            b = _DilatedBasicBlockFor(layer_dilation)
        built.append(maker._make_layer(b, planes, blocks, stride=stride, dilate=dilate))
        channels.append(maker.inplanes)
    return built, channels


class PPM(nn.Module):
    """PSPNet's pyramid pooling module, the seed's _PSPModule. `out_channels` defaults to the
    seed's in_channels // len(bins); the benchmark sets 512 as in the paper's ResNet heads."""

    def __init__(self, in_channels, bins, out_channels=None, dropout=0.1):
        super().__init__()
        stage_channels = in_channels // len(bins)
        if out_channels is None:
            out_channels = stage_channels
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(b),
                nn.Conv2d(in_channels, stage_channels, 1, bias=False),
                nn.BatchNorm2d(stage_channels),
                nn.ReLU(inplace=True),
            )
            for b in bins
        )
        self.bottleneck = nn.Sequential(
            nn.Conv2d(in_channels + len(bins) * stage_channels, out_channels, 3, padding=1,
                      bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
        )

    def forward(self, x):
        h, w = x.shape[-2:]
        pyramids = [x] + [
            F.interpolate(stage(x), size=(h, w), mode="bilinear", align_corners=True)
            for stage in self.stages
        ]
        return self.bottleneck(torch.cat(pyramids, dim=1))


def _stem(kind, channels):
    if kind == "7x7":
        conv = nn.Conv2d(3, channels, 7, stride=2, padding=3, bias=False)
        out = channels
    elif kind == "deep":
        c1, c2, c3 = channels
        conv = nn.Sequential(
            nn.Conv2d(3, c1, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, 3, padding=1, bias=False),
            nn.BatchNorm2d(c2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c2, c3, 3, padding=1, bias=False),
        )
        out = c3
    else:
        raise ValueError(f"stem must be '7x7' or 'deep', not {kind!r}")
    return nn.Sequential(conv, nn.BatchNorm2d(out), nn.ReLU(inplace=True),
                         nn.MaxPool2d(3, stride=2, padding=1)), out


class PSPNet(nn.Module):
    """PSPNet on a dilated ResNet (output stride 8); see the module docstring for the keys.

    block: torchvision's Bottleneck or BasicBlock (or "bottleneck" / "basic"); layers: blocks
    per layer; widths: planes per layer; stem: "7x7" or "deep"; stem_channels: an int for
    "7x7", three ints for "deep" (default 64, or 64/64/128 as in the deep-base ResNets).
    """

    def __init__(self, num_classes, block, layers, widths, stem, bins=(1, 2, 3, 6), aux=True,
                 stem_channels=None):
        super().__init__()
        if stem_channels is None:
            stem_channels = DEEP_STEM if stem == "deep" else 64
        self.initial, inplanes = _stem(stem, stem_channels)
        (self.layer1, self.layer2, self.layer3, self.layer4), channels = resnet_layers(
            block, layers, widths, inplanes, [False, True, True])
        c3, c = channels[2], channels[3]
        self.master_branch = nn.Sequential(
            PPM(c, list(bins)),
            nn.Conv2d(c // len(bins), num_classes, 1),
        )
        self.aux = aux
        if aux:
            self.auxiliary_branch = nn.Sequential(
                nn.Conv2d(c3, c3 // 2, 3, padding=1, bias=False),
                nn.BatchNorm2d(c3 // 2),
                nn.ReLU(inplace=True),
                nn.Dropout2d(0.1),
                nn.Conv2d(c3 // 2, num_classes, 1),
            )
        # The backbone as torchvision's ResNet initializes it, the heads as the seed's
        # initialize_weights (Kaiming fan-in, BN bias 1e-4).
        for part in (self.initial, self.layer1, self.layer2, self.layer3, self.layer4):
            for m in part.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)
        for part in (self.master_branch, self.auxiliary_branch if aux else nn.Sequential()):
            for m in part.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 1e-4)

    def forward(self, x):
        size = x.shape[-2:]
        x = self.initial(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x_aux = self.layer3(x)
        x = self.layer4(x_aux)
        result = {"out": F.interpolate(self.master_branch(x), size=size, mode="bilinear",
                                       align_corners=False)}
        if self.aux:
            result["aux"] = F.interpolate(self.auxiliary_branch(x_aux), size=size,
                                          mode="bilinear", align_corners=False)
        return result


def pspnet_resnet50(num_classes=21, stem="deep", bins=(1, 2, 3, 6), aux=True):
    return PSPNet(num_classes, Bottleneck, [3, 4, 6, 3], TORCHVISION_WIDTHS, stem, bins, aux)


def pspnet_resnet101(num_classes=21, stem="deep", bins=(1, 2, 3, 6), aux=True):
    return PSPNet(num_classes, Bottleneck, [3, 4, 23, 3], TORCHVISION_WIDTHS, stem, bins, aux)


def calibrate_batchnorm(model, make_batch, batches=8):
    """Sets every BatchNorm2d's running statistics to the cumulative average over `batches`
    batches from make_batch(), with everything else (dropout) in eval mode so that the
    statistics are those eval mode sees. Leaves the model in eval mode.

    Random running statistics compound through a deep network into outputs that are
    constant or explode; measured ones keep every layer's activations near unit scale."""
    model.eval()
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    with torch.no_grad():
        for _ in range(batches):
            model(make_batch())
    for m in bns:
        m.momentum = 0.1
    return model.eval()

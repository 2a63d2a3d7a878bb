"""Model zoo: SEP-Net small/large, CIFAR ResNet-20/32/44/56, Multiception / DSConv / MixConv.

Every constructor is registered in :data:`ARCHITECTURES` under its public name and takes
keyword arguments only, so a checkpoint can rebuild a model from ``(arch, kwargs)``.

The SEP-Net layer tables are data (:data:`SEPNET_SMALL_TABLE`, :data:`SEPNET_LARGE_TABLE`)
so the compiler and the docs read the same numbers the model is built from.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .nn import ConvBN, SEPConv2d, SEPLinear, SEPModule


# --------------------------------------------------------------------------- SEP-Net tables
@dataclass(frozen=True)
class ConvRow:
    """One plain conv -> BN -> ReLU layer of a SEP-Net table."""
    name: str
    cout: int
    k: int
    stride: int
    groups: int

    @property
    def pad(self) -> int:
        return self.k // 2


@dataclass(frozen=True)
class ModuleRow:
    """One SEP-Net module (svd1 -> PRB -> PRB -> svd2, + input) of a table."""
    name: str
    reduced: int
    k: int
    groups_svd1: int
    groups_kxk: int
    groups_1x1: int
    groups_svd2: int


# Table 8 (SEP-Net small) as reconstructed in docs/models.md: at 224×224 RGB with 1000
# classes the conv + FC weight count is 1,362,368.
SEPNET_SMALL_TABLE = (
    ConvRow("conv1", 64, 3, 2, 1),
    ConvRow("conv2", 128, 3, 2, 1),
    ConvRow("conv3", 128, 3, 2, 1),
    ModuleRow("module1", 64, 5, 1, 2, 4, 1),
    ModuleRow("module2", 64, 5, 1, 2, 4, 1),
    ModuleRow("module3", 64, 5, 1, 2, 4, 1),
    ConvRow("conv4", 192, 3, 2, 4),
    ModuleRow("module4", 48, 5, 1, 2, 4, 1),
    ModuleRow("module5", 48, 5, 1, 2, 4, 1),
    ConvRow("conv5", 512, 3, 2, 16),
)

# Table 7 (SEP-Net large): differs from Table 8 in conv4 groups, module5 svd1 groups and
# conv5; 1,824,832 conv + FC weights at 224×224 / 1000 classes.
SEPNET_LARGE_TABLE = (
    ConvRow("conv1", 64, 3, 2, 1),
    ConvRow("conv2", 128, 3, 2, 1),
    ConvRow("conv3", 128, 3, 2, 1),
    ModuleRow("module1", 64, 5, 1, 2, 4, 1),
    ModuleRow("module2", 64, 5, 1, 2, 4, 1),
    ModuleRow("module3", 64, 5, 1, 2, 4, 1),
    ConvRow("conv4", 192, 3, 2, 1),
    ModuleRow("module4", 48, 5, 1, 2, 4, 1),
    ModuleRow("module5", 48, 5, 8, 2, 4, 1),
    ConvRow("conv5", 832, 1, 2, 4),
)

# Stems: strides of conv1, conv2, conv3. "imagenet" is the paper's (224 -> 28 at module1);
# "small" keeps resolution for 28×28 / 32×32 inputs (28 -> 14 at module1).
STEM_STRIDES = {"imagenet": (2, 2, 2), "small": (1, 2, 1)}


def _scale(c: int, width: float, multiple: int) -> int:
    """Scale a channel count by ``width``, rounded to a positive multiple of ``multiple``."""
    return max(multiple, int(round(c * width / multiple)) * multiple)


class SEPNet(nn.Module):
    """SEP-Net built from a layer table.

    Parameters
    ----------
    table : sequence of ConvRow / ModuleRow
    in_channels, num_classes : int
    stem : "imagenet" | "small"
        Strides of conv1..conv3 (see :data:`STEM_STRIDES`).
    width : float
        Channel multiplier applied to every row (1.0 = the paper's table); counts round to a
        multiple of 16 so every group count still divides.
    """

    def __init__(self, table, in_channels: int = 3, num_classes: int = 1000, stem: str = "imagenet",
                 width: float = 1.0):
        super().__init__()
        if stem not in STEM_STRIDES:
            raise ValueError(f"unknown stem {stem!r}; supported: {sorted(STEM_STRIDES)}")
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        strides = dict(zip(("conv1", "conv2", "conv3"), STEM_STRIDES[stem]))
        layers = nn.ModuleDict()
        c = in_channels
        for row in table:
            if isinstance(row, ConvRow):
                cout = _scale(row.cout, width, 16)
                stride = strides.get(row.name, row.stride)
                groups = row.groups if c % row.groups == 0 else 1
                layers[row.name] = ConvBN(c, cout, row.k, stride=stride, groups=groups, relu=True)
                c = cout
            else:
                r = _scale(row.reduced, width, 8)
                layers[row.name] = SEPModule(c, r, row.k, row.groups_svd1, row.groups_kxk,
                                             row.groups_1x1, row.groups_svd2)
        self.features = layers
        self.fc = SEPLinear(c, num_classes)
        self.feature_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.features.values():
            x = layer(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def sepnet_small(in_channels: int = 3, num_classes: int = 1000, stem: str = "imagenet",
                 width: float = 1.0) -> SEPNet:
    """SEP-Net small (paper appendix Table 8)."""
    return SEPNet(SEPNET_SMALL_TABLE, in_channels, num_classes, stem, width)


def sepnet_large(in_channels: int = 3, num_classes: int = 1000, stem: str = "imagenet",
                 width: float = 1.0) -> SEPNet:
    """SEP-Net large (paper appendix Table 7)."""
    return SEPNet(SEPNET_LARGE_TABLE, in_channels, num_classes, stem, width)


# --------------------------------------------------------------------------- CIFAR ResNets
class BasicBlock(nn.Module):
    """ResNet basic block: conv3x3-BN-ReLU-conv3x3-BN, + shortcut, ReLU.

    The shortcut is the identity, or a strided 1×1 projection + BN where the shape changes
    (He et al.'s option B). The projection is a 1×1 convolution, so it runs on the DSP
    array and its accumulator meets the k×k branch's in the fused post-process — the same
    two-accumulator pattern as a PRB.
    """

    def __init__(self, cin: int, cout: int, stride: int, conv_factory=None):
        super().__init__()
        factory = conv_factory or (lambda ci, co, s: ConvBN(ci, co, 3, stride=s, relu=False))
        self.conv1 = factory(cin, cout, stride)
        self.conv2 = factory(cout, cout, 1)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = ConvBN(cin, cout, 1, stride=stride, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        s = x if self.shortcut is None else self.shortcut(x)
        return F.relu(y + s)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32×32 inputs (He et al. 2016, Sec. 4.2): widths 16/32/64."""

    def __init__(self, depth: int, in_channels: int = 3, num_classes: int = 10,
                 conv_factory_per_stage=None):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.stem = ConvBN(in_channels, 16, 3, relu=True)
        blocks = []
        cin = 16
        for stage, cout in enumerate((16, 32, 64)):
            factory = conv_factory_per_stage[stage] if conv_factory_per_stage else None
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(BasicBlock(cin, cout, stride, factory))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = SEPLinear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _resnet(depth):
    def make(in_channels: int = 3, num_classes: int = 10) -> CifarResNet:
        return CifarResNet(depth, in_channels, num_classes)
    make.__doc__ = f"CIFAR ResNet-{depth} (paper Tables 2/3)."
    return make


resnet20, resnet32, resnet44, resnet56 = (_resnet(d) for d in (20, 32, 44, 56))


# --------------------------------------------------------------------------- Multiception
class MulticeptionConv(nn.Module):
    """Multiception convolution (Bao et al.).

    For each k in ``kernels`` a depthwise k×k convolution over *all* input channels; the
    outputs are concatenated kernel-major (all channels of kernels[0], then kernels[1], ...),
    BN, then a pointwise 1×1 to ``cout`` channels carrying the stride, BN. No ReLU inside:
    the caller decides (the ResNet block applies it).
    """

    def __init__(self, cin: int, cout: int, stride: int, kernels=(3, 5, 7)):
        super().__init__()
        self.kernels = tuple(kernels)
        self.depthwise = nn.ModuleList(
            SEPConv2d(cin, cin, k, padding=k // 2, groups=cin) for k in self.kernels)
        self.bn_dw = nn.BatchNorm2d(cin * len(self.kernels))
        self.pointwise = ConvBN(cin * len(self.kernels), cout, 1, stride=stride, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([dw(x) for dw in self.depthwise], dim=1)
        return self.pointwise(self.bn_dw(y))


class DSConv(nn.Module):
    """Depthwise-separable baseline: depthwise k×k (stride) -> BN -> ReLU -> pointwise 1×1 -> BN."""

    def __init__(self, cin: int, cout: int, stride: int, k: int = 3):
        super().__init__()
        self.depthwise = ConvBN(cin, cin, k, stride=stride, groups=cin, relu=True)
        self.pointwise = ConvBN(cin, cout, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class MixConv(nn.Module):
    """MixConv baseline (Tan & Le): channels split evenly over ``kernels``, each part a
    depthwise k×k (stride), concatenated, BN, ReLU, then pointwise 1×1 -> BN."""

    def __init__(self, cin: int, cout: int, stride: int, kernels=(3, 5, 7)):
        super().__init__()
        n = len(kernels)
        splits = [cin // n + (1 if i < cin % n else 0) for i in range(n)]
        self.splits = splits
        self.depthwise = nn.ModuleList(
            SEPConv2d(c, c, k, stride=stride, padding=k // 2, groups=c) for c, k in zip(splits, kernels))
        self.bn_dw = nn.BatchNorm2d(cin)
        self.pointwise = ConvBN(cin, cout, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.splits, dim=1)
        y = torch.cat([dw(p) for dw, p in zip(self.depthwise, parts)], dim=1)
        return self.pointwise(F.relu(self.bn_dw(y)))


STAGE_KERNELS = ((3, 5, 7), (3, 5), (3, 3))


def _resnet20_with(conv_cls, in_channels: int, num_classes: int) -> CifarResNet:
    if conv_cls is DSConv:
        factories = [lambda ci, co, s: DSConv(ci, co, s)] * 3
    else:
        factories = [(lambda ks: (lambda ci, co, s: conv_cls(ci, co, s, ks)))(ks) for ks in STAGE_KERNELS]
    return CifarResNet(20, in_channels, num_classes, conv_factory_per_stage=factories)


def multiception_resnet20(in_channels: int = 3, num_classes: int = 10) -> CifarResNet:
    """ResNet-20 whose 3×3 convs are Multiception convs, kernels [3,5,7] / [3,5] / [3,3] per stage."""
    return _resnet20_with(MulticeptionConv, in_channels, num_classes)


def dsconv_resnet20(in_channels: int = 3, num_classes: int = 10) -> CifarResNet:
    """ResNet-20 with depthwise-separable 3×3 convs (baseline)."""
    return _resnet20_with(DSConv, in_channels, num_classes)


def mixconv_resnet20(in_channels: int = 3, num_classes: int = 10) -> CifarResNet:
    """ResNet-20 with MixConv convs, kernels [3,5,7] / [3,5] / [3,3] per stage (baseline)."""
    return _resnet20_with(MixConv, in_channels, num_classes)


ARCHITECTURES = {
    "sepnet-small": sepnet_small,
    "sepnet-large": sepnet_large,
    "resnet20": resnet20,
    "resnet32": resnet32,
    "resnet44": resnet44,
    "resnet56": resnet56,
    "multiception-resnet20": multiception_resnet20,
    "dsconv-resnet20": dsconv_resnet20,
    "mixconv-resnet20": mixconv_resnet20,
}


def build(arch: str, **kwargs) -> nn.Module:
    """Build a registered architecture by name; unknown names list the supported ones."""
    try:
        ctor = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; supported: {', '.join(sorted(ARCHITECTURES))}") from None
    return ctor(**kwargs)

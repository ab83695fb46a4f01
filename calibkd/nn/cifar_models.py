"""The CIFAR-100 knowledge-distillation benchmark's architectures.

The teacher-student pairs that KD results are read against (resnet56 ->
resnet20, resnet32x4 -> resnet8x4, wrn_40_2 -> wrn_16_2, vgg13 -> vgg8) with
the structure of the RepDistiller / mdistiller toolboxes' CIFAR models, so
that published numbers are comparable. Written from the papers:

- ResNet: He, Zhang, Ren and Sun, "Deep Residual Learning for Image
  Recognition", CVPR 2016, section 4.2 (the CIFAR variant: a 3x3 stem, three
  stages of ``(depth - 2) / 6`` basic blocks, global pooling). As in the
  toolboxes, a changed shape is bridged by a 1x1 convolution and batch norm
  (the paper's option B), and the "x4" variants (Tian, Krishnan and Isola,
  "Contrastive Representation Distillation", ICLR 2020) have a 32-channel
  stem and stages of 64, 128 and 256 channels.
- Wide ResNet: Zagoruyko and Komodakis, "Wide Residual Networks", BMVC 2016:
  pre-activation blocks (BN-ReLU-conv, twice), ``(depth - 4) / 6`` blocks per
  stage of 16k, 32k and 64k channels, a 1x1 convolution on the shortcut where
  the shape changes, no dropout.
- VGG: Simonyan and Zisserman, "Very Deep Convolutional Networks for
  Large-Scale Image Recognition", ICLR 2015, with batch norm after every
  convolution and adapted to 32x32 inputs as the toolboxes do: five blocks
  of 3x3 convolutions (vgg8 one per block, vgg13 two), max pooling after
  the first three blocks only, global average pooling and one linear layer.

Weights start as in the toolboxes: He-normal convolutions (fan-out), batch
norm at weight 1 and bias 0; the linear layer keeps PyTorch's default
(ResNet), with a zero bias (WRN), or drawn from N(0, 0.01) with a zero bias
(VGG).

The one departure: every model ends in *adaptive* average pooling to 1x1
where the ResNets and WRNs pool a fixed 8x8 window, which is the same
operation on a 32x32 input and lets 28x28 inputs (Fashion-MNIST, 7x7 maps)
and one-channel images run through the same models.

The structure is checked by the trainable parameter counts, against the
published ones, in ``tests/test_cifar_models.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from calibkd.nn.blocks import BasicBlock


def _init_like_toolboxes(model: nn.Module, linear_bias_zero: bool = True,
                         linear_std: float | None = None) -> None:
    """He-normal (fan-out) convolutions, unit batch norm, zero convolution
    biases; the linear layer's bias is zeroed if ``linear_bias_zero`` and its
    weight drawn from N(0, ``linear_std``) if given (else PyTorch's default)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            if linear_std is not None:
                nn.init.normal_(module.weight, 0.0, linear_std)
            if linear_bias_zero:
                nn.init.zeros_(module.bias)


def _pooled(features: torch.Tensor) -> torch.Tensor:
    """Global average pooling to a (N, C) matrix."""
    return torch.flatten(F.adaptive_avg_pool2d(features, 1), 1)


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet: 3x3 stem of ``widths[0]`` channels, three
    stages of ``(depth - 2) / 6`` basic blocks with ``widths[1:]`` channels
    (stride 2 at the second and third), global pooling, a linear head."""

    def __init__(self, in_channels: int, num_classes: int, depth: int,
                 widths: tuple[int, int, int, int]) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
        blocks = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        channels = widths[0]
        for stage, stage_width in enumerate(widths[1:]):
            for block in range(blocks):
                layers.append(BasicBlock(channels, stage_width, 2 if stage > 0 and block == 0 else 1))
                channels = stage_width
        self.stages = nn.Sequential(*layers)
        self.head = nn.Linear(channels, num_classes)
        _init_like_toolboxes(self, linear_bias_zero=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(_pooled(self.stages(self.stem(x))))


class PreActBlock(nn.Module):
    """Wide ResNet block: BN-ReLU-conv3x3 twice. Where the shape changes the
    shortcut is a 1x1 convolution of the pre-activated input; otherwise it is
    the raw input."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.projection: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.projection = nn.Conv2d(in_channels, out_channels, 1, stride, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(activated))))
        shortcut = x if self.projection is None else self.projection(activated)
        return out + shortcut


class WideResNet(nn.Module):
    """WRN-depth-k: a 16-channel 3x3 stem, three stages of ``(depth - 4) / 6``
    pre-activation blocks with 16k, 32k, 64k channels, then BN-ReLU, global
    pooling and a linear head."""

    def __init__(self, in_channels: int, num_classes: int, depth: int, widen: int) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"Wide ResNet depth must be 6n + 4, got {depth}")
        blocks = (depth - 4) // 6
        self.stem = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        layers: list[nn.Module] = []
        channels = 16
        for stage, stage_width in enumerate((16 * widen, 32 * widen, 64 * widen)):
            for block in range(blocks):
                layers.append(PreActBlock(channels, stage_width, 2 if stage > 0 and block == 0 else 1))
                channels = stage_width
        self.stages = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(channels)
        self.head = nn.Linear(channels, num_classes)
        _init_like_toolboxes(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = F.relu(self.bn(self.stages(self.stem(x))))
        return self.head(_pooled(features))


class CifarVGG(nn.Module):
    """VGG with batch norm for 32x32 inputs: five blocks of conv3x3(+bias)-BN-ReLU
    layers (``convs_per_block`` each; 64, 128, 256, 512, 512 channels), 2x2
    max pooling after the first three, global pooling, one linear layer."""

    def __init__(self, in_channels: int, num_classes: int, convs_per_block: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for block, (width, convs) in enumerate(zip((64, 128, 256, 512, 512), convs_per_block, strict=True)):
            for _ in range(convs):
                layers += [nn.Conv2d(channels, width, 3, 1, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
                channels = width
            if block < 3:
                layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, num_classes)
        _init_like_toolboxes(self, linear_std=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(_pooled(self.features(x)))


def resnet20(in_channels: int, num_classes: int) -> nn.Module:
    """ResNet-20 (3 blocks per stage, 16-16-32-64 channels)."""
    return CifarResNet(in_channels, num_classes, 20, (16, 16, 32, 64))


def resnet56(in_channels: int, num_classes: int) -> nn.Module:
    """ResNet-56 (9 blocks per stage, 16-16-32-64 channels)."""
    return CifarResNet(in_channels, num_classes, 56, (16, 16, 32, 64))


def resnet8x4(in_channels: int, num_classes: int) -> nn.Module:
    """ResNet-8x4 (1 block per stage, 32-64-128-256 channels): the reference student."""
    return CifarResNet(in_channels, num_classes, 8, (32, 64, 128, 256))


def resnet32x4(in_channels: int, num_classes: int) -> nn.Module:
    """ResNet-32x4 (5 blocks per stage, 32-64-128-256 channels): the reference teacher."""
    return CifarResNet(in_channels, num_classes, 32, (32, 64, 128, 256))


def wrn_16_2(in_channels: int, num_classes: int) -> nn.Module:
    """WRN-16-2 (2 blocks per stage, widen factor 2)."""
    return WideResNet(in_channels, num_classes, 16, 2)


def wrn_40_2(in_channels: int, num_classes: int) -> nn.Module:
    """WRN-40-2 (6 blocks per stage, widen factor 2)."""
    return WideResNet(in_channels, num_classes, 40, 2)


def vgg8(in_channels: int, num_classes: int) -> nn.Module:
    """VGG-8 with batch norm (one convolution per block)."""
    return CifarVGG(in_channels, num_classes, (1, 1, 1, 1, 1))


def vgg13(in_channels: int, num_classes: int) -> nn.Module:
    """VGG-13 with batch norm (two convolutions per block)."""
    return CifarVGG(in_channels, num_classes, (2, 2, 2, 2, 2))


#: The builders by the toolboxes' names (``calibkd.config.CIFAR_ARCHITECTURE_NAMES``).
CIFAR_ARCHITECTURES: dict[str, Callable[[int, int], nn.Module]] = {
    "resnet20": resnet20,
    "resnet56": resnet56,
    "resnet8x4": resnet8x4,
    "resnet32x4": resnet32x4,
    "wrn_16_2": wrn_16_2,
    "wrn_40_2": wrn_40_2,
    "vgg8": vgg8,
    "vgg13": vgg13,
}

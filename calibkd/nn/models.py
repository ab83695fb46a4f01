"""Teacher and student architectures sized for 28-32 px images.

Teachers are ResNet-style (He et al. 2016, the CIFAR variant with three stages);
students are a small plain CNN or a thinner ResNet. Feature-vector tasks
(the known-posterior mixture) use MLPs. Every model reports its
parameter count so a notebook can show the capacity gap distillation bridges.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from calibkd.nn.blocks import BasicBlock
from calibkd.nn.cifar_models import CIFAR_ARCHITECTURES


class ResNet(nn.Module):
    """CIFAR-style ResNet: a 3x3 stem, three stages of basic blocks, global pooling.

    ``blocks_per_stage`` sets the depth (depth = 6 * blocks + 2) and ``width``
    the channels of the first stage (doubled at each later stage).
    ``stem_stride`` 2 halves the resolution at the stem, which makes the model
    about four times cheaper on CPU at a small cost in accuracy.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        width: int = 32,
        blocks_per_stage: int = 1,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stem_stride, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        channels = width
        for stage, stage_width in enumerate((width, 2 * width, 4 * width)):
            for block in range(blocks_per_stage):
                stride = 2 if (stage > 0 and block == 0) else 1
                layers.append(BasicBlock(channels, stage_width, stride))
                channels = stage_width
        self.stages = nn.Sequential(*layers)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.stages(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(features, 1), 1))


class SmallCNN(nn.Module):
    """Two conv-pool stages and a linear head: the cheapest useful student."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(4 * width),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(features, 1), 1))


class MLP(nn.Module):
    """A multilayer perceptron for feature vectors stored as (N, D, 1, 1)
    (the ``mixture`` task): ``depth`` hidden layers of ``width`` units with
    batch norm and ReLU. Larger inputs are averaged over their pixels first."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 256, depth: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        features = in_channels
        for _ in range(depth):
            layers += [nn.Linear(features, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
            features = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.head(self.body(x))


ModelFactory = Callable[..., nn.Module]

#: Architectures by name; ``build_model`` checks names and keyword arguments against it.
ARCHITECTURES: dict[str, ModelFactory] = {
    "resnet": ResNet,
    "small_cnn": SmallCNN,
    "mlp": MLP,
    **CIFAR_ARCHITECTURES,  # the CIFAR-100 benchmark's models, which take no keyword arguments
}


def build_model(
    name: str, in_channels: int, num_classes: int, **kwargs: int
) -> nn.Module:
    """Instantiate an architecture from ``ARCHITECTURES`` by name.

    Raises ``ValueError`` naming the allowed architectures for an unknown name.
    """
    if name not in ARCHITECTURES:
        raise ValueError(
            f"unknown model {name!r}; allowed models: {sorted(ARCHITECTURES)}"
        )
    for key, value in kwargs.items():
        if not isinstance(value, int) or value <= 0:
            raise ValueError(
                f"model argument {key}={value!r} must be a positive integer"
            )
    try:
        return ARCHITECTURES[name](in_channels, num_classes, **kwargs)
    except TypeError as error:
        raise ValueError(f"bad arguments {kwargs} for model {name!r}: {error}") from None


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

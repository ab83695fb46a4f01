"""Batched, seeded data augmentation on tensors (no per-sample Python).

Random crop with zero padding and horizontal flip, the standard CIFAR recipe,
applied to a whole batch at once on whatever device the batch lives on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from calibkd.config import DatasetInfo
from calibkd.data.splits import Split


def random_crop_flip(
    images: torch.Tensor,
    padding: int,
    flip: bool,
    generator: torch.Generator,
) -> torch.Tensor:
    """Crop each image at a random offset from its zero-padded copy, then flip
    half of them left-right (if ``flip``). Shape, dtype and device are kept.

    ``generator`` makes the result a function of the seed alone.
    """
    if images.ndim != 4:
        raise ValueError(f"expected a batch of shape (N, C, H, W), got {tuple(images.shape)}")
    n, _, height, width = images.shape
    out = images
    if padding > 0:
        padded = F.pad(images, (padding, padding, padding, padding))
        offsets = torch.randint(
            0, 2 * padding + 1, (2, n), generator=generator, device=generator.device
        ).to(images.device)
        rows = offsets[0, :, None] + torch.arange(height, device=images.device)  # (N, H)
        cols = offsets[1, :, None] + torch.arange(width, device=images.device)  # (N, W)
        # Gather rows, then columns: one cheap gather along each axis.
        out = padded.gather(2, rows[:, None, :, None].expand(-1, images.shape[1], -1, padded.shape[3]))
        out = out.gather(3, cols[:, None, None, :].expand(-1, images.shape[1], height, -1))
    if flip:
        flips = torch.rand(n, generator=generator, device=generator.device).to(images.device) < 0.5
        out = torch.where(flips[:, None, None, None], out.flip(3), out)
    return out


def augmented_copy(images: torch.Tensor, padding: int, flip: bool, seed: int,
                   batch_size: int = 4096) -> torch.Tensor:
    """One seeded augmented view of every image, built in batches to bound memory:
    the inputs a teacher actually sees when it produces distillation targets."""
    generator = torch.Generator(device=images.device).manual_seed(seed)
    return torch.cat([random_crop_flip(images[i: i + batch_size], padding, flip, generator)
                      for i in range(0, images.shape[0], batch_size)])


def augmented_view(split: Split, info: DatasetInfo, seed: int) -> Split:
    """One seeded crop (and flip, where ``info`` allows flips) of every example
    of ``split``, labels and true distributions kept: the inputs a student
    sees during distillation. Crops keep an image's class and glyphs are never
    flipped, so the true distributions stay true."""
    return Split(augmented_copy(split.images, info.crop_padding, info.horizontal_flip, seed),
                 split.labels, split.true_probs)


def training_views(split: Split, info: DatasetInfo, augment: bool, seed: int) -> Split:
    """The inputs a model trained with ``augment`` actually sees for ``split``:
    one seeded augmented view of every example, or the examples themselves
    when its recipe does not augment (the overconfident regime)."""
    return augmented_view(split, info, seed) if augment else split

"""Running a trained model: its logits for a batch of images in eval mode,
in the fast memory layout, as float32 on the CPU; and a small memo for
variants that share one model."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def uses_channels_last(model: nn.Module) -> bool:
    """Whether ``model`` runs in channels-last layout (any 2-D convolution)."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def use_fast_layout(model: nn.Module) -> nn.Module:
    """Channels-last weights for convolutional models (faster on CPU and GPU).

    Applied both after training and after loading from the cache, so a cached
    model computes bit-identical outputs to the freshly trained one.
    """
    if uses_channels_last(model):
        model.to(memory_format=torch.channels_last)
    return model


def in_layout(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``images`` in the memory layout the model runs in."""
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


@torch.inference_mode()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits of ``model`` in eval mode for ``images`` (on their device), as float32 on CPU."""
    was_training = model.training
    model.eval()
    channels_last = uses_channels_last(model)
    device = next(model.parameters()).device
    outputs = []
    for start in range(0, images.shape[0], batch_size):
        batch = in_layout(images[start: start + batch_size].to(device), channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            outputs.append(model(batch).float().cpu())
    model.train(was_training)
    return torch.cat(outputs) if outputs else torch.empty(0)


def remember_recent(fn: Callable[[torch.Tensor], torch.Tensor], size: int = 4
                    ) -> Callable[[torch.Tensor], torch.Tensor]:
    """``fn`` that returns its earlier result when called again on one of the
    last ``size`` input tensors (the same objects, not equal values): teacher
    variants that share one model (a teacher and its post-hoc calibrations)
    then run it once per input set, not once per variant."""
    recent: list[tuple[torch.Tensor, torch.Tensor]] = []

    def remembered(images: torch.Tensor) -> torch.Tensor:
        for seen, result in recent:
            if seen is images:
                return result
        result = fn(images)
        recent.insert(0, (images, result))
        del recent[size:]
        return result

    return remembered

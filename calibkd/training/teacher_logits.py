"""Teacher outputs computed once per student run and shared by every
distillation method.

Every student of a comparison uses the same recipe, so the same seeded
``BatchStream``: the same images in the same order with the same crops and
flips. The teacher's logits on those batches are therefore the same for
every method; ``TeacherLogits`` computes them in one pass (eval mode, no
gradient) and serves them by (epoch, step), so the student stage costs about
what training the student alone costs. The cache remembers which teacher and
which stream it was built for and refuses to serve any other.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from calibkd.config import TrainConfig, as_record
from calibkd.data.splits import DataSplits
from calibkd.data.subsets import training_examples
from calibkd.io import params_key
from calibkd.nn.inference import predict_logits
from calibkd.training.loop import BatchStream


class TeacherCacheError(ValueError):
    """A teacher-logit cache was asked for by another teacher or batch stream."""


def stream_key(data: DataSplits, config: TrainConfig) -> str:
    """What determines a batch stream: the split, the training subset, the
    batch size, augmentation, epochs and seed."""
    key = {
        "split": as_record(data.config),
        "subset": config.subset, "batch_size": config.batch_size, "augment": config.augment,
        "epochs": config.epochs, "seed": config.seed, "loss": config.loss,
    }
    if config.long_tail is not None:  # only when set, so that other streams keep their keys
        key["long_tail"] = config.long_tail
    return params_key(key)


class TeacherLogits:
    """The teacher's logits on every batch of a student's training stream."""

    def __init__(self, teacher: nn.Module, teacher_key: str, data: DataSplits, config: TrainConfig,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        if config.loss == "mixup":
            raise TeacherCacheError("students are not trained with mixup; the cached stream would not match")
        self.teacher_key = teacher_key
        self.stream_key = stream_key(data, config)
        self.batch_size = config.batch_size
        stream = BatchStream(training_examples(data, config), config, data.info, torch.device(device))
        self.epochs: list[torch.Tensor] = []
        for _ in range(config.epochs):
            outputs = [predict_logits(teacher, images).to(dtype) for images, _, _ in stream.epoch()]
            # kept on the training device: a student's step then reads its targets without a copy
            self.epochs.append(torch.cat(outputs).to(torch.device(device)))

    def check(self, teacher_key: str, data: DataSplits, config: TrainConfig) -> None:
        """Refuse to serve a different teacher or a different batch stream."""
        if teacher_key != self.teacher_key:
            raise TeacherCacheError(f"teacher logits were cached for teacher {self.teacher_key}, not {teacher_key}")
        if stream_key(data, config) != self.stream_key:
            raise TeacherCacheError("teacher logits were cached for another batch stream "
                                    "(split, subset, batch size, augmentation, epochs or seed differ)")

    def batch(self, epoch: int, step: int) -> torch.Tensor:
        """Teacher logits of batch ``step`` of ``epoch`` (both as the training loop counts: epoch from 1)."""
        logits = self.epochs[epoch - 1]
        return logits[step * self.batch_size: (step + 1) * self.batch_size].float()

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.epochs)

    def describe(self) -> dict[str, Any]:
        return {"teacher": self.teacher_key, "stream": self.stream_key, "epochs": len(self.epochs),
                "megabytes": round(self.nbytes() / 2 ** 20, 1)}

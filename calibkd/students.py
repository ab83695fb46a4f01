"""The student stage: one student recipe for every method; only the target changes.

A ``DistillMethod`` says how a student learns from its teacher: labels only
(``ce``), Hinton KD from the teacher's logits (``kd``), decoupled KD
(``dkd``, with the reference implementation's linear warm-up), or KD towards
a target built from the teacher's probabilities (``target``): W-Clip, a
post-hoc calibrator's map, or both. Teacher logits come from a shared
``TeacherLogits`` cache, so every method sees the same batches and the same
teacher outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from calibkd import distill
from calibkd.config import ConfigError, TrainConfig
from calibkd.data import DataSplits
from calibkd.teacher_cache import TeacherLogits
from calibkd.train import DistillHook, TrainResult, train_model

KINDS = ("ce", "kd", "dkd", "target")

#: Maps teacher logits (N, K) and labels (N,) to target probabilities (N, K).
TargetFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class DistillMethod:
    """How a student learns from its teacher (brief section 4 defaults)."""

    kind: str = "kd"
    temperature: float = 4.0
    alpha: float = 0.9
    dkd_alpha: float = 1.0
    dkd_beta: float = 8.0
    warmup_epochs: int = 20
    #: for ``target``: apply W-Clip to the teacher's probabilities
    wclip: bool = False
    eta: float = 0.5
    m: float = 0.7
    #: for ``target``: soften the target at ``temperature`` (False: use it as it is)
    temper_target: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown distillation method {self.kind!r}; allowed: {list(KINDS)}")
        if isinstance(self.temperature, bool) or not self.temperature > 0:
            raise ConfigError(f"temperature={self.temperature!r} must be > 0")
        for name in ("alpha", "eta", "m"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ConfigError(f"{name}={value!r} must be in [0, 1]")
        if self.dkd_alpha < 0 or self.dkd_beta < 0:
            raise ConfigError("dkd_alpha and dkd_beta must be >= 0")
        if self.warmup_epochs < 0:
            raise ConfigError(f"warmup_epochs={self.warmup_epochs} must be >= 0")


def make_hook(method: DistillMethod, teacher_logits: TeacherLogits | None,
              target_map: TargetFn | None = None) -> DistillHook | None:
    """The training-loop hook that computes ``method``'s loss on one batch."""
    if method.kind == "ce":
        return None
    if teacher_logits is None:
        raise ValueError(f"distillation method {method.kind!r} needs teacher logits")

    def hook(student: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, epoch: int, step: int) -> torch.Tensor:
        teacher = teacher_logits.batch(epoch, step).to(student)
        if method.kind == "kd":
            return distill.kd_loss(student, teacher, labels, method.temperature, method.alpha)
        if method.kind == "dkd":
            ramp = min(epoch / method.warmup_epochs, 1.0) if method.warmup_epochs else 1.0
            return F.cross_entropy(student, labels) + ramp * distill.dkd_loss(
                student, teacher, labels, method.dkd_alpha, method.dkd_beta, method.temperature)
        probs = target_map(teacher, labels) if target_map is not None else torch.softmax(teacher, 1)
        if method.wclip:
            probs = distill.wclip(probs, labels, method.eta, method.m)
        return distill.target_kd_loss(student, probs.to(student), labels, method.temperature, method.alpha,
                                      method.temper_target)

    return hook


def train_student(student: nn.Module, data: DataSplits, config: TrainConfig, method: DistillMethod,
                  teacher_logits: TeacherLogits | None = None, teacher_key: str | None = None,
                  target_map: TargetFn | None = None, label: str = "student",
                  progress: bool | None = None) -> TrainResult:
    """Train ``student`` with ``config`` and learn from the teacher as ``method`` says.

    The teacher-logit cache must have been built for ``teacher_key`` and this
    exact batch stream; anything else is refused rather than silently reused.
    """
    if teacher_logits is not None:
        if teacher_key is None:
            raise ValueError("pass teacher_key with teacher_logits so the cache can be checked")
        teacher_logits.check(teacher_key, data, config)
    hook = make_hook(method, teacher_logits, target_map)
    return train_model(student, data, config, label=label, progress=progress, distill=hook)

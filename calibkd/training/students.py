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

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from calibkd.config import DISTILL_KINDS as KINDS
from calibkd.config import DistillMethod, TrainConfig
from calibkd.data.splits import DataSplits
from calibkd.errors import ConfigError
from calibkd.methods import distill
from calibkd.methods.calibration import Calibrator
from calibkd.training.loop import DistillHook, TrainResult, train_model
from calibkd.training.teacher_logits import TeacherLogits


class ConfidenceSource(Protocol):
    """Per-batch c(x) for CUD-P, built for one batch stream."""

    def check(self, data: DataSplits, config: TrainConfig) -> None: ...

    def batch(self, epoch: int, step: int) -> torch.Tensor: ...

__all__ = ["KINDS", "DistillMethod", "check_teacher", "make_target", "make_hook", "train_student"]


def check_teacher(teacher: nn.Module, data: DataSplits) -> None:
    """Refuse a teacher that cannot serve ``data``: it must accept the data's
    images and give one logit per class (checked on two images, before training)."""
    images = data.val.images[:2]
    was_training = teacher.training
    teacher.eval()
    try:
        with torch.inference_mode():
            out = teacher(images.to(next(teacher.parameters()).device))
    except RuntimeError as error:
        raise ConfigError(f"the teacher does not accept {data.info.name} images of shape "
                          f"{tuple(images.shape[1:])}: {str(error).splitlines()[0]}") from None
    finally:
        teacher.train(was_training)
    if out.ndim != 2 or out.shape[1] != data.info.num_classes:
        raise ConfigError(f"the teacher gives outputs of shape {tuple(out.shape[1:])}, but {data.info.name} "
                          f"has {data.info.num_classes} classes")


def make_target(method: DistillMethod, teacher_logits: torch.Tensor, labels: torch.Tensor,
                calibrator: Calibrator | None = None, confidence: torch.Tensor | None = None) -> torch.Tensor:
    """The target probabilities (at T = 1) a ``target`` method distills towards:
    the teacher's softmax, or its calibrator's map; then the CUD-P projection
    (q_y = c(x): ``confidence`` when given, e.g. cross-fitted, else the
    calibrated probability of the label) and / or W-Clip."""
    probs = torch.softmax(teacher_logits, 1)
    if method.cudp:
        if confidence is None:
            if calibrator is None:
                raise ValueError("CUD-P needs a fitted calibration map (or cross-fitted confidences) for c(x)")
            confidence = calibrator.probs(teacher_logits).to(probs).gather(1, labels[:, None]).squeeze(1)
        probs = distill.cudp_projection(probs, labels, confidence.to(probs).clamp(0.0, 1.0))
    elif calibrator is not None:
        probs = calibrator.probs(teacher_logits).to(probs)
    if method.wclip:
        probs = distill.wclip(probs, labels, method.eta, method.m)
    return probs


def make_hook(method: DistillMethod, teacher_logits: TeacherLogits | None,
              calibrator: Calibrator | None = None, epochs: int = 1,
              confidences: ConfidenceSource | None = None) -> DistillHook | None:
    """The training-loop hook that computes ``method``'s loss on one batch
    (``epochs``: the student's epochs, for DKD's warm-up; ``confidences``:
    per-batch c(x) for CUD-P, e.g. ``cross_fit.CrossFitConfidence``)."""
    if method.kind == "ce":
        return None
    if teacher_logits is None:
        raise ValueError(f"distillation method {method.kind!r} needs teacher logits")
    if method.cudp and calibrator is None and confidences is None:
        raise ValueError("CUD-P needs a fitted calibration map (or cross-fitted confidences) for c(x)")
    warmup = method.warmup_for(epochs)

    def hook(student: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, epoch: int, step: int) -> torch.Tensor:
        teacher = teacher_logits.batch(epoch, step).to(student)
        if method.kind == "kd":
            return distill.kd_loss(student, teacher, labels, method.temperature, method.alpha)
        if method.kind == "dkd":
            ramp = min(epoch / warmup, 1.0) if warmup else 1.0
            return F.cross_entropy(student, labels) + ramp * distill.dkd_loss(
                student, teacher, labels, method.dkd_alpha, method.dkd_beta, method.temperature)
        confidence = confidences.batch(epoch, step) if confidences is not None else None
        probs = make_target(method, teacher, labels, calibrator, confidence)
        return distill.target_kd_loss(student, probs.to(student), labels, method.temperature, method.alpha,
                                      method.temper_target)

    return hook


def train_student(student: nn.Module, data: DataSplits, config: TrainConfig, method: DistillMethod,
                  teacher_logits: TeacherLogits | None = None, teacher_key: str | None = None,
                  calibrator: Calibrator | None = None, label: str = "student",
                  progress: bool | None = None, confidences: ConfidenceSource | None = None) -> TrainResult:
    """Train ``student`` with ``config`` and learn from the teacher as ``method`` says.

    The teacher-logit cache must have been built for ``teacher_key`` and this
    exact batch stream; anything else is refused rather than silently reused.
    """
    if teacher_logits is not None:
        if teacher_key is None:
            raise ValueError("pass teacher_key with teacher_logits so the cache can be checked")
        teacher_logits.check(teacher_key, data, config)
    if confidences is not None:
        confidences.check(data, config)
    hook = make_hook(method, teacher_logits, calibrator, config.epochs, confidences)
    return train_model(student, data, config, label=label, progress=progress, distill=hook)

"""The student stage: one student recipe for every method; only the target changes.

A ``DistillMethod`` says how a student learns from its teacher; its
``kind`` is a row of ``DISTILL_KINDS``, the one table of distillation losses:
labels only (``ce``), Hinton KD from the teacher's logits (``kd``), decoupled
KD (``dkd``, with the reference implementation's linear warm-up), or KD
towards a target built from the teacher's probabilities (``target``): W-Clip,
a post-hoc calibrator's map, or both. A new kind is one entry there (its
per-batch loss); a new student is one entry of ``config.STUDENT_METHODS``. Teacher logits come from a shared
``TeacherLogits`` cache, so every method sees the same batches and the same
teacher outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch
import torch.nn.functional as F
from torch import nn

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



@dataclass
class DistillBatch:
    """What a distillation loss sees on one batch."""

    student: torch.Tensor          # student logits
    teacher: torch.Tensor          # teacher logits (the shared, precomputed pass)
    labels: torch.Tensor
    epoch: int
    warmup: int                    # warm-up epochs (DKD)
    target: torch.Tensor | None    # the shaped target (log-probabilities at T = 1), for kinds with ``shapes_target``


@dataclass(frozen=True)
class DistillKind:
    """One way a student learns from its teacher: its per-batch loss (None:
    labels only, no teacher), whether it distills towards a target shaped by
    ``make_target``, and a short description for the chapters' tables."""

    loss: Callable[[DistillMethod, DistillBatch], torch.Tensor] | None
    description: str
    shapes_target: bool = False


def _dkd(method: DistillMethod, b: DistillBatch) -> torch.Tensor:
    ramp = min(b.epoch / b.warmup, 1.0) if b.warmup else 1.0
    return F.cross_entropy(b.student, b.labels) + ramp * distill.dkd_loss(
        b.student, b.teacher, b.labels, method.dkd_alpha, method.dkd_beta, method.temperature)


#: Every distillation kind: the one table a new distillation loss is added to.
DISTILL_KINDS: dict[str, DistillKind] = {
    "ce": DistillKind(None, "CE on labels"),
    "kd": DistillKind(lambda m, b: distill.kd_loss(b.student, b.teacher, b.labels, m.temperature, m.alpha), "KD"),
    "dkd": DistillKind(_dkd, "CE + DKD"),
    "target": DistillKind(lambda m, b: distill.target_kd_loss(b.student, b.target.to(b.student), b.labels,
                                                              m.temperature, m.alpha, m.temper_target),
                          "KD to target", shapes_target=True),
}


def distill_kind(name: str) -> DistillKind:
    """The row of ``DISTILL_KINDS`` a method names; a clear error for an unknown one."""
    if name not in DISTILL_KINDS:
        raise ConfigError(f"unknown distillation kind {name!r}; allowed kinds: {list(DISTILL_KINDS)}")
    return DISTILL_KINDS[name]


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
    """The target a ``target`` method distills towards, as log-probabilities
    at T = 1 (so tempering stays exact at any margin, ``distill.temper``): the
    teacher's log_softmax, or its calibrator's map; then the CUD-P projection
    (q_y = c(x): ``confidence`` when given, e.g. cross-fitted, else the
    calibrated probability of the label) and / or W-Clip. Computed in float64,
    returned in the logits' dtype."""
    log_probs = torch.log_softmax(teacher_logits.double(), 1)
    calibrated = None if calibrator is None else calibrator.log_probs(teacher_logits, check_logits=False).to(log_probs)
    if method.cudp:
        if confidence is not None:
            c = confidence.to(log_probs).clamp(0.0, 1.0)
            log_c, log_doubt = c.log(), None
        elif calibrated is not None:
            # c(x) and 1 - c(x) both from the calibrated log-probabilities: exact for confident teachers
            log_c = calibrated.gather(1, labels[:, None]).squeeze(1)
            others = calibrated.scatter(1, labels[:, None], -torch.inf)
            log_doubt = torch.logsumexp(others, 1)
        else:
            raise ValueError("CUD-P needs a fitted calibration map (or cross-fitted confidences) for c(x)")
        log_probs = distill.cudp_projection_log(log_probs, labels, log_c, log_doubt, check=False)
    elif calibrated is not None:
        log_probs = calibrated
    if method.wclip:
        log_probs = distill.wclip_log(log_probs, labels, method.eta, method.m)
    return log_probs.to(teacher_logits.dtype)


def make_hook(method: DistillMethod, teacher_logits: TeacherLogits | None,
              calibrator: Calibrator | None = None, epochs: int = 1,
              confidences: ConfidenceSource | None = None) -> DistillHook | None:
    """The training-loop hook that computes ``method``'s loss on one batch
    (``epochs``: the student's epochs, for DKD's warm-up; ``confidences``:
    per-batch c(x) for CUD-P, e.g. ``cross_fit.CrossFitConfidence``)."""
    kind = distill_kind(method.kind)
    if kind.loss is None:
        return None
    if teacher_logits is None:
        raise ValueError(f"distillation method {method.kind!r} needs teacher logits")
    if method.cudp and calibrator is None and confidences is None:
        raise ValueError("CUD-P needs a fitted calibration map (or cross-fitted confidences) for c(x)")
    warmup = method.warmup_for(epochs)

    def hook(student: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, epoch: int, step: int) -> torch.Tensor:
        teacher = teacher_logits.batch(epoch, step).to(student)
        target = None
        if kind.shapes_target:
            confidence = confidences.batch(epoch, step) if confidences is not None else None
            target = make_target(method, teacher, labels, calibrator, confidence)
        return kind.loss(method, DistillBatch(student, teacher, labels, epoch, warmup, target))

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

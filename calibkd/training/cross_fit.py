"""Cross-fitted c(x) for CUD-P: the calibrated probability of the label from
teachers that never saw the example (brief section 3, "the train-set problem").

A teacher that memorised its training data is near one-hot there, so a
calibration map fitted on held-out data and applied to *its* outputs on
training inputs still says "certain". Cross-fitting splits the training
examples into k seeded folds and trains k CE teachers of the same recipe,
teacher f on every fold but f. Each example's c(x) comes from the teacher
that did not train on it, temperature-scaled on validation, evaluated on
the same augmented view the student sees at that step.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from calibkd.config import Recipe, TrainConfig
from calibkd.data.splits import DataSplits
from calibkd.data.subsets import training_examples
from calibkd.errors import ConfigError
from calibkd.methods.calibration import make_calibrator
from calibkd.nn.inference import predict_logits
from calibkd.training.loop import BatchStream, train_model
from calibkd.training.model_cache import ModelCache, TrainedModel, get_trained
from calibkd.training.teacher_logits import TeacherCacheError, stream_key


def fold_of(n: int, folds: int, seed: int) -> torch.Tensor:
    """A seeded fold id in 0..folds-1 for each of ``n`` examples (balanced)."""
    if folds < 2:
        raise ConfigError(f"cross-fitting needs at least 2 folds, got {folds}")
    if n < folds:
        raise ConfigError(f"cannot split {n} examples into {folds} folds")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    ids = torch.empty(n, dtype=torch.long)
    ids[order] = torch.arange(n) % folds
    return ids


def fold_teachers(recipe: Recipe, data: DataSplits, student_config: TrainConfig, folds: int,
                  device: torch.device, cache: ModelCache | None = None,
                  progress: bool | None = None) -> tuple[torch.Tensor, list[TrainedModel]]:
    """The fold ids of the student's training examples and the k teachers of
    ``recipe``, teacher f trained on every example whose fold is not f (cached)."""
    train = training_examples(data, student_config)
    folds_ids = fold_of(len(train), folds, student_config.seed + 17)
    teachers = []
    for f in range(folds):
        keep = (folds_ids != f).nonzero().squeeze(1).to(train.labels.device)
        fold_data = replace(data, train=train.select(keep))
        fold_recipe = replace(recipe, name=f"{recipe.name}/fold{f}of{folds}",
                              train=replace(recipe.train, subset=None, long_tail=None))
        extra = {"cross_fit": {"folds": folds, "fold": f, "fold_seed": student_config.seed + 17,
                               "examples": stream_key(data, replace(student_config, epochs=1))}}
        teachers.append(get_trained(
            fold_recipe, data, device, cache, progress, extra=extra,
            trainer=lambda model, d=fold_data, r=fold_recipe: train_model(model, d, r.train, label=r.name,
                                                                          progress=progress)))
    return folds_ids, teachers


class CrossFitConfidence:
    """c(x) for every example of every batch of a student's stream, from the
    out-of-fold teacher, temperature-scaled on validation; computed once."""

    def __init__(self, fold_ids: torch.Tensor, teachers: list[TrainedModel], data: DataSplits,
                 config: TrainConfig, device: torch.device | str = "cpu") -> None:
        self.stream_key = stream_key(data, config)
        self.batch_size = config.batch_size
        self.teacher_keys = [t.record["key"] for t in teachers]
        calibrators = [make_calibrator("temperature").fit(predict_logits(t.model, data.val.images), data.val.labels)
                       for t in teachers]
        stream = BatchStream(training_examples(data, config), config, data.info, torch.device(device))
        fold_ids = fold_ids.to(torch.device(device))
        self.epochs: list[torch.Tensor] = []
        for _ in range(config.epochs):
            parts = []
            for images, _, labels, index in stream.epoch_with_index():
                c = torch.empty(len(labels), dtype=torch.float64)  # float64: c near 1 keeps its 1 - c
                batch_folds = fold_ids[index]
                for f, (teacher, calibrator) in enumerate(zip(teachers, calibrators)):
                    rows = (batch_folds == f).nonzero().squeeze(1)
                    if len(rows):
                        probs = calibrator.probs(predict_logits(teacher.model, images[rows]))
                        c[rows.cpu()] = probs.gather(1, labels[rows].cpu()[:, None]).squeeze(1)
                parts.append(c)
            self.epochs.append(torch.cat(parts).to(torch.device(device)))  # on the training device, as teacher logits

    def check(self, data: DataSplits, config: TrainConfig) -> None:
        if stream_key(data, config) != self.stream_key:
            raise TeacherCacheError("cross-fitted confidences were computed for another batch stream")

    def batch(self, epoch: int, step: int) -> torch.Tensor:
        """c(x) of batch ``step`` of ``epoch`` (epoch counted from 1, as the training loop does)."""
        return self.epochs[epoch - 1][step * self.batch_size: (step + 1) * self.batch_size]

    def describe(self) -> dict[str, Any]:
        return {"teachers": self.teacher_keys, "stream": self.stream_key, "epochs": len(self.epochs)}

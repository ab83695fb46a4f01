"""Every student of one comparison: trained (or loaded) with one recipe,
sharing one pass of each teacher, and scored the same way.

A ``StudentStage`` belongs to one regime (the CE teacher recipe the
teachers build on). Each student row of ``config.STUDENT_METHODS`` names a
teacher, a map of its outputs and a distillation method; the stage trains
each teacher it needs once (from the model cache when possible), computes
that teacher's logits on the student's batch stream once (only if some
student of that teacher is not cached yet), fits post-hoc maps on the
teacher's validation logits, and caches every student under a key that
includes its teacher's key, its method and its map.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import pandas as pd
import torch

from calibkd import metrics
from calibkd.calibration import Calibrator, fit_temperature, make_calibrator
from calibkd.checkpoints import ModelCache
from calibkd.config import (
    CROSS_FIT_FOLDS, STUDENT_METHODS, SWEEP_DISTILL, SWEEP_TEACHER, ConfigError, Recipe, StudentMethod, as_record, check_sweep,
)
from calibkd.cross_fit import CrossFitConfidence, fold_teachers
from calibkd.data import DataSplits, Split
from calibkd.experiments import TrainedModel, get_trained
from calibkd.shift import group_scores
from calibkd.students import check_teacher, train_student
from calibkd.teacher_cache import TeacherLogits
from calibkd.train import predict_logits

#: (teacher method or "ce", loss overrides or None) -> the trained teacher
TeacherSource = Callable[[str, Mapping[str, float] | None], TrainedModel]


@dataclass
class StudentResult:
    """A trained student with the teacher and method it came from."""

    name: str
    method: StudentMethod
    student: TrainedModel
    teacher: TrainedModel | None

    @property
    def model(self) -> torch.nn.Module:
        return self.student.model


@dataclass
class StudentStage:
    """The students of one regime; see the module docstring."""

    data: DataSplits
    device: torch.device
    regime: str
    recipe: Recipe
    teacher_source: TeacherSource
    dus_teacher: str = "dus_soft"
    cudp_map: str = "temperature"
    cache: ModelCache | None = None
    progress: bool | None = None
    teachers: dict[tuple, TrainedModel] = field(default_factory=dict)
    logits: dict[str, TeacherLogits] = field(default_factory=dict)
    calibrators: dict[tuple[str, str], Calibrator] = field(default_factory=dict)
    #: seconds spent computing each teacher's logits on the student stream (the one-off pass)
    teacher_pass_seconds: dict[str, float] = field(default_factory=dict)
    _fold_teachers: tuple[torch.Tensor, list[TrainedModel]] | None = None
    _cross_fit: CrossFitConfidence | None = None

    def teacher(self, spec: str, loss_overrides: Mapping[str, float] | None = None) -> TrainedModel:
        """The teacher a student row names (``"dus"``: the selected DUS teacher), checked against the data."""
        method = self.dus_teacher if spec == "dus" else spec
        key = (method, tuple(sorted((loss_overrides or {}).items())))
        if key not in self.teachers:
            teacher = self.teacher_source(method, loss_overrides)
            check_teacher(teacher.model, self.data)
            self.teachers[key] = teacher
        return self.teachers[key]

    def calibrator(self, teacher: TrainedModel, name: str) -> Calibrator:
        """A post-hoc map fitted on ``teacher``'s validation logits (never test)."""
        key = (teacher.record["key"], name)
        if key not in self.calibrators:
            val_logits = predict_logits(teacher.model, self.data.val.images)
            self.calibrators[key] = make_calibrator(name).fit(val_logits, self.data.val.labels)
        return self.calibrators[key]

    def calibrator_name(self, method: StudentMethod) -> str | None:
        """The post-hoc map a student row names (``"cudp"``: this stage's CUD-P map)."""
        return self.cudp_map if method.calibrator == "cudp" else method.calibrator

    def teacher_logits(self, teacher: TrainedModel) -> TeacherLogits:
        """The teacher's logits on every batch of the student's stream, computed once."""
        key = teacher.record["key"]
        if key not in self.logits:
            start = time.perf_counter()
            self.logits[key] = TeacherLogits(teacher.model, key, self.data, self.recipe.train, self.device)
            self.teacher_pass_seconds[key] = time.perf_counter() - start
        return self.logits[key]

    def fold_teachers(self) -> tuple[torch.Tensor, list[TrainedModel]]:
        """The cross-fitting CE teachers of this regime (trained or loaded once)."""
        if self._fold_teachers is None:
            self._fold_teachers = fold_teachers(self.teacher("ce").recipe, self.data, self.recipe.train,
                                                CROSS_FIT_FOLDS, self.device, self.cache, self.progress)
            for teacher in self._fold_teachers[1]:
                print(teacher.summary())
        return self._fold_teachers

    def cross_fit_confidence(self) -> CrossFitConfidence:
        """Cross-fitted c(x) on every batch of the student's stream (computed once)."""
        if self._cross_fit is None:
            start = time.perf_counter()
            fold_ids, teachers = self.fold_teachers()
            self._cross_fit = CrossFitConfidence(fold_ids, teachers, self.data, self.recipe.train, self.device)
            self.teacher_pass_seconds["cross-fit folds"] = time.perf_counter() - start
        return self._cross_fit

    def student(self, name: str, method: StudentMethod | None = None,
                loss_overrides: Mapping[str, float] | None = None) -> StudentResult:
        """Train (or load) the student ``name`` (a key of ``STUDENT_METHODS``,
        or any label when ``method`` is given)."""
        if method is None:
            if name not in STUDENT_METHODS:
                raise ConfigError(f"unknown student method {name!r}; allowed: {list(STUDENT_METHODS)}")
            method = STUDENT_METHODS[name]
        distill = method.distill
        if distill.kind == "dkd":
            distill = replace(distill, warmup_epochs=distill.warmup_for(self.recipe.train.epochs))
        teacher = self.teacher(method.teacher, loss_overrides) if method.teacher else None
        if teacher is None and distill.kind != "ce":
            raise ConfigError(f"student {name!r} distills ({distill.kind}) but names no teacher")
        cross_fit = method.calibrator == "cross_fit"
        calibrator_name = self.calibrator_name(method)
        calibrator = (self.calibrator(teacher, calibrator_name)
                      if teacher and calibrator_name and not cross_fit else None)
        recipe = replace(self.recipe, name=f"{self.regime}/student/{name}")
        extra = None
        if teacher is not None:
            extra = {"teacher": teacher.record["key"], "distill": as_record(distill),
                     "calibrator": calibrator_name, "calibrator_fitted_on": "validation"}
        if cross_fit:
            extra["cross_fit"] = {"folds": CROSS_FIT_FOLDS, "teachers": [t.record["key"] for t in self.fold_teachers()[1]]}

        def trainer(model: torch.nn.Module):
            return train_student(model, self.data, recipe.train, distill, self.teacher_logits(teacher),
                                 teacher.record["key"], calibrator, label=recipe.name, progress=self.progress,
                                 confidences=self.cross_fit_confidence() if cross_fit else None)

        trained = get_trained(recipe, self.data, self.device, self.cache, self.progress,
                              extra=extra, trainer=trainer if teacher is not None else None)
        print(trained.summary())
        return StudentResult(name, replace(method, distill=distill), trained, teacher)


def sweep_methods(sweep: Mapping[str, list[float]], base: str = "cud") -> list[tuple[str, str, float, StudentMethod,
                                                                                     dict[str, float] | None]]:
    """The sensitivity sweep as (label, setting, value, method, teacher loss
    overrides): each setting varied alone around the ``base`` student."""
    check_sweep(sweep)
    base_method = STUDENT_METHODS[base]
    runs = []
    for setting, values in sweep.items():
        for value in values:
            label = f"{base}[{setting}={value:g}]"
            if setting in SWEEP_DISTILL:
                method = replace(base_method, distill=replace(base_method.distill, **{setting: float(value)}))
                runs.append((label, setting, float(value), method, None))
            else:
                assert setting in SWEEP_TEACHER
                runs.append((label, setting, float(value), base_method, {setting: float(value)}))
    return runs


def _split_rows(name: str, split: str, probs: torch.Tensor, labels: torch.Tensor) -> list[dict[str, Any]]:
    return [{"model": name, "split": split, "metric": m, "value": v}
            for m, v in metrics.evaluate(probs, labels).items()]


def score_students(results: Mapping[str, StudentResult], data: DataSplits) -> pd.DataFrame:
    """Tidy scores (model, split, metric, value) of every student: on test, on
    validation, on test after the student's own temperature scaling (fitted on
    validation), and its fidelity to its teacher on test (top-1 agreement and
    mean KL(teacher || student), Stanton et al. 2021)."""
    rows: list[dict[str, Any]] = []
    test_labels, val_labels = data.test.labels.cpu(), data.val.labels.cpu()
    teacher_probs: dict[str, torch.Tensor] = {}
    for name, result in results.items():
        test_logits = predict_logits(result.model, data.test.images)
        val_logits = predict_logits(result.model, data.val.images)
        rows += _split_rows(name, "test", metrics.softmax(test_logits), test_labels)
        rows += _split_rows(name, "validation", metrics.softmax(val_logits), val_labels)
        temperature = fit_temperature(val_logits, data.val.labels)
        rows += _split_rows(name, "test after TS", metrics.softmax(test_logits, temperature), test_labels)
        rows.append({"model": name, "split": "validation", "metric": "ts_temperature", "value": temperature})
        if result.teacher is not None:
            key = result.teacher.record["key"]
            if key not in teacher_probs:
                teacher_probs[key] = metrics.softmax(predict_logits(result.teacher.model, data.test.images))
            student_probs = metrics.softmax(test_logits)
            rows.append({"model": name, "split": "test", "metric": "agreement",
                         "value": metrics.agreement(student_probs, teacher_probs[key])})
            rows.append({"model": name, "split": "test", "metric": "teacher_kl",
                         "value": metrics.mean_kl(teacher_probs[key], student_probs)})
    return pd.DataFrame(rows)


def transfer_targets(stage: StudentStage, results: Mapping[str, StudentResult], split: Split) -> dict[str, torch.Tensor]:
    """The target each distilling student was taught on ``split``, at T = 1:
    the constructed target (``students.make_target``: calibrated teacher,
    W-Clip, CUD, CUD-P, ...) for target methods, the teacher's own softmax for
    the others (KD, DKD). Students without a teacher and
    cross-fitted students (their targets need each example's fold) are left out."""
    from calibkd.students import make_target

    labels = split.labels.cpu()
    targets: dict[str, torch.Tensor] = {}
    teacher_logits: dict[str, torch.Tensor] = {}  # students of one teacher share its logits
    for name, result in results.items():
        if result.teacher is None or result.method.calibrator == "cross_fit":
            continue  # cross-fitted targets need each example's fold: not shown on a sample
        key = result.teacher.record["key"]
        if key not in teacher_logits:
            teacher_logits[key] = predict_logits(result.teacher.model, split.images)
        logits = teacher_logits[key]
        method = result.method
        calibrator_name = stage.calibrator_name(method)
        calibrator = stage.calibrator(result.teacher, calibrator_name) if calibrator_name else None
        if method.distill.kind == "target":
            targets[name] = make_target(method.distill, logits, labels, calibrator)
        else:
            targets[name] = torch.softmax(logits, 1)
    return targets


def target_diagnostics(stage: StudentStage, results: Mapping[str, StudentResult], split: Split) -> pd.DataFrame:
    """What each student was taught, on ``split`` (e.g. augmented training
    views): the mean confidence, entropy and non-target mass of its target at
    T = 1, and its ECE against the labels (the calibration of the target
    itself). One row per distilling student."""
    labels = split.labels.cpu()
    rows = []
    for name, target in transfer_targets(stage, results, split).items():
        rows.append({
            "model": name,
            "target confidence": float(target.max(1).values.mean()),
            "target p_y": float(target.gather(1, labels[:, None]).mean()),
            "target entropy": float(metrics.entropy(target).mean()),
            "non-target mass": float(metrics.non_target_mass(target, labels).mean()),
            "target ECE": metrics.ece(target, labels),
            "target accuracy": metrics.accuracy(target, labels),
        })
    return pd.DataFrame(rows)


def class_group_scores(models: Mapping[str, torch.nn.Module], data: DataSplits,
                       groups: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    """Accuracy, ECE and NLL of every model on the test examples of each class
    group (e.g. the many-, medium- and few-shot classes of a long-tailed
    training set), tidy: model, group, classes, metric, value."""
    frames = []
    for name, model in models.items():
        probs = metrics.softmax(predict_logits(model, data.test.images))
        frames.append(group_scores(probs, data.test.labels, dict(groups)).assign(model=name))
    return pd.concat(frames, ignore_index=True)[["model", "group", "classes", "metric", "value"]]

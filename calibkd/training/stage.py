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
from typing import Callable, Mapping

import torch

from calibkd.config import (
    CROSS_FIT_FOLDS,
    LOSS_DEFAULTS,
    STUDENT_METHODS,
    SWEEP_DISTILL,
    SWEEP_TEACHER,
    TEACHER_METHODS,
    Recipe,
    StudentMethod,
    as_record,
    check_sweep,
)
from calibkd.data.splits import DataSplits, Split
from calibkd.errors import ConfigError
from calibkd.methods.calibration import Calibrator, make_calibrator
from calibkd.nn.inference import predict_logits
from calibkd.training.cross_fit import CrossFitConfidence, fold_teachers
from calibkd.training.model_cache import ModelCache, TrainedModel, get_trained
from calibkd.training.students import (
    check_teacher,
    distill_kind,
    make_target,
    train_student,
)
from calibkd.training.teacher_logits import TeacherLogits

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
    #: the student-method table this stage trains from (``design.student_methods``
    #: of the profile: its pair's DKD beta)
    methods: Mapping[str, StudentMethod] = field(default_factory=lambda: STUDENT_METHODS)
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
        """Train (or load) the student ``name`` (a key of ``self.methods``,
        or any label when ``method`` is given)."""
        if method is None:
            if name not in self.methods:
                raise ConfigError(f"unknown student method {name!r}; allowed: {list(self.methods)}")
            method = self.methods[name]
        distill = method.distill
        if distill.kind == "dkd":
            distill = replace(distill, warmup_epochs=distill.warmup_for(self.recipe.train.epochs))
        kind = distill_kind(distill.kind)
        teacher = self.teacher(method.teacher, loss_overrides) if method.teacher else None
        if teacher is None and kind.loss is not None:
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


def sweep_baseline(sweep: Mapping[str, list[float]], base: str = "cud", dus_teacher: str = "dus_soft") -> dict[str, float]:
    """The value each swept setting has in the ``base`` student itself (its
    distillation settings, or its DUS teacher's loss hyper-parameters), read
    from the config: the row the sweep's other values are compared with."""
    check_sweep(sweep)
    method = STUDENT_METHODS[base]
    teacher_loss = dict(LOSS_DEFAULTS[TEACHER_METHODS[dus_teacher][0]]) | dict(TEACHER_METHODS[dus_teacher][1])
    return {setting: float(getattr(method.distill, setting)) if setting in SWEEP_DISTILL
            else float(teacher_loss[setting]) for setting in sweep}


def transfer_targets(stage: StudentStage, results: Mapping[str, StudentResult], split: Split) -> dict[str, torch.Tensor]:
    """The target each distilling student was taught on ``split``, at T = 1:
    the constructed target (``students.make_target``: calibrated teacher,
    W-Clip, CUD, CUD-P, ...) for target methods, the teacher's own softmax for
    the others (KD, DKD). Students without a teacher and
    cross-fitted students (their targets need each example's fold) are left out."""

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
        if distill_kind(method.distill.kind).shapes_target:
            targets[name] = make_target(method.distill, logits, labels, calibrator).exp()
        else:
            targets[name] = torch.softmax(logits, 1)
    return targets



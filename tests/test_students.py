"""The student stage: methods, the cache check, and that only the target changes."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from calibkd.config import ConfigError, TrainConfig
from calibkd.models import build_model
from calibkd.students import DistillMethod, make_hook, train_student
from calibkd.teacher_cache import TeacherCacheError, TeacherLogits

CONFIG = TrainConfig(epochs=2, batch_size=64, lr=0.05, monitor_size=100)


@pytest.fixture
def cache(tiny_splits):
    torch.manual_seed(0)
    teacher = build_model("resnet", 1, 10, width=4, stem_stride=2).eval()
    return TeacherLogits(teacher, "teacher-key", tiny_splits, CONFIG)


def student():
    torch.manual_seed(1)
    return build_model("small_cnn", 1, 10, width=4)


@pytest.mark.parametrize("method", [
    DistillMethod("ce"), DistillMethod("kd"), DistillMethod("dkd", warmup_epochs=2),
    DistillMethod("target", wclip=True), DistillMethod("target", temper_target=False),
])
def test_every_method_trains(tiny_splits, cache, method):
    result = train_student(student(), tiny_splits, CONFIG, method, cache, "teacher-key", progress=False)
    assert len(result.history) == 2 and result.history["train_loss"].notna().all()


def test_target_without_wclip_or_map_equals_kd(tiny_splits, cache):
    """A target built from softmax(teacher), tempered at T, is softmax(teacher / T)."""
    kd, target = make_hook(DistillMethod("kd"), cache), make_hook(DistillMethod("target"), cache)
    logits = torch.randn(64, 10)
    labels = tiny_splits.train.labels[:64]
    assert float(kd(logits, None, labels, 1, 0)) == pytest.approx(float(target(logits, None, labels, 1, 0)), rel=1e-5)
    clipped = make_hook(DistillMethod("target", wclip=True), cache)
    assert float(clipped(logits, None, labels, 1, 0)) != pytest.approx(float(kd(logits, None, labels, 1, 0)), rel=1e-5)


def test_the_cache_is_checked(tiny_splits, cache):
    with pytest.raises(TeacherCacheError):
        train_student(student(), tiny_splits, replace(CONFIG, seed=3), DistillMethod("kd"), cache, "teacher-key")
    with pytest.raises(TeacherCacheError):
        train_student(student(), tiny_splits, CONFIG, DistillMethod("kd"), cache, "another-teacher")
    with pytest.raises(ValueError, match="needs teacher logits"):
        make_hook(DistillMethod("kd"), None)


@pytest.mark.parametrize("kwargs,message", [
    ({"kind": "fitnet"}, "unknown distillation method"),
    ({"temperature": 0.0}, "temperature"),
    ({"alpha": 1.5}, "alpha"),
    ({"eta": -0.1}, "eta"),
    ({"m": 2.0}, "m=2.0"),
    ({"dkd_beta": -1.0}, "dkd_beta"),
])
def test_bad_method(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DistillMethod(**kwargs)

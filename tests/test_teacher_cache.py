"""Teacher logits computed once equal those computed on the fly, batch for batch."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from calibkd.config import TrainConfig
from calibkd.methods.distill import kd_loss
from calibkd.nn.inference import predict_logits
from calibkd.nn.models import build_model
from calibkd.training.loop import train_model
from calibkd.training.teacher_logits import TeacherCacheError, TeacherLogits

CONFIG = TrainConfig(epochs=2, batch_size=64, lr=0.05, monitor_size=100)


def teacher():
    torch.manual_seed(0)
    return build_model("resnet", 1, 10, width=4, stem_stride=2).eval()


def test_cached_logits_equal_on_the_fly_logits_in_training(tiny_splits):
    model = teacher()
    cache = TeacherLogits(model, "t0", tiny_splits, CONFIG)
    seen = []

    def on_the_fly(student_logits, images, labels, epoch, step):
        live = predict_logits(model, images)
        assert torch.equal(live, cache.batch(epoch, step))
        seen.append((epoch, step))
        return kd_loss(student_logits, live.to(student_logits), labels)

    torch.manual_seed(1)
    train_model(build_model("small_cnn", 1, 10, width=4), tiny_splits, CONFIG, distill=on_the_fly, progress=False)
    assert len(seen) == 2 * 7  # 400 examples / 64 per batch, two epochs


def test_students_from_cache_and_on_the_fly_are_identical(tiny_splits):
    model = teacher()
    cache = TeacherLogits(model, "t0", tiny_splits, CONFIG)
    students = []
    for source in ("cache", "live"):
        def hook(student_logits, images, labels, epoch, step, source=source):
            t = cache.batch(epoch, step) if source == "cache" else predict_logits(model, images)
            return kd_loss(student_logits, t.to(student_logits), labels)

        torch.manual_seed(1)
        students.append(train_model(build_model("small_cnn", 1, 10, width=4), tiny_splits, CONFIG,
                                    distill=hook, progress=False).model.state_dict())
    assert all(torch.equal(students[0][k], students[1][k]) for k in students[0])


def test_cache_refuses_another_teacher_or_stream(tiny_splits):
    cache = TeacherLogits(teacher(), "t0", tiny_splits, CONFIG)
    cache.check("t0", tiny_splits, CONFIG)
    with pytest.raises(TeacherCacheError, match="teacher t0, not t1"):
        cache.check("t1", tiny_splits, CONFIG)
    with pytest.raises(TeacherCacheError, match="another batch stream"):
        cache.check("t0", tiny_splits, replace(CONFIG, seed=5))
    with pytest.raises(TeacherCacheError, match="another batch stream"):
        cache.check("t0", tiny_splits, replace(CONFIG, augment=False))
    assert cache.describe()["epochs"] == 2

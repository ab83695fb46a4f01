"""The student stage: methods, the cache check, and that only the target changes."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from calibkd.config import DistillMethod, TrainConfig
from calibkd.errors import ConfigError
from calibkd.nn.models import build_model
from calibkd.training.students import make_hook, train_student
from calibkd.training.teacher_logits import TeacherCacheError, TeacherLogits

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
    ({"kind": ""}, "distillation kind='' must be a name"),
    ({"temperature": 0.0}, "temperature"),
    ({"alpha": 1.5}, "alpha"),
    ({"eta": -0.1}, "eta"),
    ({"m": 2.0}, "m=2.0"),
    ({"dkd_beta": -1.0}, "dkd_beta"),
])
def test_bad_method(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DistillMethod(**kwargs)


def test_an_unknown_distillation_kind_is_refused_with_the_table_of_kinds():
    """Kinds live with their losses (``DISTILL_KINDS``), so one is checked
    when a hook is built (and when a chapter starts), not by config."""
    with pytest.raises(ConfigError, match=r"unknown distillation kind 'fitnet'; allowed kinds: \['ce', 'kd', 'dkd', 'target'\]"):
        make_hook(DistillMethod("fitnet"), None)


# ---------------------------------------------------------------------------
# targets, teacher checks, method settings
# ---------------------------------------------------------------------------

from calibkd.methods import distill  # noqa: E402
from calibkd.methods.calibration import make_calibrator  # noqa: E402
from calibkd.training.students import check_teacher, make_target  # noqa: E402


def _fitted(name):
    torch.manual_seed(3)
    logits = torch.randn(300, 10) * 3
    labels = torch.where(torch.rand(300) < 0.7, logits.argmax(1), torch.randint(0, 10, (300,)))
    return make_calibrator(name).fit(logits, labels)


def test_target_of_a_temperature_map_is_the_scaled_softmax():
    calibrator = _fitted("temperature")
    z, y = torch.randn(20, 10), torch.randint(0, 10, (20,))
    target = make_target(DistillMethod("target"), z, y, calibrator)
    torch.testing.assert_close(target.exp(), torch.softmax(z / calibrator.temperature, 1), rtol=1e-5, atol=1e-6)
    # tempering that target at T is softmax(z / (T_ts * T)), also for a teacher at margin 60 and 183 classes
    torch.testing.assert_close(distill.temper(target, 4.0).exp(),
                               torch.softmax(z / (4.0 * calibrator.temperature), 1), rtol=1e-4, atol=1e-6)
    confident = torch.randn(20, 183)
    confident[torch.arange(20), 0] = confident.max(1).values + 60.0
    target = make_target(DistillMethod("target"), confident, y, calibrator)
    torch.testing.assert_close(distill.temper(target, 4.0).exp(),
                               torch.softmax(confident / (4.0 * calibrator.temperature), 1), rtol=1e-4, atol=1e-9)


def test_cudp_target_sets_the_label_to_the_calibrated_probability_where_the_rank_allows():
    calibrator = _fitted("temperature")
    z, y = torch.randn(50, 10) * 2, torch.randint(0, 10, (50,))
    q = make_target(DistillMethod("target", cudp=True), z, y, calibrator).exp()
    c = calibrator.probs(z).gather(1, y[:, None]).squeeze(1)
    q_y = q.gather(1, y[:, None]).squeeze(1)
    others = q.scatter(1, y[:, None], -1.0).max(1).values
    assert torch.all(q_y >= c - 1e-6) and torch.all(q_y >= others - 1e-6)
    unconstrained = q_y > c + 1e-6  # raised to the rank bound: then q_y ties with the runner-up
    torch.testing.assert_close(q_y[unconstrained], others[unconstrained], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(q.sum(1), torch.ones(50), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="calibration map"):
        make_target(DistillMethod("target", cudp=True), z, y, None)


def test_wclip_target_applies_after_the_map():
    z, y = torch.randn(30, 10) * 3, torch.randint(0, 10, (30,))
    target = make_target(DistillMethod("target", wclip=True, eta=0.4, m=0.6), z, y)
    torch.testing.assert_close(target.exp(), distill.wclip(torch.softmax(z, 1), y, 0.4, 0.6))


def test_check_teacher_refuses_wrong_class_count_or_input_shape(tiny_splits):
    check_teacher(build_model("resnet", 1, 10, width=4, stem_stride=2), tiny_splits)
    with pytest.raises(ConfigError, match="100 classes|has 10 classes"):
        check_teacher(build_model("resnet", 1, 100, width=4, stem_stride=2), tiny_splits)
    with pytest.raises(ConfigError, match="does not accept"):
        check_teacher(build_model("resnet", 3, 10, width=4, stem_stride=2), tiny_splits)


def test_wclip_or_cudp_need_a_target_method_and_dkd_warmup_scales():
    with pytest.raises(ConfigError, match="kind='target'"):
        DistillMethod("kd", wclip=True)
    assert DistillMethod("dkd").warmup_for(240) == 20
    assert DistillMethod("dkd").warmup_for(10) == 1
    assert DistillMethod("dkd", warmup_epochs=0).warmup_for(10) == 0

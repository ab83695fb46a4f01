"""The ``cifar100`` profiles carry the CIFAR-100 benchmark's published recipe
(brief section 8: RepDistiller / mdistiller), and the step schedule does
what the toolboxes' does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from calibkd.config import (
    CIFAR100_PAIRS,
    CIFAR100_RECIPE,
    LONG_TAIL_IMBALANCE,
    STUDENT_METHODS,
    TrainConfig,
    get_profile,
    student_methods,
    teacher_variant,
)
from calibkd.errors import ConfigError
from calibkd.nn.models import build_model
from calibkd.training.loop import make_optimizer

#: The published pairs and DKD's beta for each (Zhao et al. 2022, mdistiller's configs).
PUBLISHED_PAIRS = {
    ("resnet32x4", "resnet8x4"): 8.0, ("resnet56", "resnet20"): 2.0,
    ("wrn_40_2", "wrn_16_2"): 6.0, ("vgg13", "vgg8"): 6.0,
}


def test_the_recipe_is_the_published_one():
    r = CIFAR100_RECIPE
    assert (r.optimizer, r.momentum, r.nesterov, r.batch_size, r.epochs) == ("sgd", 0.9, False, 64, 240)
    assert (r.lr, r.schedule, r.milestones, r.lr_decay) == (0.05, "step", (150, 180, 210), 0.1)
    assert (r.weight_decay, r.decay_all, r.augment) == (5e-4, True, True)


@pytest.mark.parametrize("name", list(CIFAR100_PAIRS))
def test_every_pair_trains_teacher_and_student_with_the_recipe(name):
    profile = get_profile(name, "cifar100")
    pair = CIFAR100_PAIRS[name]
    teacher, student = profile.teacher_recipes["default"], profile.student
    assert (teacher.model.arch, student.model.arch) == (pair.teacher, pair.student)
    assert PUBLISHED_PAIRS[(pair.teacher, pair.student)] == pair.dkd_beta
    for recipe in (teacher, student):
        assert recipe.train == TrainConfig(**{**vars(CIFAR100_RECIPE), "monitor_size": recipe.train.monitor_size})
    assert profile.split.dataset == "cifar100" and profile.split.val_size == 5_000
    assert profile.teacher_recipes["long_tail"].train.long_tail == LONG_TAIL_IMBALANCE == 100.0
    overconfident = profile.teacher_recipes["overconfident"].train
    assert (overconfident.augment, overconfident.weight_decay, overconfident.subset) == (False, 0.0, 10_000)


@pytest.mark.parametrize("name", list(CIFAR100_PAIRS))
def test_kd_and_dkd_are_the_published_settings(name):
    methods = student_methods(get_profile(name, "cifar100"))
    kd, dkd = methods["kd"].distill, methods["dkd"].distill
    # KD: T = 4, loss 0.1 CE + 0.9 KL (times T^2)
    assert (kd.kind, kd.temperature, kd.alpha) == ("kd", 4.0, 0.9)
    # DKD: alpha 1, the pair's beta, T = 4, ramped in over 20 of 240 epochs
    assert (dkd.dkd_alpha, dkd.dkd_beta, dkd.temperature) == (1.0, CIFAR100_PAIRS[name].dkd_beta, 4.0)
    assert dkd.warmup_for(240) == 20
    # only DKD rows change
    assert {n for n in STUDENT_METHODS if methods[n] != STUDENT_METHODS[n]} <= {"dkd"}


def test_the_step_schedule_divides_by_ten_after_each_milestone():
    config = TrainConfig(epochs=8, lr=0.05, schedule="step", milestones=(3, 5, 7), lr_decay=0.1)
    model = build_model("small_cnn", 3, 100, width=4)
    optimizer, schedule = make_optimizer(model, config, steps_per_epoch=2)
    per_epoch = []
    for _ in range(config.epochs):
        per_epoch.append(optimizer.param_groups[0]["lr"])
        for _ in range(2):
            optimizer.step()
            schedule.step()
    # epochs 1-3 at lr, 4-5 at lr / 10, 6-7 at lr / 100, 8 at lr / 1000 (the toolboxes: epoch > milestone)
    assert per_epoch == pytest.approx([0.05] * 3 + [0.005] * 2 + [0.0005] * 2 + [0.00005])


def test_the_recipe_decays_every_parameter_and_uses_plain_momentum():
    model = build_model("small_cnn", 3, 100, width=4)
    optimizer, _ = make_optimizer(model, CIFAR100_RECIPE, steps_per_epoch=10)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [5e-4]
    assert optimizer.param_groups[0]["nesterov"] is False
    ours, _ = make_optimizer(model, TrainConfig(), steps_per_epoch=10)
    assert [g["weight_decay"] for g in ours.param_groups] == [5e-4, 0.0]


def test_the_dus_fine_tune_decays_by_cosine_in_every_profile():
    variant = teacher_variant(get_profile("cifar100", "cifar100"), "default", "dus_soft")
    assert (variant.train.schedule, variant.train.milestones, variant.train.epochs) == ("cosine", (), 24)
    assert variant.train.lr == pytest.approx(0.005)


@pytest.mark.parametrize("kwargs,message", [
    ({"schedule": "linear"}, "schedule"),
    ({"schedule": "step", "milestones": (5, 3)}, "increasing"),
    ({"schedule": "step", "milestones": (10,)}, "below epochs"),
    ({"milestones": (3,)}, "schedule='step'"),
    ({"lr_decay": 0.0}, "lr_decay"),
])
def test_bad_schedules_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(epochs=10, **kwargs)


def test_a_cifar100_profile_refuses_another_dataset():
    with pytest.raises(ConfigError, match="use it with dataset='cifar100'"):
        get_profile("cifar100", "fashion_mnist")


def test_the_reference_pair_profile_builds_its_models():
    profile = get_profile("cifar100", "cifar100")
    x = torch.zeros(2, 3, 32, 32)
    for recipe in (profile.teacher_recipes["default"], profile.student):
        model = build_model(recipe.model.arch, 3, 100, **recipe.model.arguments)
        assert model(x).shape == (2, 100)


def test_the_table_of_published_numbers_is_the_config():
    """docs/scale.md's table of published accuracies is ``CIFAR100_PAIRS``, row for row."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "scale.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith("| `cifar100") and line.count("|") == 8]
    assert len(rows) == len(CIFAR100_PAIRS)
    for row, (name, pair) in zip(rows, CIFAR100_PAIRS.items()):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells == [f"`{name}`", f"{pair.teacher} -> {pair.student}", f"{pair.teacher_top1:.2f}",
                         f"{pair.student_top1:.2f}", f"{pair.kd_top1:.2f}", f"{pair.dkd_top1:.2f}",
                         f"{pair.dkd_beta:g}"]


def test_the_long_tail_regime_is_cifar100_lt():
    """CIFAR-100-LT with imbalance ratio 100 (Cao et al. 2019): from 500 images
    per class, 500 down to 5, 10,847 in all (the published size)."""
    from calibkd.data.splits import Split
    from calibkd.data.subsets import long_tail_counts, long_tail_subset

    counts = long_tail_counts(500, 100, LONG_TAIL_IMBALANCE)
    assert (counts[0], counts[-1], sum(counts)) == (500, 5, 10_847)
    labels = torch.arange(100).repeat_interleave(450)  # the 45,000 training images the profile keeps
    split = Split(torch.zeros(len(labels), 1, 1, 1), labels)
    tail = long_tail_subset(split, 100, LONG_TAIL_IMBALANCE, seed=0)
    sizes = sorted(tail.counts.values(), reverse=True)
    assert (sizes[0], sizes[-1]) == (450, 4) and len(tail.split) == sum(long_tail_counts(450, 100, 100.0))

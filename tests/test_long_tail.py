"""The long-tail regime: teachers and students of one seed train on the same
long-tailed examples, keys of balanced runs do not move, and per-group scores
match a direct computation."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from calibkd import metrics
from calibkd.config import (
    LONG_TAIL_IMBALANCE,
    PARAMETER_RULES,
    TrainConfig,
    get_profile,
)
from calibkd.data.subsets import long_tail_of, long_tail_subset, training_examples
from calibkd.errors import ConfigError
from calibkd.nn.inference import predict_logits
from calibkd.study.report import class_group_scores
from calibkd.training.cross_fit import fold_teachers
from calibkd.training.model_cache import model_params
from calibkd.training.teacher_logits import stream_key
from tests.test_student_stage import STUDENT, TEACHER, make_stage


def test_long_tail_must_be_an_imbalance_of_at_least_one():
    with pytest.raises(ConfigError, match="long_tail"):
        TrainConfig(long_tail=0.5)
    with pytest.raises(ConfigError, match="long_tail"):
        TrainConfig(long_tail=float("nan"))


def test_training_examples_are_the_seeded_long_tail(tiny_splits):
    config = TrainConfig(long_tail=10.0, seed=3)
    examples = training_examples(tiny_splits, config)
    direct = long_tail_subset(tiny_splits.train, 10, 10.0, seed=3)
    torch.testing.assert_close(examples.images, direct.split.images, rtol=0, atol=0)
    assert torch.equal(examples.labels, direct.split.labels)
    counts = torch.bincount(examples.labels, minlength=10).tolist()
    assert max(counts) >= 9 * min(counts)  # 10x imbalance, up to rounding of the smallest class
    tail = long_tail_of(tiny_splits, config)
    assert sorted(sum(tail.groups.values(), [])) == list(range(10))
    assert tail.class_order != long_tail_of(tiny_splits, replace(config, seed=4)).class_order
    with pytest.raises(ValueError, match="not long-tailed"):
        long_tail_of(tiny_splits, TrainConfig())


def test_balanced_runs_keep_their_cache_and_stream_keys(tiny_splits):
    device = torch.device("cpu")
    balanced = model_params(TEACHER, tiny_splits, device)
    assert "long_tail" not in balanced["train"]  # keys of models cached before the option existed
    tailed = model_params(replace(TEACHER, train=replace(TEACHER.train, long_tail=10.0)), tiny_splits, device)
    assert tailed["train"]["long_tail"] == 10.0
    config = STUDENT.train
    assert stream_key(tiny_splits, config) != stream_key(tiny_splits, replace(config, long_tail=10.0))


def test_every_profile_has_a_long_tail_regime_on_its_default_recipe():
    profile = get_profile("smoke", "fashion_mnist")
    recipe = profile.teacher_recipes["long_tail"]
    assert recipe.train.long_tail == LONG_TAIL_IMBALANCE
    assert replace(recipe.train, long_tail=None) == profile.teacher_recipes["default"].train
    PARAMETER_RULES["regimes"].check("regimes", ["default", "long_tail"])
    with pytest.raises(ConfigError, match="tail"):
        PARAMETER_RULES["regimes"].check("regimes", ["tail"])


def test_students_of_a_long_tailed_teacher_train_on_its_examples(tiny_splits):
    teacher = replace(TEACHER, train=replace(TEACHER.train, long_tail=10.0))
    student = replace(STUDENT, train=replace(STUDENT.train, long_tail=10.0))
    stage, _ = make_stage(tiny_splits)
    stage = replace(stage, recipe=student)
    result = stage.student("kd")
    assert result.student.recipe.train.long_tail == 10.0
    n_tail = len(training_examples(tiny_splits, student.train))
    # the teacher pass covers exactly the student's (long-tailed) stream
    logits = stage.teacher_logits(result.teacher)
    assert all(len(epoch) == n_tail for epoch in logits.epochs)
    folds, teachers = fold_teachers(teacher, tiny_splits, student.train, 2, torch.device("cpu"), progress=False)
    assert len(folds) == n_tail and len(teachers) == 2


def test_class_group_scores_match_a_direct_computation(tiny_splits):
    stage, _ = make_stage(tiny_splits)
    model = stage.student("ce").model
    groups = {"many": [0, 1, 2, 3], "few": [7, 8, 9], "empty": []}
    table = class_group_scores({"ce": model}, tiny_splits, groups)
    assert set(table.group) == {"many", "few"}  # an empty group is left out
    probs = metrics.softmax(predict_logits(model, tiny_splits.test.images))
    labels = tiny_splits.test.labels
    mask = torch.isin(labels, torch.tensor([7, 8, 9]))
    expected = (probs[mask].argmax(1) == labels[mask]).float().mean().item()
    got = table[(table.group == "few") & (table.metric == "accuracy")].value.item()
    assert got == pytest.approx(expected)
    nll = -torch.log(probs[mask].gather(1, labels[mask][:, None])).mean().item()
    assert table[(table.group == "few") & (table.metric == "nll")].value.item() == pytest.approx(nll, rel=1e-5)
    assert not table.after_ts.any()
    # after the model's own TS: the same groups on logits / T
    scaled = class_group_scores({"ce": model}, tiny_splits, groups, temperatures={"ce": 1.7})
    after = scaled[scaled.after_ts & (scaled.group == "few") & (scaled.metric == "ece")].value.item()
    probs_t = metrics.softmax(predict_logits(model, tiny_splits.test.images), 1.7)
    assert after == pytest.approx(metrics.ece(probs_t[mask], labels[mask]))


def test_a_split_missing_a_class_has_no_long_tail():
    from calibkd.data.splits import Split
    from calibkd.data.subsets import long_tail_subset

    split = Split(torch.zeros(6, 1, 1, 1), torch.tensor([0, 0, 1, 1, 2, 2]))
    with pytest.raises(ConfigError, match="1 of 4 classes have no example"):
        long_tail_subset(split, 4, 100.0)

"""The regime check (brief section 3b): a regime is what its teacher does on
the students' actual training views."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from calibkd.config import LOSS_DEFAULTS, PROFILES, teacher_variant
from calibkd.errors import ConfigError
from calibkd.evaluation.regime import classify_regime, gate_rate, view_scores
from calibkd.study.report import regime_check, student_views

from tests.test_student_stage import make_stage


def test_a_teacher_wrong_on_the_students_views_is_refused_whatever_its_temperature():
    # the first build's overconfident regime: right on 62 % of the students' views, 89 % of test, T = 2.38
    kind, reason = classify_regime(view_accuracy=0.62, test_accuracy=0.89, temperature=2.38)
    assert kind == "wrong on the students' views"
    assert "wrong, not collapsed" in reason


@pytest.mark.parametrize(("temperature", "expected"), [(2.38, "overconfident"), (1.2, "overconfident"),
                                                      (1.01, "calibrated"), (0.9, "calibrated"),
                                                      (0.8, "underconfident")])
def test_the_temperature_decides_among_teachers_right_on_the_views(temperature, expected):
    assert classify_regime(0.999, 0.90, temperature)[0] == expected


def test_regime_check_thresholds_are_range_checked():
    with pytest.raises(ConfigError, match="min_temperature"):
        classify_regime(0.9, 0.9, 2.0, min_temperature=1.0)
    with pytest.raises(ConfigError, match="tolerance"):
        classify_regime(0.9, 0.9, 2.0, tolerance=-0.1)
    with pytest.raises(ConfigError, match="view_accuracy"):
        classify_regime(1.5, 0.9, 2.0)


def test_view_scores_and_gate_rate_by_hand():
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.99, 0.01]])
    labels = torch.tensor([0, 0, 0, 0])
    scores = view_scores(probs, labels)
    assert scores["accuracy"] == pytest.approx(0.75)
    assert scores["confidence"] == pytest.approx((0.9 + 0.6 + 0.7 + 0.99) / 4)
    assert scores["non_target_mass"] == pytest.approx((0.1 + 0.4 + 0.7 + 0.01) / 4)
    settings = dict(LOSS_DEFAULTS["dus"]) | {"gate": "hard", "threshold": 0.5}
    # hard gate: wrong (row 2) or p_y < 0.5 (none else): one of four
    assert gate_rate(probs.log(), labels, settings) == pytest.approx(0.25)
    # a teacher that memorised its inputs: right and sure everywhere, the gate never opens
    memorised = torch.tensor([[30.0, 0.0]] * 4)
    assert gate_rate(memorised, labels, settings) == 0.0
    # soft gate: sigmoid(-sharpness * margin), margin 1, sharpness 10
    assert gate_rate(memorised, labels, settings | {"gate": "soft"}) == pytest.approx(float(torch.sigmoid(torch.tensor(-10.0))))


def test_the_overconfident_regime_distills_on_the_clean_inputs_its_teacher_memorised():
    for profile in PROFILES.values():
        teacher = profile.teacher_recipes["overconfident"].train
        assert teacher.augment is False and teacher.weight_decay == 0.0 and teacher.subset is not None
        # DUS and its CE control fine-tune on augmented views, where the gate can open
        for method in ("dus_soft", "dus_hard", "ce_finetune"):
            assert teacher_variant(profile, "overconfident", method).train.augment is True


def test_regime_check_reports_the_teacher_on_the_students_views_and_the_dus_gate(tiny_splits):
    stage, _ = make_stage(tiny_splits)
    row = regime_check(stage, sample_size=100, seed=0).iloc[0]
    assert row["student views"] == "augmented"
    for column in ("teacher accuracy (views)", "teacher ECE (views)", "non-target mass (views)",
                   "TS temperature", "DUS gate rate (before)", "DUS gate rate (after)", "DUS teacher ECE (test)"):
        assert 0 <= row[column] < float("inf")
    assert row["class"] in ("overconfident", "calibrated", "underconfident", "wrong on the students' views")
    clean = replace(stage, recipe=replace(stage.recipe, train=replace(stage.recipe.train, augment=False)))
    views = student_views(clean, 50, 0)
    sample = tiny_splits.train.subset(50, 0)
    assert torch.equal(views.images, sample.images)  # no augmentation: the students' views are the examples
    assert regime_check(clean, sample_size=50, dus=False).iloc[0]["student views"] == "clean"

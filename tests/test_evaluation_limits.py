"""The smoke profile evaluates less around the same trained models
(config.evaluation); the default and full profiles evaluate what is asked."""

from __future__ import annotations

from calibkd.config import PROFILES
from calibkd.config.evaluation import EVALUATION_LIMITS, evaluation_limits


def test_only_known_profiles_have_limits():
    assert set(EVALUATION_LIMITS) <= set(PROFILES)


def test_the_study_sizes_are_not_capped():
    for profile in ("default", "full"):
        limits = evaluation_limits(profile)
        assert limits.test_size(None) is None and limits.test_size(2000) == 2000
        assert limits.mixture_count(1000) == 1000 and limits.training_sample_size(10_000) == 10_000


def test_smoke_caps_the_suite_and_the_training_samples_but_never_raises_a_request():
    smoke = evaluation_limits("smoke")
    assert smoke.test_size(None) == smoke.test_images < PROFILES["smoke"].split.test_size
    assert smoke.test_size(100) == 100
    assert smoke.mixture_count(1000) == smoke.mixtures < 1000
    assert smoke.training_sample_size(10_000) == smoke.training_sample < PROFILES["smoke"].split.train_size
    assert smoke.training_sample_size(10) == 10

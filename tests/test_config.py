"""Bad input fails before training, with a message naming the parameter."""

from __future__ import annotations

from dataclasses import replace

import pytest

from calibkd.config import (
    NOTEBOOK_PARAMETERS,
    PROFILES,
    ModelConfig,
    TrainConfig,
    apply_overrides,
    get_profile,
    validate_parameters,
)
from calibkd.errors import ConfigError
from calibkd.nn.models import build_model, count_parameters

DEFAULTS = {
    "profile": "smoke", "dataset": "fashion_mnist", "data_root": "", "seed": 0,
    "recipes": ["default", "overconfident"], "report_epoch": "last", "teacher_epochs": None,
    "student_epochs": None, "batch_size": None, "lr": None, "num_threads": 2, "device": "auto", "output_dir": "",
    "train_missing": True,
}


def params(**changes):
    return {**DEFAULTS, **changes}


def test_defaults_pass():
    assert validate_parameters("01_teacher_training", params()) == params()


@pytest.mark.parametrize("changes,message", [
    ({"dataset": "imagenet"}, "allowed values: \\['fashion_mnist', 'cifar10', 'cifar100'"),
    ({"profile": "huge"}, "allowed values: \\['smoke', 'default', 'full', 'cifar100'"),
    ({"recipes": ["default", "sharp"]}, "unknown value 'sharp'"),
    ({"recipes": []}, "empty list"),
    ({"teacher_epochs": 0}, "'teacher_epochs'=0 is below its minimum 1"),
    ({"student_epochs": -3}, "'student_epochs'=-3 is below its minimum"),
    ({"batch_size": 0}, "'batch_size'=0 is below"),
    ({"lr": 50.0}, "'lr'=50.0 is above its maximum"),
    ({"lr": 0.0}, "'lr'=0.0 is below"),
    ({"report_epoch": "best_test"}, "allowed values: \\['last', 'best_val'\\]"),
    ({"seed": "zero"}, "'seed'='zero' must be int"),
    ({"teacher_epochs": True}, "must be int"),
    ({"device": "tpu"}, "allowed values"),
])
def test_bad_values(changes, message):
    with pytest.raises(ConfigError, match=message):
        validate_parameters("01_teacher_training", params(**changes))


def test_injected_unknown_parameter_is_an_error():
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['epochz'\].*allowed parameters"):
        validate_parameters("01_teacher_training", params(epochz=3))


def test_parameter_of_another_notebook_is_unknown():
    with pytest.raises(ConfigError, match="student_epochs"):
        validate_parameters("02_miscalibration_diagnosis", params(shift_test_size=None))


def test_data_root_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="'data_root'.*not an existing directory"):
        validate_parameters("01_teacher_training", params(data_root=str(tmp_path / "missing")))


def test_unknown_notebook():
    with pytest.raises(ConfigError, match="unknown notebook"):
        validate_parameters("99_nothing", params())


@pytest.mark.parametrize("changes,message", [
    ({"epochs": 0}, "epochs=0 must be at least 1"),
    ({"batch_size": -1}, "batch_size=-1 must be at least 1"),
    ({"lr": 0.0}, "lr=0.0 is out of range"),
    ({"lr": float("nan")}, "lr=nan must be a finite number"),
    ({"momentum": 1.0}, "momentum=1.0 is out of range"),
    ({"optimizer": "lbfgs"}, "allowed values: \\['sgd', 'adamw'\\]"),
    ({"report_epoch": "best_test"}, "unknown report_epoch"),
    ({"loss": "huber"}, "unknown loss"),
    ({"loss": "focal", "loss_params": (("gamma", -1.0),)}, "out of range"),
])
def test_train_config_ranges(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**changes)


def test_unknown_model_and_profile():
    with pytest.raises(ConfigError, match="allowed models: \\['mlp', 'resnet', 'resnet20'"):
        ModelConfig("vit")
    with pytest.raises(ValueError, match="allowed models"):
        build_model("vit", 1, 10)
    with pytest.raises(ValueError, match="bad arguments"):
        build_model("small_cnn", 1, 10, depth=3)
    with pytest.raises(ConfigError, match="allowed profiles"):
        get_profile("huge")


def test_overrides_apply_and_are_validated():
    recipe = PROFILES["smoke"].teacher_recipes["default"]
    changed = apply_overrides(recipe, params(teacher_epochs=7, lr=0.05, seed=4), "teacher_epochs")
    assert (changed.train.epochs, changed.train.lr, changed.train.seed) == (7, 0.05, 4)
    with pytest.raises(ConfigError):
        apply_overrides(recipe, params(teacher_epochs=0), "teacher_epochs")


#: How many times the student's parameters the teacher has, at least: ten in
#: the study's profiles; three at smoke (a narrower teacher, for speed); the
#: published CIFAR-100 pairs are what they are (2.4 to 6 times).
CAPACITY_GAP = {"default": 10, "full": 10, "smoke": 3}


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_teacher_is_larger_than_the_student(profile):
    p = PROFILES[profile]
    student = count_parameters(build_model(p.student.model.arch, 1, 10, **p.student.model.arguments))
    for recipe in p.teacher_recipes.values():
        teacher = count_parameters(build_model(recipe.model.arch, 1, 10, **recipe.model.arguments))
        assert teacher >= CAPACITY_GAP.get(profile, 2) * student


def test_overconfident_recipe_differs_only_in_regularisation_and_length():
    p = PROFILES["default"]
    default, sharp = p.teacher_recipes["default"], p.teacher_recipes["overconfident"]
    assert default.model == sharp.model
    assert replace(sharp.train, epochs=default.train.epochs, augment=True, weight_decay=default.train.weight_decay,
                   subset=None) == default.train
    assert sharp.train.epochs > default.train.epochs and not sharp.train.augment and sharp.train.weight_decay == 0


def test_every_notebook_parameter_has_a_rule():
    from calibkd.config import PARAMETER_RULES
    for names in NOTEBOOK_PARAMETERS.values():
        assert set(names) <= set(PARAMETER_RULES)


def test_teacher_variant_with_loss_overrides_is_named_and_keyed_apart():
    from calibkd.config import get_profile, teacher_variant

    profile = get_profile("default")
    plain = teacher_variant(profile, "default", "dus_soft")
    swept = teacher_variant(profile, "default", "dus_soft", {"lambda_h": 0.3})
    assert swept.name == "default/dus_soft[lambda_h=0.3]"
    assert dict(swept.train.loss_params) == {"gate": "soft", "lambda_h": 0.3}
    assert swept.init_from == plain.init_from == "default"
    with pytest.raises(ConfigError, match="lambda_h"):
        teacher_variant(profile, "default", "dus_soft", {"lambda_h": -1.0})


@pytest.mark.parametrize("sweep,message", [
    ({"gamma_f": [1.0]}, "unknown sweep setting"),
    ({"eta": [2.0]}, "out of range"),
    ({"temperature": 4.0}, "must be a list"),
    ([1, 2], "must be dict"),
])
def test_notebook_04_rejects_bad_sweeps(sweep, message):
    from calibkd.study.runner import declared_parameters, notebook_path

    params = declared_parameters(notebook_path("04_student_distillation"))
    params["sweep"] = sweep
    with pytest.raises(ConfigError, match=message):
        validate_parameters("04_student_distillation", params)


def test_notebook_04_rejects_unknown_student_methods():
    from calibkd.study.runner import declared_parameters, notebook_path

    params = declared_parameters(notebook_path("04_student_distillation"))
    params["student_methods"] = ["kd", "fitnet"]
    with pytest.raises(ConfigError, match="fitnet"):
        validate_parameters("04_student_distillation", params)

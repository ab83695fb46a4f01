"""The study's design: the profiles (sizes), the teacher regimes, and the
tables of teacher and student methods the chapters and batches iterate over."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from calibkd.config.checks import check_float
from calibkd.config.datasets import dataset_info
from calibkd.config.specs import (
    DistillMethod,
    ModelConfig,
    Profile,
    Recipe,
    SplitConfig,
    StudentMethod,
    TrainConfig,
)
from calibkd.errors import ConfigError

#: The long-tail regime's imbalance ratio: the largest class of the training
#: set has this many times the examples of the smallest (CIFAR-10-LT's
#: standard 100; Cao et al. 2019).
LONG_TAIL_IMBALANCE = 100.0


def long_tail_counts(max_count: int, num_classes: int, imbalance_ratio: float) -> list[int]:
    """Exponentially decaying class sizes, max_count * ratio^(-i / (K - 1)), as in
    CIFAR-LT (Cao et al. 2019): the largest class has ``imbalance_ratio`` times
    the examples of the smallest."""
    if isinstance(imbalance_ratio, bool) or not imbalance_ratio >= 1:
        raise ValueError(f"imbalance_ratio={imbalance_ratio!r} must be at least 1")
    if num_classes < 2:
        raise ValueError("a long tail needs at least 2 classes")
    return [int(max_count * imbalance_ratio ** (-i / (num_classes - 1))) for i in range(num_classes)]


#: The teacher regimes every profile has: the CE recipe (``default``), one that
#: memorises a subset (``overconfident``, brief section 3b), and the default
#: recipe on a long-tailed training set (``long_tail``).
REGIMES = ("default", "overconfident", "long_tail")

TEACHER = ModelConfig("resnet", (("width", 32), ("blocks_per_stage", 1), ("stem_stride", 2)))
STUDENT = ModelConfig("small_cnn", (("width", 16),))
#: The smoke profile's teacher: the default teacher at half the width (a
#: quarter of the cost), so that a smoke study from an empty cache fits its budget.
SMOKE_TEACHER = ModelConfig("resnet", (("width", 16), ("blocks_per_stage", 1), ("stem_stride", 2)))


def _profile(
    name: str,
    description: str,
    split: SplitConfig,
    teacher: ModelConfig,
    student: ModelConfig,
    teacher_epochs: int,
    overconfident_epochs: int,
    overconfident_subset: int,
    student_epochs: int,
    monitor_size: int,
    finetune_epochs: int,
    suite_corruptions: tuple[str, ...] | None = None,
    suite_severities: tuple[int, ...] | None = None,
    recipe: TrainConfig = TrainConfig(),
    dkd_beta: float | None = None,
) -> Profile:
    """A profile whose three regimes share ``recipe`` (optimiser, schedule,
    batch size) with the epochs, sizes and subsets given here."""
    default = replace(recipe, epochs=teacher_epochs, monitor_size=monitor_size)
    # Brief section 3b: same architecture, longer, no augmentation or weight decay,
    # on a subset, so training NLL goes to ~0 and the teacher memorises. Its
    # students train on the same subset *without augmentation too*
    # (``StudyContext.student_stage``): they distill on exactly the inputs the
    # teacher memorised, where it is right and near one-hot.
    overconfident = replace(
        default, epochs=overconfident_epochs, augment=False, weight_decay=0.0,
        subset=overconfident_subset,
    )
    return Profile(
        name=name,
        description=description,
        split=split,
        teacher_recipes={
            "default": Recipe("default", teacher, default),
            "overconfident": Recipe("overconfident", teacher, overconfident),
            "long_tail": Recipe("long_tail", teacher, replace(default, long_tail=LONG_TAIL_IMBALANCE)),
        },
        student=Recipe("student_ce", student, replace(default, epochs=student_epochs)),
        finetune_epochs=finetune_epochs,
        suite_corruptions=suite_corruptions,
        suite_severities=suite_severities,
        dkd_beta=dkd_beta,
    )


#: The CIFAR-100 knowledge-distillation benchmark's recipe (RepDistiller and
#: mdistiller; brief section 8): SGD with plain momentum 0.9, batch 64, 240
#: epochs, lr 0.05 divided by 10 after epochs 150, 180 and 210, weight decay
#: 5e-4 on every parameter. Teachers and students train with it alike.
CIFAR100_RECIPE = TrainConfig(
    epochs=240, batch_size=64, lr=0.05, momentum=0.9, weight_decay=5e-4, optimizer="sgd",
    schedule="step", milestones=(150, 180, 210), lr_decay=0.1, nesterov=False, decay_all=True,
)


@dataclass(frozen=True)
class BenchmarkPair:
    """A published CIFAR-100 teacher-student pair: its architectures, DKD's
    beta for it, and the top-1 accuracies (%) the toolboxes report (brief
    section 8), which a ``cifar100`` run is read against."""

    teacher: str
    student: str
    dkd_beta: float
    teacher_top1: float
    student_top1: float
    kd_top1: float
    dkd_top1: float


#: The published pairs, by profile name; ``cifar100`` is the reference pair.
CIFAR100_PAIRS: dict[str, BenchmarkPair] = {
    "cifar100": BenchmarkPair("resnet32x4", "resnet8x4", 8.0, 79.42, 72.50, 73.33, 76.32),
    "cifar100_resnet56": BenchmarkPair("resnet56", "resnet20", 2.0, 72.34, 69.06, 70.66, 71.97),
    "cifar100_wrn": BenchmarkPair("wrn_40_2", "wrn_16_2", 6.0, 75.61, 73.26, 74.92, 76.23),
    "cifar100_vgg": BenchmarkPair("vgg13", "vgg8", 6.0, 74.64, 70.36, 72.98, 74.68),
}


def _cifar100_profile(name: str, pair: BenchmarkPair) -> Profile:
    """The benchmark recipe for one pair, with the study's three regimes: the
    overconfident one memorises 10,000 images (100 per class) without
    augmentation or weight decay, the long tail is CIFAR-100-LT (IR 100).
    Validation (5,000 images) is carved from the 50,000 training images,
    as in Guo et al. 2017, so teachers train on 45,000 (the toolboxes: all 50,000)."""
    return _profile(
        name, f"GPU hours: the CIFAR-100 benchmark recipe, {pair.teacher} -> {pair.student}",
        SplitConfig(dataset="cifar100", val_size=5_000),
        ModelConfig(pair.teacher), ModelConfig(pair.student),
        teacher_epochs=240, overconfident_epochs=240, overconfident_subset=10_000, student_epochs=240,
        monitor_size=5_000, finetune_epochs=24, recipe=CIFAR100_RECIPE, dkd_beta=pair.dkd_beta,
    )


PROFILES: dict[str, Profile] = {
    "smoke": _profile(
        "smoke", "seconds: tests and a first look (a narrower teacher on 1,000 images)",
        SplitConfig(val_size=500, train_size=1_000, test_size=1_000),
        SMOKE_TEACHER, STUDENT, teacher_epochs=2, overconfident_epochs=3,
        overconfident_subset=500, student_epochs=2, monitor_size=500, finetune_epochs=1,
        suite_corruptions=("gaussian_noise", "defocus_blur", "fog", "contrast"), suite_severities=(1, 3, 5),
    ),
    "default": _profile(
        "default", "minutes on 2 CPU cores: the committed study",
        SplitConfig(val_size=5_000),
        TEACHER, STUDENT, teacher_epochs=10, overconfident_epochs=30,
        overconfident_subset=10_000, student_epochs=10, monitor_size=2_000, finetune_epochs=3,
    ),
    "full": _profile(
        "full", "one GPU: wider, deeper teacher trained longer",
        SplitConfig(val_size=5_000),
        ModelConfig("resnet", (("width", 64), ("blocks_per_stage", 3), ("stem_stride", 1))),
        ModelConfig("small_cnn", (("width", 32),)),
        teacher_epochs=60, overconfident_epochs=200, overconfident_subset=10_000,
        student_epochs=60, monitor_size=5_000, finetune_epochs=15,
    ),
    **{name: _cifar100_profile(name, pair) for name, pair in CIFAR100_PAIRS.items()},
    # The reference pair's whole path (recipe, schedule, architectures) at a
    # tiny size: the tests run it on CPU, on CIFAR-100-shaped files.
    "cifar100_smoke": _profile(
        "cifar100_smoke", "seconds: the cifar100 profile's code path at a tiny size (tests)",
        SplitConfig(dataset="cifar100", val_size=64, train_size=128, test_size=64),
        ModelConfig("resnet32x4"), ModelConfig("resnet8x4"),
        teacher_epochs=1, overconfident_epochs=1, overconfident_subset=64, student_epochs=1,
        monitor_size=64, finetune_epochs=1, recipe=replace(CIFAR100_RECIPE, milestones=()),
        dkd_beta=CIFAR100_PAIRS["cifar100"].dkd_beta,
        suite_corruptions=("gaussian_noise", "defocus_blur", "fog", "contrast"), suite_severities=(1, 3, 5),
    ),
}
#: Profiles that fix their dataset (the others take the notebook's ``dataset``).
PROFILE_DATASETS = {name: "cifar100" for name in (*CIFAR100_PAIRS, "cifar100_smoke")}


#: Calibrated teachers (brief section 4): method -> (loss, loss parameters,
#: fine-tunes the CE teacher of the regime). Train-time methods use the CE
#: teacher's recipe with only the loss changed; DUS fine-tunes the trained CE
#: teacher (as in the paper) for ``Profile.finetune_epochs`` at a tenth of the
#: learning rate, on *augmented* views of the regime's training examples, and
#: ``ce_finetune`` is its control: the same fine-tuning with plain CE (brief
#: section 7). Augmented views because DUS can only act where its gate opens:
#: on the clean subset the overconfident teacher memorised it is right and
#: sure everywhere, so the gate would never open (a first build did exactly
#: that: teacher ECE unchanged by DUS). The default regime already augments.
TEACHER_METHODS: dict[str, tuple[str, tuple[tuple[str, float | str], ...], bool]] = {
    "label_smoothing": ("label_smoothing", (("eps", 0.1),), False),
    "focal": ("focal", (("gamma", 3.0),), False),
    "flsd53": ("flsd53", (), False),
    "mixup": ("mixup", (("alpha", 0.2),), False),
    "mdca": ("mdca", (("beta", 1.0),), False),
    "dus_hard": ("dus", (("gate", "hard"),), True),
    "dus_soft": ("dus", (("gate", "soft"),), True),
    "ce_finetune": ("ce", (), True),
    # DUS trained from scratch with the CE recipe instead of fine-tuned (an option)
    "dus_hard_scratch": ("dus", (("gate", "hard"),), False),
    "dus_soft_scratch": ("dus", (("gate", "soft"),), False),
}


#: The regime check (brief section 3b): a regime counts as *overconfident*
#: only if its CE teacher is at least as accurate on the students' actual
#: training views as on test (up to this tolerance; otherwise its targets are
#: wrong, not collapsed) and temperature scaling on validation fits T of at
#: least ``OVERCONFIDENT_MIN_TEMPERATURE``; T within 1 / that value and that
#: value is *calibrated*, below it *underconfident*.
OVERCONFIDENT_MIN_TEMPERATURE = 1.2
VIEW_ACCURACY_TOLERANCE = 0.0

#: folds of cross-fitted c(x) (``cudp_xfit``): k CE teachers, each trained on k - 1 folds
CROSS_FIT_FOLDS = 2

_KD = DistillMethod("kd")
_CUD = DistillMethod("target", wclip=True)
_CUDP = DistillMethod("target", cudp=True)

STUDENT_METHODS: dict[str, StudentMethod] = {
    "ce": StudentMethod(None, DistillMethod("ce"), description="labels only"),
    "kd": StudentMethod("ce", _KD, description="Hinton KD from the CE teacher"),
    "kd_ts": StudentMethod("ce", DistillMethod("target"), "temperature",
                           "KD from the CE teacher after temperature scaling"),
    "kd_ls": StudentMethod("label_smoothing", _KD, description="KD from the label-smoothing teacher"),
    "kd_focal": StudentMethod("focal", _KD, description="KD from the focal-loss teacher"),
    "kd_mixup": StudentMethod("mixup", _KD, description="KD from the mixup teacher"),
    "kd_mdca": StudentMethod("mdca", _KD, description="KD from the MDCA teacher"),
    "kd_ce_finetune": StudentMethod("ce_finetune", _KD,
                                    description="control: KD from the CE teacher fine-tuned with CE as long as DUS"),
    "dkd": StudentMethod("ce", DistillMethod("dkd"), description="decoupled KD from the CE teacher"),
    "dus_kd": StudentMethod("dus", _KD, description="ablation: DUS teacher, plain KD"),
    "wclip": StudentMethod("ce", _CUD, description="ablation: CE teacher + W-Clip"),
    "cud": StudentMethod("dus", _CUD, description="full CUD: DUS teacher + W-Clip + tempered KL"),
    "cud_untempered": StudentMethod("dus", replace(_CUD, temper_target=False),
                                    description="ablation: full CUD with the target used untempered"),
    "cudp": StudentMethod("ce", _CUDP, "cudp", "CUD-P projection of the CE teacher"),
    "cudp_dus": StudentMethod("dus", _CUDP, "cudp", "CUD-P projection of the DUS teacher"),
    "cudp_xfit": StudentMethod("ce", _CUDP, "cross_fit",
                               f"CUD-P of the CE teacher, c(x) cross-fitted ({CROSS_FIT_FOLDS} folds)"),
}

#: What the sensitivity sweep may vary: distillation settings of full CUD, and
#: the DUS teacher's loss (which trains a new teacher per value).
SWEEP_DISTILL = {"temperature": (0.5, 20.0), "eta": (0.0, 1.0), "m": (0.0, 1.0)}
SWEEP_TEACHER = {"lambda_h": (0.0, 2.0), "sharpness": (0.1, 100.0)}


def check_sweep(sweep: Mapping[str, Any]) -> None:
    """A sweep is {setting: [values]} with known settings and values in range."""
    if not isinstance(sweep, Mapping):
        raise ConfigError(f"sweep={sweep!r} must be a dict of setting -> list of values")
    allowed = SWEEP_DISTILL | SWEEP_TEACHER
    for name, values in sweep.items():
        if name not in allowed:
            raise ConfigError(f"unknown sweep setting {name!r}; allowed: {sorted(allowed)}")
        if not isinstance(values, list):
            raise ConfigError(f"sweep values of {name!r} must be a list, got {values!r}")
        low, high = allowed[name]
        for value in values:
            check_float(f"sweep {name}", value, low=low, high=high)


def teacher_variant(profile: Profile, regime: str, method: str,
                    loss_overrides: Mapping[str, float | str] | None = None) -> Recipe:
    """The ``method`` teacher built on the CE recipe of ``regime`` (default or
    overconfident): named ``<regime>/<method>``. ``loss_overrides`` changes
    loss hyper-parameters (a sensitivity sweep) and is part of the name."""
    if regime not in profile.teacher_recipes:
        raise ConfigError(f"unknown regime {regime!r}; allowed: {sorted(profile.teacher_recipes)}")
    if method not in TEACHER_METHODS:
        raise ConfigError(f"unknown teacher method {method!r}; allowed: {list(TEACHER_METHODS)}")
    base = profile.teacher_recipes[regime]
    loss, loss_params, finetune = TEACHER_METHODS[method]
    name = f"{regime}/{method}"
    if loss_overrides:
        merged = dict(loss_params) | dict(loss_overrides)
        loss_params = tuple(sorted(merged.items()))
        name += "[" + ",".join(f"{k}={v}" for k, v in sorted(loss_overrides.items())) + "]"
    train = replace(base.train, loss=loss, loss_params=loss_params)
    if finetune:
        # a short fine-tune decays by cosine whatever the profile's schedule
        train = replace(train, epochs=profile.finetune_epochs, lr=base.train.lr / 10, augment=True,
                        schedule="cosine", milestones=())
        return Recipe(name, base.model, train, init_from=regime)
    return Recipe(name, base.model, train)


#: Datasets whose inputs are not images: (teacher, student) architectures used
#: instead of the profile's (every profile; the data set is small).
DATASET_MODELS: dict[str, tuple[ModelConfig, ModelConfig]] = {
    "mixture": (ModelConfig("mlp", (("width", 256), ("depth", 3))), ModelConfig("mlp", (("width", 32), ("depth", 1)))),
}


def student_methods(profile: Profile) -> dict[str, StudentMethod]:
    """``STUDENT_METHODS`` as ``profile`` trains them: DKD with the profile's
    pair's published beta, when it has one."""
    if profile.dkd_beta is None:
        return STUDENT_METHODS
    return {name: replace(method, distill=replace(method.distill, dkd_beta=profile.dkd_beta))
            if method.distill.kind == "dkd" else method for name, method in STUDENT_METHODS.items()}


def get_profile(name: str, dataset: str = "fashion_mnist") -> Profile:
    """A profile by name, with its split retargeted to ``dataset`` (and, for
    feature-vector data, its models replaced by ``DATASET_MODELS``)."""
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; allowed profiles: {sorted(PROFILES)}")
    profile = PROFILES[name]
    dataset_info(dataset)
    if name in PROFILE_DATASETS and dataset != PROFILE_DATASETS[name]:
        raise ConfigError(f"profile {name!r} is the {PROFILE_DATASETS[name]} benchmark recipe; "
                          f"use it with dataset={PROFILE_DATASETS[name]!r}, not {dataset!r}")
    profile = replace(profile, split=replace(profile.split, dataset=dataset))
    if dataset in DATASET_MODELS:
        teacher, student = DATASET_MODELS[dataset]
        profile = replace(
            profile,
            teacher_recipes={k: replace(r, model=teacher) for k, r in profile.teacher_recipes.items()},
            student=replace(profile.student, model=student),
        )
    return profile

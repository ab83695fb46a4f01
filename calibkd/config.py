"""The study's configuration in one place: paths, profiles, recipes, parameter rules.

A *profile* sets the size of everything (``smoke`` for tests, ``default`` for
the study on 2 CPU cores, ``full`` for one GPU). A *recipe* is how one model
is trained (architecture, epochs, augmentation, regularisation). Notebook
parameters are validated here, before any data is read or model trained.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from calibkd.charsets import GLYPH_CLASS_NAMES

PACKAGE_ROOT = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_ROOT.parent


class ConfigError(ValueError):
    """A parameter is unknown or out of range; raised before any training."""


# ---------------------------------------------------------------------------
# small checks with messages that name the parameter
# ---------------------------------------------------------------------------


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}={value!r} must be an integer")
    if value < minimum:
        raise ConfigError(f"{name}={value!r} must be at least {minimum}")


def _check_float(
    name: str, value: Any, low: float, high: float,
    low_open: bool = False, high_open: bool = False,
) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name}={value!r} must be a finite number")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        left, right = ("(" if low_open else "["), (")" if high_open else "]")
        raise ConfigError(f"{name}={value!r} is out of range; allowed: {left}{low}, {high}{right}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; allowed values: {list(choices)}")


def _in_source_checkout() -> bool:
    return (PROJECT_ROOT / "pyproject.toml").is_file()


def cache_dir() -> Path:
    """Where trained models are cached: ``$CALIBKD_CACHE``, else ``.cache/`` in
    the source checkout (so a fresh clone starts empty), else ``~/.cache/calibkd``."""
    if os.environ.get("CALIBKD_CACHE"):
        return Path(os.environ["CALIBKD_CACHE"]).expanduser()
    if _in_source_checkout():
        return PROJECT_ROOT / ".cache" / "models"
    return Path.home() / ".cache" / "calibkd" / "models"


def download_dir() -> Path:
    """Where torchvision downloads land when no local copy of a dataset exists."""
    if os.environ.get("CALIBKD_DOWNLOADS"):
        return Path(os.environ["CALIBKD_DOWNLOADS"]).expanduser()
    if _in_source_checkout():
        return PROJECT_ROOT / ".cache" / "downloads"
    return Path.home() / ".cache" / "calibkd" / "downloads"


def generated_dir() -> Path:
    """Where generated datasets (glyphs) are cached: ``$CALIBKD_GENERATED``, else
    ``generated/`` beside the downloads folder (``.cache/generated`` in the checkout)."""
    if os.environ.get("CALIBKD_GENERATED"):
        return Path(os.environ["CALIBKD_GENERATED"]).expanduser()
    return download_dir().parent / "generated"


# ---------------------------------------------------------------------------
# Datasets (sizes are needed to validate splits before loading anything)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset: shape, classes, split sizes, augmentation."""

    name: str
    channels: int
    image_size: int
    num_classes: int
    train_size: int
    test_size: int
    class_names: tuple[str, ...]
    crop_padding: int
    horizontal_flip: bool
    #: groups of classes known to resemble each other (for dark-knowledge checks)
    class_groups: tuple[tuple[int, ...], ...] = ()


FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

DATASETS: dict[str, DatasetInfo] = {
    "fashion_mnist": DatasetInfo(
        name="fashion_mnist", channels=1, image_size=28, num_classes=10,
        train_size=60_000, test_size=10_000, class_names=FASHION_MNIST_CLASSES,
        crop_padding=2, horizontal_flip=True,
        # upper-body garments; footwear (brief section 5)
        class_groups=((0, 2, 4, 6), (5, 7, 9)),
    ),
    "cifar10": DatasetInfo(
        name="cifar10", channels=3, image_size=32, num_classes=10,
        train_size=50_000, test_size=10_000, class_names=CIFAR10_CLASSES,
        crop_padding=4, horizontal_flip=True,
        # vehicles; animals
        class_groups=((0, 1, 8, 9), (2, 3, 4, 5, 6, 7)),
    ),
    "cifar100": DatasetInfo(
        name="cifar100", channels=3, image_size=32, num_classes=100,
        train_size=50_000, test_size=10_000,
        class_names=tuple(f"class_{i}" for i in range(100)),
        crop_padding=4, horizontal_flip=True,
    ),
    # Glyphs (calibkd.glyphs): 183 characters from held-out font lineages. Sizes
    # are those of the default generation on Debian 12 (train: training fonts,
    # test: test fonts; validation comes from its own fonts). Groups come from
    # the generated data (homoglyphs), so DataSplits.info carries them.
    # Never flipped: a mirrored letter is another letter, or none.
    "glyphs": DatasetInfo(
        name="glyphs", channels=1, image_size=32, num_classes=183,
        train_size=60_024, test_size=17_568, class_names=GLYPH_CLASS_NAMES,
        crop_padding=2, horizontal_flip=False,
    ),
    "glyphs_natural": DatasetInfo(
        name="glyphs_natural", channels=1, image_size=32, num_classes=183,
        train_size=60_024, test_size=17_568, class_names=GLYPH_CLASS_NAMES,
        crop_padding=2, horizontal_flip=False,
    ),
    # Known-posterior Gaussian mixture (calibkd.mixture): feature vectors stored
    # as (N, 16, 1, 1); 100 classes in 10 superclasses (the class groups).
    "mixture": DatasetInfo(
        name="mixture", channels=16, image_size=1, num_classes=100,
        train_size=50_000, test_size=10_000, class_names=tuple(f"s{k // 10}c{k % 10}" for k in range(100)),
        crop_padding=0, horizontal_flip=False,
        class_groups=tuple(tuple(range(10 * s, 10 * s + 10)) for s in range(10)),
    ),
}

#: The glyph variant each glyph dataset name selects (``calibkd.glyphs.VARIANTS``).
GLYPH_DATASETS = {"glyphs": "tied", "glyphs_natural": "natural"}
#: The glyph generation size every profile trains on: one cached dataset
#: (``calibkd.glyphs.GLYPH_SIZES``); the ``smoke`` glyph size is for unit tests.
GLYPH_SIZE = "default"


#: Images of the *training* fonts held out from training (a seeded draw, at
#: most a tenth of the training fonts' images): the in-distribution test set
#: next to the held-out-font test split, so that held-out typefaces can be
#: reported as a natural distribution shift beside the corruption suite.
GLYPH_SEEN_FONT_TEST_SIZE = 5_000


def glyph_size() -> str:
    """The glyph generation size in use: ``$CALIBKD_GLYPH_SIZE`` (tests set
    ``smoke``: four font packages, seconds to generate), else ``GLYPH_SIZE``."""
    return os.environ.get("CALIBKD_GLYPH_SIZE") or GLYPH_SIZE


def dataset_info(name: str) -> DatasetInfo:
    """Look up a dataset, failing with the list of known names."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; allowed datasets: {sorted(DATASETS)}")
    return DATASETS[name]


# ---------------------------------------------------------------------------
# Splits, models, training recipes
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitConfig:
    """How the data is split: validation is carved from the training set."""

    dataset: str = "fashion_mnist"
    val_size: int = 5_000
    #: training examples kept after the validation split (None: all the rest)
    train_size: int | None = None
    #: test examples used (None: the whole test set)
    test_size: int | None = None
    split_seed: int = 0

    def __post_init__(self) -> None:
        info = dataset_info(self.dataset)
        _check_int("val_size", self.val_size, minimum=1)
        if self.train_size is not None:
            _check_int("train_size", self.train_size, minimum=1)
        if self.test_size is not None:
            _check_int("test_size", self.test_size, minimum=1)
        _check_int("split_seed", self.split_seed, minimum=0)
        needed = self.val_size + (self.train_size or 1)
        if needed > info.train_size:
            raise ConfigError(
                f"val_size={self.val_size} + train_size={self.train_size} is larger than "
                f"the {info.train_size} training images of {self.dataset}"
            )
        if self.test_size is not None and self.test_size > info.test_size:
            raise ConfigError(
                f"test_size={self.test_size} is larger than the {info.test_size} "
                f"test images of {self.dataset}"
            )


@dataclass(frozen=True)
class ModelConfig:
    """An architecture name from ``calibkd.models.ARCHITECTURES`` and its arguments."""

    arch: str
    kwargs: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        from calibkd.models import ARCHITECTURES

        if self.arch not in ARCHITECTURES:
            raise ConfigError(
                f"unknown model {self.arch!r}; allowed models: {sorted(ARCHITECTURES)}"
            )
        for key, value in self.kwargs:
            _check_int(f"model argument {key}", value, minimum=1)

    @property
    def arguments(self) -> dict[str, int]:
        return dict(self.kwargs)


OPTIMIZERS = ("sgd", "adamw")
REPORT_EPOCHS = ("last", "best_val")


@dataclass(frozen=True)
class TrainConfig:
    """One training run: optimiser, schedule, regularisation, augmentation."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"
    augment: bool = True
    #: train on a seeded subset of this many training examples (None: all)
    subset: int | None = None
    #: then keep a seeded long-tailed subset of it, the largest class this many
    #: times the smallest (``calibkd.shift.long_tail_subset``; None: balanced)
    long_tail: float | None = None
    #: a loss of ``calibkd.losses.LOSS_DEFAULTS`` and its hyper-parameters
    loss: str = "ce"
    loss_params: tuple[tuple[str, float | str], ...] = ()
    #: which epoch's weights are kept: the last one, or the best on validation NLL
    report_epoch: str = "last"
    #: examples of train and test data scored after every epoch for the curves
    monitor_size: int = 2_000
    seed: int = 0

    def __post_init__(self) -> None:
        _check_int("epochs", self.epochs, minimum=1)
        _check_int("batch_size", self.batch_size, minimum=1)
        _check_float("lr", self.lr, low=0.0, high=10.0, low_open=True)
        _check_float("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        _check_float("weight_decay", self.weight_decay, low=0.0, high=1.0)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("report_epoch", self.report_epoch, REPORT_EPOCHS)
        from calibkd.losses import check_loss

        check_loss(self.loss, dict(self.loss_params))
        if self.subset is not None:
            _check_int("subset", self.subset, minimum=1)
        if self.long_tail is not None:
            _check_float("long_tail", self.long_tail, low=1.0, high=1e6)
        _check_int("monitor_size", self.monitor_size, minimum=1)
        _check_int("seed", self.seed, minimum=0)


@dataclass(frozen=True)
class Recipe:
    """A model and how to train it: the unit the model cache is keyed on.

    ``init_from`` names another teacher recipe of the same profile whose
    trained weights this one starts from (fine-tuning, as DUS does).
    """

    name: str
    model: ModelConfig
    train: TrainConfig
    init_from: str | None = None


@dataclass(frozen=True)
class Profile:
    """Sizes for one scale of the study; notebooks select one by name."""

    name: str
    split: SplitConfig
    teacher_recipes: Mapping[str, Recipe]
    student: Recipe
    description: str = ""
    #: epochs of fine-tuning for DUS and its plain-CE control (at lr / 10)
    finetune_epochs: int = 3
    #: the robustness suite's corruptions and severities (None: all of them);
    #: the smoke profile keeps one corruption per family at three severities,
    #: since the suite, not training, dominates a smoke run
    suite_corruptions: tuple[str, ...] | None = None
    suite_severities: tuple[int, ...] | None = None


#: The long-tail regime's imbalance ratio: the largest class of the training
#: set has this many times the examples of the smallest (CIFAR-10-LT's
#: standard 100; Cao et al. 2019).
LONG_TAIL_IMBALANCE = 100.0
#: The teacher regimes every profile has: the CE recipe (``default``), one that
#: memorises a subset (``overconfident``, brief section 3b), and the default
#: recipe on a long-tailed training set (``long_tail``).
REGIMES = ("default", "overconfident", "long_tail")

TEACHER = ModelConfig("resnet", (("width", 32), ("blocks_per_stage", 1), ("stem_stride", 2)))
STUDENT = ModelConfig("small_cnn", (("width", 16),))


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
) -> Profile:
    default = TrainConfig(epochs=teacher_epochs, monitor_size=monitor_size)
    # Brief section 3b: same architecture, longer, no augmentation or weight decay,
    # on a subset, so training NLL goes to ~0 and the teacher memorises.
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
    )


PROFILES: dict[str, Profile] = {
    "smoke": _profile(
        "smoke", "seconds: tests and a first look",
        SplitConfig(val_size=500, train_size=2_000, test_size=1_000),
        TEACHER, STUDENT, teacher_epochs=2, overconfident_epochs=3,
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
}


#: Calibrated teachers (brief section 4): method -> (loss, loss parameters,
#: fine-tunes the CE teacher of the regime). Train-time methods use the CE
#: teacher's recipe with only the loss changed; DUS fine-tunes the trained CE
#: teacher (as in the paper) for ``Profile.finetune_epochs`` at a tenth of the
#: learning rate, and ``ce_finetune`` is its control: the same fine-tuning
#: with plain CE (brief section 7).
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


# ---------------------------------------------------------------------------
# Students: how each learns from its teacher (brief sections 3-4)
# ---------------------------------------------------------------------------

DISTILL_KINDS = ("ce", "kd", "dkd", "target")


@dataclass(frozen=True)
class DistillMethod:
    """How a student learns from its teacher's outputs (brief section 4 defaults).

    ``ce``: labels only. ``kd``: Hinton KD, (1 - alpha) CE + alpha T^2 KL.
    ``dkd``: CE + decoupled KD (dkd_alpha TCKD + dkd_beta NCKD) with a linear
    warm-up. ``target``: KD towards a target built from the teacher's
    probabilities (a calibration map, W-Clip, the CUD-P projection), tempered
    at T unless ``temper_target`` is False.
    """

    kind: str = "kd"
    temperature: float = 4.0
    alpha: float = 0.9
    dkd_alpha: float = 1.0
    dkd_beta: float = 8.0
    #: DKD warm-up in epochs; None scales the reference 20 of 240 epochs to the student's epochs
    warmup_epochs: int | None = None
    #: for ``target``: apply W-Clip to the teacher's probabilities
    wclip: bool = False
    eta: float = 0.5
    m: float = 0.7
    #: for ``target``: replace the probabilities by the CUD-P projection
    cudp: bool = False
    #: for ``target``: soften the target at ``temperature`` (False: use it as it is)
    temper_target: bool = True

    def __post_init__(self) -> None:
        _check_choice("distillation method", self.kind, DISTILL_KINDS)
        _check_float("temperature", self.temperature, low=0.0, high=100.0, low_open=True)
        for name in ("alpha", "eta", "m"):
            _check_float(name, getattr(self, name), low=0.0, high=1.0)
        _check_float("dkd_alpha", self.dkd_alpha, low=0.0, high=100.0)
        _check_float("dkd_beta", self.dkd_beta, low=0.0, high=100.0)
        if self.warmup_epochs is not None:
            _check_int("warmup_epochs", self.warmup_epochs, minimum=0)
        if (self.wclip or self.cudp) and self.kind != "target":
            raise ConfigError("wclip and cudp shape a target: use kind='target'")

    def warmup_for(self, epochs: int) -> int:
        """DKD's warm-up: as set, or 20 / 240 of the student's epochs (at least 1)."""
        return self.warmup_epochs if self.warmup_epochs is not None else max(1, round(epochs * 20 / 240))


@dataclass(frozen=True)
class StudentMethod:
    """One row of the distillation table: which teacher, which map of its
    outputs, and how the student learns from the result.

    ``teacher``: None (labels only), ``"ce"`` (the CE teacher of the regime),
    ``"dus"`` (the DUS teacher the notebook selects) or a key of
    ``TEACHER_METHODS``. ``calibrator``: a post-hoc map fitted on the
    teacher's validation logits; ``"cudp"`` uses the notebook's CUD-P map;
    ``"cross_fit"`` takes c(x) from out-of-fold CE teachers (``calibkd.cross_fit``).
    """

    teacher: str | None
    distill: DistillMethod
    calibrator: str | None = None
    description: str = ""


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
            _check_float(f"sweep {name}", value, low=low, high=high)


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
        train = replace(train, epochs=profile.finetune_epochs, lr=base.train.lr / 10)
        return Recipe(name, base.model, train, init_from=regime)
    return Recipe(name, base.model, train)


#: Datasets whose inputs are not images: (teacher, student) architectures used
#: instead of the profile's (every profile; the data set is small).
DATASET_MODELS: dict[str, tuple[ModelConfig, ModelConfig]] = {
    "mixture": (ModelConfig("mlp", (("width", 256), ("depth", 3))), ModelConfig("mlp", (("width", 32), ("depth", 1)))),
}


def get_profile(name: str, dataset: str = "fashion_mnist") -> Profile:
    """A profile by name, with its split retargeted to ``dataset`` (and, for
    feature-vector data, its models replaced by ``DATASET_MODELS``)."""
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; allowed profiles: {sorted(PROFILES)}")
    profile = PROFILES[name]
    dataset_info(dataset)
    profile = replace(profile, split=replace(profile.split, dataset=dataset))
    if dataset in DATASET_MODELS:
        teacher, student = DATASET_MODELS[dataset]
        profile = replace(
            profile,
            teacher_recipes={k: replace(r, model=teacher) for k, r in profile.teacher_recipes.items()},
            student=replace(profile.student, model=student),
        )
    return profile


# ---------------------------------------------------------------------------
# Notebook parameters
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterRule:
    """What values one notebook parameter accepts."""

    kind: type | tuple[type, ...]
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    optional: bool = False
    help: str = ""

    def check(self, name: str, value: Any) -> None:
        if value is None:
            if self.optional:
                return
            raise ConfigError(f"parameter {name!r} must not be None ({self.help})")
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise ConfigError(f"parameter {name!r}={value!r} must be {_kind_name(kinds)}")
        if not isinstance(value, kinds):
            raise ConfigError(f"parameter {name!r}={value!r} must be {_kind_name(kinds)}")
        values = value if isinstance(value, list) else [value]
        for item in values:
            if self.choices is not None and item not in self.choices:
                raise ConfigError(
                    f"parameter {name!r} has unknown value {item!r}; "
                    f"allowed values: {list(self.choices)}"
                )
            if self.minimum is not None and item < self.minimum:
                raise ConfigError(f"parameter {name!r}={item!r} is below its minimum {self.minimum}")
            if self.maximum is not None and item > self.maximum:
                raise ConfigError(f"parameter {name!r}={item!r} is above its maximum {self.maximum}")
        if isinstance(value, list) and not value:
            raise ConfigError(f"parameter {name!r} must not be an empty list")


def _kind_name(kinds: tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in kinds)


PARAMETER_RULES: dict[str, ParameterRule] = {
    "profile": ParameterRule(str, choices=tuple(PROFILES), help="size of the study"),
    # the notebooks draw and corrupt images: the mixture (feature vectors) is used from Python
    "dataset": ParameterRule(str, choices=tuple(n for n, i in DATASETS.items() if i.image_size > 1),
                             help="an image dataset; the mixture is used through calibkd.mixture / make_splits"),
    "data_root": ParameterRule(str, help="'' finds the data automatically"),
    "seed": ParameterRule(int, minimum=0),
    "recipes": ParameterRule(list, choices=REGIMES),
    "report_epoch": ParameterRule(str, choices=REPORT_EPOCHS),
    "teacher_epochs": ParameterRule(int, minimum=1, optional=True),
    "student_epochs": ParameterRule(int, minimum=1, optional=True),
    "batch_size": ParameterRule(int, minimum=1, optional=True),
    "lr": ParameterRule((float, int), minimum=1e-6, maximum=10.0, optional=True),
    "num_threads": ParameterRule(int, minimum=1, maximum=256),
    "device": ParameterRule(str, choices=("auto", "cpu", "cuda")),
    "output_dir": ParameterRule(str, help="'' keeps figures inline only"),
    "train_missing": ParameterRule(bool, help="False: every model must load from the model cache (a prepared, "
                                              "imported cache); a missing one is an error, never trained"),
    "shift_test_size": ParameterRule(int, minimum=100, optional=True, help="None: the whole test split"),
    "regime": ParameterRule(str, choices=REGIMES),
    "methods": ParameterRule(list, choices=tuple(TEACHER_METHODS)),
    "posthoc": ParameterRule(list, choices=("temperature", "vector", "histogram", "isotonic")),
    "student_methods": ParameterRule(list, choices=tuple(STUDENT_METHODS)),
    "regimes": ParameterRule(list, choices=REGIMES,
                             help="the first runs student_methods, the others central_methods"),
    "central_methods": ParameterRule(list, choices=tuple(STUDENT_METHODS)),
    "dus_teacher": ParameterRule(str, choices=tuple(m for m in TEACHER_METHODS if m.startswith("dus"))),
    "cudp_map": ParameterRule(str, choices=("temperature", "isotonic", "histogram")),
    "sweep": ParameterRule(dict, help="setting -> list of values; {} skips the sweep"),
    "batch": ParameterRule(str, help="a batch folder under papermill_runs/, or a path"),
    "long_tail_batch": ParameterRule(str, help="a long_tail-regime batch folder, or '' to skip it"),
    "reference": ParameterRule(str, choices=tuple(STUDENT_METHODS), help="the model paired differences are taken against"),
}

#: Parameters that never change a run's numbers (only whether a missing model
#: is trained or refused), so they are left out of batch and study run ids.
RESULT_NEUTRAL_PARAMETERS = ("train_missing",)


def result_identity(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that identify a run's results (``RESULT_NEUTRAL_PARAMETERS`` left out)."""
    return {k: v for k, v in params.items() if k not in RESULT_NEUTRAL_PARAMETERS}

#: The parameters each notebook declares in its ``parameters`` cell (a test
#: keeps this in step with the notebooks). Anything else papermill injects is
#: an error, not a silent no-op.
NOTEBOOK_PARAMETERS: dict[str, tuple[str, ...]] = {
    "01_teacher_training": (
        "profile", "dataset", "data_root", "seed", "recipes", "report_epoch",
        "teacher_epochs", "student_epochs", "batch_size", "lr", "num_threads",
        "device", "output_dir", "train_missing",
    ),
    "02_miscalibration_diagnosis": (
        "profile", "dataset", "data_root", "seed", "recipes", "report_epoch",
        "teacher_epochs", "batch_size", "lr", "num_threads", "device", "output_dir", "train_missing", "shift_test_size",
    ),
    "03_calibration_methods": (
        "profile", "dataset", "data_root", "seed", "regime", "methods", "posthoc", "shift_test_size",
        "num_threads", "device", "output_dir", "train_missing",
    ),
    "04_student_distillation": (
        "profile", "dataset", "data_root", "seed", "regimes", "student_methods", "central_methods",
        "dus_teacher", "cudp_map", "sweep", "shift_test_size", "num_threads", "device", "output_dir", "train_missing",
    ),
    "05_results": ("batch", "reference", "long_tail_batch", "output_dir"),
}


def validate_parameters(notebook: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Check notebook parameters: names declared by the notebook, values in range.

    Returns the parameters as a plain dict; raises ``ConfigError`` naming the
    parameter and the allowed values on the first problem.
    """
    if notebook not in NOTEBOOK_PARAMETERS:
        raise ConfigError(f"unknown notebook {notebook!r}; known: {sorted(NOTEBOOK_PARAMETERS)}")
    declared = NOTEBOOK_PARAMETERS[notebook]
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {unknown} for notebook {notebook}; "
            f"allowed parameters: {list(declared)}"
        )
    missing = sorted(set(declared) - set(params))
    if missing:
        raise ConfigError(f"notebook {notebook} is missing parameter(s) {missing}")
    for name in declared:
        PARAMETER_RULES[name].check(name, params[name])
    if "sweep" in params:
        check_sweep(params["sweep"])
    if params.get("data_root"):
        root = Path(params["data_root"]).expanduser()
        if not root.is_dir():
            raise ConfigError(f"parameter 'data_root'={params['data_root']!r} is not an existing directory")
    return dict(params)


def apply_overrides(recipe: Recipe, params: Mapping[str, Any], epochs_key: str) -> Recipe:
    """A recipe with the notebook's optional overrides (epochs, batch size, lr, seed,
    report epoch) applied; each is validated by ``TrainConfig``."""
    changes: dict[str, Any] = {"seed": params.get("seed", recipe.train.seed)}
    if params.get(epochs_key) is not None:
        changes["epochs"] = params[epochs_key]
    for key in ("batch_size", "lr", "report_epoch"):
        if params.get(key) is not None:
            changes[key] = params[key]
    if "lr" in changes:
        changes["lr"] = float(changes["lr"])
    try:
        return replace(recipe, train=replace(recipe.train, **changes))
    except TypeError as error:  # pragma: no cover - guarded by the rules above
        raise ConfigError(str(error)) from None


def as_record(obj: Any) -> Any:
    """A JSON-ready view of a (nested) config dataclass."""
    if dataclasses.is_dataclass(obj):
        return {f.name: as_record(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): as_record(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [as_record(v) for v in obj]
    return obj

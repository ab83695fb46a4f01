"""The specifications every run is built from: how data is split, which
architecture, how a model is trained (with the loss hyper-parameter table),
what a profile sizes, and how a student learns from its teacher.

Plain, validated, frozen dataclasses: the model cache keys on their values
(``as_record``), never on where they are defined."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from calibkd.config.checks import check_choice, check_float, check_int
from calibkd.config.datasets import dataset_info
from calibkd.errors import ConfigError

#: The CIFAR-100 benchmark's architectures (RepDistiller / mdistiller naming;
#: ``calibkd.nn.cifar_models``), built with their published structure.
CIFAR_ARCHITECTURE_NAMES = ("resnet20", "resnet56", "resnet8x4", "resnet32x4", "wrn_16_2", "wrn_40_2", "vgg8", "vgg13")
#: The architectures ``calibkd.nn.models.ARCHITECTURES`` builds (a test keeps them in step).
ARCHITECTURE_NAMES = ("resnet", "small_cnn", "mlp") + CIFAR_ARCHITECTURE_NAMES

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
        check_int("val_size", self.val_size, minimum=1)
        if self.train_size is not None:
            check_int("train_size", self.train_size, minimum=1)
        if self.test_size is not None:
            check_int("test_size", self.test_size, minimum=1)
        check_int("split_seed", self.split_seed, minimum=0)
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
    """An architecture name from ``calibkd.nn.models.ARCHITECTURES`` and its arguments."""

    arch: str
    kwargs: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURE_NAMES:
            raise ConfigError(
                f"unknown model {self.arch!r}; allowed models: {sorted(ARCHITECTURE_NAMES)}"
            )
        for key, value in self.kwargs:
            check_int(f"model argument {key}", value, minimum=1)

    @property
    def arguments(self) -> dict[str, int]:
        return dict(self.kwargs)


OPTIMIZERS = ("sgd", "adamw")
REPORT_EPOCHS = ("last", "best_val")
#: Learning-rate schedules: per-step cosine to zero, or the CIFAR toolboxes'
#: step schedule (multiply by ``lr_decay`` after each epoch of ``milestones``).
SCHEDULES = ("cosine", "step")


@dataclass(frozen=True)
class TrainConfig:
    """One training run: optimiser, schedule, regularisation, augmentation."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"
    #: ``cosine`` (per step, to zero) or ``step`` (``lr_decay`` after each epoch in ``milestones``)
    schedule: str = "cosine"
    milestones: tuple[int, ...] = ()
    lr_decay: float = 0.1
    #: Nesterov momentum (SGD); the CIFAR toolboxes use plain momentum
    nesterov: bool = True
    #: also decay batch-norm and bias parameters (the CIFAR toolboxes do; we otherwise do not)
    decay_all: bool = False
    augment: bool = True
    #: train on a seeded subset of this many training examples (None: all)
    subset: int | None = None
    #: then keep a seeded long-tailed subset of it, the largest class this many
    #: times the smallest (``calibkd.data.subsets.long_tail_subset``; None: balanced)
    long_tail: float | None = None
    #: a loss of ``calibkd.config.LOSS_DEFAULTS`` and its hyper-parameters
    loss: str = "ce"
    loss_params: tuple[tuple[str, float | str], ...] = ()
    #: which epoch's weights are kept: the last one, or the best on validation NLL
    report_epoch: str = "last"
    #: examples of train and test data scored after every epoch for the curves
    monitor_size: int = 2_000
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, minimum=1)
        check_int("batch_size", self.batch_size, minimum=1)
        check_float("lr", self.lr, low=0.0, high=10.0, low_open=True)
        check_float("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        check_float("weight_decay", self.weight_decay, low=0.0, high=1.0)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("report_epoch", self.report_epoch, REPORT_EPOCHS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_float("lr_decay", self.lr_decay, low=0.0, high=1.0, low_open=True)
        if not isinstance(self.milestones, tuple) or list(self.milestones) != sorted(set(self.milestones)):
            raise ConfigError(f"milestones={self.milestones!r} must be a tuple of increasing epochs")
        for milestone in self.milestones:
            check_int("milestone", milestone, minimum=1)
            if milestone >= self.epochs:
                raise ConfigError(f"milestone {milestone} must be below epochs={self.epochs}")
        if self.milestones and self.schedule != "step":
            raise ConfigError("milestones apply to schedule='step' only")
        check_loss(self.loss, dict(self.loss_params))
        if self.subset is not None:
            check_int("subset", self.subset, minimum=1)
        if self.long_tail is not None:
            check_float("long_tail", self.long_tail, low=1.0, high=1e6)
        check_int("monitor_size", self.monitor_size, minimum=1)
        check_int("seed", self.seed, minimum=0)


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
    #: DKD's beta for this profile's teacher-student pair (None: ``DistillMethod``'s
    #: default); the CIFAR-100 pairs use the published value per pair
    dkd_beta: float | None = None


# ---------------------------------------------------------------------------
# Losses: every loss of calibkd.methods.losses and its hyper-parameters
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamRule:
    low: float
    high: float
    low_open: bool = False


#: Every loss, its hyper-parameters with defaults, and their allowed ranges.
LOSS_DEFAULTS: dict[str, dict[str, float | str]] = {
    "ce": {},
    "label_smoothing": {"eps": 0.1},
    "focal": {"gamma": 3.0},
    "flsd53": {},
    "mixup": {"alpha": 0.2},
    "mdca": {"beta": 1.0},
    "dus": {"gamma": 3.0, "lambda_h": 0.1, "gate": "hard", "threshold": 0.5, "sharpness": 10.0},
}
PARAM_RULES: dict[str, ParamRule] = {
    "eps": ParamRule(0.0, 1.0), "gamma": ParamRule(0.0, 20.0), "alpha": ParamRule(0.0, 10.0, low_open=True),
    "beta": ParamRule(0.0, 100.0), "lambda_h": ParamRule(0.0, 10.0), "threshold": ParamRule(0.0, 1.0),
    "sharpness": ParamRule(0.0, 1000.0, low_open=True),
}
GATES = ("hard", "soft")


def check_loss(name: str, params: Mapping[str, float | str]) -> dict[str, float | str]:
    """The loss's full hyper-parameters (defaults filled in), validated."""
    if name not in LOSS_DEFAULTS:
        raise ConfigError(f"unknown loss {name!r}; allowed losses: {sorted(LOSS_DEFAULTS)}")
    unknown = sorted(set(params) - set(LOSS_DEFAULTS[name]))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown} for loss {name!r}; allowed: {sorted(LOSS_DEFAULTS[name])}")
    full = {**LOSS_DEFAULTS[name], **params}
    for key, value in full.items():
        if key == "gate":
            if value not in GATES:
                raise ConfigError(f"unknown DUS gate {value!r}; allowed values: {list(GATES)}")
            continue
        rule = PARAM_RULES[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"loss parameter {key}={value!r} must be a number")
        too_low = value <= rule.low if rule.low_open else value < rule.low
        if too_low or value > rule.high or (key == "eps" and value >= 1.0):
            raise ConfigError(f"loss parameter {key}={value!r} is out of range "
                              f"{'(' if rule.low_open else '['}{rule.low}, {rule.high}]")
    return full


@dataclass(frozen=True)
class DistillMethod:
    """How a student learns from its teacher's outputs (brief section 4 defaults).

    ``kind`` names a row of ``calibkd.training.students.DISTILL_KINDS`` (the
    one table of distillation losses; checked there before any training):
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
        if not isinstance(self.kind, str) or not self.kind:
            raise ConfigError(f"distillation kind={self.kind!r} must be a name")
        check_float("temperature", self.temperature, low=0.0, high=100.0, low_open=True)
        for name in ("alpha", "eta", "m"):
            check_float(name, getattr(self, name), low=0.0, high=1.0)
        check_float("dkd_alpha", self.dkd_alpha, low=0.0, high=100.0)
        check_float("dkd_beta", self.dkd_beta, low=0.0, high=100.0)
        if self.warmup_epochs is not None:
            check_int("warmup_epochs", self.warmup_epochs, minimum=0)
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
    ``"cross_fit"`` takes c(x) from out-of-fold CE teachers (``calibkd.training.cross_fit``).
    """

    teacher: str | None
    distill: DistillMethod
    calibrator: str | None = None
    description: str = ""


def as_record(obj: Any) -> Any:
    """A JSON-ready view of a (nested) config dataclass."""
    if dataclasses.is_dataclass(obj):
        return {f.name: as_record(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): as_record(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [as_record(v) for v in obj]
    return obj

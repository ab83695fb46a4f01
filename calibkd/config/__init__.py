"""The study's configuration in one place: dataset facts, run specifications
(splits, models, training recipes, losses, distillation methods), the
study's design (profiles, regimes, method tables) and the notebook parameter
rules. Every name is importable from ``calibkd.config``; the submodules say
which part a name belongs to.

A *profile* sets the size of everything (``smoke`` for tests, ``default`` for
the study on 2 CPU cores, ``full`` for one GPU). A *recipe* is how one model
is trained (architecture, epochs, augmentation, regularisation). Notebook
parameters are validated here, before any data is read or model trained.
"""

from __future__ import annotations

from calibkd.config.checks import (  # noqa: F401
    check_choice,
    check_float,
    check_int,
)
from calibkd.config.datasets import (  # noqa: F401
    CIFAR10_CLASSES,
    DATASETS,
    FASHION_MNIST_CLASSES,
    GLYPH_DATASETS,
    GLYPH_SEEN_FONT_TEST_SIZE,
    GLYPH_SIZE,
    DatasetInfo,
    dataset_info,
    glyph_size,
)
from calibkd.config.design import (  # noqa: F401
    CIFAR100_PAIRS,
    CIFAR100_RECIPE,
    CROSS_FIT_FOLDS,
    DATASET_MODELS,
    LONG_TAIL_IMBALANCE,
    OVERCONFIDENT_MIN_TEMPERATURE,
    PROFILE_DATASETS,
    PROFILES,
    REGIMES,
    STUDENT,
    STUDENT_METHODS,
    SWEEP_DISTILL,
    SWEEP_TEACHER,
    TEACHER,
    TEACHER_METHODS,
    VIEW_ACCURACY_TOLERANCE,
    BenchmarkPair,
    check_sweep,
    get_profile,
    student_methods,
    teacher_variant,
)
from calibkd.config.tuning import (  # noqa: F401
    TUNING_GRIDS,
    TUNING_METRIC,
    TUNING_ORDER,
    TuningGrid,
    check_tuning,
)
from calibkd.config.parameters import (  # noqa: F401
    NOTEBOOK_PARAMETERS,
    PARAMETER_RULES,
    RESULT_NEUTRAL_PARAMETERS,
    ParameterRule,
    apply_overrides,
    result_identity,
    validate_parameters,
)
from calibkd.config.specs import (  # noqa: F401
    ARCHITECTURE_NAMES,
    CIFAR_ARCHITECTURE_NAMES,
    GATES,
    LOSS_DEFAULTS,
    OPTIMIZERS,
    PARAM_RULES,
    REPORT_EPOCHS,
    SCHEDULES,
    DistillMethod,
    ModelConfig,
    ParamRule,
    Profile,
    Recipe,
    SplitConfig,
    StudentMethod,
    TrainConfig,
    as_record,
    check_loss,
)
from calibkd.errors import ConfigError  # noqa: F401
from calibkd.paths import (  # noqa: F401
    CODE_ROOT,
    PACKAGE_ROOT,
    PROJECT_ROOT,
    batches_dir,
    cache_dir,
    download_dir,
    generated_dir,
    home,
)

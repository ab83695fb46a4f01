"""Notebook parameters: what each chapter declares and the values each
parameter accepts, checked before any data is read or model trained."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from calibkd.config.datasets import DATASETS
from calibkd.config.design import (
    PROFILES,
    REGIMES,
    STUDENT_METHODS,
    TEACHER_METHODS,
    check_sweep,
)
from calibkd.config.display import POSTHOC_METHODS
from calibkd.config.specs import REPORT_EPOCHS, Recipe
from calibkd.errors import ConfigError


@dataclass(frozen=True)
class ParameterRule:
    """What values one notebook parameter accepts."""

    kind: type | tuple[type, ...]
    #: allowed values: a tuple, or a mapping whose keys are allowed (read when checked)
    choices: tuple[Any, ...] | Mapping[str, Any] | None = None
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
            hint = _literal_hint(name, self) if isinstance(value, str) and (list in kinds or dict in kinds) else ""
            raise ConfigError(f"parameter {name!r}={value!r} must be {_kind_name(kinds)}{hint}")
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


def _literal_hint(name: str, rule: ParameterRule) -> str:
    """How to pass a list or dict parameter that arrived as text (papermill's ``-p``)."""
    if rule.kind is dict:
        return (f"; pass a dict: in YAML (papermill -y, batch.yaml) '{name}: {{}}', "
                f"with python -m calibkd.study -p {name} \"{{}}\" (papermill's -p passes text)")
    first = next(iter(rule.choices), "x") if rule.choices else "x"
    return (f"; pass a list: in YAML (papermill -y, batch.yaml) '{name}: [{first}]', "
            f"with python -m calibkd.study -p {name} \"['{first}']\" (papermill's -p passes text)")


def _kind_name(kinds: tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in kinds)


PARAMETER_RULES: dict[str, ParameterRule] = {
    "profile": ParameterRule(str, choices=tuple(PROFILES), help="size of the study"),
    # the notebooks draw and corrupt images: the mixture (feature vectors) is used from Python
    "dataset": ParameterRule(str, choices=tuple(n for n, i in DATASETS.items() if i.image_size > 1),
                             help="an image dataset; the mixture is used through calibkd.data.mixture / make_splits"),
    "data_root": ParameterRule(str, help="'' finds the data automatically"),
    "seed": ParameterRule(int, minimum=0, maximum=2**32 - 1, help="NumPy's generators take seeds below 2**32"),
    "recipes": ParameterRule(list, choices=REGIMES, help="the teacher recipes (regimes) to train"),
    "report_epoch": ParameterRule(str, choices=REPORT_EPOCHS,
                                  help="which epoch's weights are reported: the last or the best on validation"),
    "teacher_epochs": ParameterRule(int, minimum=1, optional=True, help="None: the profile's"),
    "student_epochs": ParameterRule(int, minimum=1, optional=True, help="None: the profile's"),
    "batch_size": ParameterRule(int, minimum=1, optional=True, help="None: the recipe's"),
    "lr": ParameterRule((float, int), minimum=1e-6, maximum=10.0, optional=True, help="None: the recipe's"),
    "num_threads": ParameterRule(int, minimum=1, maximum=256, help="torch's CPU threads"),
    "device": ParameterRule(str, choices=("auto", "cpu", "cuda"), help="auto: CUDA when available"),
    "output_dir": ParameterRule(str, help="'' keeps figures inline only"),
    "train_missing": ParameterRule(bool, help="False: every model must load from the model cache (a prepared, "
                                              "imported cache); a missing one is an error, never trained"),
    "shift_test_size": ParameterRule(int, minimum=100, optional=True, help="None: the whole test split"),
    "regime": ParameterRule(str, choices=REGIMES, help="the teachers' recipe"),
    "methods": ParameterRule(list, choices=TEACHER_METHODS, help="calibrated teachers to train"),
    "posthoc": ParameterRule(list, choices=POSTHOC_METHODS,
                             help="post-hoc calibration maps fitted on validation"),
    "student_methods": ParameterRule(list, choices=STUDENT_METHODS,  # the table itself: entries added later count
                                     help="students of the first regime"),
    "regimes": ParameterRule(list, choices=REGIMES,
                             help="the first runs student_methods, the others central_methods"),
    "central_methods": ParameterRule(list, choices=STUDENT_METHODS, help="students of the other regimes"),
    "dus_teacher": ParameterRule(str, choices=tuple(m for m in TEACHER_METHODS if m.startswith("dus")),
                                 help="the DUS teacher variant the DUS student distils from"),
    "cudp_map": ParameterRule(str, choices=("temperature", "isotonic", "histogram"),
                              help="CUD-P's post-hoc map of the teacher"),
    "sweep": ParameterRule(dict, help="setting -> list of values; {} skips the sweep"),
    "tuning": ParameterRule(str, help="'' uses the config's settings; 'run' tunes KD, DKD, DUS and CUD here on "
                                      "validation (equal budget, calibkd.config.tuning); else a tuning batch "
                                      "folder under papermill_runs/ (or a path) whose choices are used"),
    "batch": ParameterRule(str, help="a batch folder under papermill_runs/ of the home (calibkd.paths), or a path"),
    "long_tail_batch": ParameterRule(str, help="a long_tail-regime batch of chapter 04 (folder or path); '' skips it; "
                                               "'auto': the committed one next to the committed batch, else none "
                                               "(calibkd.runs.companions)"),
    "glyph_batch": ParameterRule(str, help="a glyph batch of chapter 04 (183 classes: C-cardinality, glyph claims); "
                                           "'' skips it; 'auto': the committed one next to the committed batch, "
                                           "else none (calibkd.runs.companions)"),
    "reference": ParameterRule(str, choices=STUDENT_METHODS, help="the model paired differences are taken against"),
}

#: Parameters that never change a run's numbers (only whether a missing model
#: is trained or refused), so they are left out of batch and study run ids.
RESULT_NEUTRAL_PARAMETERS = ("train_missing",)


#: Parameters added after runs were recorded, with the value at which a
#: notebook does exactly what it did before they existed: at that value they
#: are left out of run ids and batch definitions, so adding one does not
#: orphan the committed runs (as optional settings are left out of cache keys).
ABSENT_DEFAULTS: dict[str, Any] = {"tuning": ""}


def result_identity(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that identify a run's results: ``RESULT_NEUTRAL_PARAMETERS``
    left out, and ``ABSENT_DEFAULTS`` at their absent value."""
    return {k: v for k, v in params.items()
            if k not in RESULT_NEUTRAL_PARAMETERS and not (k in ABSENT_DEFAULTS and v == ABSENT_DEFAULTS[k])}

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
        "dus_teacher", "cudp_map", "sweep", "tuning", "shift_test_size", "num_threads", "device", "output_dir",
        "train_missing",
    ),
    "05_results": ("batch", "reference", "long_tail_batch", "glyph_batch", "output_dir"),
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

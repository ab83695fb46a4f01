"""What every notebook does first: validate its parameters, fix seeds and
threads, load the data, and know where to write figures and tables.

Papermill only warns when it injects a parameter the notebook does not
declare; ``parameters_from_globals`` turns that into an error, before any
data is read or model trained.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd
import torch

from calibkd.config import (
    STUDENT_METHODS,
    Profile,
    Recipe,
    apply_overrides,
    get_profile,
    student_methods,
    teacher_variant,
    validate_parameters,
)
from calibkd.config.evaluation import evaluation_limits
from calibkd.data.splits import DataSplits, Split, make_splits
from calibkd.data.subsets import training_examples
from calibkd.errors import ConfigError
from calibkd.evaluation.shift import Suite
from calibkd.io import atomic_write_bytes, atomic_write_text
from calibkd.runtime import resolve_device, set_determinism
from calibkd.training.model_cache import TrainedModel, get_trained, set_training_allowed
from calibkd.training.stage import StudentStage
from calibkd.training.students import distill_kind

#: Names IPython defines in every kernel; never parameters.
_KERNEL_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


def parameters_from_globals(notebook: str, namespace: Mapping[str, Any], before: Iterable[str]) -> dict[str, Any]:
    """The notebook's parameters: every public name bound since ``before``
    (the parameters cell and anything papermill injected after it), validated.

    An injected name the notebook does not declare raises ``ConfigError``.
    """
    known = set(before) | _KERNEL_NAMES
    params = {name: value for name, value in namespace.items()
              if name not in known and not name.startswith("_")}
    return validate_parameters(notebook, params)


@dataclass
class Outputs:
    """Where a notebook saves figures and tables (nowhere when ``root`` is None)."""

    root: Path | None

    def figure(self, fig: Any, name: str) -> None:
        """Save a matplotlib figure as ``figures/<name>.png`` (atomically)."""
        if self.root is None:
            return
        import io

        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
        atomic_write_bytes(self.root / "figures" / f"{name}.png", buffer.getvalue())

    def table(self, frame: pd.DataFrame, name: str) -> None:
        """Save a table as ``<name>.csv`` (atomically)."""
        if self.root is None:
            return
        atomic_write_text(self.root / f"{name}.csv", frame.to_csv(index=False))


@dataclass
class StudyContext:
    """Everything a notebook needs after its parameters cell."""

    notebook: str
    params: dict[str, Any]
    profile: Profile
    device: torch.device
    data: DataSplits
    outputs: Outputs

    def teacher_recipe(self, name: str) -> Recipe:
        if name not in self.profile.teacher_recipes:
            raise ConfigError(f"unknown teacher recipe {name!r}; allowed: {sorted(self.profile.teacher_recipes)}")
        return apply_overrides(self.profile.teacher_recipes[name], self.params, "teacher_epochs")

    def student_recipe(self) -> Recipe:
        return apply_overrides(self.profile.student, self.params, "student_epochs")

    def variant_recipe(self, regime: str, method: str, loss_overrides: Mapping[str, float] | None = None) -> Recipe:
        """A calibrated teacher (``config.TEACHER_METHODS``) on the CE recipe of
        ``regime``, with the notebook's seed."""
        recipe = teacher_variant(self.profile, regime, method, loss_overrides)
        return replace(recipe, train=replace(recipe.train, seed=self.params["seed"]))

    def trained(self, recipe: Recipe) -> TrainedModel:
        """Train ``recipe`` (or load it from the cache), after the model it
        fine-tunes from, if any; prints where it came from."""
        init = self.trained(self.teacher_recipe(recipe.init_from)) if recipe.init_from else None
        result = get_trained(recipe, self.data, self.device, init=init)
        print(result.summary())
        return result

    def student_stage(self, regime: str, dus_teacher: str = "dus_soft", cudp_map: str = "temperature") -> StudentStage:
        """The students of ``regime``: the student recipe, trained on the same
        examples as the regime's CE teacher (its subset or long tail, if it
        has one) and seeing them as it did (augmented or not), so that they
        distill on the inputs the teacher was fitted on (brief section 3b)."""
        teacher = self.teacher_recipe(regime)
        student = self.student_recipe()
        student = replace(student, train=replace(student.train, subset=teacher.train.subset,
                                                 long_tail=teacher.train.long_tail, augment=teacher.train.augment))

        def source(method: str, loss_overrides: Mapping[str, float] | None) -> TrainedModel:
            if method == "ce":
                return self.trained(teacher)
            return self.trained(self.variant_recipe(regime, method, loss_overrides))

        return StudentStage(self.data, self.device, regime, student, source, dus_teacher, cudp_map,
                            methods=student_methods(self.profile))

    def suite(self, test_size: int | None, mixture_count: int = 2000) -> Suite:
        """The robustness suite of this run on ``test_size`` seeded test images:
        every corruption and severity, or the profile's reduced set (smoke),
        within the profile's ``config.evaluation.EVALUATION_LIMITS`` (says so
        when they cut what was asked)."""
        limits = evaluation_limits(self.profile.name)
        size, mixtures = limits.test_size(test_size), limits.mixture_count(mixture_count)
        if (size, mixtures) != (test_size, mixture_count):
            print(f"{self.profile.name} profile: corruption suite on {size} test images, {mixtures} mixtures "
                  f"per mixing weight (config.evaluation.EVALUATION_LIMITS)")
        reduced = {"corruptions": self.profile.suite_corruptions, "severities": self.profile.suite_severities}
        return Suite(test_size=size, mixture_count=mixtures, seed=self.params["seed"],
                     **{name: value for name, value in reduced.items() if value is not None})

    def sample_size(self, requested: int) -> int:
        """How many training examples to score models on: ``requested``, within
        the profile's ``config.evaluation.EVALUATION_LIMITS``."""
        return evaluation_limits(self.profile.name).training_sample_size(requested)

    def training_split(self, recipe: Recipe) -> Split:
        """The training examples ``recipe`` was fitted on (its subset or long
        tail, if it has one)."""
        return training_examples(self.data, recipe.train)


def start(notebook: str, params: Mapping[str, Any]) -> StudyContext:
    """Validate parameters, fix seeds and threads, load the data; print what was set."""
    params = validate_parameters(notebook, params)
    profile = get_profile(params["profile"], params["dataset"])
    # Build every recipe now so a bad override fails before any data is read.
    for name in params.get("recipes", []):
        apply_overrides(profile.teacher_recipes[name], params, "teacher_epochs")
    if "student_epochs" in params:
        apply_overrides(profile.student, params, "student_epochs")
    for name in [*params.get("student_methods", []), *params.get("central_methods", [])]:
        distill_kind(STUDENT_METHODS[name].distill.kind)  # a row naming an unknown loss fails here
    device = resolve_device(params["device"])
    set_training_allowed(params.get("train_missing", True))
    set_determinism(params["seed"], params["num_threads"])
    data = make_splits(profile.split, params["data_root"] or None, device)
    root = Path(params["output_dir"]) if params["output_dir"] else None
    print(f"profile {profile.name!r} ({profile.description}); device {device}; "
          f"{torch.get_num_threads()} CPU threads; seed {params['seed']}")
    print(data.describe())
    return StudyContext(notebook, params, profile, device, data, Outputs(root))

"""Equal-budget tuning on validation (``calibkd.config.tuning``): run the
grids on one student stage, choose, and train students with the choices.

``tune`` scores every configuration of every grid on the validation split,
in ``TUNING_ORDER``, each step with the values chosen before it, and returns
the table of trials and the choices. ``choices_from_table`` re-reads the
choices from such tables (e.g. a tuning batch's runs), and
``tuned_student`` / ``train_tuned`` give a student row with the chosen
values applied, so that a comparison uses tuned baselines and a tuned CUD.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from calibkd import metrics
from calibkd.config import STUDENT_METHODS, StudentMethod
from calibkd.config.tuning import (
    TUNING_GRIDS,
    TUNING_METRIC,
    TUNING_ORDER,
    TuningGrid,
    check_tuning,
    choice_label,
)
from calibkd.errors import ConfigError
from calibkd.nn.inference import predict_logits
from calibkd.paths import batches_dir
from calibkd.training.code_version import code_version
from calibkd.training.stage import StudentResult, StudentStage

#: The name of the table chapter 04 writes its tuning trials to.
TUNING_TABLE = "tuning_04"

Choices = Mapping[str, Mapping[str, Any]]


def tuned_student(name: str, chosen: Choices, grids: Mapping[str, TuningGrid] = TUNING_GRIDS,
                  methods: Mapping[str, StudentMethod] = STUDENT_METHODS
                  ) -> tuple[StudentMethod, dict[str, float] | None, str | None]:
    """``methods[name]`` (a stage's table: ``STUDENT_METHODS`` with its
    profile's settings) with the values of every grid in ``chosen`` that
    applies to it: (the method, loss overrides for its DUS teacher or None,
    the DUS teacher to use or None)."""
    if name not in methods:
        raise ConfigError(f"unknown student method {name!r}; allowed: {list(methods)}")
    method = methods[name]
    distill, overrides, dus_teacher = method.distill, None, None
    for family in TUNING_ORDER:
        if family not in chosen or family not in grids or name not in grids[family].applies_to:
            continue
        for setting, value in chosen[family].items():
            if setting == "lambda_h":
                overrides = {"lambda_h": float(value)}
            elif setting == "gate":
                dus_teacher = f"dus_{value}"
            else:
                distill = replace(distill, **{setting: value})
    return replace(method, distill=distill), overrides, dus_teacher


def train_tuned(stage: StudentStage, name: str, chosen: Choices, label: str | None = None,
                grids: Mapping[str, TuningGrid] = TUNING_GRIDS) -> StudentResult:
    """Train (or load) student ``name`` of ``stage`` with the ``chosen`` values."""
    method, overrides, dus_teacher = tuned_student(name, chosen, grids, stage.methods)
    if dus_teacher is not None and method.teacher == "dus":
        stage = replace(stage, dus_teacher=dus_teacher)  # shares the stage's caches
    return stage.student(label or name, method, overrides if method.teacher == "dus" else None)


def _validation(stage: StudentStage, result: StudentResult) -> dict[str, float]:
    """A student's accuracy, NLL and ECE on the validation split (never test)."""
    probs = metrics.softmax(predict_logits(result.model, stage.data.val.images))
    labels = stage.data.val.labels.cpu()
    return {"accuracy": metrics.accuracy(probs, labels), "nll": metrics.nll(probs, labels),
            "ece": metrics.ece(probs, labels)}


def tune(stage: StudentStage, grids: Mapping[str, TuningGrid] = TUNING_GRIDS,
         order: tuple[str, ...] = TUNING_ORDER) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Every configuration of every grid on ``stage``, scored on validation:
    (one row per trial: grid, configuration, settings, validation scores,
    whether it was chosen; the chosen settings per grid)."""
    check_tuning(grids, order)
    rows: list[dict[str, Any]] = []
    chosen: dict[str, dict[str, Any]] = {}
    for family in order:
        grid = grids[family]
        trials = []
        for config in grid.configurations():
            label = choice_label(family, config)
            result = train_tuned(stage, grid.student, {**chosen, family: config}, label=f"{grid.student}:{label}",
                                 grids=grids)
            trials.append((config, {"grid": family, "student": grid.student, "configuration": label,
                                    **{k: str(v) for k, v in config.items()}, **_validation(stage, result)}))
        best = min(range(len(trials)), key=lambda i: (trials[i][1][TUNING_METRIC], i))
        chosen[family] = dict(trials[best][0])
        rows += [{**row, "chosen": i == best} for i, (_, row) in enumerate(trials)]
    return pd.DataFrame(rows), chosen


def choices_from_table(table: pd.DataFrame, grids: Mapping[str, TuningGrid] = TUNING_GRIDS
                       ) -> dict[str, dict[str, Any]]:
    """The choices a tuning table (``tune`` output, possibly stacked over
    runs) gives: per grid, the configuration with the lowest mean
    ``TUNING_METRIC`` over the runs that tried it (ties: the first in grid order)."""
    chosen: dict[str, dict[str, Any]] = {}
    for family in (f for f in TUNING_ORDER if f in grids):
        rows = table[table["grid"] == family]
        if rows.empty:
            continue
        grid = grids[family]
        means = rows.groupby("configuration")[TUNING_METRIC].mean()
        for config in grid.configurations():
            label = choice_label(family, config)
            if label in means.index and means[label] == means.min():
                chosen[family] = config
                break
    return chosen


def finished_trials(folder: Path, code: str | None = None) -> pd.DataFrame:
    """Every trial of a tuning batch: its *finished* runs' ``tuning_04.csv``
    stacked (a run that stopped half-way is not read). With ``code`` (a
    ``code_version()``), every such run must have been made by that training
    code: choices tuned on other code are refused, not silently reused."""
    tables, stale = [], []
    for run in sorted(Path(folder).glob("runs/*/")):
        path, record = run / f"{TUNING_TABLE}.csv", _json(run / "run.json")
        if not path.is_file() or record.get("status") != "finished":
            continue
        made_by = _json(run / "provenance.json").get("code_version")
        if code is not None and made_by != code:
            stale.append(f"{run.name} (code {made_by})")
            continue
        tables.append(pd.read_csv(path).assign(run_id=run.name))
    if stale:
        raise ConfigError(f"tuning runs in {folder} were made by other training code than this run's ({code}): "
                          f"{', '.join(stale)}; rerun them: delete those run folders and run "
                          f"python -m calibkd.runs run {folder}")
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def read_tuning(folder: Path, dataset: str, profile: str, regime: str, code: str | None = None) -> pd.DataFrame:
    """The trials of one dataset, profile and regime in tuning batch
    ``folder`` (``finished_trials``); a clear error when there are none."""
    table = finished_trials(folder, code)
    if not table.empty:
        table = table[(table["dataset"] == dataset) & (table["profile"] == profile) & (table["regime"] == regime)]
    if table.empty:
        raise ConfigError(f"no finished tuning runs for dataset {dataset!r}, profile {profile!r}, regime "
                          f"{regime!r} in {folder}; run its batch first: python -m calibkd.runs run {folder}")
    return table


def sensitivity(trials: pd.DataFrame) -> pd.DataFrame:
    """The tuning trials as the sensitivity table: per dataset, regime and
    grid, each configuration's validation scores (mean over the runs that
    tried it) and whether it was chosen (``choices_from_table``'s rule)."""
    keys = ["dataset", "regime", "grid", "configuration"]
    scores = [m for m in ("accuracy", "nll", "ece") if m in trials.columns]
    table = trials.groupby(keys, sort=False)[scores].mean().reset_index()
    chosen = set()
    for (dataset, regime), rows in trials.groupby(["dataset", "regime"], sort=False):
        for family, config in choices_from_table(rows).items():
            chosen.add((dataset, regime, family, choice_label(family, config)))
    table["chosen"] = [tuple(row) in chosen for row in table[keys].itertuples(index=False)]
    return table


def batch_choices(tuning: str, dataset: str, profile: str, regime: str) -> dict[str, dict[str, Any]]:
    """The choices of tuning batch ``tuning`` (a folder, or a batch name under
    ``papermill_runs/``) for one dataset, profile and regime, read from its
    finished runs made by this process's training code."""
    folder = Path(tuning) if Path(tuning).is_absolute() else batches_dir() / tuning
    return choices_from_table(read_tuning(folder, dataset, profile, regime, code=code_version()))


def _json(path: Path) -> dict[str, Any]:
    """A run's JSON record, or ``{}`` when it is missing or unreadable (a run being written)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}

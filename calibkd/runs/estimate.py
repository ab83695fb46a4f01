"""How long a batch will take, before it is launched: the training and
inference work of each run, priced at throughput measured on this device.

    python -m calibkd.runs estimate BATCH [--device auto|cpu|cuda] [--quick] [--json]

**The work of a run** (``run_work``) is read from its notebook and
parameters with the study's own tables: the profile's recipes
(``config.get_profile``, ``apply_overrides``), ``config.teacher_variant``
for calibrated and fine-tuned teachers, ``config.STUDENT_METHODS`` for the
teacher each student needs, ``config.TUNING_GRIDS`` and the sweep's
settings. For chapter 04 that is, per regime: the CE teacher, the DUS
teacher (the regime check fine-tunes it even when no student uses it), every
other teacher a student method names, the cross-fitted fold teachers of
``cudp_xfit``, one student per method (``student_methods`` in the first
regime, ``central_methods`` in the others), each teacher's one logit pass per
student epoch, the tuning trials (``tuning: run``) and the sweep; and the
default regime's CE teacher when no regime trains it (the hard slice's
reference). Chapters 01-03 train their teacher recipes, the student (01),
DUS teachers (02's regime check) and calibrated teachers (03); 05 trains nothing.
No function of the study enumerates this in advance (``StudentStage``
trains lazily, and the batch machinery may not import it), so the table is
re-derived here; ``tests/test_estimate.py`` checks it on known cases.

*Approximated:* training examples come from the split sizes of the config
(a long-tailed set's size from ``long_tail_counts`` with each class at the
training split's mean size); a model's evaluation is its per-epoch scoring
(train and test monitor sets and validation) and its final test and
validation pass; the chapter's own evaluation counts scoring each student on
validation and test, and the robustness suite as inference only (every
corruption and severity of the profile on ``shift_test_size`` images, plus
clean, mixtures and hard slice; building the corrupted images, plots, the
diagnostics on training samples and the kernel start are not counted).
Distillation losses are priced as plain training steps (the benchmark
measures their overhead at under 15 %). Every model is assumed to be
trained: a warm model cache makes runs faster. Runs are summed one after
another; workers running side by side divide the batch's wall time.

**Throughput** is measured now, on this machine, for each architecture and
batch size involved (``calibkd.training.throughput``, in a process of its
own at the runs' thread count): training and inference images/s on
synthetic data of the dataset's shape, on the runs' own device (``--device``
to choose; ``auto`` when the runs differ; this machine's CPU, said so, when
the runs ask for CUDA and there is no GPU). It is printed, never cached. On a
CPU shared with other jobs the measurement also says which share of its
threads' time it got, and the time with the cores to itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from calibkd.config import (
    CROSS_FIT_FOLDS,
    STUDENT_METHODS,
    SWEEP_TEACHER,
    TEACHER_METHODS,
    TUNING_GRIDS,
    TUNING_ORDER,
    Profile,
    Recipe,
    apply_overrides,
    dataset_info,
    get_profile,
)
from calibkd.config.design import long_tail_counts
from calibkd.errors import ConfigError
from calibkd.runs import store as run_store
from calibkd.runs.batches import batch_root, load_batch
from calibkd.runtime import resolve_device
from calibkd.study.runner import NOTEBOOK_DIR

#: The corruption suite's conditions when a profile does not reduce it: the 15
#: corruptions at 5 severities of ``calibkd.evaluation`` (a test keeps them in step).
SUITE_CORRUPTIONS, SUITE_SEVERITIES = 15, 5
#: Mixing weights and hard-slice fraction of ``calibkd.evaluation.shift.Suite``; chapter 04 asks 1,000 mixtures.
SUITE_MIXTURE_WEIGHTS, SUITE_HARD_FRACTION, CHAPTER_04_MIXTURES = 2, 0.1, 1000

#: Below this share of its threads' CPU time, the measurement says the machine was shared.
SHARED_BELOW = 0.85
#: The kinds of work a run's table shows, in order.
KINDS = ("CE teacher", "calibrated teacher", "fine-tuned teacher", "cross-fit fold teacher", "student",
         "tuning student", "sweep student", "teacher logit pass", "chapter evaluation")


@dataclass(frozen=True)
class Work:
    """One piece of a run's work on one architecture: ``train_images``
    training-step images and ``infer_images`` inference images."""

    kind: str
    label: str
    shape: tuple[tuple[str, Any], ...]
    epochs: int = 0
    examples: int = 0
    train_images: int = 0
    infer_images: int = 0
    models: int = 1


def _shape(recipe: Recipe, dataset: str) -> tuple[tuple[str, Any], ...]:
    """What throughput depends on: architecture, its arguments, image shape, batch size."""
    info = dataset_info(dataset)
    return (("arch", recipe.model.arch), ("kwargs", dict(recipe.model.kwargs)), ("channels", info.channels),
            ("image_size", info.image_size), ("num_classes", info.num_classes),
            ("batch_size", recipe.train.batch_size), ("crop_padding", info.crop_padding),
            ("horizontal_flip", info.horizontal_flip))


def _sizes(profile: Profile) -> tuple[int, int, int]:
    """(training, validation, test) examples of the profile's split."""
    info = dataset_info(profile.split.dataset)
    train = profile.split.train_size or info.train_size - profile.split.val_size
    return train, profile.split.val_size, profile.split.test_size or info.test_size


class _Planner:
    """Collects the ``Work`` of one run; ``model`` adds a trained model once per recipe."""

    def __init__(self, profile: Profile, params: Mapping[str, Any]) -> None:
        self.profile, self.params = profile, params
        self.dataset = profile.split.dataset
        self.train_n, self.val_n, self.test_n = _sizes(profile)
        self.items: list[Work] = []
        self.seen: set[str] = set()

    def examples(self, recipe: Recipe) -> int:
        n = self.train_n if recipe.train.subset is None else min(recipe.train.subset, self.train_n)
        if recipe.train.long_tail is not None:
            classes = dataset_info(self.dataset).num_classes
            n = sum(long_tail_counts(n // classes, classes, recipe.train.long_tail))
        return n

    def model(self, kind: str, recipe: Recipe, examples: int | None = None, key: str | None = None) -> bool:
        """Train ``recipe`` (once per ``key``, default its name): its epochs on
        its examples, per-epoch scoring, and the final test and validation pass."""
        key = key or recipe.name
        if key in self.seen:
            return False
        self.seen.add(key)
        n = self.examples(recipe) if examples is None else examples
        epochs, monitor = recipe.train.epochs, recipe.train.monitor_size
        per_epoch = min(monitor, n) + self.val_n + min(monitor, self.test_n)
        self.items.append(Work(kind, key, _shape(recipe, self.dataset), epochs, n, epochs * n,
                               epochs * per_epoch + self.test_n + self.val_n))
        return True

    def inference(self, kind: str, label: str, recipe: Recipe, images: int, key: str | None = None) -> None:
        """Inference of ``recipe``'s model on ``images`` images (once per ``key``, when given)."""
        if key is not None:
            if key in self.seen:
                return
            self.seen.add(key)
        self.items.append(Work(kind, label, _shape(recipe, self.dataset), infer_images=images, models=0))


# ---------------------------------------------------------------------------
# the work of one run, chapter by chapter
# ---------------------------------------------------------------------------


def _suite_images(plan: _Planner, test_size: int | None, mixtures: int) -> int:
    """Inference images of the robustness suite for one model: every condition
    of the profile on the suite's test images, clean, mixtures and hard slice."""
    from calibkd.config.evaluation import evaluation_limits

    limits = evaluation_limits(plan.profile.name)
    test = min(limits.test_size(test_size) or plan.test_n, plan.test_n)
    conditions = (len(plan.profile.suite_corruptions or range(SUITE_CORRUPTIONS))
                  * len(plan.profile.suite_severities or range(SUITE_SEVERITIES)))
    mixtures = limits.mixture_count(mixtures)
    return test * (conditions + 1) + mixtures * SUITE_MIXTURE_WEIGHTS + int(SUITE_HARD_FRACTION * test)


def _sample(plan: _Planner, requested: int, available: int) -> int:
    from calibkd.config.evaluation import evaluation_limits

    return min(evaluation_limits(plan.profile.name).training_sample_size(requested), available)


def _teacher(plan: _Planner, regime: str) -> Recipe:
    """``StudyContext.teacher_recipe``: the regime's CE recipe with the notebook's overrides."""
    if regime not in plan.profile.teacher_recipes:
        raise ConfigError(f"unknown regime {regime!r}; allowed: {sorted(plan.profile.teacher_recipes)}")
    return apply_overrides(plan.profile.teacher_recipes[regime], plan.params, "teacher_epochs")


def _variant(plan: _Planner, regime: str, method: str, overrides: Mapping[str, Any] | None = None) -> Recipe:
    """``StudyContext.variant_recipe``: a calibrated or fine-tuned teacher of the regime."""
    from calibkd.config import teacher_variant

    recipe = teacher_variant(plan.profile, regime, method, overrides)
    return replace(recipe, train=replace(recipe.train, seed=plan.params["seed"]))


def _teacher_model(plan: _Planner, regime: str, method: str, overrides: Mapping[str, Any] | None = None) -> Recipe:
    """Train the ``method`` teacher of ``regime`` ("ce": its CE teacher) and return its recipe."""
    if method == "ce":
        recipe = _teacher(plan, regime)
        plan.model("CE teacher", recipe)
        return recipe
    recipe = _variant(plan, regime, method, overrides)
    plan.model("fine-tuned teacher" if TEACHER_METHODS[method][2] else "calibrated teacher", recipe)
    return recipe


def _chapter_04(plan: _Planner) -> None:
    p = plan.params
    base_student = apply_overrides(plan.profile.student, p, "student_epochs")
    suite = _suite_images(plan, p["shift_test_size"], CHAPTER_04_MIXTURES)
    for position, regime in enumerate(p["regimes"]):
        ce = _teacher_model(plan, regime, "ce")
        student = replace(base_student, train=replace(base_student.train, subset=ce.train.subset,
                                                      long_tail=ce.train.long_tail, augment=ce.train.augment))
        n = plan.examples(student)
        stream = student.train.epochs * n
        used: list[Recipe] = []

        def teacher_for(spec: str, overrides: Mapping[str, Any] | None = None) -> Recipe:
            method = p["dus_teacher"] if spec == "dus" else spec
            recipe = _teacher_model(plan, regime, method, overrides)
            plan.inference("teacher logit pass", f"{recipe.name} on the student stream", recipe, stream,
                           key=f"logits {regime} {recipe.name}")
            if recipe not in used:
                used.append(recipe)
            return recipe

        def train_student(kind: str, label: str, method_name: str, overrides: Mapping[str, Any] | None = None,
                          teacher: str | None = None) -> None:
            method = STUDENT_METHODS[method_name]
            if method.teacher:
                teacher_for(teacher or method.teacher, overrides)
            if method.calibrator == "cross_fit" and f"folds {regime}" not in plan.seen:
                folds = replace(ce, train=replace(ce.train, subset=None, long_tail=None))
                for fold in range(CROSS_FIT_FOLDS):
                    plan.model("cross-fit fold teacher", replace(folds, name=f"{ce.name}/fold{fold}of{CROSS_FIT_FOLDS}"),
                               examples=n * (CROSS_FIT_FOLDS - 1) // CROSS_FIT_FOLDS)
                plan.inference("teacher logit pass", "cross-fitted c(x) on the student stream", ce,
                               stream + CROSS_FIT_FOLDS * plan.val_n, key=f"folds {regime}")
            plan.model(kind, replace(student, name=f"{regime}/student/{label}"), n)

        # the regime check: the CE teacher and the DUS teacher on samples of the students' views
        dus = _teacher_model(plan, regime, p["dus_teacher"])
        views = _sample(plan, 10_000, n)
        plan.inference("chapter evaluation", f"{regime}: regime check", ce, 3 * views)
        plan.inference("chapter evaluation", f"{regime}: regime check", dus, views)
        if p["tuning"] == "run":
            for family in TUNING_ORDER:
                grid = TUNING_GRIDS[family]
                for config in grid.configurations():
                    overrides = {"lambda_h": float(config["lambda_h"])} if "lambda_h" in config else None
                    gate = f"dus_{config['gate']}" if "gate" in config else None
                    uses_dus = STUDENT_METHODS[grid.student].teacher == "dus"
                    train_student("tuning student", f"{grid.student}:{family}{sorted(config.items())}", grid.student,
                                  overrides if uses_dus else None, gate if uses_dus else None)
        methods = p["student_methods"] if position == 0 else p["central_methods"]
        for name in methods:
            train_student("student", name, name)
        plan.inference("chapter evaluation", f"{regime}: scores and robustness suite", student,
                       len(methods) * (plan.val_n + plan.test_n + suite))
        if position == 0 and p["sweep"]:
            if "cud" not in methods:
                train_student("sweep student", "cud", "cud")
            for setting, values in p["sweep"].items():
                for value in values:
                    overrides = {setting: float(value)} if setting in SWEEP_TEACHER else None
                    train_student("sweep student", f"cud[{setting}={value}]", "cud", overrides)
        for recipe in used:  # what each student was taught: the targets on a sample of training views
            plan.inference("chapter evaluation", f"{regime}: targets of {recipe.name}", recipe, views)
    if "default" not in p["regimes"]:  # the hard slice's reference
        _teacher_model(plan, "default", "ce")


def _chapter_01_02(plan: _Planner, notebook: str) -> None:
    p = plan.params
    for name in p["recipes"]:
        recipe = _teacher_model(plan, name, "ce")
        if notebook.startswith("02"):
            dus = _teacher_model(plan, name, "dus_soft")  # the regime check (``StudentStage``'s default DUS teacher)
            plan.inference("chapter evaluation", f"{name}: regime check", dus, _sample(plan, 10_000, plan.train_n))
            plan.inference("chapter evaluation", f"{name}: robustness suite", recipe,
                           _suite_images(plan, p["shift_test_size"], 2000))
    if notebook.startswith("01"):
        plan.model("student", apply_overrides(plan.profile.student, p, "student_epochs"))


def _chapter_03(plan: _Planner) -> None:
    p = plan.params
    ce = _teacher_model(plan, p["regime"], "ce")
    suite = _suite_images(plan, p["shift_test_size"], 2000)
    for method in p["methods"]:
        recipe = _teacher_model(plan, p["regime"], method)
        plan.inference("chapter evaluation", f"{method}: robustness suite", recipe, suite)
    plan.inference("chapter evaluation", "CE teacher: robustness suite", ce, suite)


def run_work(notebook: str, params: Mapping[str, Any]) -> list[Work]:
    """The training and inference work of one run of ``notebook`` (see the module docstring)."""
    if notebook.startswith("05"):
        return []
    profile = get_profile(params["profile"], params["dataset"])
    plan = _Planner(profile, params)
    if notebook.startswith("04"):
        _chapter_04(plan)
    elif notebook.startswith("03"):
        _chapter_03(plan)
    elif notebook.startswith(("01", "02")):
        _chapter_01_02(plan, notebook)
    else:
        raise ConfigError(f"no work model for notebook {notebook!r}")
    return plan.items


# ---------------------------------------------------------------------------
# throughput and prices
# ---------------------------------------------------------------------------

#: (shapes as dicts, device, threads, quick) -> ``calibkd.training.throughput``'s report
Measure = Callable[[Sequence[dict[str, Any]], str, int, bool], dict[str, Any]]


def shape_key(shape: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> str:
    """A shape as a stable text key."""
    return json.dumps(dict(shape), sort_keys=True)


def measure_throughput(shapes: Sequence[dict[str, Any]], device: str, threads: int, quick: bool) -> dict[str, Any]:
    """Rates of ``shapes`` measured by ``python -m calibkd.training.throughput`` in a process of its own."""
    command = [sys.executable, "-m", "calibkd.training.throughput", "--device", device, "--threads", str(threads)]
    command += [arg for shape in shapes for arg in ("--shape", json.dumps(shape))]
    command += ["--quick"] if quick else []
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the runs' kernels (calibkd.study.runner.kernel_environment)
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ConfigError(f"measuring throughput on device {device!r} failed: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def price(items: Sequence[Work], rates: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Per kind: models, training and inference images, and expected seconds:
    at the throughput measured, and (``seconds_unshared``) at the throughput
    the measurement would have had with its CPU threads to itself (its rate
    divided by its ``cpu_share``; the same as ``seconds`` on a GPU)."""
    table: dict[str, dict[str, float]] = {}
    for item in items:
        rate = rates[shape_key(item.shape)]
        row = table.setdefault(item.kind, {"models": 0, "train_images": 0, "infer_images": 0, "seconds": 0.0,
                                           "seconds_unshared": 0.0})
        row["models"] += item.models
        row["train_images"] += item.train_images
        row["infer_images"] += item.infer_images
        seconds = item.train_images / rate["train_images_per_s"] + item.infer_images / rate["infer_images_per_s"]
        row["seconds"] += seconds
        row["seconds_unshared"] += seconds * (rate.get("cpu_share") or 1.0)
    return {kind: table[kind] for kind in KINDS if kind in table}


def run_device(devices: Iterable[str]) -> str:
    """The device to measure on for runs asking for ``devices``: theirs when they agree, else ``auto``."""
    chosen = set(devices)
    return chosen.pop() if len(chosen) == 1 else "auto"


def estimate_batch(path: str | Path, device: str | None = None, quick: bool = False,
                   measure: Measure | None = None, notebook_dir: Path = NOTEBOOK_DIR) -> dict[str, Any]:
    """The expected wall time of every run of a batch and of the batch, from
    throughput measured now on ``device`` (default: the runs' own ``device``
    parameter, ``auto`` when they differ) by ``measure`` (default
    ``measure_throughput``); a JSON-ready dict."""
    batch = load_batch(batch_root(path), notebook_dir)
    note = None
    if device is None:
        device = run_device(str(spec.parameters.get("device", "auto")) for spec in batch.runs)
        if device == "cuda" and resolve_device("auto").type != "cuda":
            device = "cpu"
            note = ("the runs ask for device cuda, but this machine has no GPU: measured on its CPU, so the times "
                    "are this CPU's; on the GPU machine the same command measures the GPU")
    try:
        resolve_device(device)  # a missing GPU is said before anything is measured
    except ValueError as error:
        raise ConfigError(str(error)) from None
    measure = measure or measure_throughput
    works = {spec.run_id: run_work(spec.notebook, spec.parameters) for spec in batch.runs}
    shapes: dict[str, dict[str, Any]] = {}
    for items in works.values():
        for item in items:
            shapes.setdefault(shape_key(item.shape), dict(item.shape))
    threads = max((int(spec.parameters.get("num_threads") or 1) for spec in batch.runs), default=1)
    measured = measure(list(shapes.values()), device, threads, quick) if shapes else {
        "device": device, "device_name": "(nothing to measure)", "threads": threads, "rates": []}
    rates = {shape_key(rate["shape"]): rate for rate in measured["rates"]}
    runs = []
    for spec in batch.runs:
        by_kind = price(works[spec.run_id], rates)
        runs.append({"run_id": spec.run_id, "notebook": spec.notebook, "grid": spec.grid,
                     "state": run_store.run_state(batch.root, spec.run_id),
                     "work": by_kind, "seconds": sum(row["seconds"] for row in by_kind.values()),
                     "seconds_unshared": sum(row["seconds_unshared"] for row in by_kind.values())})
    unfinished = [run for run in runs if run["state"] != "finished"]
    shares = [rate["cpu_share"] for rate in measured["rates"] if rate.get("cpu_share") is not None]
    return {
        "batch": batch.name, "root": str(batch.root), "device": measured["device"],
        "device_name": measured["device_name"], "threads": measured["threads"], "quick": quick,
        "torch": measured.get("torch"), "throughput": measured["rates"], "runs": runs,
        "total_seconds": sum(run["seconds"] for run in runs),
        "unfinished_runs": len(unfinished), "unfinished_seconds": sum(run["seconds"] for run in unfinished),
        "total_seconds_unshared": sum(run["seconds_unshared"] for run in runs),
        "load_average": measured.get("load_average"), "cpu_count": measured.get("cpu_count"), "note": note,
        "cpu_share": min(shares) if shares else None,
        "excludes": "building the corrupted images, plots, diagnostics on training samples beyond the regime check "
                    "and the targets, the kernel start and data loading; assumes an empty model cache and runs "
                    "one after another",
    }


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------


def duration(seconds: float) -> str:
    """``4.2 days``, ``3 h 05 min``, ``12 min 30 s`` or ``45 s``."""
    seconds = round(seconds)
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def _count(n: float) -> str:
    return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.0f} k" if n >= 1e3 else f"{n:.0f}"


def format_estimate(report: Mapping[str, Any]) -> str:
    """The estimate as plain text: throughput, one table per distinct run work, the batch's totals."""
    lines = [f"batch {report['batch']}: {len(report['runs'])} runs; device {report['device']} "
             f"({report['device_name']}, {report['threads']} CPU threads, torch {report['torch']})"
             + (" [--quick: rough throughput]" if report["quick"] else ""),
             "throughput measured now, synthetic data (images/s):",
             f"  {'architecture':<52} {'batch':>5} {'training':>10} {'inference':>10}"]
    for rate in report["throughput"]:
        lines.append(f"  {rate['label']:<52} {rate['shape']['batch_size']:>5} "
                     f"{rate['train_images_per_s']:>10,.0f} {rate['infer_images_per_s']:>10,.0f}")
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for run in report["runs"]:
        groups.setdefault(json.dumps(run["work"], sort_keys=True), []).append(run)
    for runs in groups.values():
        names = ", ".join(run["run_id"] for run in runs[:3]) + (f" and {len(runs) - 3} more" if len(runs) > 3 else "")
        lines.append(f"{'each of ' if len(runs) > 1 else ''}{len(runs)} run{'s' if len(runs) > 1 else ''} ({names}):")
        lines.append(f"  {'work':<24} {'models':>6} {'train images':>13} {'infer images':>13} {'time':>14}")
        for kind, row in runs[0]["work"].items():
            lines.append(f"  {kind:<24} {row['models'] or '':>6} {_count(row['train_images']):>13} "
                         f"{_count(row['infer_images']):>13} {duration(row['seconds']):>14}")
        lines.append(f"  {'per run':<24} {'':>6} {'':>13} {'':>13} {duration(runs[0]['seconds']):>14}")
    lines.append(f"batch: {duration(report['total_seconds'])} for all {len(report['runs'])} runs one after another; "
                 f"{duration(report['unfinished_seconds'])} for the {report['unfinished_runs']} unfinished "
                 f"(python -m calibkd.runs status {report['batch']})")
    if report.get("note"):
        lines.append(f"note: {report['note']}")
    share = report.get("cpu_share")
    if share is not None and share < SHARED_BELOW:
        per_run = [run["seconds_unshared"] for run in report["runs"]]
        lines.append(f"shared machine: load average {report['load_average']:.1f} on {report['cpu_count']} cores, "
                     f"the measurement got {100 * share:.0f} % of its threads' time; with the cores to itself "
                     f"about {duration(max(per_run, default=0))} per run, {duration(report['total_seconds_unshared'])} "
                     f"for the batch")
    lines.append(f"excludes {report['excludes']}")
    return "\n".join(lines)


def estimate_main(batch: str, device: str | None = None, quick: bool = False, as_json: bool = False,
                  notebook_dir: Path = NOTEBOOK_DIR) -> int:
    """``python -m calibkd.runs estimate``: print the estimate (text or JSON)."""
    report = estimate_batch(batch, device, quick, notebook_dir=notebook_dir)
    print(json.dumps(report, indent=1) if as_json else format_estimate(report))
    return 0

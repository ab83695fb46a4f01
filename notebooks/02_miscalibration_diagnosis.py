# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Diagnosing the teacher: calibration where distillation happens
#
# The paper behind this study argues that CE teachers are overconfident and
# that their soft targets therefore carry little "dark knowledge". Before any
# method tries to fix that, this chapter measures whether it is true of *our*
# teachers, and where.
#
# **What you will learn**
# - how to read a reliability diagram and the calibration metrics of brief
#   section 5 (ECE with 15 equal-width bins, adaptive ECE, classwise ECE, MCE,
#   NLL, Brier, AURC), and why each number must name its estimator;
# - why calibration on the **training set** matters more for distillation
#   than calibration on the test set: the student learns from the teacher's
#   outputs on training inputs (plain or augmented), which a teacher that
#   memorised its data predicts near one-hot;
# - what temperature scaling, fitted on validation data, says about a teacher
#   (T > 1: overconfident; T < 1: underconfident);
# - how much class structure the teacher's soft outputs carry: the
#   class-similarity matrix, and how well it recovers the dataset's known
#   class groups (garment groups on Fashion-MNIST, homoglyph groups on
#   glyphs);
# - how each teacher's accuracy and calibration degrade under the corruptions
#   of CIFAR-10-C (Hendrycks & Dietterich 2019), computed on the fly, and how
#   it behaves on ambiguous inputs (two-image mixtures with a known soft label).
#
# Both teacher recipes of chapter 01 are diagnosed side by side (the models
# come from the cache, or are trained here if chapter 01 has not run).

# %%
# Runs anywhere. Opened alone (Colab, Kaggle, Binder), this notebook may lack
# calibkd: this cell then installs it from the calibkd checkout it sits in, or
# from $CALIBKD_SOURCE (a path, wheel or git URL), and else says where to get
# the project. Data, models and batches live in the project's home:
# $CALIBKD_HOME, else this checkout, else ~/.cache/calibkd (docs/study.md).
import importlib.util

if importlib.util.find_spec("calibkd") is None:
    import os
    import pathlib
    import re
    import subprocess
    import sys
    REPOSITORY = "https://example.invalid/calibkd"  # pyproject.toml's [project.urls] Repository (a test keeps them equal)
    _checkout = next((str(p) for p in (pathlib.Path.cwd(), *pathlib.Path.cwd().parents)
                      if (p / "pyproject.toml").is_file()
                      and re.search(r'^name = "calibkd"', (p / "pyproject.toml").read_text(), re.M)), "")
    _source = os.environ.get("CALIBKD_SOURCE") or _checkout
    if not _source:
        _get = ("ask your instructor for it: it has no public address yet" if ".invalid" in REPOSITORY
                else f"git clone {REPOSITORY}")
        raise ModuleNotFoundError(
            f"calibkd is not installed. Next step: get the project ({_get}), open this notebook from its "
            "notebooks/ folder and run this cell again; or set CALIBKD_SOURCE to a path, wheel or git URL of "
            "calibkd (in a notebook: %env CALIBKD_SOURCE=...) and run this cell again")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", _source], check=True)
    importlib.invalidate_caches()

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import display

from calibkd import metrics, plots
from calibkd.data.augment import augmented_view
from calibkd.data.splits import denormalize
from calibkd.evaluation.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from calibkd.evaluation.shift import (
    evaluate_suite,
    natural_shift_summary,
    pooled_corrupted_split,
)
from calibkd.nn.inference import predict_logits
from calibkd.study.context import parameters_from_globals, start

plots.set_style()
_before_parameters = set(globals())

# %% tags=["parameters"]
profile = "default"  # "smoke" (seconds), "default" (minutes on 2 CPU cores), "full" (one GPU)
dataset = "fashion_mnist"
data_root = ""  # "" finds the data: $CALIBKD_DATA, Debian's package, or a download
seed = 0
recipes = ["default", "overconfident"]  # teacher recipes to diagnose
report_epoch = "last"
teacher_epochs = None  # None keeps the profile's value
batch_size = None
lr = None
num_threads = 2
device = "auto"
output_dir = ""
train_missing = True  # False: load every model from the model cache (python -m calibkd.training.cache_archive import), never train
shift_test_size = None  # test images for the corruption suite; None: the whole test split

# %%
params = parameters_from_globals("02_miscalibration_diagnosis", globals(), _before_parameters)
ctx = start("02_miscalibration_diagnosis", params)
teachers = {name: ctx.trained(ctx.teacher_recipe(name)) for name in recipes}

# %% [markdown]
# ## Predictions on test, training and augmented training data
#
# For each teacher we score four sets of inputs:
# - **test**: the held-out test split;
# - **train**: the examples the teacher was fitted on, as they are;
# - **train (augmented)**: the same examples after one seeded random crop and
#   flip, as a student sees them during distillation;
# - **train fonts, new images** (glyphs only): images of the training fonts
#   that were held out of training. The glyph test split is drawn from font
#   lineages the teacher never saw, so comparing it with this set measures
#   held-out typefaces as a natural distribution shift (next to the
#   corruption suite below);
# - **validation**: only to fit the temperature of temperature scaling.

# %%
info = ctx.data.info
predictions = {}  # (teacher, split) -> (probabilities, labels)
temperatures = {}
for name, teacher in teachers.items():
    train = ctx.training_split(teacher.recipe)
    inputs = {"test": ctx.data.test, "train": train, "train (augmented)": augmented_view(train, info, seed + 100)}
    if ctx.data.iid_test is not None:  # glyphs: new images of the training fonts
        inputs["train fonts, new images"] = ctx.data.iid_test
    for split, data in inputs.items():
        predictions[name, split] = (metrics.softmax(predict_logits(teacher.model, data.images)), data.labels.cpu())
    temperatures[name] = teacher.record["temperature"]
splits = list(inputs)

# %% [markdown]
# ## Calibration metrics, side by side
#
# One row per teacher and input set. Reading guide: accuracy and ECE are in
# [0, 1]; NLL (natural log) and Brier (multi-class, in [0, 2]) are proper
# scores that reward both accuracy and honest confidence; AURC is the area
# under the risk-coverage curve (lower is better); mean confidence minus
# accuracy is the sign of the miscalibration (positive: overconfident).

# %%
rows = []
for (name, split), (probs, labels) in predictions.items():
    for metric, value in metrics.evaluate(probs, labels).items():
        rows.append({"notebook": ctx.notebook, "model": f"teacher ({name})", "split": split, "metric": metric, "value": value})
for name, temperature in temperatures.items():
    rows.append({"notebook": ctx.notebook, "model": f"teacher ({name})", "split": "validation",
                 "metric": "ts_temperature", "value": temperature})
scores = pd.DataFrame(rows)
ctx.outputs.table(scores, "metrics_02")
shown = ["accuracy", "nll", "brier", "ece", "adaptive_ece", "classwise_ece", "mce", "aurc", "mean_confidence"]
table = scores[scores.metric.isin(shown)].pivot(index=["model", "split"], columns="metric", values="value")[shown]
display(table.round(4))
print("estimators:", *(f"  {k}: {v}" for k, v in metrics.ESTIMATORS.items()), sep="\n")

# %% [markdown]
# **Temperature scaling on validation.** One scalar T divides the logits and
# is fitted by minimising validation NLL (bounded 1-D search). T > 1 softens an
# overconfident model; T near 1 means there was little to fix.

# %%
for name, t in temperatures.items():
    verdict = "overconfident" if t > 1.05 else "underconfident" if t < 0.95 else "close to calibrated"
    print(f"teacher ({name}): T = {t:.3f} -> {verdict} on validation data")

# %% [markdown]
# ## The regime check: the teacher on the inputs its students distill from
#
# What a student inherits is the teacher's behaviour on the student's own
# training views, not on test. For each regime (brief section 3b): the CE
# teacher's accuracy, mean confidence, ECE and non-target mass on those
# views (augmented in the default regime; the clean memorised subset in the
# overconfident one, whose students see it as the teacher did), its test
# accuracy and ECE, the TS temperature, and the regime's class with the
# reason. The DUS teacher of chapter 03 fine-tunes this teacher: the last
# columns say on what fraction of its fine-tuning views DUS's gate opens,
# before and after, and the DUS teacher's ECE.

# %%
from calibkd.config import OVERCONFIDENT_MIN_TEMPERATURE, REGIMES, VIEW_ACCURACY_TOLERANCE  # noqa: E402
from calibkd.study.report import regime_check  # noqa: E402

print(f"thresholds: overconfident if accuracy on the students' views >= test accuracy - {VIEW_ACCURACY_TOLERANCE:g} "
      f"and TS temperature >= {OVERCONFIDENT_MIN_TEMPERATURE:g}")
checks = pd.concat([regime_check(ctx.student_stage(name), sample_size=10_000, seed=seed)
                    for name in recipes if name in REGIMES])
display(checks.drop(columns="reason").round(4))
for regime, row in checks.iterrows():
    print(f"{regime}: {row['class']} ({row['reason']})")
check_rows = checks.drop(columns=["student views", "class", "reason"]).astype(float).reset_index().melt(
    id_vars="regime", var_name="metric", value_name="value")
ctx.outputs.table(check_rows.assign(notebook=ctx.notebook, model="teacher", split="regime check"), "regime_check_02")

# %% [markdown]
# ## Reliability diagrams
#
# Bars: accuracy in each of 15 equal-width confidence bins; red hatched bars:
# the gap to the diagonal (confidence above accuracy when the red bar sits on
# top). Below each diagram: where the predictions' confidences fall. On
# training data, a teacher that memorised it would put almost every
# prediction in the last bin.

# %%
panels = {f"{name}: {split}": predictions[name, split] for name in teachers for split in splits}
fig = plots.reliability_grid(panels, ncols=len(splits))
ctx.outputs.figure(fig, "02_reliability")

# %% [markdown]
# ## What the soft outputs carry: entropy and non-target mass
#
# Dark knowledge lives in the probability a teacher gives to *wrong* classes.
# If the teacher is near one-hot on its training data, the non-target mass
# 1 - p_y is near zero there, and a student distilled on those inputs learns
# little beyond the label. Top: cumulative distribution of the entropy of the
# teacher's distribution (nats; $\log K$ is uniform over $K$ classes). Bottom: non-target
# mass. One column per teacher; log scale, since most values are tiny.

# %%
frames = []
for (name, split), (probs, labels) in predictions.items():
    frames.append(pd.DataFrame({
        "teacher": name, "split": split,
        "entropy": metrics.entropy(probs).numpy(),
        "non-target mass": metrics.non_target_mass(probs, labels).numpy(),
    }))
spread = pd.concat(frames, ignore_index=True)
fig, axes = plt.subplots(2, len(teachers), figsize=(6 * len(teachers), 7), squeeze=False)
for col, name in enumerate(teachers):
    for row, column in enumerate(["entropy", "non-target mass"]):
        ax = axes[row, col]
        subset = spread[spread.teacher == name]
        sns.ecdfplot(data=subset.assign(value=subset[column].clip(lower=1e-8)), x="value", hue="split",
                     log_scale=True, ax=ax)
        ax.set_xlabel(f"{column} (log scale, floored at 1e-8)")
        ax.set_title(f"teacher ({name}): {column}")
        plots.readable_log_axis(ax)
        if col < len(teachers) - 1:
            ax.get_legend().remove()
        else:
            plots.legend_outside(ax, title="inputs")
fig.tight_layout()
ctx.outputs.figure(fig, "02_dark_knowledge")
display(spread.groupby(["teacher", "split"])[["entropy", "non-target mass"]].median().rename(
    columns=lambda c: f"median {c}").round(5))

# %% [markdown]
# ## Class similarity read from soft outputs
#
# For every class i, the average of the teacher's *non-target* distribution
# p_j / (1 - p_i) over test images of class i: where the teacher puts the mass
# it does not give the label, independent of its confidence. Orange outlines
# mark the dataset's known class groups (named below the figure). The
# **group-recovery AUC** is the probability that a
# pair of classes from the same group is more similar than a pair from
# different groups: 1 = perfect recovery, 0.5 = chance.

# %%
recovery = {}
fig, axes = plt.subplots(len(teachers), 2, figsize=(12, 5 * len(teachers)), squeeze=False)
for i, name in enumerate(teachers):
    for j, split in enumerate(["test", "train"]):
        probs, labels = predictions[name, split]
        sim = metrics.class_similarity(probs, labels, info.num_classes)
        recovery[name, split] = metrics.group_recovery_auc(sim, info.class_groups)
        plots.class_similarity_heatmap(sim, info.class_names, info.class_groups, ax=axes[i, j],
                                       title=f"{name}, {split}: group AUC {recovery[name, split]:.3f}")
fig.tight_layout()
ctx.outputs.figure(fig, "02_class_similarity")
recovery_table = pd.Series(recovery, name="group-recovery AUC").rename_axis(["teacher", "split"]).reset_index()
ctx.outputs.table(recovery_table, "group_recovery_02")
from calibkd.study.findings import class_groups_text  # noqa: E402

print(f"class groups of {info.name}: {class_groups_text(info) or 'none known'}")

# %% [markdown]
# ## Soft outputs against the truth
#
# Only on data whose true label distributions are known (the `glyphs`
# dataset: every member of a homoglyph group, such as Latin O, Cyrillic О,
# Greek Ο and the digit 0, is rendered from one representative glyph, so an
# image of the group is truly uniform over its members). There we need not
# guess what "dark knowledge" should be: we can compare each teacher's soft
# outputs with the truth, on test inputs and on the training inputs it was
# fitted on (plain and augmented; crops keep a glyph's identity and glyphs
# are never flipped, so the training examples keep their true distribution).
#
# - **KL(true || model)** (nats, 0 = the truth) and **total variation**
#   (in [0, 1]): how far the whole distribution is from the truth;
# - **group mass**: the probability inside the true ambiguity group (1 is
#   right: all the mass on the classes the image could be);
# - **within-group uniformity**: the entropy of the model's distribution
#   restricted to the true group, divided by log(group size), over examples
#   whose group has more than one member: 1 = spread evenly, as the truth is;
#   0 = all on one member;
# - **group-recovery AUC**: how well the groups are read back from the soft
#   outputs alone (as in the section above).
#
# What to expect: a *calibrated* teacher would put nearly all of its mass
# inside the group and spread it evenly there, on training inputs as on test
# inputs, so its KL to the truth would be small everywhere. A teacher that
# memorised its training set may collapse the group's mass onto the one
# member that happened to be the label: uniformity near 0 and a KL near
# log(group size) on the training inputs it memorised, while on test inputs,
# which it has not seen, it may look more spread. Such a train-set collapse
# is what a student distilled on those inputs would be taught. The table
# says which of these this run's teachers do.

# %%
from calibkd.evaluation import fidelity

if ctx.data.known_posterior:
    scored, per_group = {}, []
    for name, teacher in teachers.items():
        train_truth = ctx.training_split(teacher.recipe).true_probs.cpu()
        truths = {"test": ctx.data.test.true_probs.cpu(), "train": train_truth, "train (augmented)": train_truth}
        if ctx.data.iid_test is not None:
            truths["train fonts, new images"] = ctx.data.iid_test.true_probs.cpu()
        for split in splits:
            probs, labels = predictions[name, split]
            scored[f"teacher ({name})", split] = (probs, labels, truths[split])
            per_group.append(fidelity.uniformity_by_group(probs, labels, info.class_groups, info.class_names)
                             .assign(model=f"teacher ({name})", split=split))
    truth_table = fidelity.fidelity_table(scored, info.class_groups)
    ctx.outputs.table(truth_table.assign(notebook=ctx.notebook), "truth_02")
    display(fidelity.fidelity_wide(truth_table).round(4))
    per_group = pd.concat(per_group, ignore_index=True)
    fig = plots.truth_fidelity(truth_table, per_group[per_group.split.isin(["train", "train fonts, new images", "test"])])
    ctx.outputs.figure(fig, "02_truth")
else:
    print(f"{dataset}: true label distributions unknown; this section needs a dataset that has them (glyphs)")

# %% [markdown]
# ## Under distribution shift
#
# The corruption suite of CIFAR-10-C (Hendrycks & Dietterich 2019): noise
# (gaussian, shot, impulse), blur (defocus, glass, motion, zoom), weather
# (snow, frost, fog) and digital (brightness, contrast, elastic, pixelate,
# JPEG), five severities each, computed on the fly from the test split with
# the published CIFAR per-severity constants (`calibkd.evaluation.corruptions`). At
# 28 px, constants defined in pixels (noise levels, blur radii) are kept and
# constants defined relative to the image (elastic, pixelate, the fog and
# frost layers) follow its size. The frost photographs of the original cannot
# be shipped: a procedural ice texture stands in, with the published blending
# weights. One test image under every corruption and severity:

# %%
clean_pixels = denormalize(ctx.data.test.images[:1], dataset).clamp(0, 1)
examples = {(name, s): corrupt(clean_pixels, name, s, seed=seed)[0] for name in CORRUPTIONS for s in SEVERITIES}
fig = plots.corruption_grid(clean_pixels[0], examples)
ctx.outputs.figure(fig, "02_corruption_examples")

# %% [markdown]
# Both teachers on the whole suite (one evaluation call; each corrupted set
# is built once). Lines: the mean over the 15 corruptions at each severity
# (0 = clean). A calibrated model's ECE should stay low as its accuracy falls;
# an overconfident one keeps its confidence while its accuracy drops.

# %%
suite = ctx.suite(shift_test_size)
shift_table = evaluate_suite({f"teacher ({n})": t.model for n, t in teachers.items()}, ctx.data, suite)
ctx.outputs.table(shift_table.assign(notebook=ctx.notebook), "shift_02")
fig = plots.shift_curves(shift_table)
ctx.outputs.figure(fig, "02_shift_curves")
severity_table = shift_table[shift_table.condition.isin(["clean", "corruption_mean"])
                             & shift_table.metric.isin(["accuracy", "nll", "ece", "mean_confidence"])]
display(severity_table.pivot_table(index=["model", "severity"], columns="metric", values="value").round(3))

# %% [markdown]
# **Held-out typefaces, a natural shift** (glyphs only). The glyph test split
# comes from font lineages no teacher trained on; new images of the
# training fonts were held out as the in-distribution reference. The change
# from those to the held-out fonts is a shift no corruption simulates, shown
# beside the corruption suite's mean over corruptions and severities.

# %%
natural_shift = natural_shift_summary(shift_table)
if natural_shift.empty:
    print(f"{dataset}: the test split is drawn like the training data; no natural shift to report")
else:
    display(natural_shift.round(4))

# %% [markdown]
# Per corruption at severity 3, ECE (15 equal-width bins): which kinds of
# shift break calibration most?

# %%
per_corruption = shift_table[(shift_table.severity == 3) & (shift_table.metric.isin(["accuracy", "ece"]))
                             & ~shift_table.condition.isin(["corruption_mean"])]
display(per_corruption.pivot_table(index="condition", columns=["metric", "model"], values="value").round(3))

# %% [markdown]
# **Reliability under shift.** Left: clean test data. Right: all 15
# corruptions at severity 3, pooled (a seeded sample of test images per
# corruption).

# %%
per_corruption_count = max(100, len(ctx.data.test) // len(CORRUPTIONS)) if shift_test_size is None else max(100, shift_test_size // len(CORRUPTIONS))
shifted = pooled_corrupted_split(ctx.data.test, dataset, 3, per_corruption_count, seed=seed)
panels = {}
for name, teacher in teachers.items():
    panels[f"{name}: clean test"] = predictions[name, "test"]
    panels[f"{name}: corrupted, severity 3"] = (metrics.softmax(predict_logits(teacher.model, shifted.images)),
                                               shifted.labels.cpu())
fig = plots.reliability_grid(panels, ncols=2)
ctx.outputs.figure(fig, "02_reliability_shift")

# %% [markdown]
# **Ambiguous inputs.** Mixtures lambda * a + (1 - lambda) * b of two test
# images of different classes have a known soft label (lambda, 1 - lambda).
# KL(truth || prediction) measures how far the teacher's distribution is from
# that truth (0 is perfect); top-1 agreement, how often its top class is the
# dominant image's class. The *hard slice* is the 10 % of test images with
# the highest entropy under the teacher itself.

# %%
ambiguous = shift_table[shift_table.condition.str.startswith("mixture") | (shift_table.condition == "hard_slice")]
ambiguous = ambiguous[ambiguous.metric.isin(["soft_kl", "soft_top1_agreement", "accuracy", "ece"])]
display(ambiguous.pivot_table(index=["condition", "metric"], columns="model", values="value").round(3))

# %% [markdown]
# ## Key numbers
#
# Rounded, so that a rerun on the same machine reproduces them exactly (nbval
# checks this cell).

# %%
# NBVAL_CHECK_OUTPUT
key = table[["accuracy", "nll", "brier", "ece"]].round(3)
print(key.to_string())
for name in teachers:
    print(f"{name}: TS temperature {temperatures[name]:.2f}; group AUC test {recovery[name, 'test']:.2f}")
print(severity_table[severity_table.metric.isin(["accuracy", "ece"]) & severity_table.severity.isin([0, 5])]
      .pivot_table(index=["model", "severity"], columns="metric", values="value").round(3).to_string())

# %% [markdown]
# ## Exercise: fit a temperature, and explain its sign
#
# Temperature scaling divides the logits by one number $T > 0$ fitted to
# minimise the NLL on held-out data: $p = \mathrm{softmax}(z / T)$. Below,
# `toy_logits` are *calibrated* by construction: each label is drawn from
# $\mathrm{softmax}(z)$. The model we diagnose reports `3 * toy_logits`.
#
# 1. Predict: will the fitted $T$ be above or below 1? Is $\log T$ positive or negative?
# 2. Find $T$ yourself by a grid search over $T \in [0.5, 6]$ (the $T$ with
#    the lowest NLL), and set `toy_verdict` to `"overconfident"` or
#    `"underconfident"`. The check compares your $T$ with
#    `calibration.fit_temperature`.

# %%
import torch

from calibkd.methods import calibration

toy_generator = torch.Generator().manual_seed(0)
toy_logits = 1.5 * torch.randn(4000, 5, generator=toy_generator, dtype=torch.float64)
toy_labels = torch.multinomial(torch.softmax(toy_logits, 1), 1, generator=toy_generator).squeeze(1)
model_logits = 3 * toy_logits  # the model's outputs: the calibrated logits, three times too large

# %% nbgrader={"grade": false, "grade_id": "ch02-exercise", "locked": false, "schema_version": 3, "solution": true}
# Set `t_by_hand` (a float: the grid T with the lowest NLL of softmax(model_logits / T))
# and `toy_verdict` ("overconfident" or "underconfident").
### BEGIN SOLUTION
grid = torch.linspace(0.5, 6.0, 1101, dtype=torch.float64)
nll_on_grid = torch.stack([torch.nn.functional.cross_entropy(model_logits / t, toy_labels) for t in grid])
t_by_hand = float(grid[nll_on_grid.argmin()])
# T > 1 (log T > 0): dividing by T flattens the probabilities, which lowers the
# NLL only if the model was too sure of itself. Here T comes out near 3: it
# undoes the factor the logits were inflated by.
toy_verdict = "overconfident" if t_by_hand > 1 else "underconfident"
print(f"T = {t_by_hand:.3f}: {toy_verdict}")
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ch02-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
fitted = calibration.fit_temperature(model_logits, toy_labels)
assert abs(t_by_hand - fitted) < 0.02, \
    "your T is not where the NLL is lowest: divide the logits by T (not multiply), and search the whole grid"
assert toy_verdict == ("overconfident" if fitted > 1 else "underconfident"), \
    "the verdict does not follow from T: does dividing by your T soften or sharpen the probabilities?"
print(f"correct: T = {fitted:.3f} > 1, log T = {torch.tensor(fitted).log().item():.3f} > 0: the model was overconfident")

# %% [markdown]
# ## What this run found
#
# Generated from this run's tables (`calibkd.study.findings`), for the
# teachers, dataset and regimes it ran: each teacher's calibration on test
# and on its own training inputs (plain and as a student sees them), its
# temperature and non-target mass, how well its soft outputs recover the
# dataset's known class groups, the regime check, the corruption suite and
# the ambiguous inputs (and, where the dataset has them, held-out typefaces
# and the true label distributions). One seed: nothing here is tested
# against seed-to-seed noise.
#
# What to look for, and why it matters for distillation: a teacher whose
# training-set outputs are near one-hot gives its students little beyond the
# label there, whatever its test calibration; a teacher that is confidently
# wrong on the views its students see teaches them wrong targets; and a
# teacher calibrated on clean data need not be calibrated under shift.

# %%
from IPython.display import Markdown  # noqa: E402

from calibkd.study.findings import teacher_findings  # noqa: E402

median_non_target = spread.groupby(["teacher", "split"])["non-target mass"].median().to_dict()
display(Markdown(teacher_findings(table, temperatures, recovery, checks, info, median_non_target, shift=shift_table,
                                  truth=truth_table if ctx.data.known_posterior else None)))

# %% [markdown] nbgrader={"grade": true, "grade_id": "ch02-questions", "locked": false, "points": 1, "schema_version": 3, "solution": true}
# ## Questions to try
# 1. Compute ECE with 5 and with 30 bins for the overconfident teacher on
#    test data. How much does the number move, and why must a paper name its
#    estimator?
# 2. Apply the fitted temperature to the overconfident teacher's *training*
#    outputs. Does it restore non-target mass there, or does the train/test
#    gap survive temperature scaling?
# 3. Which pair of classes does each teacher confuse most, and is it inside
#    one of the dataset's known class groups?
# 4. Fit a temperature on *corrupted* validation images (severity 3) and
#    apply it to the corrupted test set. How much of the ECE under shift does
#    it remove, and what does it cost on clean data?
#
# <!-- BEGIN SOLUTION -->
#
# ### Worked answers
#
# 1. `probs, labels = predictions["overconfident", "test"]`, then
#    `metrics.ece(probs, labels, n_bins=5)` and `n_bins=30`. Few bins average
#    over- and under-confident predictions inside one bin and can hide
#    miscalibration; many bins have few examples each, and their noise only
#    adds (ECE is a sum of absolute gaps), so the number drifts upward. The
#    same predictions give different numbers: an ECE without its estimator
#    (binning, bin count, top-label or classwise) cannot be compared.
# 2. Divide the logits by the teacher's temperature before the softmax:
#    `metrics.softmax(predict_logits(teachers["overconfident"].model, train.images), temperature=temperatures["overconfident"])`
#    with `train = ctx.training_split(teachers["overconfident"].recipe)`,
#    then `metrics.non_target_mass(probs, labels).mean()`, before and after
#    scaling, next to the same numbers on test. One temperature is fitted on
#    validation (`temperatures["overconfident"]`, printed above) and cannot
#    know how much sharper the memorised training examples are: if the
#    training outputs stay much sharper than the test outputs after scaling,
#    the train/test gap survives temperature scaling.
# 3. Take the class-similarity matrix of the section above (or
#    `metrics.class_similarity(probs, labels)` on test) and its largest
#    off-diagonal entry (`numpy.unravel_index(s.argmax(), s.shape)`); look the
#    pair up in `ctx.data.info.class_groups` (on Fashion-MNIST: the upper-body
#    garments, and the footwear; on glyphs: the homoglyph groups).
# 4. Build corrupted validation images the way the shift section builds
#    corrupted test images (every corruption of `CORRUPTIONS` at severity 3),
#    fit `calibration.fit_temperature` on the teacher's logits there, and
#    score the corrupted and the clean test sets at that temperature. Expect
#    a larger T than on clean validation data: it should remove much of the
#    ECE under shift and push clean predictions towards underconfidence, the
#    price of fitting for another distribution. The two ECEs say how much.
#
# <!-- END SOLUTION -->

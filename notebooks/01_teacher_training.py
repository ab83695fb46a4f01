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
# # 01 · Training the teacher, and a student on labels alone
#
# Knowledge distillation starts from a teacher. This chapter trains the
# cross-entropy (CE) teacher the rest of the study distills from, and the
# student trained on labels alone that every distilled student is later
# compared with.
#
# **What you will learn**
# - how the study's data is split: validation is carved from the training
#   set, and every later choice (epochs, temperatures, hyper-parameters) is made
#   on it, never on the test set;
# - how large the teacher and the student are, and how much more accurate the
#   teacher is;
# - whether overconfidence *emerges* during training: we follow accuracy,
#   negative log-likelihood (NLL) and expected calibration error (ECE) on
#   training and test data after every epoch, for two teacher recipes
#   (brief section 3b):
#   - **default**: the regularised recipe (random crop and flip, weight decay);
#   - **overconfident**: the same architecture trained longer on a subset,
#     without augmentation or weight decay, until its training NLL is near zero.
#
# Models are cached by a hash of everything that determines them, so rerunning
# this notebook (or running chapter 02 first) reuses finished models.

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
import pandas as pd
from IPython.display import display

from calibkd import metrics, plots
from calibkd.data.splits import denormalize
from calibkd.nn.inference import predict_logits
from calibkd.study.context import parameters_from_globals, start

plots.set_style()
_before_parameters = set(globals())

# %% tags=["parameters"]
profile = "default"  # "smoke" (seconds), "default" (minutes on 2 CPU cores), "full" (one GPU)
dataset = "fashion_mnist"
data_root = ""  # "" finds the data: $CALIBKD_DATA, Debian's package, or a download
seed = 0
recipes = ["default", "overconfident"]  # teacher recipes to train
report_epoch = "last"  # or "best_val": the epoch with the lowest validation NLL
teacher_epochs = None  # None keeps the profile's value
student_epochs = None
batch_size = None
lr = None
num_threads = 2
device = "auto"
output_dir = ""  # folder for figures and tables; empty: only shown here
train_missing = True  # False: load every model from the model cache (python -m calibkd.training.cache_archive import), never train

# %%
params = parameters_from_globals("01_teacher_training", globals(), _before_parameters)
ctx = start("01_teacher_training", params)

# %% [markdown]
# ## The data
#
# Fashion-MNIST: 28x28 grayscale images of ten kinds of clothing. Some classes
# are easily confused (a shirt, a T-shirt, a pullover and a coat; a sandal, a
# sneaker and an ankle boot): these groups are the "known structure" that
# chapter 02 looks for in the teacher's soft outputs.

# %%
fig = plots.image_grid(denormalize(ctx.data.test.images[:400], dataset), ctx.data.test.labels[:400],
                       ctx.data.info.class_names)
ctx.outputs.figure(fig, "01_examples")

# %% [markdown]
# ## Teachers and the label-only student
#
# Each model below is trained with SGD (momentum 0.9, cosine schedule) unless
# the cache already holds it. Its line says where its weights come from and
# which epoch they are from (`report_epoch`; the last epoch by default, never
# the best epoch on test).

# %%
teachers = {name: ctx.trained(ctx.teacher_recipe(name)) for name in recipes}
student = ctx.trained(ctx.student_recipe())

# %%
sizes = pd.DataFrame([
    {"model": f"teacher ({name})", "architecture": t.record["arch"], "parameters": t.num_parameters,
     "epochs": t.recipe.train.epochs, "training examples": len(ctx.training_split(t.recipe)),
     "augmentation": t.recipe.train.augment, "weight decay": t.recipe.train.weight_decay}
    for name, t in teachers.items()
] + [{"model": "student (labels only)", "architecture": student.record["arch"],
      "parameters": student.num_parameters, "epochs": student.recipe.train.epochs,
      "training examples": len(ctx.data.train), "augmentation": student.recipe.train.augment,
      "weight decay": student.recipe.train.weight_decay}])
display(sizes)
ratio = next(iter(teachers.values())).num_parameters / student.num_parameters
print(f"teacher / student parameters: {ratio:.1f}x")

# %% [markdown]
# ## Does overconfidence emerge?
#
# Curves on a fixed monitor subset of each model's *training* examples (solid)
# and of the *test* set (dashed), after every epoch. A model becomes
# overconfident when its training NLL keeps falling while its test NLL turns
# upward: it keeps sharpening predictions it can no longer back with accuracy.
# ECE here uses 15 equal-width bins on top-label confidence.

# %%
histories = {f"teacher ({n})": t.history for n, t in teachers.items()}
histories["student (labels only)"] = student.history
fig = plots.training_curves(histories)
ctx.outputs.figure(fig, "01_training_curves")

# %% [markdown]
# ## Final scores on the test set
#
# All metrics of brief section 5 that need one model, on the full test split.
# ECE variants are named by their estimator, since their values are not
# comparable across estimators.

# %%
rows = []
models = {f"teacher ({n})": t for n, t in teachers.items()} | {"student (labels only)": student}
for name, trained in models.items():
    probs = metrics.softmax(predict_logits(trained.model, ctx.data.test.images))
    for metric, value in metrics.evaluate(probs, ctx.data.test.labels).items():
        rows.append({"notebook": ctx.notebook, "model": name, "split": "test", "metric": metric, "value": value})
scores = pd.DataFrame(rows)
ctx.outputs.table(scores, "metrics_01")
display(scores.pivot(index="metric", columns="model", values="value").round(4))
print("estimators:", *(f"  {k}: {v}" for k, v in metrics.ESTIMATORS.items()), sep="\n")

# %%
# NBVAL_CHECK_OUTPUT
key = scores[scores.metric.isin(["accuracy", "nll", "ece"])]
print(key.pivot(index="model", columns="metric", values="value").round(3).to_string())

# %% [markdown]
# ## Exercise: ECE by hand
#
# ECE sorts predictions into bins by their top-label confidence
# $\hat p_i = \max_k p_{ik}$ and averages the gap between mean confidence and
# accuracy over the bins, each weighted by its share of the $n$ examples:
#
# $$\mathrm{ECE} = \sum_{b} \frac{|B_b|}{n}\,\bigl|\,\mathrm{conf}(B_b) - \mathrm{acc}(B_b)\,\bigr|$$
#
# The toy table below holds six predictions of a 3-class model. Compute its
# ECE **by hand** with 3 equal-width bins, $[0, \tfrac13)$, $[\tfrac13, \tfrac23)$
# and $[\tfrac23, 1]$, then run the check, which compares your number with
# `metrics.ece(toy_probs, toy_labels, n_bins=3)`.

# %%
import torch

toy_probs = torch.tensor([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.6, 0.3, 0.1],
                          [0.5, 0.4, 0.1], [0.4, 0.35, 0.25], [0.7, 0.2, 0.1]], dtype=torch.float64)
toy_labels = torch.tensor([0, 1, 0, 1, 2, 0])
display(pd.DataFrame({"confidence": toy_probs.max(1).values, "predicted": toy_probs.argmax(1), "label": toy_labels}))

# %% nbgrader={"grade": false, "grade_id": "ch01-exercise", "locked": false, "schema_version": 3, "solution": true}
# Set `ece_by_hand` to the ECE of the toy table, computed by hand: put each row
# in its bin by confidence, then for each bin take its share of the rows, its
# mean confidence and its accuracy (plain arithmetic is the point here).
### BEGIN SOLUTION
# bin [2/3, 1]: confidences 0.9, 0.8, 0.7 -> mean 0.8; rows 0 and 5 right, row 1 wrong -> accuracy 2/3
# bin [1/3, 2/3): confidences 0.6, 0.5, 0.4 -> mean 0.5; only row 2 right -> accuracy 1/3
# bin [0, 1/3): empty, it adds nothing
ece_by_hand = 3 / 6 * abs(0.8 - 2 / 3) + 3 / 6 * abs(0.5 - 1 / 3)
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ch01-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
assert abs(ece_by_hand - metrics.ece(toy_probs, toy_labels, n_bins=3)) < 1e-9, \
    "not what calibkd.metrics computes: recheck which bin each row falls in and which rows are right"
print(f"correct: ECE = {ece_by_hand:.4f}; both bins are overconfident (mean confidence above accuracy)")

# %% [markdown]
# ## What this run found
#
# The numbers below are computed from this run's histories, not written in
# advance.

# %%
for name, history in histories.items():
    first_min = history["test_nll"].idxmin()
    last = history.iloc[-1]
    print(f"{name}: train NLL {history['train_nll'].iloc[0]:.3f} -> {last['train_nll']:.3f}; "
          f"test NLL lowest {history['test_nll'].min():.3f} at epoch {int(history['epoch'][first_min])}, "
          f"{last['test_nll']:.3f} at the end; test ECE {last['test_ece']:.3f}; "
          f"train accuracy {last['train_acc']:.3f} vs test {last['test_acc']:.3f}")

# %% [markdown] nbgrader={"grade": true, "grade_id": "ch01-questions", "locked": false, "points": 1, "schema_version": 3, "solution": true}
# In the committed default run, the regularised teacher stays close to
# calibrated: its training and test NLL fall together and its test ECE stays
# small, as brief section 3b warned. The overconfident recipe drives its
# training NLL to nearly zero while its test NLL rises after an early
# minimum: the overconfident regime the paper's argument is about exists
# here only when we create it. The label-only student, with about a tenth of
# the parameters, trails the default teacher in accuracy (which leaves
# distillation something to transfer) but beats the overconfident teacher,
# which saw a fifth of the data. Chapter 02 measures both teachers'
# calibration on the data where distillation happens: the training set.
#
# ## Questions to try
# 1. Rerun with `report_epoch = "best_val"`. Which epoch does validation NLL
#    pick for the overconfident teacher, and how much of its overconfidence
#    does early stopping remove?
# 2. Train the default teacher for 3 epochs and for 30 (`teacher_epochs`).
#    At which point does its test NLL stop improving while training NLL still
#    falls?
# 3. The overconfident recipe changes three things at once (no augmentation,
#    no weight decay, a 10k subset). Which one matters most for its ECE?
#
# <!-- BEGIN SOLUTION -->
#
# ### Worked answers
#
# 1. Set `report_epoch = "best_val"` in the parameters cell (or
#    `python -m papermill notebooks/01_teacher_training.ipynb out.ipynb -p report_epoch best_val`).
#    Each model's line then names the epoch kept: for the overconfident
#    teacher it is the epoch of its lowest *validation* NLL; compare it with
#    the test-NLL minimum printed under "What this run found". Compare the ECE
#    row of the final table between the two runs: early stopping removes the
#    part of the overconfidence that grows after that minimum, not the gap
#    between training and test NLL that the missing regularisation creates.
# 2. Run with `teacher_epochs = 3` and `teacher_epochs = 30` and
#    `recipes = ["default"]`, then read the training curves: with 30 epochs
#    the dashed (test) NLL flattens or turns up while the solid (training) NLL
#    keeps falling; the epoch where the two part is where extra training only
#    sharpens confidence. Three epochs stop before that point.
# 3. Start from `recipe = ctx.teacher_recipe("overconfident")` and make three
#    variants, each undoing one change, e.g.
#    `dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, augment=True))`
#    (then `weight_decay=5e-4`, then `subset=None`); train each with
#    `ctx.trained(variant)` (the cache keys on the parameters) and compare their test ECE with
#    `metrics.ece`. Change one factor at a time, with the same seed, so the
#    difference is attributable.
#
# <!-- END SOLUTION -->

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
# # 03 · Calibration methods, and what they do to dark knowledge
#
# Which kind of calibrated teacher distills best? Before chapter 04 answers
# that, this chapter builds the calibrated teachers and compares them on two
# things at once: **calibration** (is the teacher's confidence honest?) and
# **the information its soft outputs carry** (what a student would learn).
#
# **What you will learn**
# - four *post-hoc* calibrators, fitted on validation logits of the CE
#   teacher: temperature scaling, vector scaling, histogram binning and
#   isotonic regression;
# - five *train-time* methods, each a teacher trained with the CE teacher's
#   recipe and only the loss changed: label smoothing, focal loss (gamma 3),
#   FLSD-53, mixup and MDCA; and CUD's stage 1, **DUS** (focal loss minus a
#   gated entropy bonus), fine-tuning the CE teacher with a hard or a soft
#   gate, next to its control: the same fine-tuning with plain CE;
# - why a method can fix calibration on *test* data while leaving near
#   one-hot targets on *training* data, or flatten the class structure;
# - how much an ECE number depends on its estimator.

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
import torch
from IPython.display import display

from calibkd import metrics, plots
from calibkd.data.augment import augmented_view
from calibkd.evaluation.shift import evaluate_suite
from calibkd.methods.calibration import make_calibrator
from calibkd.nn.inference import predict_logits, remember_recent
from calibkd.study.context import parameters_from_globals, start

plots.set_style()
_before_parameters = set(globals())

# %% tags=["parameters"]
profile = "default"  # "smoke" (seconds), "default" (minutes on 2 CPU cores), "full" (one GPU)
dataset = "fashion_mnist"
data_root = ""
seed = 0
regime = "default"  # the CE teacher recipe the methods build on: "default" or "overconfident"
methods = ["label_smoothing", "focal", "flsd53", "mixup", "mdca", "dus_hard", "dus_soft", "ce_finetune"]
posthoc = ["temperature", "vector", "histogram", "isotonic"]
shift_test_size = 2000  # test images for the corruption suite; None: the whole test split
num_threads = 2
device = "auto"
output_dir = ""
train_missing = True  # False: load every model from the model cache (python -m calibkd.training.cache_archive import), never train

# %%
params = parameters_from_globals("03_calibration_methods", globals(), _before_parameters)
ctx = start("03_calibration_methods", params)

# %% [markdown]
# ## The teachers
#
# The CE teacher of the chosen regime, then one teacher per train-time
# method (trained, or loaded from the cache). DUS and its control start from
# the trained CE teacher and fine-tune it for a few epochs at a tenth of its
# learning rate. *Decisions:* DUS uses focal gamma 3 and lambda_H 0.1 (the
# paper's value); the hard gate marks an example hard when it is misclassified
# or its true-class probability is below 0.5; the soft gate is
# sigmoid(-10 * margin) with the probability margin p_y - max_{j != y} p_j,
# so that the paper's gamma = 10 is the gate's sharpness.

# %%
ce_recipe = ctx.teacher_recipe(regime)
ce = ctx.trained(ce_recipe)
trained = {m: ctx.trained(ctx.variant_recipe(regime, m)) for m in methods}

# %% [markdown]
# Post-hoc calibrators are fitted on the CE teacher's **validation** logits
# (never on test). Each maps logits to a full probability vector, which is
# what a distillation target needs.

# %%
val_logits = predict_logits(ce.model, ctx.data.val.images)
calibrators = {name: make_calibrator(name).fit(val_logits, ctx.data.val.labels) for name in posthoc}
for name, calibrator in calibrators.items():
    print(f"{name}: validation NLL {calibrator.nll_before:.4f} -> {calibrator.nll_after:.4f}")


ce_logits = remember_recent(lambda images: predict_logits(ce.model, images))  # one CE pass per input set


def logit_fn(name):
    """Images -> log-probabilities of one teacher variant (a softmax of them gives its probabilities)."""
    if name == "CE":
        return ce_logits
    if name.startswith("CE + "):
        calibrator = calibrators[name[5:]]
        return lambda images: calibrator.probs(ce_logits(images)).log().float()
    model = trained[name].model
    return lambda images: predict_logits(model, images)


variants = ["CE"] + [f"CE + {p}" for p in posthoc] + list(methods)
print(f"{len(variants)} teacher variants:", ", ".join(variants))

# %% [markdown]
# ## Test, training and augmented training data
#
# Every variant on the test split and on a seeded sample of 10,000 of the
# training examples its CE teacher was fitted on, plain and after one seeded
# crop-and-flip (what a student sees during distillation).

# %%
info = ctx.data.info
train = ctx.training_split(ce_recipe).subset(ctx.sample_size(10_000), seed)  # smoke: fewer (config.evaluation)
inputs = {
    "test": ctx.data.test,
    "train": train,
    "train (augmented)": augmented_view(train, info, seed + 100),
}
probs = {(v, split): metrics.softmax(logit_fn(v)(data.images)) for v in variants for split, data in inputs.items()}
labels = {split: data.labels.cpu() for split, data in inputs.items()}
rows = []
for (variant, split), p in probs.items():
    for metric, value in metrics.evaluate(p, labels[split]).items():
        rows.append({"notebook": ctx.notebook, "model": variant, "split": split, "metric": metric, "value": value})

# %% [markdown]
# ## Under distribution shift
#
# The corruption suite of chapter 02 (15 corruptions x 5 severities) on a
# seeded sample of the test split; below, the mean over corruptions and
# severities 1-5.

# %%
suite = ctx.suite(shift_test_size, mixture_count=1000)
shift_table = evaluate_suite({v: logit_fn(v) for v in variants}, ctx.data, suite)
ctx.outputs.table(shift_table.assign(notebook=ctx.notebook), "shift_03")
corrupted = shift_table[(shift_table.condition == "corruption_mean") & (shift_table.severity > 0)]
for (variant, metric), value in corrupted.groupby(["model", "metric"])["value"].mean().items():
    rows.append({"notebook": ctx.notebook, "model": variant, "split": "corrupted (mean)", "metric": metric,
                 "value": value})
scores = pd.DataFrame(rows)
ctx.outputs.table(scores, "metrics_03")

# %% [markdown]
# ## One table for every teacher variant
#
# Accuracy, NLL, Brier and three ECE estimators (top-label 15 equal-width
# bins; 15 equal-mass bins; classwise), on test data, on training data
# (plain and augmented), and under the corruption suite.

# %%
shown = ["accuracy", "nll", "brier", "ece", "adaptive_ece", "classwise_ece"]
split_order = ["test", "train", "train (augmented)", "corrupted (mean)"]
big = scores[scores.metric.isin(shown)].pivot_table(index="model", columns=["split", "metric"], values="value")
big = big.reindex(index=variants, columns=pd.MultiIndex.from_product([split_order, shown]))
display(big.round(3))

# %% [markdown]
# ## Reliability diagrams
#
# On test data (first figure) and on augmented training data (second): the
# inputs a student learns from.

# %%
fig = plots.reliability_grid({v: (probs[v, "test"], labels["test"]) for v in variants}, ncols=5)
ctx.outputs.figure(fig, "03_reliability_test")

# %%
fig = plots.reliability_grid({v: (probs[v, "train (augmented)"], labels["train (augmented)"]) for v in variants},
                             ncols=5)
ctx.outputs.figure(fig, "03_reliability_train_augmented")

# %% [markdown]
# ## Dark knowledge on training inputs
#
# What a student would receive: the entropy of each variant's distribution
# and the mass it puts on non-target classes, on training inputs (plain and
# augmented); and how well the class-similarity matrix read from its soft
# outputs recovers the dataset's known class groups (AUC; 0.5 chance, 1 perfect).
# Label smoothing puts the same eps / K on every wrong class, which is known
# to erase class structure (Müller et al. 2019). The figure below draws the
# variants in three panels, by kind (post-hoc maps, train-time losses,
# fine-tuning from the CE teacher), each with the CE teacher as reference.

# %%
dark_rows = []
for v in variants:
    for split in ("train", "train (augmented)", "test"):
        p, y = probs[v, split], labels[split]
        sim = metrics.class_similarity(p, y, info.num_classes)
        dark_rows.append({
            "model": v, "split": split,
            "median entropy": float(metrics.entropy(p).median()),
            "median non-target mass": float(metrics.non_target_mass(p, y).median()),
            "effective classes": float(metrics.effective_classes(p).mean()),
            "group AUC": metrics.group_recovery_auc(sim, info.class_groups),
        })
dark = pd.DataFrame(dark_rows)
ctx.outputs.table(dark, "dark_knowledge_03")
display(dark.pivot_table(index="model", columns="split").reindex(variants).round(4))

# %%
frames = [pd.DataFrame({"model": v, "non-target mass": metrics.non_target_mass(probs[v, "train"], labels["train"])
                        .clamp_min(1e-8).numpy()}) for v in variants]
fig = plots.family_ecdf_panels(pd.concat(frames, ignore_index=True), "non-target mass",
                               "non-target mass on (plain) training inputs, by kind of teacher variant "
                               "(the CE teacher in black in every panel)")
ctx.outputs.figure(fig, "03_non_target_mass_train")

# %% [markdown]
# ## Which ECE? The estimator moves the number
#
# The same CE teacher, the same test predictions, nine ECE estimators:
# top-label with equal-width or equal-mass bins, and classwise, each with 10,
# 15 and 30 bins. A paper that reports "ECE" without saying which cannot be
# compared with another that does the same.

# %%
estimator_rows = []
for v in ("CE", "CE + temperature"):
    p, y = probs[v, "test"], labels["test"]
    for bins in (10, 15, 30):
        estimator_rows.append({"model": v, "bins": bins, "top-label, equal-width": metrics.ece(p, y, bins),
                               "top-label, equal-mass": metrics.adaptive_ece(p, y, bins),
                               "classwise, equal-width": metrics.classwise_ece(p, y, bins)})
estimators = pd.DataFrame(estimator_rows)
display(estimators.set_index(["model", "bins"]).round(4))
spread = estimators.set_index(["model", "bins"])
for v in ("CE", "CE + temperature"):
    values = spread.loc[v].to_numpy().ravel()
    print(f"{v}: ECE ranges from {values.min():.4f} to {values.max():.4f} across estimators ({values.max() / values.min():.1f}x)")

# %% [markdown]
# ## DUS's two conditions, as numbers
#
# CUD asks its teacher to (C1) keep correct predictions sharp and (C2) reveal
# uncertainty on hard ones. On test and training data: **easy** examples are
# those the CE teacher classifies correctly with p_y >= 0.9; **hard** ones
# are those it misclassifies or gives p_y < 0.5. C1: mean confidence on easy
# examples (should stay as high as the CE teacher's). C2: mean entropy on hard
# examples (should rise above the CE teacher's). The plain-CE fine-tuning
# control separates DUS from the extra epochs.

# %%
c_rows = []
for split in ("test", "train"):
    ce_p, y = probs["CE", split], labels[split]
    p_y = ce_p.gather(1, y[:, None]).squeeze(1)
    easy = (ce_p.argmax(1) == y) & (p_y >= 0.9)
    hard = (ce_p.argmax(1) != y) | (p_y < 0.5)
    for v in ["CE"] + [m for m in methods if m in ("dus_hard", "dus_soft", "ce_finetune")]:
        p = probs[v, split]
        c_rows.append({"split": split, "model": v, "easy examples": int(easy.sum()), "hard examples": int(hard.sum()),
                       "C1: confidence on easy": float(p[easy].max(1).values.mean()),
                       "C2: entropy on hard": float(metrics.entropy(p[hard]).mean())})
conditions = pd.DataFrame(c_rows)
ctx.outputs.table(conditions, "dus_conditions_03")
display(conditions.set_index(["split", "model"]).round(4))

# %% [markdown]
# ## Key numbers
#
# Rounded, so that a rerun on the same machine reproduces them (nbval checks
# this cell).

# %%
# NBVAL_CHECK_OUTPUT
key = scores[scores.metric.isin(["accuracy", "ece"]) & scores.split.isin(["test", "train (augmented)"])]
print(key.pivot_table(index="model", columns=["split", "metric"], values="value").reindex(variants).round(3).to_string())

# %% [markdown]
# ## Exercise: predict, then measure, what label smoothing does to the class-similarity matrix
#
# A 4-class toy teacher knows that classes 0 and 1 look alike, and so do 2
# and 3: on an example of class $c$ it gives the label 0.7, the label's group
# mate 0.2 and each other class 0.05. Label smoothing trains towards
# $(1-\varepsilon)\,\mathrm{onehot}(y) + \varepsilon / K$, whose non-target
# part is *uniform*; model the label-smoothing teacher's output as the
# average of the CE teacher's output and that target ($\varepsilon = 0.1$).
#
# 1. Predict: will the class-similarity matrix (`metrics.class_similarity`)
#    get *flatter* (within-group and across-group similarity closer together)
#    or *sharper*? Set `prediction`.
# 2. Measure: set `gap_ce` and `gap_ls`, the mean within-group similarity
#    (pairs 0-1 and 2-3) minus the mean across-group similarity (the other
#    four pairs), for each teacher.

# %%
toy_labels = torch.arange(8) % 4
toy_mate = toy_labels ^ 1  # 0 <-> 1, 2 <-> 3
ce_probs = torch.full((8, 4), 0.05, dtype=torch.float64)
ce_probs[torch.arange(8), toy_labels] = 0.7
ce_probs[torch.arange(8), toy_mate] = 0.2
eps = 0.1
ls_target = torch.nn.functional.one_hot(toy_labels, 4).double() * (1 - eps) + eps / 4
ls_probs = (ce_probs + ls_target) / 2
within_pairs, across_pairs = [(0, 1), (2, 3)], [(0, 2), (0, 3), (1, 2), (1, 3)]

# %% nbgrader={"grade": false, "grade_id": "ch03-exercise", "locked": false, "schema_version": 3, "solution": true}
# Set `prediction` ("flatter" or "sharper") before you measure, then
# `gap_ce` and `gap_ls` (floats) from metrics.class_similarity(probs, labels).
### BEGIN SOLUTION
prediction = "flatter"  # the smoothing target spreads its non-target mass evenly: no group structure


def group_gap(probs):
    similarity = metrics.class_similarity(probs, toy_labels)
    within = sum(similarity[i, j] for i, j in within_pairs) / len(within_pairs)
    across = sum(similarity[i, j] for i, j in across_pairs) / len(across_pairs)
    return within - across


gap_ce, gap_ls = group_gap(ce_probs), group_gap(ls_probs)
print(f"within minus across: CE teacher {gap_ce:.3f}, label-smoothing teacher {gap_ls:.3f}")
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ch03-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
def _reference_gap(probs):
    s = metrics.class_similarity(probs, toy_labels)
    return (s[0, 1] + s[2, 3]) / 2 - (s[0, 2] + s[0, 3] + s[1, 2] + s[1, 3]) / 4


assert abs(gap_ce - _reference_gap(ce_probs)) < 1e-9 and abs(gap_ls - _reference_gap(ls_probs)) < 1e-9, \
    "recompute the gaps from metrics.class_similarity: mean of the within pairs minus mean of the across pairs"
assert prediction == ("flatter" if gap_ls < gap_ce else "sharper"), "your prediction does not match the measurement"
print(f"correct: the gap shrinks from {gap_ce:.3f} to {gap_ls:.3f}: label smoothing flattens the dark knowledge")

# %% [markdown]
# ## What this run found
#
# Generated from this run's tables (`calibkd.study.findings`): what each
# post-hoc map did to the CE teacher's validation NLL, which variants are
# better or worse calibrated than the CE teacher on test (and on which side:
# over- or underconfident), under corruption, how much non-target mass each
# gives on training inputs, how well its soft outputs recover the dataset's
# class groups, and DUS's two conditions next to its plain-CE control. One
# seed: nothing here is tested against seed-to-seed noise (the group AUC,
# for one, moves in steps of single pair orderings).
#
# What the comparisons are for: a calibration method can fix the teacher's
# confidence on test while leaving near one-hot targets on training inputs,
# or overshoot into underconfidence where the teacher was already
# calibrated (brief section 3b), or spread non-target mass evenly and erase
# the class structure a student could learn (label smoothing, Müller et al.
# 2019). Whether a teacher's extra non-target mass helps or hurts a
# *student* is chapter 04's question; rerun with
# `regime = "overconfident"` to see these methods where the teacher may be
# overconfident (chapter 04's regime check says whether it is).

# %%
from IPython.display import Markdown  # noqa: E402

from calibkd.study.findings import calibration_findings  # noqa: E402

every_metric = scores.pivot_table(index="model", columns=["split", "metric"], values="value").reindex(variants)
posthoc_nll = {name: (c.nll_before, c.nll_after) for name, c in calibrators.items()}
display(Markdown(calibration_findings(every_metric, dark, conditions, info, posthoc_nll)))

# %% [markdown] nbgrader={"grade": true, "grade_id": "ch03-questions", "locked": false, "points": 1, "schema_version": 3, "solution": true}
# ## Questions to try
# 1. Rerun with `regime = "overconfident"`. Which methods fix the memorising
#    teacher's calibration on *training* data, and which only on test?
# 2. Vector scaling can change the teacher's predicted class. On how many
#    test images does it, and is it more often right or wrong when it does?
# 3. Raise label smoothing's eps to 0.3 (`calibkd.config.TEACHER_METHODS`).
#    What happens to the group-recovery AUC, and why would that matter to a
#    student?
# 4. DUS's hard gate uses a threshold of 0.5 on p_y. Predict what a
#    threshold of 0.9 does to C1 and C2, then measure it.
# 5. Is DUS's group AUC above the CE teacher's beyond seed noise? Rerun
#    with `seed = 1` and `seed = 2` (or a batch over seeds) and compare the
#    differences: one run cannot say whether DUS's extra mass is structured.
#
# <!-- BEGIN SOLUTION -->
#
# ### Worked answers
#
# 1. Run with `regime = "overconfident"` and compare, per method, the ECE on
#    "test" with the ECE on "train" in the metrics table (and the non-target
#    mass on training inputs). Post-hoc maps are fitted on validation and
#    apply the same map to the memorised training outputs, whatever their
#    sharpness; train-time losses that keep mass off the label (label
#    smoothing, mixup, focal, DUS) change the training outputs themselves.
#    The train columns show which of the two this run's numbers favour.
# 2. Fit `make_calibrator("vector")` on the CE teacher's validation logits,
#    then on the test logits compare `cal.probs(logits).argmax(1)` with
#    `logits.argmax(1)`: count the changed predictions, and among them how
#    many the calibrated argmax gets right against the labels. Temperature
#    scaling can never change the argmax; vector scaling can, because it
#    rescales each class separately.
# 3. Train the variant with a loss override,
#    `ls3 = ctx.trained(ctx.variant_recipe(regime, "label_smoothing", {"eps": 0.3}))`,
#    score it on the training inputs as the section on dark knowledge does, and
#    compute `metrics.group_recovery_auc(metrics.class_similarity(probs, labels), ctx.data.info.class_groups)`.
#    The smoothing target's non-target part is uniform: a larger eps pulls the
#    non-target distribution towards uniform, lowers the AUC, and leaves the
#    student less class structure to learn (the exercise above shows the same
#    on a toy teacher).
# 4. Predict first: with threshold 0.9 the hard gate fires on many more
#    training examples (every correct but not very confident one), so the
#    entropy bonus acts more widely. Measure with a loss override:
#    `ctx.variant_recipe(regime, "dus_hard", {"threshold": 0.9})` (see
#    `calibkd.methods.losses.dus_gate`), train it with `ctx.trained`, and recompute
#    the C1 and C2 numbers of the DUS section for it.
# 5. Run the chapter for three seeds (a batch with `grid: {seed: [0, 1, 2]}`
#    over `03_calibration_methods`, as chapter 05's questions build one for
#    chapter 04), read each run's `dark_knowledge_03.csv`, and take the
#    paired differences of the test group AUC, DUS minus CE, per seed, with
#    `calibkd.runs.results.t_interval`. Only an interval that excludes zero
#    says DUS's soft outputs recover the groups better than the CE
#    teacher's; a hypothesis about *why* (structured extra mass) would then
#    need the same test on the non-target distribution itself, e.g. the
#    within-group share of the non-target mass.
#
# <!-- END SOLUTION -->

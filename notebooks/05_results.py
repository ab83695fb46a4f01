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
# # 05 · Results: the paper's claims, tested over seeds
#
# Chapter 04 ran every student once. One run proves nothing: this chapter
# reads a **batch** of papermill runs of chapter 04 (several seeds; by
# default the committed reference batch `papermill_runs/reference-fmnist/`)
# and asks, for each claim of the paper (brief section 1), whether the
# evidence supports it, with 95 % intervals over seeds.
#
# **What you will learn**
# - how a batch's runs become one tidy table, and why the *seed* (not the
#   test image) is the unit of noise;
# - how to read a paired difference against KD and its t-interval, and which
#   differences are within noise;
# - what the evidence says about C-collapse, C-cardinality, C-shift and
#   C-cud, in the calibrated and in the overconfident regime.
#
# Nothing is trained here: every number comes from the batch's recorded runs.

# %%
# Runs anywhere: on a hosted notebook (Colab, Kaggle, Binder) calibkd may be
# missing. Then it is installed from the checkout this notebook sits in (clone
# the repository and open notebooks/ there), or from $CALIBKD_SOURCE (a path,
# wheel or git URL your instructor gives you). Installed already: nothing happens.
import importlib.util

if importlib.util.find_spec("calibkd") is None:
    import os
    import pathlib
    import subprocess
    import sys
    _source = os.environ.get("CALIBKD_SOURCE") or next(
        (str(p) for p in (pathlib.Path.cwd(), *pathlib.Path.cwd().parents) if (p / "pyproject.toml").is_file()), "")
    if not _source:
        raise ModuleNotFoundError("calibkd is not installed: clone its repository and open this notebook from "
                                  "there, or set CALIBKD_SOURCE to a path, wheel or git URL of calibkd")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", _source], check=True)
    importlib.invalidate_caches()

# %%
from pathlib import Path

import pandas as pd
from IPython.display import display

from calibkd import plots
from calibkd.paths import PROJECT_ROOT
from calibkd.runs import claims
from calibkd.runs.results import (
    collect,
    pick_columns,
    summarize,
    tables_by_regime,
    with_interval,
)
from calibkd.study.context import Outputs, parameters_from_globals

plots.set_style()
_before_parameters = set(globals())

# %% tags=["parameters"]
batch = "reference-fmnist"  # a folder under papermill_runs/ (or an absolute path)
reference = "kd"  # the model every paired difference is taken against
long_tail_batch = "long-tail-fmnist"  # a batch of chapter 04 in the long_tail regime; "" skips that section
output_dir = ""

# %%
params = parameters_from_globals("05_results", globals(), _before_parameters)
outputs = Outputs(root=Path(output_dir) if output_dir else None)
root = claims.batch_root(batch, PROJECT_ROOT / "papermill_runs")
runs = collect(root)
table = claims.batch_table(runs)
seeds = sorted(runs["seed"].dropna().unique().tolist()) if "seed" in runs.columns else []
print(f"batch {root.name}: {runs['run_id'].nunique()} finished runs, seeds {seeds}")
regimes = [r for r in ("default", "overconfident") if r in set(table["regime"])]

# %% [markdown]
# ## Where each comparison runs: the teachers
#
# Mean over seeds [95 % interval] of each regime's teachers on test data.
# A TS temperature above 1 means an overconfident teacher; below 1, an
# underconfident one.

# %%
summary = summarize(table[table["severity"] == 0].drop(columns="severity"))
teachers = summary[summary["where"] == "teacher (test)"]
display(with_interval(teachers).pivot_table(index=["regime", "model"], columns="metric", values="value",
                                            aggfunc="first"))

# %% [markdown]
# ## Every student, mean over seeds [95 % interval]

# %%
shown = {("test", "accuracy"): "accuracy", ("test", "ece"): "ECE", ("test after TS", "ece"): "ECE after TS",
         (claims.SHIFT_MEAN, "ece"): "shift ECE", ("mixture_0.5", "soft_nll"): "mixture NLL",
         ("hard_slice", "nll"): "hard-slice NLL", ("test", "agreement"): "agreement"}
picked = pick_columns(summary, shown)
for regime, wide in tables_by_regime(picked, shown, regimes).items():
    print(f"regime {regime}")
    display(wide)

# %% [markdown]
# ## Per-method bars with intervals

# %%
fig = plots.interval_bars(picked, regimes, ["accuracy", "ECE", "shift ECE"])
outputs.figure(fig, "05_bars")

# %% [markdown]
# ## Accuracy against calibration, with error bars

# %%
fig = plots.accuracy_against_ece(picked, regimes)
outputs.figure(fig, "05_accuracy_vs_ece")

# %% [markdown]
# ## ECE against shift severity, with bands

# %%
severity = summarize(table[(table["where"] == "corruption_mean") | ((table["where"] == "clean"))]
                     .drop(columns="where"))
severity = severity[severity["metric"] == "ece"]
models = [m for m in ("ce", "kd", "kd_ts", "kd_mixup", "cud", "cudp") if m in set(severity["model"])]
fig = plots.severity_bands(severity, regimes, models)
outputs.figure(fig, "05_shift_severity")

# %% [markdown]
# ## Paired differences against KD
#
# For every student, its value minus KD's value *in the same run* (same
# seed, same data), then the t-interval of those differences over seeds.
# `*` marks an interval that excludes zero; everything else is within the
# seed-to-seed noise of this batch.

# %%
from calibkd.runs.results import paired_differences  # noqa: E402

paired = paired_differences(table[table["severity"] == 0].drop(columns="severity"), reference=reference)
paired = paired[[(w, m) in shown for w, m in zip(paired["where"], paired["metric"])]].copy()
paired["column"] = [shown[(w, m)] for w, m in zip(paired["where"], paired["metric"])]
paired["shown"] = [f"{m:+.4f}{'*' if z else ''}" for m, z in zip(paired["mean"], paired["excludes_zero"])]
for regime in regimes:
    print(f"regime {regime}: model - {reference}")
    wide = paired[paired["regime"] == regime].pivot_table(index="model", columns="column", values="shown",
                                                          aggfunc="first")
    display(wide[[c for c in shown.values() if c in wide.columns]])

# %% [markdown]
# ## The claims, one by one
#
# Each claim is tested by a few paired comparisons (`calibkd.runs.claims`); each
# comparison *supports* or *contradicts* the claim when its interval excludes
# zero on that side, and is *within noise* otherwise. The verdict: supported
# (support, no contradiction), not supported (contradiction, no support),
# mixed (both), or not supported within noise.

# %%
evidence = claims.evaluate(table, claims.default_comparisons(regimes))
display(evidence.round(4))
verdicts = (evidence.groupby(["claim", "regime"])["outcome"].apply(claims.verdict).rename("verdict").reset_index())
cardinality = claims.cardinality_verdict([root, PROJECT_ROOT / "papermill_runs" / claims.CARDINALITY_BATCH])
verdicts = pd.concat([verdicts, pd.DataFrame([cardinality])], ignore_index=True)
outputs.table(evidence, "claims_evidence_05")

# %% [markdown]
# ## The long tail, per class group
#
# C-cud also claims students that are more reliable on **long-tail**
# inputs. The long-tail batch (`papermill_runs/long-tail-fmnist/` by
# default) runs chapter 04's central methods with teachers and students
# trained on a 100:1 long-tailed Fashion-MNIST training set (the seed also
# decides which classes are rare) and scores them on the balanced test set
# per class group. Mean over seeds [95 % interval]; then the paired
# comparisons on the few-shot classes.

# %%
long_tail_verdicts = pd.DataFrame(columns=verdicts.columns)
if long_tail_batch:
    tail_root = claims.batch_root(long_tail_batch, PROJECT_ROOT / "papermill_runs")
    tail_runs = collect(tail_root)
    tail_table = claims.batch_table(tail_runs)
    tail_seeds = sorted(tail_runs["seed"].dropna().unique().tolist())
    print(f"batch {tail_root.name}: {tail_runs['run_id'].nunique()} finished runs, seeds {tail_seeds}")
    group_names = {claims.group_where(g): g for g in claims.LONG_TAIL_GROUPS}
    by_group = tail_table[tail_table["where"].isin(group_names) & tail_table["metric"].isin(["accuracy", "ece"])]
    group_summary = summarize(by_group.drop(columns="severity"))
    group_summary["group"] = group_summary["where"].map(group_names)
    display(with_interval(group_summary).pivot_table(index="model", columns=["metric", "group"], values="value",
                                                     aggfunc="first")[["accuracy", "ece"]])
    fig = plots.group_bars(group_summary, claims.LONG_TAIL_GROUPS)
    outputs.figure(fig, "05_long_tail")
    tail_evidence = claims.evaluate(tail_table, claims.long_tail_comparisons())
    display(tail_evidence.round(4))
    outputs.table(tail_evidence, "claims_long_tail_evidence_05")
    long_tail_verdicts = (tail_evidence.groupby(["claim", "regime"])["outcome"].apply(claims.verdict)
                          .rename("verdict").reset_index())
verdicts = pd.concat([verdicts, long_tail_verdicts], ignore_index=True)

# %% [markdown]
# ## 183 classes with known ambiguity: the glyph batch
#
# The same central comparison on the tied glyphs (`papermill_runs/glyphs-central`,
# `claims.CARDINALITY_BATCH`): 183 characters, 29 homoglyph groups whose
# true posterior is uniform over the group, test fonts from lineages no
# model trained on. Mean over seeds [95 % interval] of the accuracy and
# calibration columns above, plus:
# - **font shift**: the change from new images of the training fonts to the
#   held-out fonts (held-out minus in-distribution), a natural shift beside
#   the corruption mean;
# - **KL to truth** and **group uniformity** of each student on test
#   (chapter 02's fidelity scores: 0 and 1 are the truth).
#
# Then chapter 04's claim comparisons on these runs, with C-shift also
# tested on the held-out fonts, and C-cardinality's cross-dataset table:
# each contrast's per-seed effect on glyphs and on Fashion-MNIST, and Welch's
# interval of their difference.

# %%
from calibkd.runs.results import finished_runs  # noqa: E402

glyph_root = PROJECT_ROOT / "papermill_runs" / claims.CARDINALITY_BATCH
glyph_verdicts = pd.DataFrame(columns=verdicts.columns)
if finished_runs(glyph_root):
    glyph_runs = collect(glyph_root)
    glyph_table = claims.batch_table(glyph_runs)
    glyph_seeds = sorted(glyph_runs["seed"].dropna().unique().tolist())
    glyph_regimes = [r for r in ("default", "overconfident") if r in set(glyph_table["regime"])]
    print(f"batch {glyph_root.name}: {glyph_runs['run_id'].nunique()} finished runs, seeds {glyph_seeds}")
    glyph_summary = summarize(glyph_table[glyph_table["severity"] == 0].drop(columns="severity"))
    glyph_shown = {("test", "accuracy"): "accuracy", ("test", "ece"): "ECE", ("test", "nll"): "NLL",
                   (claims.SHIFT_MEAN, "ece"): "corruption ECE",
                   (claims.NATURAL_SHIFT_CHANGE, "accuracy"): "font shift: Δ accuracy",
                   (claims.NATURAL_SHIFT_CHANGE, "ece"): "font shift: Δ ECE",
                   ("test", "kl_true"): "KL to truth", ("test", "group_uniformity"): "group uniformity"}
    for regime, wide in tables_by_regime(pick_columns(glyph_summary, glyph_shown), glyph_shown, glyph_regimes).items():
        print(f"glyphs, regime {regime}")
        display(wide)
    glyph_evidence = claims.evaluate(glyph_table, claims.default_comparisons(glyph_regimes))
    display(glyph_evidence.round(4))
    outputs.table(glyph_evidence, "claims_glyphs_evidence_05")
    glyph_verdicts = (glyph_evidence.groupby(["claim", "regime"])["outcome"].apply(claims.verdict)
                      .rename("verdict").reset_index())
    glyph_verdicts["claim"] = glyph_verdicts["claim"] + " (glyphs)"
    cardinality_table = claims.cardinality_evidence(table, glyph_table, root.name, glyph_root.name)
    display(cardinality_table.round(4))
    outputs.table(cardinality_table, "claims_cardinality_evidence_05")
else:
    print(f"{glyph_root.name}: no finished runs yet; run `python -m calibkd.runs run papermill_runs/{glyph_root.name}`")
verdicts = pd.concat([verdicts, glyph_verdicts], ignore_index=True)
outputs.table(verdicts, "claims_05")

# %% [markdown]
# ## Key numbers
#
# The verdicts and the number of seeds behind them (nbval checks this cell).

# %%
# NBVAL_CHECK_OUTPUT
print(f"seeds: {len(seeds)}")
print(verdicts.to_string(index=False))

# %% [markdown]
# ## Exercise: a paired t-interval by hand
#
# A verdict compares two methods *within* each seed. Take the toy ECEs of
# KD and CUD below (three seeds), their per-seed differences
# $d_s = \mathrm{ECE}_{\mathrm{CUD}} - \mathrm{ECE}_{\mathrm{KD}}$, and the 95 %
# Student-t interval of their mean,
#
# $$\bar d \pm t_{0.975,\,n-1}\, \frac{s_d}{\sqrt n}.$$
#
# Compute `low` and `high` yourself (`scipy.stats.t.ppf` gives the t quantile)
# and set `excludes_zero`. CUD wins in every seed: is that a verdict?

# %%
import numpy as np
from scipy import stats

from calibkd.runs.results import t_interval

toy_ece = pd.DataFrame({"seed": [0, 1, 2], "kd": [0.031, 0.027, 0.035], "cud": [0.024, 0.025, 0.030]})
toy_ece["difference"] = toy_ece["cud"] - toy_ece["kd"]
display(toy_ece)

# %% tags=["solution"]
# Set `low` and `high` (floats, the 95 % t-interval of the mean difference)
# and `excludes_zero` (a bool).
# --- solution ---
d = toy_ece["difference"].to_numpy()
half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
low, high = d.mean() - half, d.mean() + half
excludes_zero = bool(low > 0 or high < 0)
print(f"mean {d.mean():+.4f}, 95 % interval [{low:+.4f}, {high:+.4f}]")
# Three wins out of three, yet the interval includes zero: with n = 3 the
# t quantile is 4.30, and the spread between seeds is as large as the mean.
# "Within noise", not a verdict.

# %% tags=["check"]
_, ref_low, ref_high, _ = t_interval(toy_ece["difference"])
assert abs(low - ref_low) < 1e-12 and abs(high - ref_high) < 1e-12, f"calibkd.runs.results.t_interval gives [{ref_low:.4f}, {ref_high:.4f}]"
assert excludes_zero == (ref_low > 0 or ref_high < 0)
print("correct: the interval includes zero, so this comparison is within noise")

# %% [markdown] tags=["solution"]
# ## What this execution shows
#
# The committed execution reads the full reference batch: **three seeds** of
# every method (printed above). A paired t-interval over three seeds uses
# t(0.975, 2) = 4.30; a verdict needs an interval that excludes zero.
# - **C-collapse.** Default (calibrated-teacher) regime: *not supported*.
#   KD's student has a lower test NLL than the CE student, by 0.015
#   [0.010, 0.019], so the CE teacher's targets carry something beyond the
#   label; accuracy is within noise. Overconfident regime: *supported*. The
#   KD student is less accurate than the CE student (by 0.9 points
#   [0.7, 1.2]), and its NLL is worse by 0.13 [0.13, 0.14]: the memorising
#   teacher's targets collapsed onto its top class.
# - **C-shift.** Default regime: *not supported (within noise)*. KD-TS,
#   CUD-P and full CUD do not change ECE under corruption beyond noise
#   (full CUD -0.024 [-0.051, 0.002]). Overconfident regime: *supported*, by
#   calibrating the target. KD-TS lowers the mean ECE under corruption by
#   0.13 [0.10, 0.16] and CUD-P by 0.057 [0.019, 0.095]. Full CUD does not
#   (+0.006 [-0.000, 0.013]).
# - **C-cud.** Default regime: *mixed*.
#   - For: full CUD lowers the NLL on ambiguous two-image mixtures by 0.44
#     [0.29, 0.60].
#   - Against: it raises test ECE by 0.053 [0.050, 0.056] (the DUS teacher
#     makes students underconfident, chapter 04), and hard-slice NLL by
#     0.078 [0.054, 0.102].
#   - Accuracy is within noise.
# - **C-cud, overconfident regime:** *supported*, modestly. Full CUD is 1.2
#   points more accurate than KD ([0.9, 1.4]) and has a lower test ECE, by
#   0.010 [0.004, 0.016]; shift ECE, mixture NLL and hard-slice NLL are
#   within noise.
# - **C-cardinality:** not tested yet. The 183-class glyph batch has one
#   seed so far (below), and an interval needs at least two.
#
# In short: where the teacher is overconfident, the paper's problem is
# real. KD then hurts, and fixing the target helps. But most of the gain
# under shift comes from calibrating the target (KD-TS, CUD-P), not from
# CUD's own pieces. On a teacher that is already calibrated, CUD adds
# underconfidence.
#
# **The long tail (`long-tail-fmnist`, three seeds: a verdict).** On a
# 100:1 long-tailed training set the CE teacher is overconfident (TS
# temperature 1.59 on average) and worst where it saw least: on the few-shot
# classes it is right on 35 % of test images with an ECE of 0.38. Its KD
# student inherits that and is *worse calibrated on the rare classes than the
# CE student* (few-shot ECE 0.55 against 0.50), the regime in which CUD's
# argument applies.
# - **Calibration on the rare classes: supported.** Full CUD, CUD-P and
#   cross-fitted CUD-P all lower the few-shot ECE against KD, with intervals
#   that exclude zero: by 0.18 [0.14, 0.22], 0.16 [0.06, 0.26] and
#   0.23 [0.11, 0.35]. KD-TS lowers it by 0.13, but its interval
#   [-0.26, 0.001] just reaches zero. Only cross-fitted CUD-P also lowers the
#   few-shot NLL beyond noise (by 0.78 [0.14, 1.42]).
# - **Accuracy on the rare classes: within noise.** CUD, CUD-P and
#   cross-fitted CUD-P are 6 to 8 points more accurate than KD on the few-shot
#   classes on average, but which classes are rare changes with the seed, and
#   with three seeds the intervals (about ±11 to ±25 points) contain zero.
#   This part of the claim is not shown.
# - **What does it:** the DUS teacher. On the long tail, unlike the
#   balanced default regime, DUS has hard training examples to work on: its
#   few-shot accuracy is 0.44 against the CE teacher's 0.35, and its
#   few-shot ECE 0.18 against 0.38. DUS + KD alone reaches almost what full
#   CUD reaches (few-shot ECE 0.36), and W-Clip alone changes little (0.52).
# - **The price:** on the many-shot classes the CUD-style students are a
#   little less accurate (0.93 to 0.94 against KD's 0.94) and less well
#   calibrated (ECE about 0.05 against 0.007), because their targets are
#   softer everywhere.
#
# What the machinery already guarantees: every number above comes from a
# finished run's own tables (no half-written run counts), differences are
# paired within a seed, and a verdict needs an interval that excludes zero.
# **The glyph batch (`glyphs-central`), seed 0 only: observations, not
# verdicts.** With one seed no interval exists, so every glyph comparison
# and C-cardinality are *not tested*; seeds 1 and 2 are still to run
# (`python -m calibkd.runs run papermill_runs/glyphs-central` resumes).
# What seed 0 shows, to be confirmed or refuted by the other seeds:
# - As on Fashion-MNIST, the glyph CE teacher is already calibrated
#   (chapter 02 on glyphs: T = 0.90), and its students are close together:
#   test accuracy 0.700 to 0.710, KL to the true posterior 0.29 to 0.34,
#   within-group uniformity above 0.996 for every student. KD's KL to the
#   truth (0.294) is below the CE student's (0.340): the teacher's soft
#   targets do carry the homoglyph ambiguity.
# - In the overconfident regime, full CUD has the lowest KL to the truth
#   (0.81 against KD's 0.87 and the CE student's 0.92) and the highest
#   accuracy among the distilled students except the CE student (0.599 against
#   KD's 0.591); KD-TS fails here (accuracy 0.509, ECE 0.22): the
#   validation-fitted temperature over-softens targets on the memorised
#   subset.
# - Held-out fonts: students of the calibrated teacher are 0.3 to 3.4
#   points *more* accurate on the held-out fonts than on new images of the
#   training fonts, students of the overconfident one 1.5 to 4.3 points less.
#
# C-cardinality is then tested seed by seed (`claims.cardinality_evidence`:
# Welch intervals of the difference in effect between the two datasets).
#
# ## Questions to try
# 1. With three seeds, t(0.975, 2) = 4.30: an interval is more than four
#    standard errors wide. How many seeds would the smallest difference in
#    the C-cud table need to exclude zero, if its spread stayed the same?
# 2. Build a batch that varies `dus_teacher` (`[dus_hard, dus_soft]`) as a
#    grid parameter, run it at the smoke size, and aggregate it. Which
#    columns of `results.csv` tell the two apart?
# 3. The C-shift comparisons use the mean ECE over all corruptions. Redo
#    them at severity 5 only (filter `table` on `severity == 5`): does any
#    verdict change?
#
# <!-- solution -->
#
# ### Worked answers
#
# 1. The half-width is t(0.975, n - 1) x s / sqrt(n). Take the smallest
#    |mean difference| in the C-cud table and its standard deviation s; the
#    interval excludes zero once t(0.975, n - 1) x s / sqrt(n) < |mean|. Try
#    n = 3, 4, ... with `scipy.stats.t.ppf(0.975, n - 1)`: since t shrinks
#    towards 1.96 and sqrt(n) grows, the n needed grows with (s / |mean|)^2.
# 2. Write `papermill_runs/dus-grid/batch.yaml` with
#    `notebooks: [04_student_distillation]`, `parameters: {profile: smoke, sweep: {}}`
#    and `grid: {dus_teacher: [dus_hard, dus_soft], seed: [0]}`; run
#    `python -m calibkd.runs run papermill_runs/dus-grid` and
#    `python -m calibkd.runs aggregate papermill_runs/dus-grid`. `results.csv`
#    has a `dus_teacher` column (every grid parameter becomes one): the rows
#    of the students that use the DUS teacher (`dus_kd`, `cud`, `cudp_dus`)
#    differ between its two values; the others are identical.
# 3. Filter the batch table on `table["severity"] == 5` before building the
#    C-shift comparisons (`claims.evaluate` on the filtered table) and compare
#    the verdicts with the table above. Severity 5 is the hardest shift:
#    differences between methods tend to grow there, and so can the spread
#    between seeds, so a verdict can move either way.

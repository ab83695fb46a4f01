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
# evidence supports it, by a decision rule fixed before the runs were read.
#
# **What you will learn**
# - how a batch's runs become one tidy table, and why the *seed* (not the
#   test image) is the unit of noise;
# - how to read a paired difference against KD and its t-interval, and which
#   differences are within noise;
# - how a claim is decided: comparisons named up front, against KD and
#   against the labels-only student, with Holm's correction inside each
#   claim, and every part of a claim required;
# - what the evidence says about C-collapse, C-cardinality, C-shift and
#   C-cud, in the calibrated and in the overconfident regime.
#
# Nothing is trained here: every number comes from the batch's recorded runs.

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
from pathlib import Path

import pandas as pd
from IPython.display import display

from calibkd import plots
from calibkd.paths import batches_dir
from calibkd.runs import claims, companions
from calibkd.runs.regime_checks import regime_checks
from calibkd.runs.results import (
    collect,
    pick_columns,
    summarize,
    tables_by_regime,
    with_interval,
)
from calibkd.study.context import Outputs, parameters_from_globals
from calibkd.study.tuning import finished_trials, sensitivity

plots.set_style()
_before_parameters = set(globals())

# %% tags=["parameters"]
batch = "reference-fmnist"  # a folder under papermill_runs/ of the project's home (or an absolute path)
reference = "kd"  # the model every paired difference is taken against
# The companion batches: "auto" reads the committed one only next to the committed
# batch (so a smoke or new batch is shown alone), "" skips it, a name or path reads it.
long_tail_batch = "auto"  # a batch of chapter 04 in the long_tail regime (committed: long-tail-fmnist)
glyph_batch = "auto"  # a batch of chapter 04 on the 183 glyph classes (committed: glyphs-central)
output_dir = ""

# %%
params = parameters_from_globals("05_results", globals(), _before_parameters)
outputs = Outputs(root=Path(output_dir) if output_dir else None)
runs_root = batches_dir()  # papermill_runs/ of the project's home (calibkd.paths.home)
root = claims.batch_root(batch, runs_root)
tail_name = companions.companion_batch("long_tail_batch", long_tail_batch, batch, runs_root)
glyph_name = companions.companion_batch("glyph_batch", glyph_batch, batch, runs_root)
glyph_root = companions.batch_folder(glyph_name, runs_root)  # None: no glyph batch
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
# ## The regime each verdict is decided in
#
# A regime is only what it does to the inputs the students distill from.
# Chapter 04 records, for every regime of every run, the **regime check**
# (brief section 3b): the CE teacher's accuracy, confidence, ECE and
# non-target mass on the students' actual training views, its test accuracy
# and ECE, its TS temperature, and DUS's gate rate on its fine-tuning views
# before and after fine-tuning. Each number is the mean over the batch's runs
# [lowest, highest]. A claim about overconfident teachers counts only where
# every run's check finds the teacher overconfident there (the thresholds are
# in `calibkd.config`); otherwise its verdict is "not tested".

# %%
checks = regime_checks(table)
if checks.empty:
    print(f"no run of batch {root.name} carries a regime check (its runs predate it)")
else:
    display(checks.T)

# %% [markdown]
# ## How the settings were chosen: the tuning batch
#
# KD's temperature and weight, DKD's weights, the DUS teacher's entropy
# weight and gate, and CUD's m and eta were chosen on **validation** data,
# with the same number of configurations tried per method (brief section 7;
# `calibkd.config.tuning`), in a tuning batch of chapter 04 that the batch
# names. Its trials are the sensitivity table: each configuration's
# validation scores, and the one chosen (lowest validation NLL).

# %%
tuning_root = companions.tuning_batch(root, runs_root)
if tuning_root is None:
    print(f"batch {root.name} used the config's settings: it names no tuning batch")
elif (trials := finished_trials(tuning_root)).empty:
    print(f"tuning batch {tuning_root.name} has no finished runs")
else:
    display(sensitivity(trials).round(4))

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
# Each claim is a `claims.Claim` written before the runs were read: a
# statement, the result that would falsify it, and its **parts** (for C-cud:
# accuracy, calibration, shift calibration, ambiguity), each with its
# comparisons (`calibkd.runs.claims`, rule in full in `docs/metrics.md`):
# - a **primary** comparison must show the method beating KD in the
#   direction the claim predicts;
# - its **guard** twin compares the method with the labels-only CE student on
#   the same metric: the method must not be worse than it beyond noise.
#   (C-collapse is about KD itself: its primary comparisons are KD against the
#   CE student, and it has no guard.)
#
# Every comparison gets the p-value of the paired t-test over seeds. Inside a
# claim the p-values are corrected with **Holm's** step-down method, so that
# the chance of any false "beyond noise" in the claim stays below 5 %. A
# comparison *supports* or *contradicts* the claim when its Holm-adjusted p
# is below 5 % (by the sign of the difference), is *within noise* otherwise,
# and *not tested* with fewer than two seeds. The table shows each
# difference with its unadjusted 95 % interval and its Bonferroni interval
# (level 1 - 0.05/m for m comparisons in the claim: wider, for display; the
# decision is Holm's).
#
# A part holds when every primary comparison supports and no guard
# contradicts; a claim is **supported** only when every part holds,
# **contradicted** when a primary comparison is significant in the wrong
# direction, **not tested** when evidence is missing, and **not supported**
# otherwise, with the parts that hold and fail named. Calibration numbers of
# C-shift and C-cud are read after each student's own temperature scaling
# where the batch has those rows (`after_ts`): an advantage that TS gives
# any student for free is no gain (brief section 7).

# %%
alpha = claims.FAMILY_ALPHA  # family-wise error rate inside each claim
after_ts = True  # calibration metrics after each student's own TS, where the batch has them


def show_claims(claim_list, evidence, verdict_table):
    """Per claim: its statement, what would falsify it, its comparisons and its verdict."""
    for claim in claim_list:
        rows = evidence[(evidence["claim"] == claim.name) & (evidence["regime"] == claim.regime)]
        found = verdict_table[(verdict_table["claim"] == claim.name) & (verdict_table["regime"] == claim.regime)]
        print(f"{claim.name}, regime {claim.regime}: {claim.statement}")
        print(f"falsified by: {claim.falsified_by}")
        display(claims.format_evidence(rows))
        if not found.empty:
            print(f"verdict: {claims.verdict_text(found['verdict'].iloc[0], found['detail'].iloc[0])}\n")


main_claims = claims.study_claims(regimes, alpha, after_ts)
evidence = claims.evaluate(table, main_claims)
every_evidence = [evidence]  # every claim's comparisons, for the findings at the end
verdicts = claims.verdicts(main_claims, evidence, table)
show_claims(main_claims, evidence, verdicts)
cardinality = claims.cardinality_verdict([root] + ([glyph_root] if glyph_root else []), alpha)
verdicts = pd.concat([verdicts, cardinality], ignore_index=True)
outputs.table(evidence, "claims_evidence_05")

# %% [markdown]
# ## The long tail, per class group
#
# C-cud also claims students that are more reliable on **long-tail**
# inputs. The long-tail batch (`long_tail_batch`; next to the committed
# batch, the committed `papermill_runs/long-tail-fmnist/`) runs chapter
# 04's central methods with teachers and students
# trained on a 100:1 long-tailed Fashion-MNIST training set (the seed also
# decides which classes are rare) and scores them on the balanced test set
# per class group. Mean over seeds [95 % interval]; then the claim, for full
# CUD and, as claims of their own, for CUD-P, cross-fitted CUD-P and KD-TS:
# more accurate and better calibrated (ECE, NLL) than KD on the few-shot
# classes (primary, each with its CE guard), and no worse than KD or the CE
# student beyond noise on the many- and medium-shot classes or on the whole
# test set (guards only). A loss elsewhere sinks the verdict.

# %%
long_tail_verdicts = pd.DataFrame(columns=claims.VERDICT_COLUMNS)
if not tail_name:
    print(companions.describe("long_tail_batch", long_tail_batch, tail_name))
else:
    tail_root = claims.batch_root(tail_name, runs_root)
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
    tail_claims = claims.long_tail_claims(alpha=alpha, after_ts=after_ts)
    tail_evidence = claims.evaluate(tail_table, tail_claims)
    long_tail_verdicts = claims.verdicts(tail_claims, tail_evidence, tail_table)
    show_claims(tail_claims, tail_evidence, long_tail_verdicts)
    outputs.table(tail_evidence, "claims_long_tail_evidence_05")
    every_evidence.append(tail_evidence)
verdicts = pd.concat([verdicts, long_tail_verdicts], ignore_index=True)

# %% [markdown]
# ## 183 classes with known ambiguity: the glyph batch
#
# The same central comparison on the tied glyphs (`glyph_batch`; next to the
# committed batch, the committed `papermill_runs/glyphs-central`): 183
# characters, with homoglyph groups
# (characters of several scripts, and digits, that look alike) whose true
# posterior is uniform over the group, test fonts from lineages no model
# trained on. Mean over seeds [95 % interval] of the accuracy and
# calibration columns above, plus:
# - **font shift**: the change from new images of the training fonts to the
#   held-out fonts (held-out minus in-distribution), a natural shift beside
#   the corruption mean;
# - **KL to truth** and **group uniformity** of each student on test
#   (chapter 02's fidelity scores: 0 and 1 are the truth).
#
# Then the same claims on these runs, with C-shift also tested on the
# held-out fonts, and C-cardinality: each contrast's per-seed effect on
# glyphs and on Fashion-MNIST, and Welch's test of their difference, Holm's
# correction over the contrasts of each regime, and the same verdicts (its
# parts: KD's cost against the CE student, the calibrated targets, CUD).

# %%
from calibkd.runs.results import finished_runs  # noqa: E402

glyph_verdicts = pd.DataFrame(columns=claims.VERDICT_COLUMNS)
if glyph_root is None:
    print(companions.describe("glyph_batch", glyph_batch, glyph_name))
elif finished_runs(glyph_root):
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
    glyph_claims = claims.study_claims(glyph_regimes, alpha, after_ts)
    glyph_evidence = claims.evaluate(glyph_table, glyph_claims)
    display(glyph_evidence[["claim", "regime", "part", "role", "comparison", "metric", "where", "n", "difference",
                            "outcome"]].round(4))
    outputs.table(glyph_evidence, "claims_glyphs_evidence_05")
    glyph_verdicts = claims.verdicts(glyph_claims, glyph_evidence, glyph_table)
    glyph_verdicts["claim"] = glyph_verdicts["claim"] + claims.GLYPHS_SUFFIX
    every_evidence.append(glyph_evidence.assign(claim=glyph_evidence["claim"] + claims.GLYPHS_SUFFIX))
    cardinality_table = claims.cardinality_evidence(table, glyph_table, root.name, glyph_root.name, alpha)
    show_claims(claims.cardinality_claims(sorted(set(cardinality_table["regime"])), alpha), cardinality_table,
                cardinality)
    outputs.table(cardinality_table, "claims_cardinality_evidence_05")
    every_evidence.append(cardinality_table)
else:
    print(f"{glyph_root.name}: no finished runs yet; run `python -m calibkd.runs run {glyph_root}`")
verdicts = pd.concat([verdicts, glyph_verdicts], ignore_index=True)
outputs.table(verdicts, "claims_05")

# %% [markdown]
# ## Key numbers
#
# The verdicts and the number of seeds behind them (nbval checks this cell):
# one of *supported*, *not supported*, *contradicted*, *not tested*, with the
# parts that hold and those that fail.

# %%
# NBVAL_CHECK_OUTPUT
print(f"seeds: {len(seeds)}")
for row in verdicts.itertuples():
    print(f"{row.claim} [{row.regime}]: {claims.verdict_text(row.verdict, row.detail)}")

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

# %% nbgrader={"grade": false, "grade_id": "ch05-exercise", "locked": false, "schema_version": 3, "solution": true}
# Set `low` and `high` (floats, the 95 % t-interval of the mean difference)
# and `excludes_zero` (a bool).
### BEGIN SOLUTION
d = toy_ece["difference"].to_numpy()
half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
low, high = d.mean() - half, d.mean() + half
excludes_zero = bool(low > 0 or high < 0)
print(f"mean {d.mean():+.4f}, 95 % interval [{low:+.4f}, {high:+.4f}]")
# Three wins out of three, yet the interval includes zero: with n = 3 the
# t quantile is 4.30, and the spread between seeds is as large as the mean.
# "Within noise", not a verdict.
### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "ch05-check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
_, ref_low, ref_high, _ = t_interval(toy_ece["difference"])
assert abs(low - ref_low) < 1e-12 and abs(high - ref_high) < 1e-12, \
    "not the 95 % t-interval: use n - 1 degrees of freedom, the sample standard deviation (ddof=1) and the standard error"
assert excludes_zero == (ref_low > 0 or ref_high < 0), "excludes_zero does not match your interval: do both ends lie on the same side of zero?"
print("correct: the interval includes zero, so this comparison is within noise")

# %% [markdown]
# ## What this execution shows
#
# Generated from the verdicts and their evidence above
# (`claims.verdict_sentences`), for the batches this execution read: per
# claim and regime, the verdict and why; the comparison it rests on most,
# with its unadjusted 95 % interval and its Holm-adjusted p; and every
# comparison whose unadjusted interval excludes zero while Holm's
# correction leaves it within noise: what a reader of the intervals alone
# would over-read. A claim is supported only where every part holds, so a
# comparison beyond noise in one part does not carry the claim, and a guard
# within noise (the method no worse than the labels-only student) is not a
# gain over it.
#
# What the machinery guarantees: every number comes from a finished run's
# own tables (no half-written run counts), differences are paired within a
# seed, and a verdict follows the pre-registered claims.

# %%
from IPython.display import Markdown  # noqa: E402

all_evidence = pd.concat([e for e in every_evidence if not e.empty], ignore_index=True)
display(Markdown("\n".join(f"- {line}" for line in claims.verdict_sentences(verdicts, all_evidence))))

# %% [markdown]
# A gain of CUD over KD says little about CUD if other students match it.
# Where full CUD stands among every student of the main batch, on each
# column of the table of means above but agreement (generated; means over
# seeds, not tested against each other):

# %%
from calibkd.study.findings import as_good_as  # noqa: E402

standing = []
for regime in regimes:
    mine = picked[picked["regime"] == regime]
    passes, why = claims.regime_check_status(table, regime)
    if not passes:
        standing.append(f"[{regime}] {why}; the lines below are about this batch's teachers only.")
    for column in [c for c in shown.values() if c in set(mine["column"]) and c != "agreement"]:
        values = mine[mine["column"] == column].set_index("model")["mean"]
        if "cud" in values.index:
            standing.append(f"[{regime}] " + as_good_as(values, "cud", column, column == "accuracy",
                                                        seeds=len(seeds)))
display(Markdown("\n".join(f"- {line}" for line in standing) or "no CUD student in this batch"))

# %% [markdown]
# Two things only the glyph batch can show, generated below from its runs:
# KL to the truth (only this dataset knows the true label distributions)
# and CUD's accuracy against KD's. Neither is part of a claim, so each
# difference carries its own unadjusted 95 % interval over seeds, paired
# within a seed, with no multiplicity correction: an observation, not a
# verdict. With one seed there is no interval, and the text says so.

# %%
from calibkd.study.findings import compare, model_name  # noqa: E402

glyph_lines = []
if glyph_root is not None and finished_runs(glyph_root):
    test_means = glyph_summary[glyph_summary["where"] == "test"].set_index(["regime", "model", "metric"])["mean"]
    observations = (("kd", "ce", "kl_true", "KL to the truth on test", False),
                    ("cud", "kd", "kl_true", "KL to the truth on test", False),
                    ("cud", "kd", "accuracy", "test accuracy", True))
    glyph_test = glyph_table[(glyph_table["where"] == "test") & (glyph_table["severity"] == 0)].drop(columns="severity")
    glyph_intervals = {}  # (regime, model, reference, metric) -> (low, high); none with fewer than 2 seeds
    for reference_model in sorted({b for _, b, *_ in observations} & set(glyph_test["model"])):
        for r in paired_differences(glyph_test, reference=reference_model).itertuples():
            if pd.notna(r.ci_low):
                glyph_intervals[r.regime, r.model, reference_model, r.metric] = (r.ci_low, r.ci_high)
    for regime in glyph_regimes:
        mean = test_means.loc[regime]
        passes, why = claims.regime_check_status(glyph_table, regime)
        if not passes:
            glyph_lines.append(f"[{regime}] {why}; the observations below are about this run's teacher only.")
        for a, b, metric, label, higher in observations:
            if (a, metric) in mean.index and (b, metric) in mean.index:
                glyph_lines.append(f"[{regime}] " + compare(
                    model_name(a), mean[a, metric], model_name(b), mean[b, metric], label, higher,
                    interval=glyph_intervals.get((regime, a, b, metric)), seeds=len(glyph_seeds)))
display(Markdown("\n".join(f"- {line}" for line in glyph_lines) or "no glyph runs to observe"))

# %% [markdown] nbgrader={"grade": true, "grade_id": "ch05-questions", "locked": false, "points": 1, "schema_version": 3, "solution": true}
# ## Questions to try
# 1. With three seeds, $t_{0.975,\,2} \approx 4.30$: an interval is more than four
#    standard errors wide. How many seeds would the smallest difference in
#    the C-cud table need for its interval to exclude zero, if its spread
#    stayed the same? And how many for its Bonferroni interval (level
#    1 - 0.05/m), the bar Holm's correction sets for a claim's strongest
#    comparison?
# 2. Build a batch that varies `dus_teacher` (`[dus_hard, dus_soft]`) as a
#    grid parameter, run it at the smoke size, and aggregate it. Which
#    columns of `results.csv` tell the two apart?
# 3. The C-shift comparisons use the mean ECE over all corruptions. Redo
#    them at severity 5 only (filter `table` on `severity == 5`): does any
#    verdict change?
#
# <!-- BEGIN SOLUTION -->
#
# ### Worked answers
#
# 1. The half-width is t(0.975, n - 1) x s / sqrt(n). Take the smallest
#    |mean difference| in the C-cud table and its standard deviation s; the
#    interval excludes zero once t(0.975, n - 1) x s / sqrt(n) < |mean|. Try
#    n = 3, 4, ... with `scipy.stats.t.ppf(0.975, n - 1)`: since t shrinks
#    towards $z_{0.975} \approx 1.96$ and sqrt(n) grows, the n needed grows with (s / |mean|)^2.
#    For the Bonferroni interval use `scipy.stats.t.ppf(1 - 0.05 / (2 * m), n - 1)`
#    with m the claim's number of comparisons (column `m` of `evidence`):
#    a larger quantile, so more seeds.
# 2. Write `papermill_runs/dus-grid/batch.yaml` with
#    `notebooks: [04_student_distillation]`, `parameters: {profile: smoke, sweep: {}}`
#    and `grid: {dus_teacher: [dus_hard, dus_soft], seed: [0]}`; run
#    `python -m calibkd.runs run papermill_runs/dus-grid` and
#    `python -m calibkd.runs aggregate papermill_runs/dus-grid`. `results.csv`
#    has a `dus_teacher` column (every grid parameter becomes one): the rows
#    of the students that use the DUS teacher (`dus_kd`, `cud`, `cudp_dus`)
#    differ between its two values; the others are identical.
# 3. Put each run's severity-5 corruption mean in place of the mean over
#    severities, then decide C-shift again:
#    `worst = (table["where"] == "corruption_mean") & (table["severity"] == 5)`,
#    `sev5 = table[worst].assign(where=claims.SHIFT_MEAN, severity=0)`,
#    `hard = pd.concat([table[table["where"] != claims.SHIFT_MEAN], sev5])`,
#    `shift = claims.shift_claims(regimes)` and
#    `claims.verdicts(shift, claims.evaluate(hard, shift))`; compare with the
#    verdicts above. Severity 5 is the hardest shift:
#    differences between methods tend to grow there, and so can the spread
#    between seeds, so a verdict can move either way.
#
# <!-- END SOLUTION -->

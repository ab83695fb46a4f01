"""Findings in words, computed from a run's own values.

A chapter's typed prose explains ideas and method; every sentence that
states a number, a direction ("lower", "beats") or a verdict is produced
here from the run's tables, so that any rerun (another seed, regime or
dataset, or a batch copy) reports itself correctly (issue 17).

The pieces:

- ``compare``: one comparison as a sentence: both values, which is higher,
  whether that is better or worse, and its *noise status*: with an interval
  of the difference over seeds, "within noise" or "beyond seed noise"; with
  one seed, "one seed, not tested against seed noise" (never a bare claim);
- ``contrast``: several metrics of two models in one sentence;
- ``extreme``: which model has the highest (lowest) value of a column;
- ``regime_sentence``: a row of the regime check (chapters 02 and 04). A
  regime named "overconfident" whose check gives another class is said to
  have failed it: its comparisons are not evidence about overconfident
  teachers (brief section 3b);
- ``class_groups_text``: a dataset's known class groups by name (garment
  groups on Fashion-MNIST, homoglyph groups on glyphs), or None;
- ``teacher_findings`` (chapter 02), ``calibration_findings`` (chapter 03)
  and ``student_findings`` (chapter 04): the findings of each chapter from
  its tables, as Markdown. Chapters show them with
  ``IPython.display.Markdown``.

Numbers are written with ``digits`` decimals (3 by default), a true minus
sign for negatives and a plus sign on differences; values smaller than the
last decimal in scientific notation.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import pandas as pd

from calibkd.config import DatasetInfo

ONE_SEED = "one seed, not tested against seed noise"
MINUS = "\u2212"

#: Readable names of the students the findings mention most; any other is shown as its key.
NAMES = {"ce": "the CE student", "kd": "KD", "kd_ts": "KD-TS", "cud": "CUD", "cudp": "CUD-P"}
#: What a dataset's known class groups are called (``DatasetInfo.class_groups``).
GROUP_NAMES = {"fashion_mnist": "garment groups", "cifar10": "vehicle and animal groups",
               "cifar100": "superclasses", "glyphs": "homoglyph groups", "glyphs_natural": "homoglyph groups",
               "mixture": "superclasses"}
#: The regime whose claims need its check to give this class (as ``calibkd.runs.claims.REGIME_REQUIREMENTS``).
REQUIRED_CLASS = {"overconfident": "overconfident"}


# --- numbers and names -------------------------------------------------------

def number(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals (a true minus sign for negatives);
    a nonzero value below the last decimal in scientific notation."""
    value = float(value)
    if math.isnan(value):
        return "n/a"
    if value != 0 and abs(value) < 0.5 * 10 ** -digits:
        text = f"{value:.1e}"
    else:
        text = f"{value:.{digits}f}"
    return MINUS + text[1:] if text.startswith("-") else text


def signed(value: float, digits: int = 3) -> str:
    """A difference: ``number`` with a plus sign on positive values."""
    text = number(value, digits)
    return text if text.startswith(MINUS) or float(value) == 0 else "+" + text


def percent(value: float, digits: int = 1) -> str:
    """A fraction in [0, 1] as a percentage ("69.9 %")."""
    return f"{number(100 * float(value), digits)} %"


def interval_text(low: float, high: float, digits: int = 3) -> str:
    """An interval of a difference, "[−0.051, +0.002]"."""
    return f"[{signed(low, digits)}, {signed(high, digits)}]"


def model_name(key: str) -> str:
    """A student's readable name (``NAMES``), else its key as code."""
    return NAMES.get(key, f"`{key}`")


def possessive(name: str) -> str:
    return f"{name}'s"


def _seed_words(seeds: int) -> str:
    return "one seed" if seeds == 1 else f"{seeds} seeds"


# --- comparisons -------------------------------------------------------------

def _direction(a: float, b: float, digits: int) -> int:
    """+1 if a is higher than b at the shown precision, -1 if lower, 0 if they print the same."""
    if number(a, digits) == number(b, digits):
        return 0
    return 1 if a > b else -1


def _judgement(direction: int, higher_is_better: bool | None) -> str:
    if direction == 0 or higher_is_better is None:
        return ""
    return "better" if (direction > 0) == higher_is_better else "worse"


def noise_status(interval: tuple[float, float] | None, seeds: int = 1) -> str:
    """"within noise" or "beyond seed noise" from the interval of a difference
    over seeds; without one, why the difference is not tested."""
    if interval is None:
        return ONE_SEED if seeds <= 1 else f"{seeds} seeds but no interval: not tested against seed noise"
    low, high = (float(v) for v in interval)
    if low > high:
        raise ValueError(f"interval [{low}, {high}]: low above high")
    return "within noise" if low <= 0 <= high else "beyond seed noise"


def compare(name_a: str, a: float, name_b: str, b: float, metric: str, higher_is_better: bool | None = None,
            interval: tuple[float, float] | None = None, seeds: int = 1, digits: int = 3) -> str:
    """One comparison of A with B on ``metric`` as a sentence.

    Without ``interval`` (one seed): "CUD's test ECE (0.067) is higher than
    KD's (0.013): worse; one seed, not tested against seed noise." With the
    interval of the difference A - B over ``seeds``: "... by −0.024
    [−0.051, +0.002] over 3 seeds: within noise." (no better or worse
    within noise; "better beyond seed noise" outside it).
    ``higher_is_better`` None: no judgement (a temperature, a confidence)."""
    a, b = float(a), float(b)
    direction = _direction(a, b, digits)
    if direction == 0:
        head = (f"{possessive(name_a)} {metric} ({number(a, digits)}) and {possessive(name_b)} ({number(b, digits)}) "
                f"are equal to {digits} decimals")
    else:
        relation = "is higher than" if direction > 0 else "is lower than"
        head = f"{possessive(name_a)} {metric} ({number(a, digits)}) {relation} {possessive(name_b)} ({number(b, digits)})"
    status = noise_status(interval, seeds)
    judgement = _judgement(direction, higher_is_better)
    if interval is None:
        return f"{head}: {judgement}; {status}." if judgement else f"{head}; {status}."
    diff = f" by {signed(a - b, digits)} {interval_text(*interval, digits)} over {_seed_words(seeds)}"
    if status == "within noise" or not judgement:
        return f"{head}{diff}: {status}."
    return f"{head}{diff}: {judgement} {status}."


#: (column, label, higher is better) of the comparisons chapter 04 states.
Column = tuple[str, str, bool | None]


def contrast(name_a: str, row_a: Mapping[str, float], name_b: str, row_b: Mapping[str, float],
             columns: Sequence[Column], seeds: int = 1, digits: int = 3) -> str:
    """Several metrics of A against B in one sentence, e.g. "CUD against KD:
    accuracy 0.392 against 0.449 (lower: worse), ECE after TS 0.095 against
    0.061 (higher: worse); one seed, not tested against seed noise." Columns
    missing from either row are left out."""
    parts = []
    for column, label, higher_is_better in columns:
        a, b = row_a.get(column), row_b.get(column)
        if a is None or b is None or pd.isna(a) or pd.isna(b):
            continue
        direction = _direction(float(a), float(b), digits)
        word = {1: "higher", -1: "lower", 0: "the same"}[direction]
        judgement = _judgement(direction, higher_is_better)
        parts.append(f"{label} {number(a, digits)} against {number(b, digits)} "
                     f"({word}{': ' + judgement if judgement else ''})")
    if not parts:
        return f"{name_a} against {name_b}: no column in common."
    return f"{name_a} against {name_b}: {', '.join(parts)}; {noise_status(None, seeds)}."


def extreme(values: Mapping[str, float] | pd.Series, label: str, highest: bool = True, digits: int = 3,
            names: Mapping[str, str] | None = None) -> str:
    """Which model has the highest (or lowest) ``label``: "the highest test
    accuracy is the CE student's (0.597)"; ties at the shown precision are all named."""
    series = pd.Series(values, dtype=float).dropna()
    if series.empty:
        return f"no model has a {label}"
    best = series.max() if highest else series.min()
    tied = [k for k, v in series.items() if number(v, digits) == number(best, digits)]
    name = (names or {}).get
    who = " and ".join(possessive(name(k) or model_name(k)) for k in tied)
    return f"the {'highest' if highest else 'lowest'} {label} is {who} ({number(best, digits)})"


def as_good_as(values: Mapping[str, float] | pd.Series, model: str, label: str, higher_is_better: bool,
               seeds: int = 1, digits: int = 3) -> str:
    """Which other models are at least as good as ``model`` on ``label``
    (at the shown precision): "CUD's mixture NLL (2.260): as good or better:
    `kd_ls` (1.860), `kd_mixup` (1.800); one seed, not tested against seed
    noise." A gain of ``model`` over KD says little when other students
    match it."""
    series = pd.Series(values, dtype=float).dropna()
    mine, shown = series[model], series.round(digits)  # compared at the shown precision
    better = [k for k in series.index if k != model and
              (shown[k] >= shown[model] if higher_is_better else shown[k] <= shown[model])]
    who = ", ".join(f"{model_name(k)} ({number(series[k], digits)})" for k in better) or "none"
    noise = "means over seeds, not tested against each other" if seeds > 1 else ONE_SEED
    return f"{possessive(model_name(model))} {label} ({number(mine, digits)}): as good or better: {who}; {noise}."


def bullets(lines: Sequence[str], title: str = "") -> str:
    """Markdown: an optional bold title line, then one bullet per line."""
    body = "\n".join(f"- {line}" for line in lines if line)
    return f"**{title}**\n\n{body}" if title else body


def capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


# --- regimes and datasets ----------------------------------------------------

def regime_passes(regime: str, row: Mapping[str, Any]) -> bool:
    """Whether a regime's check gives the class its name requires (only
    "overconfident" requires one; other regimes pass)."""
    required = REQUIRED_CLASS.get(regime)
    return required is None or row.get("class") == required


def regime_sentence(regime: str, row: Mapping[str, Any]) -> str:
    """A regime check row (``calibkd.study.report.regime_check``) in words:
    the class and its reason, the teacher's accuracy on the students' views
    against test, its TS temperature and, where present, DUS's gate rate
    before and after fine-tuning. A regime that fails the class its name
    requires says so, and that its comparisons are not evidence about it."""
    kind, reason = row.get("class", "unknown"), row.get("reason", "")
    text = f"Regime **{regime}**: the regime check classes its CE teacher as *{kind}*"
    text += f" ({reason})." if reason else "."
    views, test = row.get("teacher accuracy (views)"), row.get("teacher accuracy (test)")
    if views is not None and not pd.isna(views):
        text += f" The teacher is right on {percent(views)} of the students' training views"
        text += f" and on {percent(test)} of test." if test is not None and not pd.isna(test) else "."
    before, after = row.get("DUS gate rate (before)"), row.get("DUS gate rate (after)")
    if before is not None and not pd.isna(before):
        text += (f" DUS's gate is open on {percent(before)} of its fine-tuning views before fine-tuning"
                 f" and {percent(after)} after" + (": DUS cannot act there." if float(before) == 0 else "."))
    if not regime_passes(regime, row):
        required = REQUIRED_CLASS[regime]
        text += (f" **This run's {regime} regime failed its check**: its comparisons are not evidence about "
                 f"{required} teachers.")
    return text


def class_groups_text(info: DatasetInfo) -> str | None:
    """The dataset's known class groups by name: few small groups with their
    members ("the garment groups (T-shirt/top, Pullover, Coat, Shirt;
    Sandal, Sneaker, Ankle boot)"), many as a count ("the 29 homoglyph
    groups"); None without groups."""
    groups = [g for g in info.class_groups if len(g) > 1]
    if not groups:
        return None
    kind = GROUP_NAMES.get(info.name, "class groups")
    if len(groups) <= 3 and sum(map(len, groups)) <= 12:
        members = "; ".join(", ".join(info.class_names[i] for i in g) for g in groups)
        return f"the {kind} ({members})"
    return f"the {len(groups)} {kind}"


# --- chapter 02: the teachers -------------------------------------------------

def teacher_findings(table: pd.DataFrame, temperatures: Mapping[str, float], recovery: Mapping[tuple[str, str], float],
                     checks: pd.DataFrame, info: DatasetInfo, non_target: Mapping[tuple[str, str], float],
                     shift: pd.DataFrame | None = None, truth: pd.DataFrame | None = None) -> str:
    """Chapter 02's findings, one seed. ``table``: metrics by (model, split)
    with model "teacher (<name>)"; ``temperatures`` and ``recovery`` (group
    AUC by (name, split)) per teacher name; ``checks``: the regime check
    (index regime); ``non_target``: median non-target mass by (name, split);
    ``shift``: ``evaluate_suite`` rows (clean and corruption_mean by
    severity, mixtures, hard slice, in_distribution where present);
    ``truth``: ``fidelity_table`` rows (known posteriors only)."""
    names = sorted({model[len("teacher ("):-1] for model, _ in table.index})
    lines = []
    for name in names:
        get = table.loc[f"teacher ({name})"]
        gap = get.loc["test", "mean_confidence"] - get.loc["test", "accuracy"]
        side = "above" if gap > 0 else "below" if gap < 0 else "equal to"
        t = temperatures[name]
        lines.append(
            f"Teacher **{name}**: test ECE {number(get.loc['test', 'ece'])}, on its training inputs "
            f"{number(get.loc['train', 'ece'])} (plain) and {number(get.loc['train (augmented)', 'ece'])} "
            f"(augmented); on test its mean confidence is {side} its accuracy (by {signed(gap)}); TS fits "
            f"T = {number(t, 2)} on validation ({'above 1: it softens the teacher' if t > 1 else 'below 1: it sharpens the teacher' if t < 1 else 'no change'}); "
            f"median non-target mass {number(non_target[name, 'train'])} on training inputs against "
            f"{number(non_target[name, 'test'])} on test.")
    if len(names) == 2:
        a, b = names
        for split, label in (("test", "test ECE"), ("train (augmented)", "ECE on augmented training views")):
            lines.append(capitalized(compare(f"the {a} teacher", table.loc[(f"teacher ({a})", split), "ece"],
                                             f"the {b} teacher", table.loc[(f"teacher ({b})", split), "ece"],
                                             label, higher_is_better=False)))
    groups = class_groups_text(info)
    if groups and recovery:
        aucs = ", ".join(f"{name} {number(recovery[name, split])} ({split})"
                         for name in names for split in ("test", "train") if (name, split) in recovery)
        lines.append(f"Group-recovery AUC of {groups} (0.5 is chance, 1 perfect): {aucs}.")
    for regime, row in checks.iterrows():
        lines.append(regime_sentence(str(regime), row))
    if shift is not None and not shift.empty:
        lines += _teacher_shift_lines(shift, names)
    if truth is not None and not truth.empty:
        lines += _truth_lines(truth, names)
    return bullets(lines, f"What this run shows ({ONE_SEED})")


def _teacher_shift_lines(shift: pd.DataFrame, names: Sequence[str]) -> list[str]:
    lines = []
    curve = shift[shift.condition.isin(["clean", "corruption_mean"])]
    worst = int(curve.severity.max()) if not curve.empty else 0
    for name in names:
        rows = curve[curve.model == f"teacher ({name})"].groupby(["severity", "metric"])["value"].mean()
        if (0, "accuracy") in rows and (worst, "accuracy") in rows and worst > 0:
            lines.append(f"Under corruption, the {name} teacher's accuracy goes from {number(rows[0, 'accuracy'])} "
                         f"(clean) to {number(rows[worst, 'accuracy'])} at severity {worst}, and its ECE from "
                         f"{number(rows[0, 'ece'])} to {number(rows[worst, 'ece'])}.")
    others = ("clean", "corruption_mean", "hard_slice", "in_distribution")
    per = shift[(shift.severity == 3) & (shift.metric == "ece") & ~shift.condition.isin(others)
                & ~shift.condition.str.startswith("mixture")]
    for name in names:
        ece = per[per.model == f"teacher ({name})"].set_index("condition")["value"].sort_values(ascending=False)
        if len(ece) >= 6:
            top = ", ".join(f"{c} ({number(v)})" for c, v in ece.head(3).items())
            low = ", ".join(f"{c} ({number(v)})" for c, v in ece.tail(3).items())
            lines.append(f"At severity 3, the corruptions with the highest ECE for the {name} teacher are {top}; "
                         f"the lowest, {low}.")
    for condition, metric, label in (("mixture_0.5", "soft_kl", "KL to the soft truth on even two-image mixtures"),
                                     ("hard_slice", "ece", "ECE on the hard slice")):
        values = shift[(shift.condition == condition) & (shift.metric == metric)].set_index("model")["value"]
        if len(names) == 2 and all(f"teacher ({n})" in values for n in names):
            a, b = names
            lines.append(capitalized(compare(f"the {a} teacher", values[f"teacher ({a})"], f"the {b} teacher",
                                             values[f"teacher ({b})"], label, higher_is_better=False)))
    natural = shift[shift.condition.isin(["in_distribution", "clean"]) & (shift.severity.fillna(0) == 0)]
    if "in_distribution" in set(natural.condition):
        for name in names:
            rows = natural[natural.model == f"teacher ({name})"].set_index(["condition", "metric"])["value"]
            lines.append(f"Held-out fonts (natural shift), the {name} teacher: accuracy "
                         f"{number(rows['in_distribution', 'accuracy'])} on new images of the training fonts, "
                         f"{number(rows['clean', 'accuracy'])} on held-out fonts; ECE "
                         f"{number(rows['in_distribution', 'ece'])} and {number(rows['clean', 'ece'])}.")
    return lines


def _truth_lines(truth: pd.DataFrame, names: Sequence[str]) -> list[str]:
    lines = []
    wide = truth.pivot_table(index=["model", "split"], columns="metric", values="value", sort=False)
    for name in names:
        model = f"teacher ({name})"
        splits = [s for s in ("train", "test") if (model, s) in wide.index]
        if splits and {"kl_true", "group_uniformity"} <= set(wide.columns):
            parts = [f"{s}: KL {number(wide.loc[(model, s), 'kl_true'])}, within-group uniformity "
                     f"{number(wide.loc[(model, s), 'group_uniformity'])}" for s in splits]
            lines.append(f"Against the true label distributions, the {name} teacher: {'; '.join(parts)} "
                         "(the truth has KL 0 and uniformity 1).")
    return lines


# --- chapter 03: the calibrated teachers ---------------------------------------

def calibration_findings(big: pd.DataFrame, dark: pd.DataFrame, conditions: pd.DataFrame, info: DatasetInfo,
                         posthoc: Mapping[str, tuple[float, float]] | None = None, reference: str = "CE") -> str:
    """Chapter 03's findings, one seed. ``big``: one row per teacher variant,
    columns (split, metric) with splits "test" and "corrupted (mean)" and
    metrics accuracy, ece (mean_confidence where present); ``dark``: model,
    split, median non-target mass, group AUC; ``conditions``: DUS's C1 and
    C2 per split and model; ``posthoc``: each post-hoc map's validation NLL
    (before, after) on the ``reference`` teacher."""
    lines = []
    for name, (before, after) in (posthoc or {}).items():
        word = {1: "higher: worse", -1: "lower: better", 0: "the same"}[_direction(after, before, 3)]
        lines.append(f"Post-hoc `{name}`: validation NLL of the {reference} teacher {number(before)} before, "
                     f"{number(after)} after ({word}; fitted on that same validation split).")
    test_ece = big[("test", "ece")]
    lines.append(capitalized(extreme(test_ece, "test ECE", highest=False, names={reference: f"the {reference} teacher"}))
                 + f"; the {reference} teacher's is {number(test_ece[reference])}.")
    if ("test", "mean_confidence") in big.columns:
        gap = big[("test", "mean_confidence")] - big[("test", "accuracy")]
        under = [v for v in gap.index if gap[v] < 0 and v != reference]
        over = [v for v in gap.index if gap[v] > 0 and v != reference]
        lines.append(f"On test, mean confidence is below accuracy (underconfident) for {_names(under)}, and above "
                     f"it for {_names(over)}; the {reference} teacher's gap is {signed(gap[reference])}.")
    worse = [v for v in test_ece.index if v != reference and _direction(test_ece[v], test_ece[reference], 3) > 0]
    lines.append(f"Higher test ECE than the {reference} teacher: {_names(worse)}.")
    if ("corrupted (mean)", "ece") in big.columns:
        named = {reference: f"the {reference} teacher"}
        lines.append(capitalized(extreme(big[("corrupted (mean)", "ece")], "ECE under corruption (mean)",
                                         highest=False, names=named))
                     + f"; the {reference} teacher's is {number(big.loc[reference, ('corrupted (mean)', 'ece')])}.")
        lines.append(capitalized(extreme(big[("corrupted (mean)", "accuracy")], "accuracy under corruption (mean)",
                                         names=named))
                     + f"; the {reference} teacher's is "
                       f"{number(big.loc[reference, ('corrupted (mean)', 'accuracy')])}.")
    mass = dark[dark.split == "train"].set_index("model")["median non-target mass"]
    lines.append(capitalized(extreme(mass, "median non-target mass on training inputs",
                                     names={reference: f"the {reference} teacher"}))
                 + f"; the {reference} teacher's is {number(mass[reference])}.")
    groups = class_groups_text(info)
    if groups:
        auc = dark[dark.split == "test"].set_index("model")["group AUC"]
        above = [v for v in auc.index if v != reference and _direction(auc[v], auc[reference], 3) > 0]
        below = [v for v in auc.index if v != reference and _direction(auc[v], auc[reference], 3) < 0]
        lines.append(f"Group-recovery AUC of {groups} on test: the {reference} teacher's is "
                     f"{number(auc[reference])}; above it: {_names(above, auc)}; below it: {_names(below, auc)}.")
    test = conditions[conditions.split == "test"].set_index("model")
    for variant in [m for m in test.index if m != reference]:
        row, base = test.loc[variant], test.loc[reference]
        lines.append(capitalized(contrast(f"`{variant}`", row, f"the {reference} teacher", base,
                                          [("C1: confidence on easy", "C1, confidence on easy test examples", True),
                                           ("C2: entropy on hard", "C2, entropy on hard test examples", True)])))
    return bullets(lines, f"What this run shows ({ONE_SEED})")


def _names(keys: Sequence[str], values: Mapping[str, float] | None = None) -> str:
    if not len(keys):
        return "none"
    return ", ".join(f"`{k}`" + (f" ({number(values[k])})" if values is not None else "") for k in keys)


# --- chapter 04: the students ---------------------------------------------------

#: The columns of chapter 04's summary table its findings compare.
STUDENT_COLUMNS: tuple[Column, ...] = (
    ("accuracy", "accuracy", True), ("ECE", "ECE", False), ("ECE after TS", "ECE after TS", False),
    ("NLL", "NLL", False), ("shift ECE (mean)", "ECE under corruption", False),
    ("mixture NLL after TS", "mixture NLL after TS", False),
    ("hard-slice NLL after TS", "hard-slice NLL after TS", False))
#: CUD's pieces and variants, compared with KD.
CUD_VARIANTS = ("kd_ts", "dus_kd", "wclip", "cud", "cudp", "cudp_dus", "cudp_xfit")


def student_findings(tables: Mapping[str, pd.DataFrame], checks: pd.DataFrame,
                     groups: Mapping[str, pd.DataFrame] | None = None, seeds: int = 1) -> str:
    """Chapter 04's findings per regime: its regime check, the most accurate
    student, KD against the CE student, and each CUD variant against KD
    (accuracy, calibration before and after each student's own TS, mixture
    and hard-slice NLL after TS); on a long-tailed regime also the few-shot
    classes. ``tables``: chapter 04's summary tables by regime; ``checks``:
    the regime check (index regime); ``groups``: per-group scores by regime
    (columns (metric, group)). Only the regimes of ``tables`` are discussed."""
    out = [(f"*{capitalized(ONE_SEED)}: these are observations of this run, not verdicts (chapter 05 tests them "
            "over seeds).*")]
    for regime, frame in tables.items():
        lines = []
        if regime in checks.index:
            lines.append(regime_sentence(regime, checks.loc[regime]))
        lines.append(capitalized(extreme(frame["accuracy"], "test accuracy")) + ".")
        if "kd" not in frame.index:
            lines.append("No KD student in this regime: nothing to compare with KD.")
        else:
            kd = frame.loc["kd"]
            if "ce" in frame.index:
                lines.append(capitalized(contrast("KD", kd, "the CE student", frame.loc["ce"],
                                                  STUDENT_COLUMNS[:5], seeds)))
            for name in [n for n in CUD_VARIANTS if n in frame.index]:
                lines.append(capitalized(contrast(model_name(name), frame.loc[name], "KD", kd,
                                                  STUDENT_COLUMNS, seeds)))
            if groups and regime in groups:
                lines += _few_shot_lines(groups[regime], seeds)
        out.append(bullets(lines, f"Regime {regime}"))
    return "\n\n".join(out)


def _few_shot_lines(groups: pd.DataFrame, seeds: int) -> list[str]:
    """Each CUD variant against KD on the few-shot classes (columns (metric, group))."""
    if ("accuracy", "few") not in groups.columns or "kd" not in groups.index:
        return []
    few = groups.xs("few", axis=1, level="group")
    columns = (("accuracy", "few-shot accuracy", True), ("ece", "few-shot ECE", False),
               ("nll", "few-shot NLL", False))
    lines = []
    if "ce" in few.index:
        lines.append(capitalized(contrast("KD", few.loc["kd"], "the CE student", few.loc["ce"], columns, seeds)))
    for name in [n for n in CUD_VARIANTS if n in few.index]:
        lines.append(capitalized(contrast(model_name(name), few.loc[name], "KD", few.loc["kd"], columns, seeds)))
    return lines

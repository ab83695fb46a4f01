"""Verdicts on the paper's claims (brief section 1) from a batch's runs.

Each claim is tested by a few *comparisons*: model A against model B on one
metric, in one regime and condition, with the direction that would support
the claim. A comparison's outcome is read from the paired t-interval of
A - B over seeds (``calibkd.runs.results.paired_differences``): ``supports`` or
``contradicts`` when the interval excludes zero on that side, ``within
noise`` when it contains zero, ``not tested`` with fewer than two seeds. A
claim is ``supported`` when some comparisons support it and none contradicts
it, ``not supported`` when some contradict it and none supports it,
``mixed`` when both happen, and ``not supported (within noise)`` when no
difference exceeds the noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from calibkd.config import dataset_info
from calibkd.errors import ConfigError
from calibkd.io import load_yaml
from calibkd.runs.results import (
    collect,
    finished_runs,
    paired_differences,
    welch_interval,
)

SHIFT_MEAN = "corruption_mean (severities 1-5)"
#: Runs whose test split is itself shifted (glyphs: held-out fonts) also
#: score in-distribution inputs (the ``in_distribution`` condition); their
#: batch tables then carry the held-out test's scores under this name, and
#: the change from in-distribution to held-out under the next.
NATURAL_SHIFT = "held-out test (natural shift)"
NATURAL_SHIFT_CHANGE = "natural shift: held-out - in distribution"


@dataclass(frozen=True)
class Comparison:
    """model - baseline on ``metric``; ``supports_if`` "lower" or "higher"."""

    claim: str
    regime: str
    model: str
    baseline: str
    metric: str
    where: str  # a split of the metrics tables, or a condition of the shift tables
    supports_if: str
    note: str = ""


def batch_table(table: pd.DataFrame) -> pd.DataFrame:
    """The stacked runs of notebook 04 as one frame with a ``where`` column
    (split or condition), plus each run's mean over corruptions and severities 1-5."""
    frame = table.copy()
    if "regime" not in frame.columns:
        frame["regime"] = "default"
    split = frame["split"] if "split" in frame.columns else pd.Series(pd.NA, index=frame.index)
    condition = frame["condition"] if "condition" in frame.columns else pd.Series(pd.NA, index=frame.index)
    frame["where"] = split.fillna(condition)
    if "severity" not in frame.columns:
        frame["severity"] = pd.NA
    shifted = frame[(frame["where"] == "corruption_mean") & (frame["severity"].fillna(0) > 0)]
    keys = [c for c in frame.columns if c not in ("value", "severity", "where", "split", "condition", "table")]
    mean = shifted.groupby(keys, dropna=False)["value"].mean().reset_index().assign(where=SHIFT_MEAN, severity=0)
    natural = _natural_shift_rows(frame, keys)
    frame = pd.concat([frame, mean, *natural], ignore_index=True)
    frame["severity"] = frame["severity"].fillna(0).astype(int)  # tables without severities: 0 (clean)
    keep = [c for c in frame.columns if c not in ("split", "condition", "table")]
    return frame[keep]


def _natural_shift_rows(frame: pd.DataFrame, keys: list[str]) -> list[pd.DataFrame]:
    """Per run, model and metric with an ``in_distribution`` score: the clean
    (held-out) test score as ``NATURAL_SHIFT`` and its change from the
    in-distribution score as ``NATURAL_SHIFT_CHANGE``; none otherwise."""
    seen = frame[frame["where"] == "in_distribution"]
    if seen.empty:
        return []
    held = frame[frame["where"] == "clean"]
    merged = held[keys + ["value"]].merge(seen[keys + ["value"]], on=keys, suffixes=("", "_seen"))
    return [merged[keys + ["value"]].assign(where=NATURAL_SHIFT, severity=0),
            merged[keys].assign(value=merged["value"] - merged["value_seen"], where=NATURAL_SHIFT_CHANGE,
                                severity=0)]


def _outcome(row: pd.Series, supports_if: str) -> str:
    if row["n"] < 2 or pd.isna(row["ci_low"]):
        return "not tested"
    if row["ci_high"] < 0:
        return "supports" if supports_if == "lower" else "contradicts"
    if row["ci_low"] > 0:
        return "supports" if supports_if == "higher" else "contradicts"
    return "within noise"


def evaluate(table: pd.DataFrame, comparisons: list[Comparison], replicate: str = "seed") -> pd.DataFrame:
    """One row per comparison: n, mean difference, 95 % interval, outcome."""
    rows = []
    for baseline in sorted({c.baseline for c in comparisons}):
        subset = table[table["severity"].fillna(0) == 0]
        if baseline not in set(subset["model"]):
            continue
        paired = paired_differences(subset.drop(columns=["severity"]), reference=baseline, replicate=replicate)
        for c in (c for c in comparisons if c.baseline == baseline):
            hit = paired[(paired["model"] == c.model) & (paired["metric"] == c.metric)
                         & (paired["where"] == c.where) & (paired["regime"] == c.regime)]
            if hit.empty:
                continue
            row = hit.iloc[0]
            rows.append({"claim": c.claim, "regime": c.regime, "comparison": f"{c.model} - {c.baseline}",
                         "metric": c.metric, "where": c.where, "supports if": c.supports_if, "n": int(row["n"]),
                         "difference": row["mean"], "ci_low": row["ci_low"], "ci_high": row["ci_high"],
                         "outcome": _outcome(row, c.supports_if), "note": c.note})
    return pd.DataFrame(rows)


def verdict(outcomes: pd.Series) -> str:
    """A claim's verdict from its comparisons' outcomes (see the module docstring)."""
    tested = outcomes[outcomes != "not tested"]
    if tested.empty:
        return "not tested"
    supports, contradicts = (tested == "supports").any(), (tested == "contradicts").any()
    if supports and contradicts:
        return "mixed"
    if supports:
        return "supported"
    if contradicts:
        return "not supported"
    return "not supported (within noise)"


def default_comparisons(regimes: list[str]) -> list[Comparison]:
    """The comparisons chapter 05 uses for C-collapse, C-shift and C-cud, per regime."""
    out: list[Comparison] = []
    for regime in regimes:
        # C-collapse: if the CE teacher's targets carried little beyond the label, KD would not beat CE
        for metric, better in (("accuracy", "lower"), ("nll", "higher")):
            out.append(Comparison("C-collapse", regime, "kd", "ce", metric, "test", better,
                                  "KD from the CE teacher vs labels alone"))
        # C-shift: calibrated targets should give students better calibrated under shift
        for model in ("kd_ts", "cudp", "cud"):
            out.append(Comparison("C-shift", regime, model, "kd", "ece", SHIFT_MEAN, "lower",
                                  "calibrated target vs KD, mean ECE over corruptions"))
            # only where the runs hold a natural shift (glyphs: held-out fonts); absent rows are skipped
            out.append(Comparison("C-shift", regime, model, "kd", "ece", NATURAL_SHIFT, "lower",
                                  "calibrated target vs KD, ECE on held-out fonts (natural shift)"))
        # C-cud: full CUD vs KD on accuracy, shift, ambiguity
        for metric, where, better in (("accuracy", "test", "higher"), ("ece", "test", "lower"),
                                      ("ece", SHIFT_MEAN, "lower"), ("soft_nll", "mixture_0.5", "lower"),
                                      ("nll", "hard_slice", "lower")):
            out.append(Comparison("C-cud", regime, "cud", "kd", metric, where, better, "full CUD vs KD"))
    return out


#: The class groups of a long-tailed training set, as the ``where`` of chapter 04's tables.
LONG_TAIL_GROUPS = ("many", "medium", "few")


def group_where(group: str) -> str:
    """Where chapter 04 records a class group's test scores."""
    return f"test, {group}-shot classes"


def long_tail_comparisons(regime: str = "long_tail") -> list[Comparison]:
    """C-cud on long-tail inputs: calibrated or uncertainty-shaped targets vs
    KD on the test examples of the *few-shot* classes (the rare ones in the
    teacher's and student's training set)."""
    out: list[Comparison] = []
    for model in ("cud", "cudp", "cudp_xfit", "kd_ts"):
        for metric, better in (("accuracy", "higher"), ("ece", "lower"), ("nll", "lower")):
            out.append(Comparison("C-cud (long tail)", regime, model, "kd", metric, group_where("few"), better,
                                  "few-shot classes of a 100:1 long-tailed training set"))
    return out


def batch_root(batch: str, runs_root: Path) -> Path:
    """A batch folder by name (under ``runs_root``) or path; a clear error if it has no finished runs."""

    root = Path(batch) if Path(batch).is_absolute() else runs_root / batch
    if not root.is_dir():
        known = sorted(p.name for p in runs_root.iterdir() if (p / "batch.yaml").is_file()) if runs_root.is_dir() else []
        raise ConfigError(f"batch folder {root} does not exist; batches: {known}")
    if not finished_runs(root):
        raise ConfigError(f"batch {root.name} has no finished runs; run `python -m calibkd.runs run {root}` first")
    return root


#: The batch of chapter 04 on a high-cardinality dataset (183 glyph classes)
#: that chapter 05 reads next to its main batch for C-cardinality.
CARDINALITY_BATCH = "glyphs-central"


def batch_datasets(root: Path) -> set[str]:
    """The datasets of a batch's finished runs (none for a folder that does not exist)."""

    if not Path(root).is_dir():
        return set()
    return {_run_dataset(folder) for folder in finished_runs(root)}


def _run_dataset(folder: Path) -> str:
    """The dataset a finished run used (its recorded parameters)."""
    record = load_yaml((folder / "parameters.yaml").read_text())
    return record["parameters"].get("dataset", "fashion_mnist")


#: C-cardinality's contrasts, per regime: (model, baseline, metric, which
#: sign of "effect on the high-cardinality dataset minus effect on the low one"
#: supports the claim). If overconfident targets hurt most with many classes,
#: KD gains less over labels alone there (KD - CE NLL is higher), and
#: calibrating or reshaping the target helps more there (ECE and NLL fall
#: further, accuracy rises further).
CARDINALITY_CONTRASTS: tuple[tuple[str, str, str, str], ...] = (
    ("kd", "ce", "nll", "higher"),
    ("kd_ts", "kd", "ece", "lower"),
    ("kd_ts", "kd", "nll", "lower"),
    ("cudp", "kd", "ece", "lower"),
    ("cud", "kd", "ece", "lower"),
    ("cud", "kd", "accuracy", "higher"),
)


def seed_effects(table: pd.DataFrame, model: str, baseline: str, metric: str, regime: str,
                 where: str = "test", replicate: str = "seed") -> pd.Series:
    """model - baseline on ``metric`` within each seed (a batch table of one dataset)."""
    rows = table[(table["where"] == where) & (table["metric"] == metric) & (table["regime"] == regime)
                 & (table["severity"].fillna(0) == 0)]
    wide = rows.pivot_table(index=replicate, columns="model", values="value", aggfunc="first")
    if model not in wide.columns or baseline not in wide.columns:
        return pd.Series(dtype=float)
    return (wide[model] - wide[baseline]).dropna()


def cardinality_evidence(low: pd.DataFrame, high: pd.DataFrame, low_name: str, high_name: str) -> pd.DataFrame:
    """One row per regime and contrast: the per-seed effect on each dataset,
    and Welch's interval of (high - low), with its outcome for C-cardinality.
    Effects are absolute (accuracy points, ECE, nats), the same units on both
    datasets."""

    rows = []
    for regime in sorted(set(low["regime"]) & set(high["regime"])):
        for model, baseline, metric, better in CARDINALITY_CONTRASTS:
            a = seed_effects(high, model, baseline, metric, regime)
            b = seed_effects(low, model, baseline, metric, regime)
            if a.empty or b.empty:
                continue
            diff, lo, hi, _ = welch_interval(a.to_numpy(), b.to_numpy())
            interval = pd.Series({"n": min(len(a), len(b)), "ci_low": lo, "ci_high": hi})
            rows.append({"claim": "C-cardinality", "regime": regime, "comparison": f"{model} - {baseline}",
                         "metric": metric, f"effect ({high_name})": float(a.mean()),
                         f"effect ({low_name})": float(b.mean()), "difference": diff, "ci_low": lo, "ci_high": hi,
                         "supports if": better, "outcome": _outcome(interval, better)})
    return pd.DataFrame(rows)


def _dataset_tables(roots: Sequence[Path]) -> dict[str, pd.DataFrame]:
    """Each dataset's stacked batch table, from the runs of every batch in ``roots``."""

    tables: dict[str, list[pd.DataFrame]] = {}
    for root in roots:
        if not Path(root).is_dir() or not finished_runs(root):
            continue
        runs = collect(root)
        for folder in finished_runs(root):
            part = runs[runs["run_id"] == folder.name] if "run_id" in runs.columns else runs.iloc[0:0]
            if not part.empty:
                tables.setdefault(_run_dataset(folder), []).append(part)
    return {d: batch_table(pd.concat(parts, ignore_index=True)) for d, parts in tables.items()}


def cardinality_verdict(roots: Path | Sequence[Path]) -> dict[str, str]:
    """C-cardinality needs the same comparison on a low- and a high-cardinality
    dataset (>= 100 classes), from one batch or several (e.g. the main batch
    and ``CARDINALITY_BATCH``; a batch without finished runs adds nothing);
    says what the batches hold."""
    roots = [Path(roots)] if isinstance(roots, (str, Path)) else [Path(r) for r in roots]
    found = [batch_datasets(root) for root in roots]
    datasets = set().union(*found)
    where = "the batch" if sum(bool(d) for d in found) <= 1 else "the batches"
    high = sorted(d for d in datasets if dataset_info(d).num_classes >= 100)
    low = sorted(d for d in datasets if dataset_info(d).num_classes < 100)
    if not high:
        reason = f"not tested: no dataset with >= 100 classes in {where} ({', '.join(sorted(datasets))})"
    elif not low:
        reason = f"not tested: no dataset with < 100 classes next to {', '.join(high)} in {where}"
    else:
        tables = _dataset_tables(roots)
        evidence = (cardinality_evidence(tables[low[0]], tables[high[0]], low[0], high[0])
                    if low[0] in tables and high[0] in tables else pd.DataFrame())
        if evidence.empty:
            reason = f"not tested: no contrast of chapter 04 is in the runs of both {high[0]} and {low[0]}"
        else:
            reason = f"{verdict(evidence['outcome'])} ({high[0]} vs {low[0]}, {len(evidence)} contrasts)"
    return {"claim": "C-cardinality", "regime": "all", "verdict": reason}

"""Pre-registered claims (brief sections 1 and 7) and their verdicts from a batch's runs.

A :class:`Claim` is named before the runs are read: its parts, each part's
comparisons (model - baseline on one metric and ``where``, with the direction
that supports the claim) and a sentence saying what would have falsified it.
A *primary* comparison must support the claim (against KD, or for
C-collapse against the CE student); a *guard* must not contradict it (the
same metric against the labels-only CE student: the method must not be worse
than it beyond noise).

Within each claim, p-values of the paired t-test over seeds are Holm-adjusted
(family-wise ``alpha``, 5 % by default). A comparison *supports* or
*contradicts* when its Holm-adjusted p < alpha (by the sign of the mean
difference), is *within noise* otherwise, *not tested* with < 2 seeds. A part
is supported when every primary supports and no guard contradicts; a claim
when every part is. Verdicts: ``VERDICTS``. The rule in full: docs/metrics.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from calibkd.config import dataset_info
from calibkd.errors import ConfigError
from calibkd.runs.results import collect, finished_runs, paired_differences, recorded_parameters

SHIFT_MEAN = "corruption_mean (severities 1-5)"
#: Runs whose test split is itself shifted (glyphs: held-out fonts) also
#: score in-distribution inputs (the ``in_distribution`` condition); their
#: batch tables then carry the held-out test's scores under this name, and
#: the change from in-distribution to held-out under the next.
NATURAL_SHIFT = "held-out test (natural shift)"
NATURAL_SHIFT_CHANGE = "natural shift: held-out - in distribution"
#: The suffix of a ``where`` whose rows score each student after its own
#: temperature scaling (e.g. "test after TS"), where chapter 04 writes them.
AFTER_TS = " after TS"
#: Metrics that temperature scaling changes: read after TS where the switch is on.
TS_METRICS = frozenset({"ece", "nll", "soft_nll", "brier", "adaptive_ece", "classwise_ece"})

ROLES = ("primary", "guard")
DIRECTIONS = ("lower", "higher")
OUTCOMES = ("supports", "contradicts", "within noise", "not tested")
#: A part's or a claim's verdict: every part holds / some part fails / a
#: primary comparison is significant in the wrong direction / too few seeds.
VERDICTS = ("supported", "not supported", "contradicted", "not tested")
FAMILY_ALPHA = 0.05
KD, CE = "kd", "ce"
_NAMES = {KD: "KD", CE: "the CE student"}


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < alpha < 1.0:
        raise ConfigError(f"family-wise alpha={alpha!r} must lie strictly between 0 and 1 (e.g. 0.05)")
    return float(alpha)


@dataclass(frozen=True)
class Comparison:
    """model - baseline on ``metric`` at ``where`` (a split or condition of the
    batch table); ``supports_if`` "lower" or "higher"; ``role`` "primary" or
    "guard". ``after_ts``: read ``where + AFTER_TS`` rows where the batch has
    them. ``required=False``: left out (not "not tested") where the batch has
    no rows for it (e.g. ``NATURAL_SHIFT`` on a dataset without one)."""

    model: str
    baseline: str
    metric: str
    where: str
    supports_if: str
    role: str = "primary"
    after_ts: bool = False
    required: bool = True
    note: str = ""

    def __post_init__(self) -> None:
        if self.supports_if not in DIRECTIONS:
            raise ConfigError(f"supports_if={self.supports_if!r} must be one of {DIRECTIONS}")
        if self.role not in ROLES:
            raise ConfigError(f"role={self.role!r} must be one of {ROLES}")
        if self.model == self.baseline:
            raise ConfigError(f"a comparison of {self.model!r} with itself")

    @property
    def label(self) -> str:
        return f"{self.model} - {self.baseline}"


@dataclass(frozen=True)
class Part:
    """One part of a claim: a name (e.g. "accuracy") and its comparisons."""

    name: str
    comparisons: tuple[Comparison, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "comparisons", tuple(self.comparisons))
        if not self.comparisons:
            raise ConfigError(f"part {self.name!r} has no comparisons")


@dataclass(frozen=True)
class Claim:
    """A claim in one regime, decided by its parts at family-wise ``alpha``.
    ``guarded``: every primary comparison against KD needs its guard twin
    against the CE student (off only for C-cardinality's cross-dataset contrasts)."""

    name: str
    regime: str
    statement: str
    falsified_by: str
    parts: tuple[Part, ...]
    alpha: float = FAMILY_ALPHA
    guarded: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", tuple(self.parts))
        object.__setattr__(self, "alpha", _check_alpha(self.alpha))
        if not self.falsified_by.strip():
            raise ConfigError(f"claim {self.name!r} does not say what would falsify it")
        if not self.parts:
            raise ConfigError(f"claim {self.name!r} has no parts")
        names = [p.name for p in self.parts]
        if len(set(names)) != len(names):
            raise ConfigError(f"claim {self.name!r} has two parts of one name: {names}")
        if not any(c.role == "primary" for c in self.comparisons):
            raise ConfigError(f"claim {self.name!r} has no primary comparison")
        for part in self.parts if self.guarded else ():
            keys = {(c.model, c.metric, c.where, c.baseline) for c in part.comparisons if c.role == "guard"}
            for c in part.comparisons:
                if c.role == "primary" and c.baseline == KD and (c.model, c.metric, c.where, CE) not in keys:
                    raise ConfigError(f"claim {self.name!r}, part {part.name!r}: {c.label} on {c.metric} at "
                                      f"{c.where!r} has no guard against the CE student")

    @property
    def comparisons(self) -> tuple[Comparison, ...]:
        return tuple(c for p in self.parts for c in p.comparisons)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN): with the m p-values
    sorted, p_(i) becomes max_{j <= i} min(1, (m - j + 1) p_(j))."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m, running = len(valid), 0.0
    for rank, i in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def _t_p(mean: float, se: float, dof: float) -> float:
    """Two-sided p-value of mean / se under Student's t with ``dof``."""
    if se == 0 or np.isinf(dof):
        return 0.0 if mean != 0 else 1.0
    return float(2 * stats.t.sf(abs(mean) / se, dof))


def _interval(mean: float, se: float, dof: float, level: float) -> tuple[float, float]:
    half = 0.0 if se == 0 else float(stats.t.ppf((1 + level) / 2, dof) * se)
    return mean - half, mean + half


def _outcome(mean: float, p_holm: float, supports_if: str, alpha: float) -> str:
    if np.isnan(p_holm):
        return "not tested"
    if p_holm >= alpha:
        return "within noise"
    return "supports" if (mean < 0) == (supports_if == "lower") else "contradicts"


EVIDENCE_COLUMNS = ["claim", "regime", "part", "role", "comparison", "metric", "where", "supports if", "n",
                    "difference", "ci_low", "ci_high", "m", "bonferroni_low", "bonferroni_high", "p", "p_holm",
                    "outcome", "note"]


def _decide(family: list[dict], alpha: float) -> list[dict]:
    """Holm within one claim's family; outcomes, 95 % and Bonferroni (1 - alpha/m) intervals."""
    tested = [r for r in family if r["n"] >= 2 and not np.isnan(r["p"])]
    m = len(tested)
    for row, q in zip(tested, holm([r["p"] for r in tested])):
        row["p_holm"], row["m"] = float(q), m
        row["ci_low"], row["ci_high"] = _interval(row["difference"], row["se"], row["dof"], 0.95)
        row["bonferroni_low"], row["bonferroni_high"] = _interval(row["difference"], row["se"], row["dof"],
                                                                  1 - alpha / m)
    for row in family:
        row.setdefault("m", m)
        row["outcome"] = _outcome(row["difference"], row.get("p_holm", np.nan), row["supports if"], alpha)
    return family


def _row(claim: Claim, part: Part, c: Comparison, where: str, n: int, mean: float, se: float, dof: float) -> dict:
    p = _t_p(mean, se, dof) if n >= 2 and not np.isnan(se) else np.nan
    return {"claim": claim.name, "regime": claim.regime, "part": part.name, "role": c.role, "comparison": c.label,
            "metric": c.metric, "where": where, "supports if": c.supports_if, "n": n, "difference": mean,
            "ci_low": np.nan, "ci_high": np.nan, "bonferroni_low": np.nan, "bonferroni_high": np.nan,
            "p": p, "p_holm": np.nan, "se": se, "dof": dof, "note": c.note}


def _evidence_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=EVIDENCE_COLUMNS)


def evaluate(table: pd.DataFrame, claims: Sequence[Claim], replicate: str = "seed") -> pd.DataFrame:
    """One row per comparison of each claim (``EVIDENCE_COLUMNS``): n, mean
    paired difference over seeds, its 95 % and Bonferroni intervals, the
    t-test's p-value, Holm's adjusted p-value in the claim's family, outcome."""
    clean = table[table["severity"].fillna(0) == 0].drop(columns=["severity"])
    models = set(clean["model"].dropna())
    paired: dict[str, pd.DataFrame] = {}
    for baseline in sorted({c.baseline for claim in claims for c in claim.comparisons} & models):
        paired[baseline] = paired_differences(clean, reference=baseline, replicate=replicate)
    rows: list[dict] = []
    for claim in claims:
        family = []
        for part in claim.parts:
            for c in part.comparisons:
                diffs = paired.get(c.baseline)
                hit, where = pd.DataFrame(), c.where
                if diffs is not None:
                    pick = diffs[(diffs["model"] == c.model) & (diffs["metric"] == c.metric)
                                 & (diffs["regime"] == claim.regime)]
                    after = pick[pick["where"] == c.where + AFTER_TS]
                    hit, where = (after, c.where + AFTER_TS) if c.after_ts and not after.empty else \
                        (pick[pick["where"] == c.where], c.where)
                if hit.empty:
                    if c.required:
                        family.append(_row(claim, part, c, where, 0, np.nan, np.nan, np.nan))
                    continue
                r = hit.iloc[0]
                n = int(r["n"])
                se = float(r["std"]) / np.sqrt(n) if n >= 2 else np.nan
                family.append(_row(claim, part, c, where, n, float(r["mean"]), se, n - 1))
        rows.extend(_decide(family, claim.alpha))
    return _evidence_frame(rows)


def _part_verdict(rows: pd.DataFrame) -> tuple[str, str]:
    """(verdict, reason) of one part from its comparisons' outcomes."""
    if rows.empty:
        return "not tested", "no rows in the batch"
    primary, guard = rows[rows["role"] == "primary"], rows[rows["role"] == "guard"]
    if (primary["outcome"] == "contradicts").any():
        return "contradicted", "the opposite beyond noise"
    reasons = ["within noise"] if (primary["outcome"] == "within noise").any() else []
    worse = guard[guard["outcome"] == "contradicts"]
    if not worse.empty:
        names = [_NAMES.get(b, b) for b in dict.fromkeys(c.split(" - ", 1)[1] for c in worse["comparison"])]
        reasons.append("worse than " + " and ".join(names))
    if reasons:
        return "not supported", ", ".join(reasons)
    if (rows["outcome"] == "not tested").any():
        return "not tested", "missing from the batch" if (rows["n"] == 0).any() else "fewer than 2 seeds"
    return "supported", ""


def claim_verdict(claim: Claim, evidence: pd.DataFrame) -> tuple[str, str]:
    """(verdict, detail) of a claim from its rows of ``evaluate``: the worst of
    its parts (contradicted, not supported, not tested, supported in that
    order); the detail names which parts hold and which do not, and why."""
    mine = evidence[(evidence["claim"] == claim.name) & (evidence["regime"] == claim.regime)]
    parts = [(p.name, *_part_verdict(mine[mine["part"] == p.name])) for p in claim.parts]
    words = {w for _, w, _ in parts}
    word = next(w for w in ("contradicted", "not supported", "not tested", "supported") if w in words)
    if len(parts) == 1:
        return word, parts[0][2]
    if word == "supported":
        return word, "every part holds"
    if words == {"not tested"}:
        return word, ", ".join(dict.fromkeys(why for _, _, why in parts))
    held = [name for name, w, _ in parts if w == "supported"]
    failed = [f"{name} ({why})" for name, w, why in parts if w in ("contradicted", "not supported")]
    untested = [name for name, w, _ in parts if w == "not tested"]
    bits = ([f"holds for {', '.join(held)}"] if held else []) + ([f"fails for {', '.join(failed)}"] if failed else [])
    return word, "; ".join(bits + ([f"not tested for {', '.join(untested)}"] if untested else []))


VERDICT_COLUMNS = ["claim", "regime", "verdict", "detail"]


#: Regimes whose claims only count when every run's regime check (chapter 04,
#: ``calibkd.evaluation.regime``) gave that class: a claim about
#: overconfident teachers needs a teacher that is overconfident, and right,
#: on the inputs its students distill from (brief section 3b).
REGIME_REQUIREMENTS = {"overconfident": "overconfident"}
#: Where chapter 04's tables carry the regime check.
REGIME_CHECK = "regime check"


def regime_check_status(table: pd.DataFrame, regime: str) -> tuple[bool, str]:
    """(passes, why not) for ``regime`` in a batch table: every run must carry
    a regime check, and every check must give the class the regime requires
    (``REGIME_REQUIREMENTS``); other regimes pass."""
    required = REGIME_REQUIREMENTS.get(regime)
    if required is None:
        return True, ""
    rows = table[(table["where"] == REGIME_CHECK) & (table["regime"] == regime) & (table["metric"] == required)]
    if rows.empty:
        return False, f"the runs carry no regime check (made before it existed): not evidence about {required} teachers"
    runs = table[table["regime"] == regime]["run_id"].nunique()
    failed = int((rows["value"] < 1).sum()) or runs - rows["run_id"].nunique()  # failed checks, else missing ones
    if failed:
        return False, (f"the regime check did not find the teacher {required} on the students' views in "
                       f"{failed} of {runs} runs")
    return True, ""


def verdicts(claims: Sequence[Claim], evidence: pd.DataFrame, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per claim: claim, regime, verdict (one of ``VERDICTS``) and its
    detail. With the batch ``table``, a claim in a regime of
    ``REGIME_REQUIREMENTS`` whose regime check fails (or is missing) is
    "not tested", whatever its comparisons say."""
    rows = []
    for c in claims:
        verdict, detail = claim_verdict(c, evidence)
        if table is not None:
            passes, why = regime_check_status(table, c.regime)
            if not passes:
                verdict, detail = "not tested", f"{why} (the comparisons alone: {verdict_text(verdict, detail)})"
        rows.append({"claim": c.name, "regime": c.regime, "verdict": verdict, "detail": detail})
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def verdict_text(verdict: str, detail: str) -> str:
    """'verdict: detail' (the verdict alone without a detail)."""
    return f"{verdict}: {detail}" if isinstance(detail, str) and detail else verdict


def format_evidence(evidence: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """A claim's evidence for display: intervals as '[low, high]' strings."""
    def interval(low: float, high: float) -> str:
        return "" if pd.isna(low) else f"[{low:+.{digits}f}, {high:+.{digits}f}]"
    effects = [c for c in evidence.columns if c.startswith("effect (")]  # C-cardinality's per-dataset effects
    out = evidence[["part", "role", "comparison", "metric", "where", "supports if", *effects, "n"]].copy()
    out[effects] = out[effects].round(digits)
    out["difference"] = evidence["difference"].map(lambda v: "" if pd.isna(v) else f"{v:+.{digits}f}")
    out["95 % interval"] = [interval(lo, hi) for lo, hi in zip(evidence["ci_low"], evidence["ci_high"])]
    out["Bonferroni interval"] = [interval(lo, hi) for lo, hi in
                                  zip(evidence["bonferroni_low"], evidence["bonferroni_high"])]
    out["p"] = evidence["p"].round(4)
    out["Holm p"] = evidence["p_holm"].round(4)
    out["outcome"] = evidence["outcome"]
    return out.reset_index(drop=True)


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


# --- the study's claims -------------------------------------------------------

def _twin(model: str, metric: str, where: str, better: str, after_ts: bool, required: bool = True,
          note: str = "") -> tuple[Comparison, Comparison]:
    """A primary comparison against KD and its guard against the CE student."""
    ts = after_ts and metric in TS_METRICS
    return (Comparison(model, KD, metric, where, better, "primary", ts, required, note),
            Comparison(model, CE, metric, where, better, "guard", ts, required, note))


def collapse_claims(regimes: Sequence[str], alpha: float = FAMILY_ALPHA) -> list[Claim]:
    """C-collapse per regime: KD's student against the CE student (no guard:
    the claim is about KD itself, so its baseline is the labels-only student).
    Read before temperature scaling: the student's inherited overconfidence
    is the effect the claim is about, and TS would remove it by construction."""
    return [Claim("C-collapse", regime,
                  "A CE teacher's targets collapse onto the label, so KD from it gives a student no better than "
                  "the labels-only (CE) student: less accurate, with a higher test NLL.",
                  "The KD student is more accurate than the CE student, or has a lower test NLL, beyond noise.",
                  (Part("accuracy", (Comparison("kd", CE, "accuracy", "test", "lower"),)),
                   Part("NLL", (Comparison("kd", CE, "nll", "test", "higher"),))), alpha)
            for regime in regimes]


#: The calibrated-target students of C-shift, one part each.
SHIFT_MODELS = ("kd_ts", "cudp", "cud")


def shift_claims(regimes: Sequence[str], alpha: float = FAMILY_ALPHA, after_ts: bool = True) -> list[Claim]:
    """C-shift per regime: one part per calibrated-target student, its ECE
    under corruption (and on held-out fonts where the batch has them) against KD."""
    out = []
    for regime in regimes:
        parts = tuple(Part(model, _twin(model, "ece", SHIFT_MEAN, "lower", after_ts,
                                        note="mean ECE over corruptions, severities 1-5")
                           + _twin(model, "ece", NATURAL_SHIFT, "lower", after_ts, required=False,
                                   note="ECE on held-out fonts (natural shift)"))
                      for model in SHIFT_MODELS)
        out.append(Claim("C-shift", regime,
                         "Students of a calibrated target (KD-TS, CUD-P and full CUD, each a part) are better "
                         "calibrated under shift than KD's student, and no worse than the CE student.",
                         "A calibrated-target student whose ECE under shift is higher than KD's beyond noise.",
                         parts, alpha))
    return out


def cud_claims(regimes: Sequence[str], alpha: float = FAMILY_ALPHA, after_ts: bool = True) -> list[Claim]:
    """C-cud per regime: full CUD against KD on accuracy, calibration, shift
    calibration and ambiguity, each with its guard against the CE student."""
    parts = (("accuracy", (("accuracy", "test", "higher"),)),
             ("calibration", (("ece", "test", "lower"),)),
             ("shift calibration", (("ece", SHIFT_MEAN, "lower"),)),
             ("ambiguity", (("soft_nll", "mixture_0.5", "lower"), ("nll", "hard_slice", "lower"))))
    return [Claim("C-cud", regime,
                  "Full CUD gives a student more accurate, better calibrated in distribution and under shift, "
                  "and better on ambiguous inputs than KD's student, and no worse than the CE student.",
                  "The CUD student is less accurate, worse calibrated, or worse on ambiguous inputs than KD's "
                  "student beyond noise.",
                  tuple(Part(name, tuple(c for metric, where, better in spec
                                         for c in _twin("cud", metric, where, better, after_ts)))
                        for name, spec in parts), alpha)
            for regime in regimes]


def study_claims(regimes: Sequence[str], alpha: float = FAMILY_ALPHA, after_ts: bool = True) -> list[Claim]:
    """C-collapse, C-shift and C-cud in each regime of a batch of chapter 04.
    ``after_ts``: C-shift and C-cud compare calibration metrics after each
    student's own temperature scaling where the batch has those rows (brief
    section 7: an advantage that TS gives for free is no gain)."""
    return [*collapse_claims(regimes, alpha), *shift_claims(regimes, alpha, after_ts),
            *cud_claims(regimes, alpha, after_ts)]


#: The class groups of a long-tailed training set, as the ``where`` of chapter 04's tables.
LONG_TAIL_GROUPS = ("many", "medium", "few")
#: The students tested on the long tail: full CUD (the claim), then, each as a
#: claim of its own, the pieces and the calibrated-target baseline.
LONG_TAIL_MODELS = ("cud", "cudp", "cudp_xfit", "kd_ts")


def group_where(group: str) -> str:
    """Where chapter 04 records a class group's test scores."""
    return f"test, {group}-shot classes"


def long_tail_claims(regime: str = "long_tail", models: Sequence[str] = LONG_TAIL_MODELS,
                     alpha: float = FAMILY_ALPHA, after_ts: bool = True) -> list[Claim]:
    """C-cud on long-tail inputs, one claim per model ("C-cud (long tail)" for
    full CUD, "C-cud (long tail, <model>)" otherwise): more accurate and better
    calibrated (ECE, NLL) on the few-shot classes than KD (primary, with CE
    guards), and not worse beyond noise than KD or the CE student on the
    many- and medium-shot classes or the whole test set (guards only)."""
    metrics = (("accuracy", "higher"), ("ece", "lower"), ("nll", "lower"))
    few = group_where("few")
    out = []
    for model in models:
        name = "C-cud (long tail)" if model == "cud" else f"C-cud (long tail, {model})"
        parts = [Part("few-shot accuracy", _twin(model, "accuracy", few, "higher", after_ts)),
                 Part("few-shot calibration", _twin(model, "ece", few, "lower", after_ts)
                      + _twin(model, "nll", few, "lower", after_ts))]
        for part, where in (("many-shot classes", group_where("many")), ("medium-shot classes", group_where("medium")),
                            ("whole test set", "test")):
            parts.append(Part(part, tuple(Comparison(model, baseline, metric, where, better, "guard",
                                                     after_ts and metric in TS_METRICS)
                                          for metric, better in metrics for baseline in (KD, CE))))
        out.append(Claim(name, regime,
                         f"On a long-tailed training set, {model}'s student is more accurate and better calibrated "
                         "on the few-shot classes than KD's, and no worse than KD's or the CE student on the "
                         "many- and medium-shot classes or on the whole test set.",
                         f"{model}'s student is less accurate or worse calibrated than KD's on the few-shot "
                         "classes beyond noise.", tuple(parts), alpha))
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
    return recorded_parameters(folder).get("dataset", "fashion_mnist")


#: C-cardinality's contrasts, per regime: (part, model, baseline, metric,
#: which sign of "effect on the high-cardinality dataset minus effect on the
#: low one" supports the claim). If overconfident targets hurt most with many
#: classes, KD gains less over labels alone there (KD - CE NLL is higher), and
#: calibrating or reshaping the target helps more there (ECE and NLL fall
#: further, accuracy rises further).
CARDINALITY_CONTRASTS: tuple[tuple[str, str, str, str, str], ...] = (
    ("KD's cost", "kd", "ce", "nll", "higher"),
    ("calibrated target", "kd_ts", "kd", "ece", "lower"),
    ("calibrated target", "kd_ts", "kd", "nll", "lower"),
    ("calibrated target", "cudp", "kd", "ece", "lower"),
    ("CUD", "cud", "kd", "ece", "lower"),
    ("CUD", "cud", "kd", "accuracy", "higher"),
)


def cardinality_claims(regimes: Sequence[str], alpha: float = FAMILY_ALPHA) -> list[Claim]:
    """C-cardinality per regime: each of ``CARDINALITY_CONTRASTS`` is a primary
    comparison of per-seed effects across two datasets (Welch) on the plain
    test rows, grouped in three parts; no guard (each effect is already a
    difference between two students)."""
    out = []
    for regime in regimes:
        grouped: dict[str, list[Comparison]] = {}
        for part, model, baseline, metric, better in CARDINALITY_CONTRASTS:
            grouped.setdefault(part, []).append(
                Comparison(model, baseline, metric, "test", better))
        out.append(Claim("C-cardinality", regime,
                         "Overconfident targets cost more, and calibrating or reshaping them gains more, with many "
                         "classes (>= 100) than with few: each effect is larger on the high-cardinality dataset.",
                         "An effect that is smaller on the high-cardinality dataset than on the low one beyond "
                         "noise.", tuple(Part(name, tuple(cs)) for name, cs in grouped.items()), alpha, guarded=False))
    return out


def seed_effects(table: pd.DataFrame, model: str, baseline: str, metric: str, regime: str,
                 where: str = "test", replicate: str = "seed") -> pd.Series:
    """model - baseline on ``metric`` within each seed (a batch table of one dataset)."""
    rows = table[(table["where"] == where) & (table["metric"] == metric) & (table["regime"] == regime)
                 & (table["severity"].fillna(0) == 0)]
    wide = rows.pivot_table(index=replicate, columns="model", values="value", aggfunc="first")
    if model not in wide.columns or baseline not in wide.columns:
        return pd.Series(dtype=float)
    return (wide[model] - wide[baseline]).dropna()


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(mean(a) - mean(b), standard error, Welch's degrees of freedom); NaN with < 2 values in either."""
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return diff, float("nan"), float("nan")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = float(np.sqrt(va + vb))
    dof = float("inf") if se == 0 else float((va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)))
    return diff, se, dof


def cardinality_evidence(low: pd.DataFrame, high: pd.DataFrame, low_name: str, high_name: str,
                         alpha: float = FAMILY_ALPHA) -> pd.DataFrame:
    """One row per regime and contrast: the per-seed effect on each dataset,
    and Welch's test of (high - low), Holm-adjusted within each regime's
    claim (``EVIDENCE_COLUMNS`` plus the two effects). Effects are absolute
    (accuracy points, ECE, nats), the same units on both datasets."""
    regimes = sorted(set(low["regime"]) & set(high["regime"]))
    rows: list[dict] = []
    for claim in cardinality_claims(regimes, alpha):
        family = []
        for part in claim.parts:
            for c in part.comparisons:
                a, b = (seed_effects(t, c.model, c.baseline, c.metric, claim.regime, c.where) for t in (high, low))
                if a.empty or b.empty:
                    continue
                diff, se, dof = _welch(a.to_numpy(dtype=float), b.to_numpy(dtype=float))
                row = _row(claim, part, c, c.where, min(len(a), len(b)), diff, se, dof)
                row[f"effect ({high_name})"], row[f"effect ({low_name})"] = float(a.mean()), float(b.mean())
                family.append(row)
        rows.extend(_decide(family, claim.alpha))
    columns = EVIDENCE_COLUMNS[:8] + [f"effect ({high_name})", f"effect ({low_name})"] + EVIDENCE_COLUMNS[8:]
    return pd.DataFrame(rows, columns=columns)


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


def cardinality_verdict(roots: Path | Sequence[Path], alpha: float = FAMILY_ALPHA) -> pd.DataFrame:
    """C-cardinality's verdicts (``VERDICT_COLUMNS``, one row per regime, or
    one row "all" saying why it is not tested). It needs the same comparison
    on a low- and a high-cardinality dataset (>= 100 classes), from one batch
    or several (e.g. the main batch and ``CARDINALITY_BATCH``; a batch without
    finished runs adds nothing)."""
    roots = [Path(roots)] if isinstance(roots, (str, Path)) else [Path(r) for r in roots]
    found = [batch_datasets(root) for root in roots]
    datasets = set().union(*found)
    where = "the batch" if sum(bool(d) for d in found) <= 1 else "the batches"
    high = sorted(d for d in datasets if dataset_info(d).num_classes >= 100)
    low = sorted(d for d in datasets if dataset_info(d).num_classes < 100)

    def untested(reason: str) -> pd.DataFrame:
        return pd.DataFrame([{"claim": "C-cardinality", "regime": "all", "verdict": "not tested", "detail": reason}],
                            columns=VERDICT_COLUMNS)

    if not high:
        return untested(f"no dataset with >= 100 classes in {where} ({', '.join(sorted(datasets))})")
    if not low:
        return untested(f"no dataset with < 100 classes next to {', '.join(high)} in {where}")
    tables = _dataset_tables(roots)
    evidence = (cardinality_evidence(tables[low[0]], tables[high[0]], low[0], high[0], alpha)
                if low[0] in tables and high[0] in tables else pd.DataFrame())
    if evidence.empty:
        return untested(f"no contrast of chapter 04 is in the runs of both {high[0]} and {low[0]}")
    out = verdicts(cardinality_claims(sorted(set(evidence["regime"])), alpha), evidence)
    out["detail"] = [f"{d}; {high[0]} vs {low[0]}" if d else f"{high[0]} vs {low[0]}" for d in out["detail"]]
    return out


# --- verdicts in words: chapter 05's findings and the README's table -------------

#: The batches chapter 05 reads by default (its parameters ``batch`` and
#: ``long_tail_batch``; the glyph batch is ``CARDINALITY_BATCH``).
MAIN_BATCH, LONG_TAIL_BATCH = "reference-fmnist", "long-tail-fmnist"
#: What a claim decided on the glyph batch is called (chapter 05 adds it to the claim's name).
GLYPHS_SUFFIX = " (glyphs)"
MINUS_SPACED = " \u2212 "


def _signed(value: float, digits: int = 4) -> str:
    text = f"{value:+.{digits}f}"
    return "\u2212" + text[1:] if text.startswith("-") else text


def comparison_text(row: pd.Series, digits: int = 4, seeds: bool = True) -> str:
    """One evidence row in words: "cud − kd, ece at test after TS: −0.0243
    [−0.0506, +0.0020], Holm p 0.2312, 3 seeds" (no interval with < 2
    seeds; ``seeds`` False leaves the number of seeds out)."""
    label = f"{str(row['comparison']).replace(' - ', MINUS_SPACED)}, {row['metric']} at {row['where']}"
    effects = [c[len("effect ("):-1] for c in row.index if c.startswith("effect (") and not pd.isna(row[c])]
    if len(effects) == 2:  # C-cardinality: the effect on one dataset minus the effect on the other
        label += f", effect on {effects[0]} minus effect on {effects[1]}"
    n = int(row["n"]) if not pd.isna(row["n"]) else 0
    if pd.isna(row["ci_low"]):
        return f"{label}: {_signed(row['difference'], digits)}, {n} seed{'s' if n != 1 else ''}, no interval" \
            if n else f"{label}: not in the batch"
    return (f"{label}: {_signed(row['difference'], digits)} [{_signed(row['ci_low'], digits)}, "
            f"{_signed(row['ci_high'], digits)}], Holm p {row['p_holm']:.4f}" + (f", {n} seeds" if seeds else ""))


def key_comparison(rows: pd.DataFrame) -> pd.Series | None:
    """The comparison a claim's verdict rests on most, among its evidence
    rows: what sank the claim if something did (a contradicting primary, else
    a contradicting guard, else the primary within noise with the smallest
    Holm-adjusted p: the nearest to being decided, either way), else the
    primary with the smallest Holm-adjusted p; None when none was tested. So
    a claim that fails is never shown next to one of its comparisons that held."""
    if rows.empty:
        return None
    tested = rows[rows["p_holm"].notna()]
    contradicts = tested["outcome"] == "contradicts"
    primary = tested["role"] == "primary"
    short = tested["outcome"] == "within noise"
    for pick in (tested[contradicts & primary], tested[contradicts], tested[short & primary], tested[primary],
                 tested):
        if not pick.empty:
            return pick.sort_values("p_holm", kind="stable").iloc[0]
    return None


def _claim_rows(evidence: pd.DataFrame, claim: str, regime: str) -> pd.DataFrame:
    if evidence.empty:
        return evidence
    return evidence[(evidence["claim"] == claim) & (evidence["regime"] == regime)]


def verdict_sentences(verdicts: pd.DataFrame, evidence: pd.DataFrame) -> list[str]:
    """Chapter 05's findings, one Markdown line per verdict: the claim and
    regime, its verdict and why, the comparison it rests on most (its
    interval and Holm-adjusted p), and the comparisons whose unadjusted 95 %
    interval excludes zero although Holm's correction leaves them within
    noise (what a reader of the intervals alone would over-read).
    ``evidence``: the rows of ``evaluate`` (or ``cardinality_evidence``) of
    every claim in ``verdicts``, with the same claim names."""
    lines = []
    for row in verdicts.itertuples():
        rows = _claim_rows(evidence, row.claim, row.regime)
        text = f"**{row.claim}** [{row.regime}]: *{verdict_text(row.verdict, row.detail)}*."
        key = key_comparison(rows)
        if key is not None:
            text += f" Key comparison: {comparison_text(key)} ({key['outcome']})."
        short = rows.iloc[0:0] if rows.empty else \
            rows[(rows["outcome"] == "within noise") & ((rows["ci_low"] > 0) | (rows["ci_high"] < 0))]
        if key is not None:
            short = short.drop(index=key.name, errors="ignore")
        if not short.empty:
            text += (" Unadjusted interval excludes zero, within noise after Holm's correction: "
                     + "; ".join(comparison_text(r) for _, r in short.iterrows()) + ".")
        lines.append(text)
    return lines


def _short_reason(verdict: str, detail: str) -> str:
    """A not-tested verdict's reason, short: the regime check's (with what the
    comparisons alone say), else the detail."""
    marker = " (the comparisons alone: "
    if marker in detail:
        why, alone = detail.split(marker, 1)
        return f"{why.split(':', 1)[0]}; the comparisons alone: {alone.removesuffix(')')}"
    return detail or verdict


def study_verdicts(runs_root: Path, batch: str = MAIN_BATCH, long_tail_batch: str = LONG_TAIL_BATCH,
                   glyph_batch: str = CARDINALITY_BATCH, alpha: float = FAMILY_ALPHA,
                   after_ts: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Chapter 05's verdicts and their evidence from the committed batches,
    computed as the chapter computes them (regime check gate included): the
    main batch's claims, C-cardinality, the long tail's claims, and the
    glyph batch's claims (named with ``GLYPHS_SUFFIX``). The verdicts gain
    ``data`` (dataset and seeds) and ``key interval`` columns; a batch
    without finished runs adds nothing (the long tail's and the glyphs'), or
    C-cardinality says why it is not tested."""
    runs_root = Path(runs_root)
    found_verdicts, found_evidence = [], []

    def decide(folder: Path, table: pd.DataFrame, claim_list: list[Claim], suffix: str = "") -> None:
        evidence = evaluate(table, claim_list)
        decided = verdicts(claim_list, evidence, table)
        seeds = table["seed"].nunique() if "seed" in table.columns else 0
        decided["data"] = f"{', '.join(sorted(batch_datasets(folder)))}, {seeds} seed{'s' if seeds != 1 else ''}"
        decided["claim"] = decided["claim"] + suffix
        evidence["claim"] = evidence["claim"] + suffix
        found_verdicts.append(decided)
        found_evidence.append(evidence)

    root = batch_root(batch, runs_root)
    table = batch_table(collect(root))
    regimes = [r for r in ("default", "overconfident") if r in set(table["regime"])]
    decide(root, table, study_claims(regimes, alpha, after_ts))
    glyph_root = runs_root / glyph_batch
    cardinality = cardinality_verdict([root, glyph_root], alpha)
    datasets = batch_datasets(root) | batch_datasets(glyph_root)
    cardinality["data"] = " vs ".join(sorted(datasets, key=lambda d: -dataset_info(d).num_classes))
    found_verdicts.append(cardinality)
    if long_tail_batch:
        tail_root = batch_root(long_tail_batch, runs_root)
        decide(tail_root, batch_table(collect(tail_root)), long_tail_claims(alpha=alpha, after_ts=after_ts))
    if finished_runs(glyph_root):
        glyphs = batch_table(collect(glyph_root))
        decide(glyph_root, glyphs, study_claims([r for r in ("default", "overconfident") if r in set(glyphs["regime"])],
                                    alpha, after_ts), GLYPHS_SUFFIX)
        tables = _dataset_tables([root, glyph_root])
        low = [d for d in tables if dataset_info(d).num_classes < 100]
        high = [d for d in tables if dataset_info(d).num_classes >= 100]
        if low and high:
            found_evidence.append(cardinality_evidence(tables[low[0]], tables[high[0]], low[0], high[0], alpha))
    out = pd.concat(found_verdicts, ignore_index=True)
    evidence = pd.concat([e for e in found_evidence if not e.empty], ignore_index=True)
    keys = []
    for row in out.itertuples():
        key = key_comparison(_claim_rows(evidence, row.claim, row.regime))
        keys.append(_short_reason(row.verdict, row.detail) if row.verdict == "not tested" or key is None
                    else comparison_text(key, seeds=False))
    out["key interval"] = keys
    return out, evidence

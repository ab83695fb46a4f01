"""A batch's results: every finished run's tidy tables in one table, and
per-method summaries with intervals over seeds.

Each run keeps its notebook's tidy tables (``metrics_*.csv``, ``shift_*.csv``:
one row per model, metric and condition) and its ``run.json`` (grid values);
``run_record`` stacks one run's tables with its id and grid values, and
``collect`` concatenates the records of every finished run (nothing else is
read: no scrapbook, no half-written run).

Intervals (``summarize``, ``paired_differences``) are Student-t intervals
over the replicates (by default the runs that differ only in ``seed``)::

    mean ± t_{(1 + confidence) / 2, n - 1} · s / sqrt(n)

with ``s`` the sample standard deviation (ddof = 1) and ``t`` from
``scipy.stats.t``; with one replicate the interval is undefined (NaN). Paired
differences subtract the reference model's value (default ``kd``) from each
model's value *within the same run* (same seed, same condition), then take
the t-interval of those differences; ``excludes_zero`` marks intervals that
lie entirely above or below zero.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from calibkd.errors import ConfigError
from calibkd.io import atomic_write_text, load_yaml
from calibkd.runs.store import FAILED, FINISHED, read_json, runs_dir

#: the tidy tables of a run that batches collect: scores, shift suite, and fidelity
#: to the truth (written only on data whose true label distributions are known)
TABLE_PATTERNS = ("metrics_*.csv", "shift_*.csv", "truth_*.csv")
#: the columns that say where a number comes from, in the order tables show them
CONDITION_COLUMNS = ("notebook", "table", "regime", "split", "condition", "severity", "model", "metric")
SUMMARY_FILE = "results.csv"
PAIRED_FILE = "paired.csv"
META_FILE = "results.json"


def _cell(value: Any) -> Any:
    """Grid values as table cells: lists and dicts as JSON text."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def run_record(folder: Path, run_id: str, notebook: str, grid: Mapping[str, Any]) -> pd.DataFrame:
    """One run's tidy tables stacked, with ``table`` (file stem), ``run_id``
    and one column per grid parameter (a name a table already uses gets ``_grid``)."""
    frames = []
    for pattern in TABLE_PATTERNS:
        for path in sorted(Path(folder).glob(pattern)):
            frame = pd.read_csv(path)
            if {"model", "metric", "value"} <= set(frame.columns):
                frames.append(frame.assign(table=path.stem))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["model", "metric", "value"])
    if "notebook" not in table.columns:
        table["notebook"] = notebook
    table.insert(0, "run_id", run_id)
    for name, value in grid.items():
        column = f"{name}_grid" if name in table.columns else name
        table[column] = _cell(value)
    return table


def finished_runs(root: Path) -> list[Path]:
    """Finished run folders of a batch (those holding ``run.json``)."""

    return sorted(p.parent for p in runs_dir(root).glob(f"*/{FINISHED}") if not p.parent.name.startswith("."))


def recorded_parameters(folder: Path) -> dict[str, Any]:
    """The resolved parameters a run recorded (``parameters`` of its ``parameters.yaml``)."""
    return load_yaml((Path(folder) / "parameters.yaml").read_text())["parameters"]


def collect(root: Path) -> pd.DataFrame:
    """Every finished run's record in one tidy table (empty if none finished)."""

    frames = []
    for folder in finished_runs(root):
        info = read_json(folder / FINISHED)
        frames.append(run_record(folder, info.get("run_id", folder.name), info.get("notebook", ""),
                                 info.get("grid", {})))
    if not frames:
        return pd.DataFrame(columns=["run_id", "model", "metric", "value"])
    table = pd.concat(frames, ignore_index=True)
    if "severity" in table.columns and table["severity"].dropna().mod(1).eq(0).all():
        table["severity"] = table["severity"].astype("Int64")
    return table


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of the Student-t interval of ``values`` (NaNs dropped)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(x.mean())
    if n < 2:
        return mean, float("nan"), float("nan"), n
    half = stats.t.ppf((1 + confidence) / 2, n - 1) * x.std(ddof=1) / np.sqrt(n)
    return mean, float(mean - half), float(mean + half), n


def welch_interval(a: Sequence[float], b: Sequence[float],
                   confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(mean(a) - mean(b), low, high, degrees of freedom): Welch's t-interval
    for two independent samples with unequal variances (e.g. per-seed effects
    on two datasets); NaN bounds when either sample has fewer than 2 values."""
    x, y = (np.asarray(v, dtype=float) for v in (a, b))
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if len(x) == 0 or len(y) == 0:
        return float("nan"), float("nan"), float("nan"), float("nan")
    diff = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return diff, float("nan"), float("nan"), float("nan")
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = np.sqrt(vx + vy)
    if se == 0:
        return diff, diff, diff, float("inf")
    dof = (vx + vy) ** 2 / (vx ** 2 / (len(x) - 1) + vy ** 2 / (len(y) - 1))
    half = stats.t.ppf((1 + confidence) / 2, dof) * se
    return diff, float(diff - half), float(diff + half), float(dof)


def _interval_columns(grouped: pd.core.groupby.SeriesGroupBy, confidence: float) -> pd.DataFrame:
    """n, mean, std, ci_low, ci_high per group, vectorised (the same formula as ``t_interval``)."""
    out = grouped.agg(n="count", mean="mean", std=lambda v: v.std(ddof=1)).reset_index()
    n = out["n"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(n >= 2, stats.t.ppf((1 + confidence) / 2, np.maximum(n - 1, 1)), np.nan)
        half = t * out["std"].to_numpy(dtype=float) / np.sqrt(n)
    out["ci_low"] = out["mean"] - half
    out["ci_high"] = out["mean"] + half
    return out


def condition_columns(table: pd.DataFrame, replicate: str = "seed") -> list[str]:
    """The columns that identify a summarised quantity: all but the value, the
    run and the replicate column (grid parameters other than it stay)."""
    known = [c for c in CONDITION_COLUMNS if c in table.columns]
    extra = [c for c in table.columns if c not in known and c not in ("value", "run_id", replicate)]
    return extra + known


def _check_unique(table: pd.DataFrame, keys: list[str]) -> None:
    duplicated = table.duplicated(keys, keep=False)
    if duplicated.any():
        example = table.loc[duplicated, keys].iloc[0].to_dict()
        raise ConfigError(f"the batch table has several values for one condition and run, e.g. {example}; "
                          "add the column that tells them apart to the notebook's table")


def summarize(table: pd.DataFrame, replicate: str = "seed", confidence: float = 0.95) -> pd.DataFrame:
    """Per model and condition: n, mean, std and the t-interval over replicates."""
    if table.empty:
        return pd.DataFrame(columns=["n", "mean", "std", "ci_low", "ci_high"])
    keys = condition_columns(table, replicate)
    _check_unique(table, keys + [c for c in ("run_id", replicate) if c in table.columns])
    grouped = table.groupby(keys, dropna=False, sort=False)["value"]
    return _interval_columns(grouped, confidence)


def paired_differences(table: pd.DataFrame, reference: str = "kd", replicate: str = "seed",
                       confidence: float = 0.95) -> pd.DataFrame:
    """Per model (other than ``reference``) and condition: the t-interval of
    value(model) - value(reference) over replicates, paired within each run."""
    if table.empty:
        return pd.DataFrame(columns=["model", "reference", "n", "mean", "std", "ci_low", "ci_high", "excludes_zero"])
    models = sorted(table["model"].dropna().unique())
    if reference not in models:
        raise ConfigError(f"reference model {reference!r} is not in the batch's tables; models: {models[:30]}")
    keys = [c for c in condition_columns(table, replicate) if c != "model"]
    pair_on = keys + [c for c in ("run_id", replicate) if c in table.columns]
    _check_unique(table, pair_on + ["model"])
    ref = table[table["model"] == reference][pair_on + ["value"]].rename(columns={"value": "reference_value"})
    others = table[table["model"] != reference]
    merged = others.merge(ref, on=pair_on, how="inner")
    merged["value"] = merged["value"] - merged["reference_value"]
    grouped = merged.groupby(keys + ["model"], dropna=False, sort=False)["value"]
    out = _interval_columns(grouped, confidence)
    out["reference"] = reference
    out["excludes_zero"] = (out["ci_low"] > 0) | (out["ci_high"] < 0)
    order = condition_columns(table, replicate)
    order.insert(order.index("model") + 1, "reference")
    return out[order + [c for c in out.columns if c not in order]]


def run_code(provenance: Mapping[str, Any]) -> str:
    """Which code made a run, from its ``provenance.json``, as ``aggregate``
    compares runs: the training code's, the study code's and the run's
    notebook's fingerprints (``calibkd.training.code_version``); for a run
    recorded before fingerprints, its git commit."""
    if provenance.get("study_code_version"):
        notebook = (provenance.get("notebook_code_versions") or {}).get(provenance.get("notebook"), "unknown")
        return (f"code {provenance.get('code_version')}, study code {provenance['study_code_version']}, "
                f"notebook code {notebook}")
    if provenance.get("code_version"):
        return f"code {provenance['code_version']}"
    if provenance.get("git_commit"):
        return f"git commit {provenance['git_commit']} (recorded without a code version)"
    return "unknown (no provenance.json)"


def checkout_code(notebook: str) -> str:
    """``run_code`` of a run of ``notebook`` made now by this checkout (its
    provenance, ``calibkd.study.runner.provenance``): compared with a
    committed run's, it says whether the run was made by the code that ships."""
    from calibkd.study.runner import provenance
    return run_code({**provenance(), "notebook": notebook})


def _listing(runs: Sequence[str], shown: int = 8) -> str:
    more = f" and {len(runs) - shown} more" if len(runs) > shown else ""
    return ", ".join(runs[:shown]) + more


def check_code(root: Path, provenances: Mapping[str, Mapping[str, Any]], allow_mixed_code: bool = False,
               allow_dirty: bool = False) -> tuple[dict[str, list[str]], list[str]]:
    """``(code -> its runs, runs from a dirty tree)`` of a batch's finished
    runs (``provenances``: run-id -> its ``provenance.json``).

    Runs made by different code (``run_code``) are not pooled: a
    ``ConfigError`` names each code and its runs, unless ``allow_mixed_code``.
    A run made from a working tree whose ``calibkd/`` or ``notebooks/``
    differed from its commit (``git_dirty``) cannot be reproduced from the
    repository: a ``ConfigError`` too, unless ``allow_dirty``. What is allowed
    is warned about (and ``aggregate`` records it in ``results.json``)."""
    codes: dict[str, list[str]] = {}
    for run_id, provenance in sorted(provenances.items()):
        codes.setdefault(run_code(provenance), []).append(run_id)
    dirty = sorted(run_id for run_id, provenance in provenances.items() if provenance.get("git_dirty") is True)
    name = Path(root).name
    refused, allowed = [], []
    if len(codes) > 1:
        listing = "; ".join(f"{code}: {_listing(runs)}" for code, runs in sorted(codes.items()))
        message = f"the finished runs of batch {name} were made by different code ({listing})"
        if allow_mixed_code:
            allowed.append(f"{message}; aggregated anyway (allow_mixed_code), recorded in results.json")
        else:
            refused.append(f"{message}. Their results are not pooled: rerun the runs at one version of the "
                           "code (delete a run's folder under runs/ and run the batch again), or pass "
                           "allow_mixed_code=True (--allow-mixed-code) to aggregate them anyway; the mix is "
                           "then recorded in results.json")
    if dirty:
        message = (f"runs of batch {name} were made from a working tree whose calibkd/ or notebooks/ differed "
                   f"from its commit (git_dirty): {_listing(dirty)}")
        if allow_dirty:
            allowed.append(f"{message}; aggregated anyway (allow_dirty), listed in results.json")
        else:
            refused.append(f"{message}. Their code is in no commit, so they cannot be reproduced: rerun them "
                           "from a clean checkout, or pass allow_dirty=True (--allow-dirty) to aggregate them "
                           "anyway; they are then listed as dirty_runs in results.json")
    if refused:
        raise ConfigError("\n".join(refused))
    for message in allowed:
        warnings.warn(message, stacklevel=3)
    return codes, dirty


def aggregate(root: Path, reference: str | None = "kd", replicate: str = "seed",
              confidence: float = 0.95, allow_mixed_code: bool = False,
              allow_dirty: bool = False) -> dict[str, Path]:
    """Write a batch's ``results.csv`` (summaries), ``paired.csv`` (differences
    against ``reference``; skipped when None) and ``results.json`` (which
    runs, which settings, which code). Returns the written paths.

    Runs made by different code, or from a dirty working tree, are refused
    before anything is written, unless ``allow_mixed_code`` /
    ``allow_dirty`` (``check_code``)."""

    root = Path(root)
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence={confidence!r} must lie strictly between 0 and 1 (e.g. 0.95)")
    definition = read_json(root / "definition.json")
    axes = sorted(definition.get("definition", {}).get("grid", {}))
    if axes and replicate not in axes:
        raise ConfigError(f"replicate={replicate!r} is not a grid parameter of batch {root.name}; "
                          f"its grid parameters: {axes}")
    table = collect(root)
    if table.empty:
        raise ConfigError(f"no finished runs in {runs_dir(root)}; run the batch first")
    provenances = {read_json(f / FINISHED).get("run_id", f.name): read_json(f / "provenance.json")
                   for f in finished_runs(root)}
    codes, dirty = check_code(root, provenances, allow_mixed_code, allow_dirty)
    summary = summarize(table, replicate, confidence)
    paired = None if reference is None else paired_differences(table, reference, replicate, confidence)
    written = {"summary": root / SUMMARY_FILE}
    atomic_write_text(written["summary"], summary.to_csv(index=False))
    if paired is not None:
        written["paired"] = root / PAIRED_FILE
        atomic_write_text(written["paired"], paired.to_csv(index=False))
    else:
        (root / PAIRED_FILE).unlink(missing_ok=True)  # no stale differences beside new summaries
    failed = sorted(p.parent.name for p in runs_dir(root).glob(f"*/{FAILED}"))
    commits = sorted({p.get("git_commit", "unknown") for p in provenances.values()})
    meta = {
        "batch": root.name, "definition_hash": definition.get("hash"),
        "runs": sorted(table["run_id"].unique().tolist()), "failed_runs": failed,
        "replicate": replicate, "reference": reference, "confidence": confidence,
        "interval": "Student t over replicates: mean +- t_{(1+confidence)/2, n-1} * s / sqrt(n)",
        "git_commits": commits, "code_versions": codes, "mixed_code": len(codes) > 1, "dirty_runs": dirty,
    }
    written["meta"] = root / META_FILE
    atomic_write_text(written["meta"], json.dumps(meta, indent=1) + "\n")
    return written


def with_interval(frame: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """``frame`` (summary rows) with a ``value`` column of 'mean [low, high]'
    strings for display ('mean (n=1)' where one replicate gives no interval)."""
    def fmt(row: pd.Series) -> str:
        if pd.isna(row["ci_low"]):
            return f"{row['mean']:.{digits}f} (n={int(row['n'])})"
        return f"{row['mean']:.{digits}f} [{row['ci_low']:.{digits}f}, {row['ci_high']:.{digits}f}]"
    return frame.assign(value=frame.apply(fmt, axis=1))


def pick_columns(summary: pd.DataFrame, shown: Mapping[tuple[str, str], str]) -> pd.DataFrame:
    """The rows whose (where, metric) is a key of ``shown``, with a ``column``
    naming each by its value in ``shown``."""
    picked = summary[[(w, m) in shown for w, m in zip(summary["where"], summary["metric"])]].copy()
    picked["column"] = [shown[(w, m)] for w, m in zip(picked["where"], picked["metric"])]
    return picked


def tables_by_regime(picked: pd.DataFrame, shown: Mapping[tuple[str, str], str],
                     regimes: Sequence[str]) -> dict[str, pd.DataFrame]:
    """One wide table per regime: a row per model, 'mean [interval]' per column of ``shown``, in its order."""
    tables = {}
    for regime in regimes:
        wide = with_interval(picked[picked["regime"] == regime]).pivot_table(
            index="model", columns="column", values="value", aggfunc="first")
        tables[regime] = wide[[c for c in shown.values() if c in wide.columns]]
    return tables


def load_results(root: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The written summaries of a batch (for notebooks): ``(results, paired)``."""
    root = Path(root)
    paired = root / PAIRED_FILE
    return pd.read_csv(root / SUMMARY_FILE), (pd.read_csv(paired) if paired.is_file() else None)



#: The metrics ``summary_text`` shows (those a batch has; all when it has none of them).
SUMMARY_METRICS = ("accuracy", "ece", "nll", "brier")


def summary_text(summary: pd.DataFrame, split: str = "test", metrics: Sequence[str] = SUMMARY_METRICS,
                 digits: int = 4) -> str:
    """A batch's summary for the terminal (``python -m calibkd.runs aggregate``):
    for each notebook table and regime, a row per model and a column per
    metric of ``metrics`` on ``split`` (every row when no row has that
    split), each 'mean [low, high]' over replicates. The whole table is
    ``results.csv``."""
    if summary.empty:
        return "(no rows)"
    rows = summary
    if "metric" in rows.columns and rows["metric"].isin(metrics).any():
        rows = rows[rows["metric"].isin(metrics)]
    if "split" in summary.columns and (summary["split"] == split).any():
        rows = summary[summary["split"] == split]
    for column in ("condition", "severity"):  # clean data only: shifted rows stay in results.csv
        if column in rows.columns and rows[column].notna().any() and rows[column].isna().any():
            rows = rows[rows[column].isna()]
    keys = [c for c in ("notebook", "table", "regime") if c in rows.columns]
    index = [c for c in ("model",) if c in rows.columns] or ["metric"]
    blocks = []
    for key, block in (rows.groupby(keys, sort=False, dropna=False) if keys else [((), rows)]):
        key = key if isinstance(key, tuple) else (key,)
        title = ", ".join(f"{k} {v}" for k, v in zip(keys, key) if not pd.isna(v))
        shown_block = with_interval(block, digits)
        if index == ["metric"]:
            wide = shown_block.set_index("metric")[["value"]]
        else:
            columns = [m for m in metrics if m in set(block["metric"])] or sorted(set(block["metric"]))
            wide = shown_block.pivot_table(index=index, columns="metric", values="value", aggfunc="first",
                                           sort=False)[columns]
        shown = f"{split} split" if "split" in rows.columns and (rows["split"] == split).all() else "every row"
        blocks.append(f"{title} ({shown}; mean [95 % interval]):\n{wide.to_string()}")
    return "\n\n".join(blocks)

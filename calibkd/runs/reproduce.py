"""Does a committed run reproduce? Retrain one of its students from nothing
and compare the numbers.

    python -m calibkd.runs.reproduce papermill_runs/reference-fmnist --seed 0 --method cud
    python -m calibkd.runs.reproduce papermill_runs/glyphs-central --seed 1 --method kd --regime overconfident

A run of a batch records its parameters and its results; at the commit it
records (check out that commit first), this re-executes the run's notebook
with the same parameters restricted to one regime and to the labels-only
student, KD and ``--method``, in a model cache that starts **empty** (a
temporary folder unless ``--cache`` is given), so the teacher, its
calibrations and the students are all trained again. Then every recorded row
of those students and of the regime's teachers (``metrics_*.csv`` and
``shift_*.csv`` of the committed run) is compared with the new one. The
result (largest absolute difference per table and the rows that differ) is
printed and written atomically to ``<batch>/reproduced/<run-id>-<regime>-<method>.json``.
Runs are deterministic on one machine (fixed seeds and thread counts), so
the expected difference is zero; another machine or library build may move
the last digits, which is why the tolerance is an argument.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from calibkd.errors import ConfigError
from calibkd.io import atomic_write_text
from calibkd.runs import store as run_store
from calibkd.runs.batches import batch_root, load_batch
from calibkd.runs.results import recorded_parameters

#: The students every reproduction retrains with the chosen one: the references of every comparison.
REFERENCE_STUDENTS = ("ce", "kd")
#: The tables of a run that are compared, by file-name prefix.
COMPARED_TABLES = ("metrics_", "shift_")
#: Row identity in a run's tables: every column but the value.
VALUE = "value"


def reproduction_parameters(parameters: dict[str, Any], regime: str, method: str) -> dict[str, Any]:
    """The run's ``parameters`` restricted to ``regime`` and the students
    ``REFERENCE_STUDENTS`` + ``method`` (a clear error for a regime the run
    did not have or a method it did not train there)."""
    regimes = list(parameters.get("regimes") or [parameters.get("regime")])
    if regime not in regimes:
        raise ConfigError(f"regime {regime!r} is not one of the run's regimes {regimes}")
    trained = parameters.get("student_methods" if regime == regimes[0] else "central_methods") or []
    if method not in trained:
        raise ConfigError(f"student method {method!r} was not trained in regime {regime!r} of this run; "
                          f"it trained {list(trained)}")
    students = list(dict.fromkeys([*REFERENCE_STUDENTS, method]))
    return {**parameters, "regimes": [regime], "student_methods": students, "central_methods": students,
            "sweep": {}}


def compared_rows(table: pd.DataFrame, regime: str, models: Sequence[str]) -> pd.DataFrame:
    """The rows of ``table`` for ``regime`` whose model is one of ``models``."""
    rows = table[table["regime"] == regime] if "regime" in table else table
    return rows[rows["model"].astype(str).isin(models)]


def compare_tables(old: pd.DataFrame, new: pd.DataFrame, models: Sequence[str], regime: str
                   ) -> dict[str, Any]:
    """Rows of ``old`` (the committed run) for ``models`` matched to ``new``
    on every column but the value: how many, the largest absolute
    difference, and the rows that are missing from ``new``."""
    old_rows, new_rows = compared_rows(old, regime, models), compared_rows(new, regime, models)
    keys = [c for c in old_rows.columns if c != VALUE and c in new_rows.columns]
    merged = old_rows.merge(new_rows, on=keys, how="left", suffixes=("", "_new"), indicator=True)
    missing = merged[merged["_merge"] == "left_only"]
    both = merged[merged["_merge"] == "both"]
    numeric = pd.to_numeric(both[VALUE], errors="coerce"), pd.to_numeric(both[f"{VALUE}_new"], errors="coerce")
    difference = (numeric[0] - numeric[1]).abs()
    largest = both.assign(difference=difference).nlargest(3, "difference")
    return {"rows": int(len(old_rows)), "matched": int(len(both)), "missing": int(len(missing)),
            "max_abs_difference": float(difference.max()) if len(both) else None,
            "largest": largest[keys + [VALUE, f"{VALUE}_new", "difference"]].to_dict("records")}


def reproduce(batch: str | Path, seed: int, method: str, regime: str | None = None,
              cache: Path | None = None, tolerance: float = 0.0) -> dict[str, Any]:
    """Retrain ``method`` (and the references) of the finished run of
    ``batch`` with grid value ``seed`` in an empty model cache and compare;
    returns the report (also written under ``<batch>/reproduced/``)."""
    from calibkd.study.runner import run_study  # the study's entry point: imports torch

    root = batch_root(batch)
    definition = load_batch(root)
    specs = [s for s in definition.runs if s.grid.get("seed") == seed]
    if not specs:
        raise ConfigError(f"batch {root.name} has no run with seed {seed}")
    spec = specs[0]
    folder = run_store.run_dir(root, spec.run_id)
    if run_store.run_state(root, spec.run_id) != "finished":
        raise ConfigError(f"run {spec.run_id} of batch {root.name} is not finished: nothing to compare with")
    recorded = recorded_parameters(folder)
    regime = regime or list(recorded.get("regimes") or [recorded.get("regime")])[0]
    parameters = reproduction_parameters(recorded, regime, method)
    if cache is not None and cache.exists() and any(cache.iterdir()):
        raise ConfigError(f"the model cache {cache} is not empty: a reproduction trains from nothing")
    work = Path(tempfile.mkdtemp(prefix="calibkd-reproduce-"))
    cache = cache or work / "models"
    previous = os.environ.get("CALIBKD_CACHE")
    os.environ["CALIBKD_CACHE"] = str(cache)
    start = time.perf_counter()
    try:
        out = run_study([spec.notebook], parameters, output=work / "run")
        commit = json.loads((out / "provenance.json").read_text()).get("git_commit")  # run_study records it
        tables = compare_runs(folder, out, recorded, parameters["student_methods"], regime)
    finally:
        if previous is None:
            os.environ.pop("CALIBKD_CACHE", None)
        else:
            os.environ["CALIBKD_CACHE"] = previous
        shutil.rmtree(work, ignore_errors=True)
    worst = [t.get("max_abs_difference") for t in tables.values()]
    reproduced = bool(tables) and all(t.get("missing", 1) == 0 and t.get("max_abs_difference") is not None
                                      and t["max_abs_difference"] <= tolerance for t in tables.values())
    report = {"batch": root.name, "run_id": spec.run_id, "seed": seed, "regime": regime, "method": method,
              "students": parameters["student_methods"], "git_commit": commit, "tolerance": tolerance,
              "reproduced": reproduced, "max_abs_difference": max((w for w in worst if w is not None), default=None),
              "seconds": round(time.perf_counter() - start, 1), "tables": tables}
    target = root / "reproduced" / f"{spec.run_id}-{regime}-{method}.json"
    target.parent.mkdir(exist_ok=True)
    atomic_write_text(target, json.dumps(report, indent=1, default=str))
    return report


def compare_runs(committed: Path, again: Path, recorded: dict[str, Any], students: Sequence[str], regime: str
                 ) -> dict[str, dict[str, Any]]:
    """Compare the tables of the run folder ``committed`` (made with the
    parameters ``recorded``) with those of the reproduction in ``again``: the
    rows of ``regime`` for ``students`` and the teachers the reproduction
    retrained, per table prefix (``COMPARED_TABLES``; see ``_tables``). A
    prefix with no rows of ``regime`` in the committed run is left out."""
    tables = {}
    for prefix in COMPARED_TABLES:
        old, new = _tables(committed, prefix), _tables(again, prefix)
        if old is None or ("regime" in old and not (old["regime"] == regime).any()):
            continue  # the run recorded no such rows for this regime
        if new is None:
            tables[f"{prefix}*.csv"] = {"missing_table": True}
            continue
        teachers = sorted(set(_teachers(old, recorded)) & {str(m) for m in new["model"].unique()})
        tables[f"{prefix}*.csv"] = compare_tables(old, new, list(students) + teachers, regime)
    return tables


def _tables(folder: Path, prefix: str) -> pd.DataFrame | None:
    """Every ``<prefix>*.csv`` of a run folder as one table (None when there
    is none). A run writes its first regime's shift rows to ``shift_04.csv``
    and the others' to ``shift_04_other_regimes.csv``; a reproduction of one
    regime has it first, so tables are compared by prefix, not by file."""
    paths = sorted(p for p in folder.glob(f"{prefix}*.csv"))
    return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True) if paths else None


def _teachers(table: pd.DataFrame, parameters: dict[str, Any]) -> list[str]:
    """The models of a run's table that are not students: the teachers (and
    their variants) the reproduction retrains too when its students need them."""
    students = set(parameters.get("student_methods") or []) | set(parameters.get("central_methods") or [])
    return sorted({str(m) for m in table["model"].unique()} - students)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m calibkd.runs.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("batch", help="a batch folder or a batch name under papermill_runs/")
    parser.add_argument("--seed", type=int, required=True, help="the run's seed (its grid value)")
    parser.add_argument("--method", required=True, help="the student method to retrain (with ce and kd)")
    parser.add_argument("--regime", default=None, help="the regime (default: the run's first)")
    parser.add_argument("--cache", type=Path, default=None, help="an empty folder for the models (default: temporary)")
    parser.add_argument("--tolerance", type=float, default=0.0, help="largest absolute difference accepted")
    args = parser.parse_args(argv)
    try:
        report = reproduce(args.batch, args.seed, args.method, args.regime, args.cache, args.tolerance)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in report.items() if k != "tables"}, indent=1))
    for name, table in report["tables"].items():
        print(f"{name}: {table}")
    return 0 if report["reproduced"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

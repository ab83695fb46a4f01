"""Reproducing a committed run: which students are retrained, and how the tables are compared."""

from __future__ import annotations

import pandas as pd
import pytest

from calibkd.errors import ConfigError
from calibkd.runs.reproduce import compare_runs, compare_tables, reproduction_parameters

RUN = {"regimes": ["default", "overconfident"], "student_methods": ["ce", "kd", "kd_ts", "cud"],
       "central_methods": ["ce", "kd", "cud"], "sweep": {"m": [0.4]}, "seed": 0, "tuning": "tuning-fmnist"}


def test_a_reproduction_keeps_the_run_and_retrains_one_regime_with_the_references():
    params = reproduction_parameters(RUN, "overconfident", "cud")
    assert params["regimes"] == ["overconfident"]
    assert params["student_methods"] == params["central_methods"] == ["ce", "kd", "cud"]
    assert (params["seed"], params["tuning"], params["sweep"]) == (0, "tuning-fmnist", {})
    assert reproduction_parameters(RUN, "default", "kd")["student_methods"] == ["ce", "kd"]
    with pytest.raises(ConfigError, match="regime 'long_tail' is not one of"):
        reproduction_parameters(RUN, "long_tail", "cud")
    with pytest.raises(ConfigError, match="'kd_ts' was not trained in regime 'overconfident'"):
        reproduction_parameters(RUN, "overconfident", "kd_ts")


def _table(values: dict[tuple[str, str], float], regime: str = "default") -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "metric": k, "value": v, "regime": regime} for (m, k), v in values.items()])


def test_tables_match_on_every_column_but_the_value_and_report_the_largest_difference():
    old = pd.concat([_table({("kd", "ece"): 0.05, ("kd", "nll"): 0.30, ("cud", "ece"): 0.04, ("dkd", "ece"): 0.1}),
                     _table({("kd", "ece"): 0.9}, regime="overconfident")])
    same = compare_tables(old, old.copy(), ["kd", "cud"], "default")
    assert (same["rows"], same["matched"], same["missing"], same["max_abs_difference"]) == (3, 3, 0, 0.0)
    moved = old.assign(value=old["value"].where(~((old["model"] == "cud") & (old["regime"] == "default")), 0.0425))
    report = compare_tables(old, moved.iloc[1:], ["kd", "cud"], "default")  # kd's ECE row lost, CUD's moved
    assert (report["matched"], report["missing"]) == (2, 1)
    assert report["max_abs_difference"] == pytest.approx(0.0025)
    assert report["largest"][0]["model"] == "cud"


def test_a_regime_that_was_not_first_is_compared_across_the_shift_files(tmp_path):
    """A run writes its first regime's shift rows to shift_04.csv and the
    others' to shift_04_other_regimes.csv; reproducing the overconfident
    regime alone puts its rows in shift_04.csv. Tables are matched by prefix."""
    committed, again = tmp_path / "committed", tmp_path / "again"
    committed.mkdir(), again.mkdir()
    _table({("kd", "accuracy"): 0.9, ("cud", "accuracy"): 0.91}, "overconfident").to_csv(
        committed / "metrics_04.csv", index=False)
    _table({("kd", "ece"): 0.05}).to_csv(committed / "shift_04.csv", index=False)
    _table({("kd", "ece"): 0.07, ("cud", "ece"): 0.06}, "overconfident").to_csv(
        committed / "shift_04_other_regimes.csv", index=False)
    _table({("kd", "accuracy"): 0.9, ("cud", "accuracy"): 0.91}, "overconfident").to_csv(
        again / "metrics_04.csv", index=False)
    _table({("kd", "ece"): 0.07, ("cud", "ece"): 0.06}, "overconfident").to_csv(again / "shift_04.csv", index=False)
    tables = compare_runs(committed, again, RUN, ["ce", "kd", "cud"], "overconfident")
    assert set(tables) == {"metrics_*.csv", "shift_*.csv"}
    assert all((t["rows"], t["matched"], t["max_abs_difference"]) == (2, 2, 0.0) for t in tables.values())
    (again / "shift_04.csv").unlink()  # the reproduction lost its shift table
    assert compare_runs(committed, again, RUN, ["ce", "kd", "cud"], "overconfident")["shift_*.csv"] == \
        {"missing_table": True}
    # the default regime has no metrics rows in this run: that table is left out, not failed
    assert set(compare_runs(committed, again, RUN, ["ce", "kd"], "default")) == {"shift_*.csv"}

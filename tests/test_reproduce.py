"""Reproducing a committed run: which students are retrained, and how the tables are compared."""

from __future__ import annotations

import pandas as pd
import pytest

from calibkd.errors import ConfigError
from calibkd.runs.reproduce import compare_tables, reproduction_parameters

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

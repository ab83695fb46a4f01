"""Aggregating a batch: collecting finished runs only, and the interval math
checked against hand-computed values and scipy's own t-tests."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from calibkd.errors import ConfigError
from calibkd.runs.results import (
    aggregate,
    collect,
    paired_differences,
    summarize,
    t_interval,
)

# The t quantile with 2 degrees of freedom has a closed form: (2p - 1) / sqrt(2p(1 - p)).
T_975_2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # 4.3027 (printed tables)


def test_t_interval_matches_a_hand_computation():
    mean, low, high, n = t_interval([1.0, 2.0, 3.0])
    half = T_975_2 * 1.0 / math.sqrt(3)  # s = 1
    assert (mean, n) == (2.0, 3)
    assert low == pytest.approx(2 - half, abs=1e-12) and high == pytest.approx(2 + half, abs=1e-12)
    assert T_975_2 == pytest.approx(4.3027, abs=1e-4) and half == pytest.approx(2.4841, abs=1e-4)


@pytest.mark.parametrize("values", [[0.91, 0.93, 0.92, 0.95], [0.1, 0.4], [5.0, 5.5, 4.0, 6.5, 5.1]])
def test_t_interval_matches_scipy_one_sample_test(values):
    expected = stats.ttest_1samp(values, 0.0).confidence_interval(0.95)
    _, low, high, _ = t_interval(values)
    assert (low, high) == pytest.approx((expected.low, expected.high), rel=1e-12)
    _, low90, high90, _ = t_interval(values, confidence=0.9)
    assert high90 - low90 < high - low


def test_one_replicate_has_no_interval_and_nans_are_dropped():
    mean, low, high, n = t_interval([0.5, float("nan")])
    assert (mean, n) == (0.5, 1) and math.isnan(low) and math.isnan(high)


def _table(values: dict[str, list[float]], metric: str = "ece", **columns) -> pd.DataFrame:
    rows = [{"run_id": f"r{seed}", "seed": seed, "notebook": "04", "table": "metrics_04", "split": "test",
             "model": model, "metric": metric, "value": v, **columns}
            for model, series in values.items() for seed, v in enumerate(series)]
    return pd.DataFrame(rows)


def test_summary_per_model_and_condition_matches_t_interval():
    kd, cud = [0.80, 0.82, 0.81], [0.81, 0.84, 0.825]
    table = pd.concat([_table({"kd": kd, "cud": cud}), _table({"kd": [0.1, 0.2, 0.3]}, metric="nll")])
    summary = summarize(table.sample(frac=1, random_state=0))
    assert len(summary) == 3 and set(summary["n"]) == {3}
    for (model, metric), values in {("kd", "ece"): kd, ("cud", "ece"): cud, ("kd", "nll"): [0.1, 0.2, 0.3]}.items():
        row = summary[(summary.model == model) & (summary.metric == metric)].iloc[0]
        mean, low, high, _ = t_interval(values)
        sem = np.std(values, ddof=1) / np.sqrt(3)
        scipy_low, scipy_high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=sem)
        assert row["mean"] == pytest.approx(mean) and row["ci_low"] == pytest.approx(scipy_low)
        assert row["ci_high"] == pytest.approx(scipy_high)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
    assert "seed" not in summary.columns and "run_id" not in summary.columns


def test_paired_differences_pair_within_runs_and_mark_intervals_excluding_zero():
    kd = [0.80, 0.82, 0.81]
    cud = [0.81, 0.84, 0.825]  # kd + [0.01, 0.02, 0.015]: a consistent gain
    ce = [0.79, 0.84, 0.81]    # kd + [-0.01, 0.02, 0.0]: no clear difference
    table = _table({"kd": kd, "cud": cud, "ce": ce}).sample(frac=1, random_state=1)
    paired = paired_differences(table, reference="kd").set_index("model")
    assert set(paired.index) == {"cud", "ce"} and set(paired["reference"]) == {"kd"}
    half = T_975_2 * 0.005 / math.sqrt(3)  # differences 0.01, 0.02, 0.015: mean 0.015, s 0.005
    assert paired.loc["cud", "mean"] == pytest.approx(0.015)
    assert paired.loc["cud", "ci_low"] == pytest.approx(0.015 - half)
    assert paired.loc["cud", "ci_high"] == pytest.approx(0.015 + half)
    assert bool(paired.loc["cud", "excludes_zero"]) and not bool(paired.loc["ce", "excludes_zero"])
    expected = stats.ttest_rel(ce, kd).confidence_interval(0.95)  # scipy's paired test
    assert (paired.loc["ce", "ci_low"], paired.loc["ce", "ci_high"]) == pytest.approx((expected.low, expected.high))


def test_paired_differences_keep_conditions_apart():
    clean = _table({"kd": [0.1, 0.2, 0.3], "cud": [0.2, 0.3, 0.4]}, condition="clean", severity=0)
    shifted = _table({"kd": [0.5, 0.6, 0.7], "cud": [0.4, 0.5, 0.6]}, condition="gaussian_noise", severity=3)
    paired = paired_differences(pd.concat([clean, shifted]))
    by_condition = paired.set_index("condition")["mean"]
    assert by_condition["clean"] == pytest.approx(0.1) and by_condition["gaussian_noise"] == pytest.approx(-0.1)


def test_unknown_reference_and_ambiguous_tables_are_errors():
    table = _table({"kd": [0.1, 0.2], "cud": [0.2, 0.3]})
    message = r"reference model 'dkd' is not in the batch's tables; models: \['cud', 'kd'\]"
    with pytest.raises(ConfigError, match=message):
        paired_differences(table, reference="dkd")
    with pytest.raises(ConfigError, match="several values for one condition and run"):
        summarize(pd.concat([table, table]))


def _finished_run(root: Path, run_id: str, seed: int, values: dict[str, float], state: str = "run.json") -> None:
    folder = root / "runs" / run_id
    folder.mkdir(parents=True)
    rows = [{"notebook": "04_student_distillation", "model": m, "split": "test", "metric": "ece", "value": v,
             "regime": "default"} for m, v in values.items()]
    pd.DataFrame(rows).to_csv(folder / "metrics_04.csv", index=False)
    shift = [{"model": m, "condition": "blur", "severity": 2, "metric": "ece", "value": v / 2, "regime": "default",
              "notebook": "04_student_distillation"} for m, v in values.items()]
    pd.DataFrame(shift).to_csv(folder / "shift_04.csv", index=False)
    truth = [{"model": m, "split": "test", "metric": "kl_true", "value": 10 * v, "regime": "default",
              "notebook": "04_student_distillation"} for m, v in values.items()]
    pd.DataFrame(truth).to_csv(folder / "truth_04.csv", index=False)
    pd.DataFrame([{"a": 1}]).to_csv(folder / "sensitivity_04.csv", index=False)  # not tidy: not collected
    record = {"run_id": run_id, "notebook": "04_student_distillation", "grid": {"seed": seed, "regimes": ["default"]}}
    (folder / state).write_text(json.dumps(record))


def test_collect_reads_finished_runs_only_with_their_grid_values(tmp_path):
    _finished_run(tmp_path, "04-seed0-a", 0, {"kd": 0.05, "cud": 0.03})
    _finished_run(tmp_path, "04-seed1-b", 1, {"kd": 0.07, "cud": 0.04})
    _finished_run(tmp_path, "04-seed2-c", 2, {"kd": 9.0, "cud": 9.0}, state="failed.json")
    _finished_run(tmp_path, ".04-seed2-c.host-1-abc.partial", 2, {"kd": 9.0, "cud": 9.0})
    table = collect(tmp_path)
    assert sorted(table.run_id.unique()) == ["04-seed0-a", "04-seed1-b"] and len(table) == 12
    assert set(table.table) == {"metrics_04", "shift_04", "truth_04"} and set(table.seed) == {0, 1}
    assert set(table.regimes) == {'["default"]'}  # list-valued grid parameters as JSON text
    assert str(table.severity.dtype) == "Int64"

    written = aggregate(tmp_path, reference="kd")
    summary = pd.read_csv(written["summary"])
    assert len(summary) == 6 and set(summary.n) == {2}
    paired = pd.read_csv(written["paired"])
    row = paired[(paired.table == "metrics_04") & (paired.model == "cud")].iloc[0]
    assert row["mean"] == pytest.approx(-0.025) and row["n"] == 2
    meta = json.loads(written["meta"].read_text())
    assert meta["runs"] == ["04-seed0-a", "04-seed1-b"] and meta["failed_runs"] == ["04-seed2-c"]


def test_aggregating_a_batch_without_finished_runs_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no finished runs"):
        aggregate(tmp_path)


def test_an_unknown_reference_writes_nothing(tmp_path):
    _finished_run(tmp_path, "04-seed0-a", 0, {"kd": 0.05, "cud": 0.03})
    with pytest.raises(ConfigError, match="reference model 'dkd'"):
        aggregate(tmp_path, reference="dkd")
    assert not list(tmp_path.glob("*.csv")) and not (tmp_path / "results.json").exists()
    written = aggregate(tmp_path, reference=None)
    assert set(written) == {"summary", "meta"}

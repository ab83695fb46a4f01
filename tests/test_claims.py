"""Claim verdicts from paired intervals: outcomes, verdict rules, the batch table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from calibkd.errors import ConfigError
from calibkd.runs import claims


def fake_runs(differences: dict[tuple[str, str, str], list[float]], seeds=(0, 1, 2)) -> pd.DataFrame:
    """A stacked batch table: KD at 0.5 everywhere, other models KD + the given per-seed difference."""
    rows = []
    for seed in seeds:
        for where, metric in {(w, m) for (_, w, m) in differences} | {("test", "accuracy")}:
            rows.append({"run_id": f"r{seed}", "seed": seed, "notebook": "04_student_distillation", "regime": "default",
                         "split": where, "model": "kd", "metric": metric, "value": 0.5})
        for (model, where, metric), values in differences.items():
            rows.append({"run_id": f"r{seed}", "seed": seed, "notebook": "04_student_distillation", "regime": "default",
                         "split": where, "model": model, "metric": metric, "value": 0.5 + values[seed]})
    return pd.DataFrame(rows)


def test_outcomes_follow_the_interval_and_the_supporting_direction():
    table = claims.batch_table(fake_runs({
        ("cud", "test", "accuracy"): [0.010, 0.012, 0.011],   # clearly higher
        ("cud", "test", "ece"): [-0.001, 0.002, 0.0],         # within noise
        ("kd_ts", "test", "ece"): [0.02, 0.021, 0.019],       # clearly higher (worse)
    }))
    comparisons = [
        claims.Comparison("C-cud", "default", "cud", "kd", "accuracy", "test", "higher"),
        claims.Comparison("C-cud", "default", "cud", "kd", "ece", "test", "lower"),
        claims.Comparison("C-shift", "default", "kd_ts", "kd", "ece", "test", "lower"),
    ]
    evidence = claims.evaluate(table, comparisons).set_index(["comparison", "metric"])
    assert evidence.loc[("cud - kd", "accuracy"), "outcome"] == "supports"
    assert evidence.loc[("cud - kd", "ece"), "outcome"] == "within noise"
    assert evidence.loc[("kd_ts - kd", "ece"), "outcome"] == "contradicts"
    # the interval is the t-interval of the paired differences
    d = np.array([0.010, 0.012, 0.011])
    half = 4.302652729911275 * d.std(ddof=1) / np.sqrt(3)
    assert evidence.loc[("cud - kd", "accuracy"), "ci_low"] == pytest.approx(d.mean() - half)


def test_verdict_rules():
    v = claims.verdict
    assert v(pd.Series(["supports", "within noise"])) == "supported"
    assert v(pd.Series(["contradicts", "within noise"])) == "not supported"
    assert v(pd.Series(["supports", "contradicts"])) == "mixed"
    assert v(pd.Series(["within noise"])) == "not supported (within noise)"
    assert v(pd.Series(["not tested"])) == "not tested"


def test_one_seed_is_not_tested():
    table = claims.batch_table(fake_runs({("cud", "test", "accuracy"): [0.01]}, seeds=(0,)))
    evidence = claims.evaluate(table, [claims.Comparison("C-cud", "default", "cud", "kd", "accuracy", "test", "higher")])
    assert evidence["outcome"].tolist() == ["not tested"]


def test_shift_mean_averages_severities_within_each_run():
    rows = []
    for seed in (0, 1):
        for severity in (0, 1, 2, 3, 4, 5):
            condition = "clean" if severity == 0 else "corruption_mean"
            rows.append({"run_id": f"r{seed}", "seed": seed, "regime": "default", "condition": condition,
                         "severity": severity, "model": "kd", "metric": "ece", "value": severity / 10 + seed})
    table = claims.batch_table(pd.DataFrame(rows))
    mean = table[table["where"] == claims.SHIFT_MEAN].set_index("seed")["value"]
    assert mean.loc[0] == pytest.approx(0.3) and mean.loc[1] == pytest.approx(1.3)


def test_natural_shift_rows_exist_only_for_runs_with_in_distribution_scores():
    rows = []
    for seed in (0, 1, 2):
        for model, seen, held in (("kd", 0.02, 0.10), ("cudp", 0.03, 0.06 + 0.001 * seed)):
            for condition, value in (("in_distribution", seen), ("clean", held)):
                rows.append({"run_id": f"r{seed}", "seed": seed, "regime": "default", "condition": condition,
                             "severity": 0, "model": model, "metric": "ece", "value": value + seed / 100})
    table = claims.batch_table(pd.DataFrame(rows))
    change = table[table["where"] == claims.NATURAL_SHIFT_CHANGE].set_index(["seed", "model"])["value"]
    assert change.loc[(1, "kd")] == pytest.approx(0.08) and change.loc[(2, "cudp")] == pytest.approx(0.032)
    held = table[table["where"] == claims.NATURAL_SHIFT].set_index(["seed", "model"])["value"]
    assert held.loc[(0, "kd")] == pytest.approx(0.10)
    shift = [c for c in claims.default_comparisons(["default"]) if c.where == claims.NATURAL_SHIFT]
    evidence = claims.evaluate(table, shift).set_index("comparison")
    assert evidence.loc["cudp - kd", "outcome"] == "supports" and evidence.loc["cudp - kd", "n"] == 3
    # a batch without in-distribution scores (Fashion-MNIST) gains no rows and no comparisons
    plain = claims.batch_table(pd.DataFrame([r for r in rows if r["condition"] == "clean"]))
    assert not plain["where"].isin([claims.NATURAL_SHIFT, claims.NATURAL_SHIFT_CHANGE]).any()
    assert claims.evaluate(plain, shift).empty


def test_missing_batch_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        claims.batch_root("nope", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no finished runs"):
        claims.batch_root("empty", tmp_path)


def test_long_tail_comparisons_read_the_few_shot_rows_of_their_regime():
    few = claims.group_where("few")
    table = claims.batch_table(fake_runs({
        ("cud", few, "accuracy"): [0.03, 0.035, 0.032],     # clearly better on rare classes
        ("cud", few, "ece"): [0.01, 0.012, 0.011],          # clearly worse calibrated there
        ("cud", "test", "accuracy"): [-0.05, -0.06, -0.055],  # not a long-tail row: ignored
    }).assign(regime="long_tail"))
    comparisons = claims.long_tail_comparisons()
    assert {c.where for c in comparisons} == {few} and {c.regime for c in comparisons} == {"long_tail"}
    evidence = claims.evaluate(table, comparisons).set_index(["comparison", "metric"])
    assert evidence.loc[("cud - kd", "accuracy"), "outcome"] == "supports"
    assert evidence.loc[("cud - kd", "ece"), "outcome"] == "contradicts"
    assert claims.verdict(evidence["outcome"]) == "mixed"
    # models the batch does not have are left out, not invented
    assert "cudp - kd" not in evidence.index.get_level_values(0)


def _finished_run(root, name, dataset):
    from calibkd.runs.store import FINISHED, runs_dir

    folder = runs_dir(root) / name
    folder.mkdir(parents=True)
    (folder / "parameters.yaml").write_text(yaml.safe_dump({"parameters": {"dataset": dataset, "seed": 0}}))
    (folder / FINISHED).write_text("{}")


def test_cardinality_verdict_reads_one_batch_or_several(tmp_path):
    fmnist, glyphs = tmp_path / "reference-fmnist", tmp_path / claims.CARDINALITY_BATCH
    _finished_run(fmnist, "a", "fashion_mnist")
    only_low = claims.cardinality_verdict(fmnist)
    assert only_low == {"claim": "C-cardinality", "regime": "all",
                        "verdict": "not tested: no dataset with >= 100 classes in the batch (fashion_mnist)"}
    # a glyph batch that does not exist or has no finished runs changes nothing
    assert claims.cardinality_verdict([fmnist, glyphs]) == only_low
    (glyphs / "runs").mkdir(parents=True)
    assert claims.cardinality_verdict([fmnist, glyphs]) == only_low
    _finished_run(glyphs, "b", "glyphs")
    assert "no dataset with < 100 classes next to glyphs" in claims.cardinality_verdict(glyphs)["verdict"]
    both = claims.cardinality_verdict([fmnist, glyphs])["verdict"]
    assert both == "not tested: no contrast of chapter 04 is in the runs of both glyphs and fashion_mnist"
    assert claims.batch_datasets(fmnist) | claims.batch_datasets(glyphs) == {"fashion_mnist", "glyphs"}


def test_welch_interval_matches_scipy():
    from scipy import stats

    from calibkd.runs.results import welch_interval

    a, b = [0.1, 0.4, 0.35, 0.2], [0.05, 0.02, 0.11]
    diff, low, high, _ = welch_interval(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert diff == pytest.approx(np.mean(a) - np.mean(b))
    assert (low, high) == pytest.approx((ci.low, ci.high))
    assert np.isnan(welch_interval([0.1], b)[1])


def test_cardinality_compares_per_seed_effects_across_datasets():
    low = claims.batch_table(fake_runs({("kd_ts", "test", "ece"): [-0.010, -0.012, -0.011],
                                        ("cud", "test", "accuracy"): [0.0, 0.001, -0.001]}))
    high = claims.batch_table(fake_runs({("kd_ts", "test", "ece"): [-0.050, -0.055, -0.052],   # helps far more
                                         ("cud", "test", "accuracy"): [0.002, -0.002, 0.001]}))  # same
    evidence = claims.cardinality_evidence(low, high, "fashion_mnist", "glyphs").set_index(["comparison", "metric"])
    row = evidence.loc[("kd_ts - kd", "ece")]
    assert row["difference"] == pytest.approx(-0.052333 - (-0.011), abs=1e-5)
    assert row["outcome"] == "supports"
    assert evidence.loc[("cud - kd", "accuracy"), "outcome"] == "within noise"
    assert ("cudp - kd", "ece") not in evidence.index  # no CUD-P rows: not invented
    assert claims.verdict(evidence["outcome"]) == "supported"

"""Equal-budget tuning on validation: the grids, how choices apply, and one tiny run."""

from __future__ import annotations

import pytest

from calibkd.config import STUDENT_METHODS, TUNING_GRIDS, TuningGrid, check_tuning
from calibkd.errors import ConfigError
from calibkd.study.tuning import choices_from_table, tune, tuned_student
from tests.test_student_stage import make_stage


def test_every_method_gets_the_same_budget_and_kd_tries_the_temperatures_the_issue_names():
    check_tuning()
    sizes = {name: len(grid.configurations()) for name, grid in TUNING_GRIDS.items()}
    assert len(set(sizes.values())) == 1, sizes
    assert {1.0, 2.0, 4.0, 8.0} <= set(dict(TUNING_GRIDS["kd"].values)["temperature"])
    unequal = dict(TUNING_GRIDS) | {"kd": TuningGrid("kd", (("temperature", (2.0, 4.0)),), ("kd",))}
    with pytest.raises(ConfigError, match="same number of configurations"):
        check_tuning(unequal)
    with pytest.raises(ConfigError, match="name each grid once"):
        check_tuning(TUNING_GRIDS, ("kd", "dkd", "dus"))
    for grid in TUNING_GRIDS.values():
        assert grid.student in STUDENT_METHODS and set(grid.applies_to) <= set(STUDENT_METHODS)


def test_choices_apply_to_the_students_they_name_only():
    chosen = {"kd": {"temperature": 2.0, "alpha": 0.5}, "dkd": {"dkd_beta": 2.0, "dkd_alpha": 0.5},
              "dus": {"lambda_h": 0.3, "gate": "hard"}, "cud": {"m": 0.4, "eta": 1.0}}
    kd, overrides, dus = tuned_student("kd", chosen)
    assert (kd.distill.temperature, kd.distill.alpha, overrides, dus) == (2.0, 0.5, None, None)
    cud, overrides, dus = tuned_student("cud", chosen)
    assert (cud.distill.temperature, cud.distill.m, cud.distill.eta) == (2.0, 0.4, 1.0)
    assert overrides == {"lambda_h": 0.3} and dus == "dus_hard"
    wclip, overrides, dus = tuned_student("wclip", chosen)  # CE teacher: W-Clip's settings, no DUS choice
    assert (wclip.distill.m, overrides, dus) == (0.4, None, None)
    dkd, _, _ = tuned_student("dkd", chosen)
    assert (dkd.distill.dkd_beta, dkd.distill.temperature) == (2.0, 2.0)
    ce, _, _ = tuned_student("ce", chosen)
    assert ce == STUDENT_METHODS["ce"]
    assert tuned_student("kd", {}) == (STUDENT_METHODS["kd"], None, None)


def test_a_tiny_tuning_run_picks_the_lowest_validation_nll_and_the_table_gives_it_back(tiny_splits):
    grids = {"kd": TuningGrid("kd", (("temperature", (2.0, 4.0)),), TUNING_GRIDS["kd"].applies_to),
             "dkd": TuningGrid("dkd", (("dkd_beta", (4.0, 8.0)),), ("dkd",)),
             "dus": TuningGrid("dus_kd", (("lambda_h", (0.1, 0.3)),), TUNING_GRIDS["dus"].applies_to),
             "cud": TuningGrid("cud", (("m", (0.4, 0.7)),), TUNING_GRIDS["cud"].applies_to)}
    stage, asked = make_stage(tiny_splits)
    table, chosen = tune(stage, grids)
    assert len(table) == 8 and table.groupby("grid").chosen.sum().eq(1).all()
    for family, rows in table.groupby("grid"):
        best = rows.loc[rows.nll.idxmin()]
        assert best.chosen and chosen[family] == {k: float(best[k]) for k in chosen[family]}
    assert ("dus_soft", {"lambda_h": 0.3}) in asked  # a new DUS teacher per lambda_H
    assert choices_from_table(table, grids) == chosen


def _tuning_run(folder, name: str, status: str, code: str, regime: str = "default") -> None:
    import json

    import pandas as pd

    run = folder / "runs" / name
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"run_id": name, "status": status}))
    (run / "provenance.json").write_text(json.dumps({"code_version": code}))
    pd.DataFrame([{"grid": "kd", "configuration": "kd[alpha=0.5,temperature=2]", "nll": 0.3, "dataset": "fashion_mnist",
                   "profile": "default", "regime": regime}]).to_csv(run / "tuning_04.csv", index=False)


def test_tuning_choices_come_only_from_finished_runs_of_the_same_training_code(tmp_path):
    from calibkd.study.tuning import read_tuning

    _tuning_run(tmp_path, "04-seed0", "finished", "abc")
    _tuning_run(tmp_path, "04-seed1", "failed", "abc")  # stopped half-way: not read
    table = read_tuning(tmp_path, "fashion_mnist", "default", "default", code="abc")
    assert len(table) == 1
    with pytest.raises(ConfigError, match="no finished tuning runs.*regime 'long_tail'.*calibkd.runs run"):
        read_tuning(tmp_path, "fashion_mnist", "default", "long_tail", code="abc")
    with pytest.raises(ConfigError, match=r"other training code.*04-seed0 \(code abc\)"):
        read_tuning(tmp_path, "fashion_mnist", "default", "default", code="xyz")


def test_the_sensitivity_table_marks_the_configuration_each_regime_chose(tmp_path):
    import pandas as pd

    from calibkd.study.tuning import finished_trials, sensitivity

    _tuning_run(tmp_path, "04-seed0", "finished", "abc")
    extra = tmp_path / "runs" / "04-seed0" / "tuning_04.csv"
    pd.concat([pd.read_csv(extra), pd.DataFrame([
        {"grid": "kd", "configuration": "kd[alpha=0.5,temperature=4]", "nll": 0.2, "dataset": "fashion_mnist", "profile": "default",
         "regime": "default"},
        {"grid": "kd", "configuration": "kd[alpha=0.5,temperature=4]", "nll": 0.5, "dataset": "fashion_mnist", "profile": "default",
         "regime": "overconfident"}])]).to_csv(extra, index=False)
    table = sensitivity(finished_trials(tmp_path)).set_index(["regime", "configuration"])
    assert table.loc[("default", "kd[alpha=0.5,temperature=4]"), "chosen"] and not table.loc[("default", "kd[alpha=0.5,temperature=2]"), "chosen"]
    assert table.loc[("overconfident", "kd[alpha=0.5,temperature=4]"), "chosen"]  # the only one tried there
    assert table.loc[("default", "kd[alpha=0.5,temperature=2]"), "nll"] == 0.3

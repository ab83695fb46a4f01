"""A batch's regime checks summarised per regime, beside its verdicts."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from calibkd.errors import ConfigError
from calibkd.runs import claims
from calibkd.runs.companions import tuning_batch
from calibkd.runs.regime_checks import regime_checks


def _checks(regime: str, values: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"run_id": f"r{seed}", "seed": seed, "notebook": "04_student_distillation",
                          "regime": regime, "split": "regime check", "model": "teacher", "metric": metric,
                          "value": value}
                         for metric, per_seed in values.items() for seed, value in enumerate(per_seed)])


def test_each_regime_shows_its_checks_over_seeds_and_whether_the_requirement_holds():
    raw = pd.concat([
        _checks("overconfident", {"TS temperature": [2.3, 2.5, 2.4], "teacher accuracy (views)": [1.0, 0.999, 1.0],
                                  "overconfident": [1.0, 0.0, 1.0]}),
        _checks("default", {"TS temperature": [1.01, 0.99, 1.0], "overconfident": [0.0, 0.0, 0.0]}),
    ], ignore_index=True)
    shown = regime_checks(claims.batch_table(raw))
    assert list(shown.index) == ["overconfident", "default"]
    assert shown.loc["overconfident", "TS temperature"] == "2.400 [2.300, 2.500]"
    assert shown.loc["overconfident", "runs"] == 3
    assert shown.loc["overconfident", "requires"] == "overconfident"
    assert shown.loc["overconfident", "check"].startswith("fails:") and "1 of 3 runs" in shown.loc["overconfident", "check"]
    assert shown.loc["default", "check"] == "passes" and shown.loc["default", "requires"] == ""
    assert "DUS gate rate (before)" not in shown.columns  # not recorded: not invented
    one = regime_checks(claims.batch_table(_checks("default", {"TS temperature": [1.01]})))
    assert one.loc["default", "TS temperature"] == "1.010"
    assert regime_checks(claims.batch_table(_checks("default", {}).reindex(columns=raw.columns))).empty


def test_a_batch_names_the_tuning_batch_its_settings_come_from(tmp_path):
    def batch(name: str, tuning: str | None) -> object:
        folder = tmp_path / name
        folder.mkdir()
        extra = f"  tuning: {tuning}\n" if tuning is not None else ""
        (folder / "batch.yaml").write_text(f"notebooks: [04_student_distillation]\nparameters:\n  seed: 0\n{extra}")
        return folder

    assert tuning_batch(batch("tuned", "tuning-fmnist"), tmp_path) == tmp_path / "tuning-fmnist"
    assert tuning_batch(batch("own", "run"), tmp_path) is None
    assert tuning_batch(batch("plain", None), tmp_path) is None
    assert tuning_batch(tmp_path / "missing", tmp_path) is None


def test_what_a_batchs_finished_runs_recorded_decides_its_tuning_batch(tmp_path):
    """A definition edited for a re-run (it now names a tuning batch) does not
    change what the runs already made used; runs that disagree are refused."""
    root = tmp_path / "reference"
    root.mkdir()
    (root / "batch.yaml").write_text("notebooks: [04_student_distillation]\nparameters:\n  tuning: tuning-fmnist\n")

    def run(name: str, tuning: str | None) -> None:
        folder = root / "runs" / name
        folder.mkdir(parents=True)
        (folder / "run.json").write_text('{"status": "finished"}')
        recorded = f"  tuning: '{tuning}'\n" if tuning is not None else ""
        (folder / "parameters.yaml").write_text(f"run_id: {name}\nparameters:\n  seed: 0\n{recorded}")

    run("04-seed0-old", None)  # made before the parameter existed: the config's settings
    assert tuning_batch(root, tmp_path) is None
    run("04-seed1-new", "tuning-fmnist")
    with pytest.raises(ConfigError, match="different tuning settings"):
        tuning_batch(root, tmp_path)
    shutil.rmtree(root / "runs" / "04-seed0-old")
    assert tuning_batch(root, tmp_path) == tmp_path / "tuning-fmnist"

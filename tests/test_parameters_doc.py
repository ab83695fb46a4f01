"""Parameters documented and forgiving: the generated reference page matches
the config and the chapters, a parameter error is one line that says how to
fix it, runs are quiet by default, and ``runs aggregate`` prints its table."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from calibkd.config import NOTEBOOK_PARAMETERS, validate_parameters
from calibkd.config.design import PROFILES
from calibkd.errors import ConfigError
from calibkd.runs import runner as batch_runner
from calibkd.study import parameters_doc
from calibkd.study import runner as study_runner

CHECKOUT = Path(__file__).resolve().parents[1]


def test_the_committed_page_matches_the_config_and_the_chapters():
    committed = (CHECKOUT / parameters_doc.PAGE).read_text(encoding="utf-8")
    assert committed == parameters_doc.page(), \
        "docs/parameters.md is stale: run python -m calibkd.study.parameters_doc --write"


def test_the_page_lists_every_parameter_of_every_chapter_and_every_profile():
    page = parameters_doc.page()
    for name, declared in NOTEBOOK_PARAMETERS.items():
        section = page.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        for parameter in declared:
            assert f"| `{parameter}` |" in section, (name, parameter)
    for profile in PROFILES:
        assert f"| `{profile}` |" in page
    assert "`'smoke'`, `'default'`" not in page and "`smoke`, `default`, `full`" in page  # allowed values shown bare
    assert "-y 'regimes: [overconfident]'" in page and "--profile smoke" in page


def test_a_list_passed_as_text_says_how_to_pass_a_list():
    params = study_runner.declared_parameters(study_runner.notebook_path("01_teacher_training"))
    params["recipes"] = "['overconfident']"  # what papermill's -p makes of a list
    with pytest.raises(ConfigError, match=r"pass a list: in YAML \(papermill -y, batch.yaml\) 'recipes: \["):
        validate_parameters("01_teacher_training", params)


def test_study_parameter_errors_are_one_line(capsys):
    assert study_runner.main(["--profile", "tiny", "--notebooks", "01_teacher_training"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().count("\n") == 0 and captured.err.startswith("error: parameter 'profile'")
    assert study_runner.main(["--notebooks", "01_teacher_training", "-p", "recipes", "overconfident"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pass a list" in err


def test_study_runs_are_quiet_unless_verbose(monkeypatch):
    calls = []
    monkeypatch.setattr(study_runner, "run_study", lambda *a, log_output=False, **k: calls.append(log_output))
    assert study_runner.main(["--profile", "smoke"]) == 0
    assert study_runner.main(["--profile", "smoke", "-v"]) == 0
    assert calls == [False, True]


def test_a_failing_chapter_is_one_line_and_a_parameter_it_refuses_exits_2(monkeypatch, capsys, tmp_path):
    error = SimpleNamespace(ename="ConfigError", evalue="parameter 'x' is wrong\nmore", exec_count=4)
    failed = study_runner.NotebookFailed("03_calibration_methods", error, tmp_path / "03.ipynb")
    assert "\n" not in str(failed) and "cell 4" in str(failed) and str(tmp_path) in str(failed)

    def fail(*args, **kwargs):
        raise failed

    monkeypatch.setattr(study_runner, "run_study", fail)
    assert study_runner.main(["--profile", "smoke"]) == 2
    assert capsys.readouterr().err.startswith("error: 03_calibration_methods: parameter 'x' is wrong")
    failed = study_runner.NotebookFailed("03_calibration_methods", SimpleNamespace(
        ename="RuntimeError", evalue="boom", exec_count=4), tmp_path / "03.ipynb")
    assert study_runner.main(["--profile", "smoke"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "03_calibration_methods failed in cell 4: RuntimeError" in err


def test_batch_parameter_errors_are_one_line(tmp_path, capsys):
    batch = tmp_path / "bad"
    batch.mkdir()
    (batch / "batch.yaml").write_text("notebooks: [04_student_distillation]\nparameters:\n  profile: smoke\n"
                                      "  regimes: overconfident\ngrid:\n  seed: [0]\n")
    assert batch_runner.main(["run", str(batch), "--sequential"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "parameter 'regimes'" in err and "pass a list" in err


def test_aggregate_prints_the_summary_table(tmp_path, capsys):
    batch = tmp_path / "reference"
    shutil.copytree(CHECKOUT / "papermill_runs" / "reference-fmnist", batch)
    assert batch_runner.main(["aggregate", str(batch), "--allow-mixed-code", "--allow-dirty"]) == 0
    out = capsys.readouterr().out
    assert "regime default (test split; mean [95 % interval])" in out
    header = next(line for line in out.splitlines() if line.startswith("metric"))
    assert header.split() == ["metric", "accuracy", "ece", "nll", "brier"]
    kd = next(line for line in out.splitlines() if line.startswith("kd "))
    summary = pd.read_csv(CHECKOUT / "papermill_runs" / "reference-fmnist" / "results.csv")
    committed = summary[(summary["table"] == "metrics_04") & (summary["regime"] == "default")
                        & (summary["split"] == "test") & (summary["model"] == "kd")
                        & (summary["metric"] == "accuracy") & summary["severity"].isna()]["mean"]
    assert kd.split()[1] == f"{committed.item():.4f}"  # KD's mean test accuracy over the seeds, as committed
    assert f"wrote {batch / 'results.csv'}" in out


def test_a_study_prints_a_line_per_chapter_and_keeps_kernels_quiet(monkeypatch, tmp_path, capsys):
    import papermill

    calls, started = [], []

    class Kernel:  # stands in for the kernel started ahead: records its arguments
        def __init__(self, cwd, extra_arguments):
            started.append(extra_arguments)

        def ready(self):
            return None

        def shutdown(self):
            pass

    def execute(source, target, **kwargs):  # stands in for papermill: records how it was asked to run
        calls.append(kwargs)
        Path(target).write_text("{}")

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    monkeypatch.setattr(study_runner, "WarmKernel", Kernel)
    final = study_runner.run_study(["05_results"], {}, tmp_path)
    assert final.name.startswith("results-")  # chapter 05 alone has no profile
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[1/1] 05_results ... done in ") and len(out) == 2
    assert "--IPKernelApp.log_level=CRITICAL" in started[0] and calls[0]["log_output"] is False

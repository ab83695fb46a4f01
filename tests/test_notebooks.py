"""The notebooks: parameters cells, pairing with their .py sources, committed
outputs, and real papermill executions at the smoke size."""

from __future__ import annotations

import ast
import json

import jupytext
import nbformat
import pandas as pd
import papermill
import pytest

from calibkd.config import NOTEBOOK_PARAMETERS
from calibkd.course.notebook_tools import SMOKE_COPIES, smoke_copy
from calibkd.errors import ConfigError
from calibkd.study.runner import NOTEBOOK_DIR, run_study

NOTEBOOKS = sorted(NOTEBOOK_PARAMETERS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_parameters_cell_declares_exactly_the_registered_parameters(name):
    declared = papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"))
    assert list(declared) == list(NOTEBOOK_PARAMETERS[name])


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_one_parameters_cell_of_plain_values(name):
    notebook = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    for node in ast.parse(cells[0].source).body:
        assert isinstance(node, ast.Assign)
        ast.literal_eval(node.value)  # plain values only


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_ipynb_matches_its_jupytext_source(name):
    ipynb = jupytext.read(NOTEBOOK_DIR / f"{name}.ipynb")
    source = jupytext.read(NOTEBOOK_DIR / f"{name}.py")
    assert [c.source for c in ipynb.cells] == [c.source for c in source.cells], \
        "run `make sync` after editing notebooks/*.py"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_executed_and_clean(name):
    notebook = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    assert notebook.metadata.kernelspec.name == "python3"
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "execute with `make notebooks`"
    assert not any(o.get("output_type") == "error" for c in code for o in c.outputs)
    assert any("NBVAL_CHECK_OUTPUT" in c.source for c in code)
    assert not any("execution" in c.metadata for c in code), "timing metadata must be stripped"
    assert notebook.cells[0].cell_type == "markdown" and "What you will learn" in notebook.cells[0].source
    assert "Questions to try" in notebook.cells[-1].source


def test_study_runner_rejects_unknown_or_bad_parameters_before_running(tmp_path):
    with pytest.raises(ConfigError, match="unknown parameter"):
        run_study(NOTEBOOKS, {"epochz": 3}, tmp_path)
    with pytest.raises(ConfigError, match="allowed values"):
        run_study(NOTEBOOKS, {"profile": "huge"}, tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.notebooks
def test_injected_unknown_parameter_fails_before_training(tmp_path, isolated_cache):
    with pytest.raises(papermill.PapermillExecutionError, match="unknown parameter"):
        papermill.execute_notebook(
            str(NOTEBOOK_DIR / "01_teacher_training.ipynb"), str(tmp_path / "out.ipynb"),
            parameters={"profile": "smoke", "epochz": 3}, kernel_name="python3", progress_bar=False,
            cwd=str(NOTEBOOK_DIR),
        )
    assert not isolated_cache.exists() or not any(isolated_cache.iterdir())


@pytest.mark.notebooks
def test_smoke_study_writes_notebooks_figures_and_metrics_and_repeats(tmp_path):
    smoke = {"profile": "smoke", "shift_test_size": 200}
    first = run_study(NOTEBOOKS, smoke, tmp_path / "a")
    for name in NOTEBOOKS:
        assert (first / f"{name}.ipynb").is_file()
    figures = {p.stem for p in (first / "figures").glob("*.png")}
    assert {"01_training_curves", "02_reliability", "02_class_similarity", "02_dark_knowledge",
            "02_corruption_examples", "02_shift_curves", "03_reliability_test", "03_non_target_mass_train",
            "04_accuracy_vs_ece", "04_reliability", "04_shift_curves", "04_regimes",
            "05_bars", "05_accuracy_vs_ece", "05_shift_severity", "05_long_tail"} <= figures
    metrics = pd.read_csv(first / "metrics.csv")
    training = [n for n in NOTEBOOKS if n != "05_results"]  # 05 trains nothing: it reads a batch
    assert set(metrics.notebook) == set(training)
    verdicts = pd.read_csv(first / "claims_05.csv")
    assert {"C-collapse", "C-cardinality", "C-shift", "C-cud", "C-cud (long tail)"} <= set(verdicts.claim)
    assert {"accuracy", "nll", "brier", "ece", "ts_temperature", "agreement", "teacher_kl"} <= set(metrics.metric)
    provenance = json.loads((first / "provenance.json").read_text())
    assert provenance["torch"] and set(provenance["seconds"]) == set(NOTEBOOKS)
    # same parameters, models now from the cache: the same numbers (chapter 01
    # alone: nbval re-executes every chapter's smoke copy against its committed outputs)
    second = run_study(NOTEBOOKS[:1], {"profile": "smoke"}, tmp_path / "b")
    again = pd.read_csv(second / "metrics.csv")
    alone = metrics[metrics.notebook == NOTEBOOKS[0]].dropna(axis=1, how="all").reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, again, check_dtype=False)


SMOKE_NOTEBOOKS = sorted(p.stem for p in SMOKE_COPIES.glob("*.ipynb"))


def test_every_chapter_with_a_profile_has_a_smoke_copy():
    with_profile = [n for n in NOTEBOOKS if "profile" in NOTEBOOK_PARAMETERS[n]]
    assert SMOKE_NOTEBOOKS == with_profile, "run `make smoke-copies`"


@pytest.mark.parametrize("name", SMOKE_NOTEBOOKS)
def test_smoke_copy_is_its_chapter_plus_the_smoke_parameters_executed_cleanly(name):
    chapter = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    copy = nbformat.read(SMOKE_COPIES / f"{name}.ipynb", as_version=4)
    assert [c.source for c in copy.cells] == [c.source for c in smoke_copy(chapter).cells], \
        "the chapter changed since its smoke copy was executed: run `make smoke-copies`"
    code = [c for c in copy.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    assert not any(o.get("output_type") == "error" for c in code for o in c.outputs)
    assert any("NBVAL_CHECK_OUTPUT" in c.source and c.outputs for c in code)


@pytest.mark.notebooks
def test_diagnosis_on_glyphs_compares_soft_outputs_with_the_truth(tmp_path, monkeypatch):
    """Chapter 02 on the 183-class glyphs (true distributions known), on the
    smoke glyph size (four font packages, generated in seconds) and reduced to
    one teacher of one epoch: the section "Soft outputs against the truth"
    writes its table and figure."""
    from tests.test_glyphs import _fonts_or_skip

    _fonts_or_skip()
    monkeypatch.setenv("CALIBKD_GLYPH_SIZE", "smoke")  # the kernel inherits it
    monkeypatch.setenv("CALIBKD_GENERATED", str(tmp_path / "generated"))
    papermill.execute_notebook(
        str(NOTEBOOK_DIR / "02_miscalibration_diagnosis.ipynb"), str(tmp_path / "out.ipynb"),
        parameters={"profile": "smoke", "dataset": "glyphs", "recipes": ["default"], "teacher_epochs": 1,
                    "shift_test_size": 100, "output_dir": str(tmp_path)},
        kernel_name="python3", progress_bar=False, cwd=str(NOTEBOOK_DIR),
    )
    truth = pd.read_csv(tmp_path / "truth_02.csv")
    assert set(truth.split) == {"test", "train", "train (augmented)", "train fonts, new images"}
    assert {"kl_true", "tv_true", "group_mass", "group_uniformity", "group_recovery_auc"} == set(truth.metric)
    assert (truth[truth.metric == "kl_true"].value > 0).all()
    assert (tmp_path / "figures" / "02_truth.png").is_file()
    shift = pd.read_csv(tmp_path / "shift_02.csv")  # held-out fonts against new images of the training fonts
    assert {"clean", "in_distribution"} <= set(shift.condition)
    # its generated findings speak of this run: homoglyph groups, one teacher, its own temperature
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    cell = next(c for c in executed.cells if c.cell_type == "code" and "teacher_findings(" in c.source)
    findings = "".join(o.get("data", {}).get("text/markdown", "") for o in cell.outputs)
    assert "homoglyph groups" in findings and "garment" not in findings
    assert "Teacher **default**" in findings and "overconfident teacher" not in findings
    temperature = pd.read_csv(tmp_path / "metrics_02.csv").query("metric == 'ts_temperature'").value.iloc[0]
    assert f"T = {temperature:.2f}" in findings

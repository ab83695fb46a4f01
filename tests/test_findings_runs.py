"""Chapter 04's generated findings are correct for their own run (issue 17):
a smoke run on the long-tailed Fashion-MNIST regime and one on the glyphs
(skipped without the smoke font packages, as in ``tests/test_glyphs.py``),
each with a few students. The findings must discuss exactly the regimes the
run had, say that an "overconfident" regime failed its check exactly when
the run's own regime check says so, and state the numbers of the run's own
tables (``metrics_04.csv``)."""

from __future__ import annotations

import nbformat
import pandas as pd
import papermill
import pytest

from calibkd.study.findings import number, percent
from calibkd.study.runner import NOTEBOOK_DIR

STUDENTS = ["ce", "kd", "cud"]


def run_chapter_04(tmp_path, **parameters) -> tuple[str, pd.DataFrame]:
    """(the findings Markdown, metrics_04.csv) of a smoke run of chapter 04."""
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK_DIR / "04_student_distillation.ipynb"), str(out),
        parameters={"profile": "smoke", "student_methods": STUDENTS, "central_methods": STUDENTS, "sweep": {},
                    "shift_test_size": 100, "output_dir": str(tmp_path), **parameters},
        kernel_name="python3", progress_bar=False, cwd=str(NOTEBOOK_DIR),
    )
    cell = next(c for c in nbformat.read(out, as_version=4).cells
                if c.cell_type == "code" and "student_findings(" in c.source)
    text = "".join(o.get("data", {}).get("text/markdown", "") for o in cell.outputs)
    assert text, "the findings cell shows no Markdown"
    return text, pd.read_csv(tmp_path / "metrics_04.csv")


def value(metrics: pd.DataFrame, regime: str, split: str, model: str, metric: str) -> float:
    rows = metrics[(metrics.regime == regime) & (metrics.split == split) & (metrics.model == model)
                   & (metrics.metric == metric)]
    assert len(rows) == 1, (regime, split, model, metric)
    return float(rows.value.iloc[0])


def section(text: str, regime: str) -> str:
    """The findings of one regime (from its title to the next)."""
    return text.split(f"**Regime {regime}**", 1)[1].split("**Regime ", 1)[0]


def check_regime(text: str, metrics: pd.DataFrame, regime: str) -> None:
    """The regime's findings state its own check and its students' own scores."""
    mine = section(text, regime)
    views = value(metrics, regime, "regime check", "teacher", "teacher accuracy (views)")
    assert f"right on {percent(views)} of the students' training views" in mine
    failed = value(metrics, regime, "regime check", "teacher", "overconfident") < 1
    assert ("failed its check" in mine) == (regime == "overconfident" and failed)
    acc = {m: number(value(metrics, regime, "test", m, "accuracy")) for m in STUDENTS}
    ece = {m: number(value(metrics, regime, "test after TS", m, "ece")) for m in STUDENTS}
    assert f"KD against the CE student: accuracy {acc['kd']} against {acc['ce']}" in mine
    assert f"CUD against KD: accuracy {acc['cud']} against {acc['kd']}" in mine
    assert f"ECE after TS {ece['cud']} against {ece['kd']}" in mine
    assert "one seed, not tested against seed noise" in mine


@pytest.mark.notebooks
def test_chapter_04_findings_on_the_long_tail_are_those_of_its_tables(tmp_path):
    text, metrics = run_chapter_04(tmp_path, regimes=["long_tail"])
    assert "**Regime long_tail**" in text
    assert "Regime default" not in text and "Regime overconfident" not in text  # regimes not run: not discussed
    check_regime(text, metrics, "long_tail")
    few = {m: number(value(metrics, "long_tail", "test, few-shot classes", m, "accuracy")) for m in STUDENTS}
    assert f"few-shot accuracy {few['cud']} against {few['kd']}" in section(text, "long_tail")


@pytest.mark.notebooks
def test_chapter_04_findings_on_glyphs_are_those_of_its_tables(tmp_path, monkeypatch):
    from tests.test_glyphs import _fonts_or_skip

    _fonts_or_skip()
    monkeypatch.setenv("CALIBKD_GLYPH_SIZE", "smoke")  # the kernel inherits it
    monkeypatch.setenv("CALIBKD_GENERATED", str(tmp_path / "generated"))
    text, metrics = run_chapter_04(tmp_path, dataset="glyphs", regimes=["default", "overconfident"])
    for regime in ("default", "overconfident"):
        check_regime(text, metrics, regime)
    assert "long_tail" not in text and "few-shot" not in text

"""A study starts each chapter's kernel (and its imports) while the previous
chapter runs: the kernel papermill gets is the one started for it, in the
notebooks' folder, the warm-up leaves no trace in the notebook, and every
kernel is stopped, also when a chapter fails."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill
import pytest

from calibkd.study import kernels
from calibkd.study import runner as study

CHAPTERS = ["01_teacher_training", "02_miscalibration_diagnosis"]


@pytest.mark.notebooks
def test_a_warm_kernel_runs_its_warm_up_silently_in_its_folder(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os\nprint(os.getcwd())\nprint(warmed + 1)")])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source, executed = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(notebook, source)
    kernel = kernels.WarmKernel(tmp_path, ["--HistoryManager.hist_file=:memory:"], warm_code="warmed = 41")
    try:
        papermill.execute_notebook(str(source), str(executed), km=kernel.ready(), kernel_name="python3",
                                   progress_bar=False)
    finally:
        kernel.shutdown()
    cell = nbformat.read(executed, as_version=4).cells[0]
    assert cell.execution_count == 1, "the warm-up counted as an execution"
    assert "".join(o.get("text", "") for o in cell.outputs).split() == [str(tmp_path), "42"]
    assert not kernel.manager.has_kernel


class FakeKernel:
    """Stands in for WarmKernel and writes what happens to ``events``."""

    events: list[str] = []
    started = 0

    def __init__(self, cwd: Path, extra_arguments: list[str]) -> None:
        self.number, FakeKernel.started = FakeKernel.started, FakeKernel.started + 1
        assert Path(cwd) == study.NOTEBOOK_DIR
        self.events.append(f"start {self.number}")

    def ready(self) -> str:
        return f"kernel {self.number}"

    def shutdown(self) -> None:
        if f"stop {self.number}" not in self.events:
            self.events.append(f"stop {self.number}")


@pytest.fixture
def fake_kernels(monkeypatch):
    FakeKernel.events, FakeKernel.started = [], 0
    monkeypatch.setattr(study, "WarmKernel", FakeKernel)
    return FakeKernel.events


def test_the_next_chapters_kernel_starts_before_this_chapter_runs(tmp_path, monkeypatch, fake_kernels):
    def execute_notebook(input_path, output_path, parameters, km, **kwargs):
        fake_kernels.append(f"run {Path(input_path).stem} on {km}")
        Path(output_path).write_text("{}")

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    study.run_study(CHAPTERS, {"profile": "smoke"}, output=tmp_path)
    assert fake_kernels == ["start 0", "start 1", f"run {CHAPTERS[0]} on kernel 0", "stop 0",
                            f"run {CHAPTERS[1]} on kernel 1", "stop 1"]


def test_every_kernel_stops_when_a_chapter_fails(tmp_path, monkeypatch, fake_kernels):
    def execute_notebook(input_path, output_path, parameters, km, **kwargs):
        raise papermill.PapermillExecutionError(0, 1, "x = 1", "ValueError", "bad", [])

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    with pytest.raises(study.NotebookFailed, match="ValueError: bad"):
        study.run_study(CHAPTERS, {"profile": "smoke"}, output=tmp_path)
    assert fake_kernels == ["start 0", "start 1", "stop 0", "stop 1"]

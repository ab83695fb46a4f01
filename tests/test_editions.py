"""Student editions: generated from the solution notebooks, no solution text
in them, clear errors for badly tagged notebooks, and every chapter's student
edition still runs (at the smoke size) up to and past each exercise."""

from __future__ import annotations

import json
import time

import nbformat
import pytest
from nbclient import NotebookClient
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from calibkd.course import editions
from calibkd.course.editions import EditionError, generate, is_check, is_solution, student_edition
from calibkd.study.runner import NOTEBOOK_DIR

CHAPTERS = [p.stem for p in editions.numbered_notebooks()]


def _meta(grade_id: str, **flags) -> dict:
    return {"nbgrader": {"grade": False, "locked": False, "schema_version": 3, "solution": False,
                         "grade_id": grade_id, **flags}}


def _code(source: str, *tags: str, output: str | None = None, nbgrader: dict | None = None) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = list(tags)
    cell.metadata.update(nbgrader or {})
    if output is not None:
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)]
        cell.execution_count = 1
    return cell


def _markdown(source: str, *tags: str, nbgrader: dict | None = None) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_markdown_cell(source)
    cell.metadata["tags"] = list(tags)
    cell.metadata.update(nbgrader or {})
    return cell


def _solution(source: str, *tags: str, output: str | None = None) -> nbformat.NotebookNode:
    return _code(source, *tags, output=output, nbgrader=_meta("ex1", solution=True))


def _notebook(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[_markdown("# 09 · toy\n\nWhat you will learn"), *cells],
                                    metadata={"kernelspec": {"name": "python3", "language": "python",
                                                             "display_name": "Python 3"}})


def _toy() -> nbformat.NotebookNode:
    return _notebook(
        _code("x = 2", "nbval-skip", "thebe-init", output="setup output\n"),
        _solution("# Set `y` to x squared.\n### BEGIN SOLUTION\ny = x ** 2  # the secret answer\n### END SOLUTION",
                  output="secret printed answer 4\n"),
        _code("assert y == 4, 'not x squared: multiply x by itself'\nprint(f'correct: {y} is x squared')",
              output="correct: 4 is x squared\n", nbgrader=_meta("check1", grade=True, locked=True, points=1)),
        _markdown("Explain why.\n<!-- BEGIN SOLUTION -->\nBecause squaring two gives four, a hidden explanation.\n"
                  "<!-- END SOLUTION -->\nA remark after the answer that students keep.", "margin",
                  nbgrader=_meta("why", grade=True, solution=True, points=1)),
        _code("def f():\n    # Return 3.\n    ### BEGIN SOLUTION\n    return 3  # an indented hidden answer\n    ### END SOLUTION",
              nbgrader=_meta("ex2", solution=True)),
        _markdown("## Questions to try"),
    )


def test_student_edition_replaces_solution_regions_by_nbgraders_stubs_and_keeps_other_outputs():
    source = _toy()
    edition = student_edition(source, "09_toy")
    stubs = [c for c in edition.cells if is_solution(c)]
    assert [c.cell_type for c in stubs] == ["code", "markdown", "code"]
    assert stubs[0].source == "# Set `y` to x squared.\n# YOUR CODE HERE\nraise NotImplementedError()"
    assert stubs[0].outputs == [] and stubs[0].execution_count is None
    assert stubs[1].source == "Explain why.\nYOUR ANSWER HERE\nA remark after the answer that students keep."
    assert stubs[2].source == "def f():\n    # Return 3.\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    check = next(c for c in edition.cells if is_check(c))
    assert check.outputs == [] and check.execution_count is None
    setup = next(c for c in edition.cells if c.source == "x = 2")
    assert setup.outputs[0].text == "setup output\n"
    assert setup.metadata.tags == ["nbval-skip", "thebe-init"]  # other tools' tags pass through untouched
    assert stubs[1].metadata.tags == ["margin"] and stubs[1].metadata.nbgrader["grade_id"] == "why"
    assert edition.metadata["calibkd"]["edition"] == "student"
    assert edition.cells[0].source == source.cells[0].source and "Student edition" in edition.cells[1].source
    assert "BEGIN SOLUTION" in source.cells[2].source  # the source is untouched
    nbformat.validate(edition)


def test_no_solution_text_leaks_into_the_student_edition():
    source = _toy()
    secret = editions.solution_text(source, "09_toy")
    assert {"y = x ** 2  # the secret answer", "secret printed answer 4", "correct: 4 is x squared",
            "Because squaring two gives four, a hidden explanation.", "return 3  # an indented hidden answer"} <= set(secret)
    assert "A remark after the answer that students keep." not in secret
    text = nbformat.writes(student_edition(source, "09_toy"))
    assert not [line for line in secret if line in text]


@pytest.mark.parametrize("cells, message", [
    ([_code("# do it\n# --- solution ---\nx = 1", "solution")], "former course tag"),
    ([_code("# do it\n### BEGIN SOLUTION\nx = 1", nbgrader=_meta("a", solution=True))], "no END SOLUTION"),
    ([_code("# do it\n### END SOLUTION", nbgrader=_meta("a", solution=True))], "without a BEGIN"),
    ([_code("# a\n### BEGIN SOLUTION\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION", nbgrader=_meta("a", solution=True))],
     "nested"),
    ([_code("# a\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION")], "not an nbgrader solution cell"),
    ([_code("x = 1  # the answer, and nothing says what to do", nbgrader=_meta("a", solution=True))], "no region"),
    ([_code("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", nbgrader=_meta("a", solution=True))], "no exercise stub text"),
    ([_markdown("<!-- BEGIN SOLUTION -->\nThe answer.\n<!-- END SOLUTION -->",
                nbgrader=_meta("a", solution=True, grade=True, points=1))], "no exercise stub text"),
    ([_code("print('task')\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION", nbgrader=_meta("a", solution=True))],
     "must say in comments what to do"),
    ([_markdown("Why?\n<!-- BEGIN SOLUTION -->\nBecause.\n<!-- END SOLUTION -->", nbgrader=_meta("a", solution=True))],
     "both an nbgrader solution and a grade cell"),
    ([_code("assert True, 'ok'", nbgrader=_meta("c", grade=True, points=1))], "not locked"),
    ([_code("assert True, 'ok'", nbgrader=_meta("c", grade=True, locked=True))], "without points"),
    ([_code("# a\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION", nbgrader=_meta("a", solution=True)),
      _code("# b\n### BEGIN SOLUTION\ny = 1\n### END SOLUTION", nbgrader=_meta("a", solution=True))], "repeats grade_id"),
    ([_code("x = 1", "nbval-skip")], "nothing to turn into exercises"),
])
def test_badly_marked_notebooks_are_refused_with_a_clear_error(cells, message):
    with pytest.raises(EditionError, match=message):
        student_edition(_notebook(*cells), "09_toy")


def test_an_edition_is_not_made_from_a_student_edition():
    with pytest.raises(EditionError, match="already a student edition"):
        student_edition(student_edition(_toy(), "09_toy"), "09_toy")


def test_command_reports_bad_input_and_writes_nothing(tmp_path, capsys):
    good = tmp_path / "01_good.ipynb"
    nbformat.write(_toy(), good)
    bad = tmp_path / "02_bad.ipynb"
    nbformat.write(_notebook(_code("# a\n### BEGIN SOLUTION\nx = 1", nbgrader=_meta("a", solution=True))), bad)
    out = tmp_path / "student"
    assert editions.main([str(good), str(bad), "--out", str(out)]) == 1
    assert "no END SOLUTION" in capsys.readouterr().err
    assert not out.exists()
    assert editions.main([str(tmp_path / "missing.ipynb"), "--out", str(out)]) == 1


# ---------------------------------------------------------------------------
# the study's chapters
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    generate(editions.numbered_notebooks(), out)
    return out


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_chapter_has_a_checked_exercise_and_worked_answers(name):
    notebook = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    solutions = editions.find_solutions(notebook, name)
    code = [s for s in solutions if notebook.cells[s.index].cell_type == "code"]
    assert code, "at least one exercise with code"
    for solution in code:
        following = notebook.cells[solution.index + 1]
        assert is_check(following) and "assert" in following.source
        assert following.metadata.nbgrader["locked"] and following.metadata.nbgrader["points"] > 0
    closing = notebook.cells[-1]
    assert is_solution(closing) and "Questions to try" in closing.source


@pytest.mark.parametrize("name", CHAPTERS)
def test_student_edition_of_every_chapter_leaks_no_solution(name, student_dir):
    source = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    text = (student_dir / f"{name}.ipynb").read_text()
    edition = json.loads(text)
    assert edition["metadata"]["calibkd"]["edition"] == "student"
    leaked = [line for line in editions.solution_text(source, name) if line in text or json.dumps(line)[1:-1] in text]
    assert not leaked
    stubs = [c for c in edition["cells"] if c["metadata"].get("nbgrader", {}).get("solution")]
    assert len(stubs) == len(editions.find_solutions(source, name))
    assert all("YOUR CODE HERE" in "".join(c["source"]) or "YOUR ANSWER HERE" in "".join(c["source"]) for c in stubs)


def test_generating_twice_gives_the_same_files(tmp_path, student_dir):
    again = generate(editions.numbered_notebooks(), tmp_path)
    for path in again:
        assert path.read_bytes() == (student_dir / path.name).read_bytes()


def test_every_chapter_starts_with_the_same_install_cell():
    first_code = []
    for name in CHAPTERS:
        notebook = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
        first_code.append(next(c.source for c in notebook.cells if c.cell_type == "code"))
    assert 'find_spec("calibkd") is None' in first_code[0] and "pip" in first_code[0]
    assert len(set(first_code)) == 1


#: Parameters that make each chapter's student edition run in seconds: the
#: smoke profile, one teacher recipe, chapter 03 with one method, chapter 04
#: with two students and no sweep (the exercises need no trained model).
SMOKE = {
    "01_teacher_training": {"profile": "smoke", "recipes": ["default"]},
    "02_miscalibration_diagnosis": {"profile": "smoke", "recipes": ["default"], "shift_test_size": 200},
    "03_calibration_methods": {"profile": "smoke", "shift_test_size": 200, "methods": ["label_smoothing"],
                               "posthoc": ["temperature"]},
    "04_student_distillation": {"profile": "smoke", "shift_test_size": 200, "regimes": ["default"],
                                "student_methods": ["ce", "kd"], "central_methods": ["ce"], "sweep": {}},
    "05_results": {},
}


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One model cache for the chapters, so later chapters reuse earlier models."""
    return tmp_path_factory.mktemp("cache")


@pytest.mark.notebooks
@pytest.mark.parametrize("name", CHAPTERS)
def test_student_edition_runs_up_to_and_past_each_exercise(name, student_dir, shared_cache, monkeypatch):
    """Every cell runs except the stubs, which stop with NotImplementedError,
    and the checks that follow them (whose answer is missing)."""
    monkeypatch.setenv("CALIBKD_CACHE", str(shared_cache))
    notebook = load_notebook_node(str(student_dir / f"{name}.ipynb"))  # as papermill reads it
    notebook = parameterize_notebook(notebook, SMOKE[name], kernel_name="python3", language="python")
    started = time.perf_counter()
    NotebookClient(notebook, kernel_name="python3", timeout=600, allow_errors=True,
                   resources={"metadata": {"path": str(NOTEBOOK_DIR)}}).execute()
    print(f"{name}: {time.perf_counter() - started:.1f} s")
    stubs = 0
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if is_solution(cell):
            stubs += 1
            assert [e.ename for e in errors] == ["NotImplementedError"], f"cell {index}: {cell.source[:80]!r}"
        elif is_check(cell):
            assert errors, f"check cell {index} passed without the student's answer"
        else:
            assert not errors, f"cell {index} failed: {errors[0].ename}: {errors[0].evalue}"
    assert stubs >= 1


def _run_install_cell(monkeypatch, cwd, source_env: str | None) -> list[list[str]]:
    """Run the chapters' install cell as if calibkd were missing; returns the pip commands it ran."""
    import importlib.util
    import subprocess

    notebook = nbformat.read(NOTEBOOK_DIR / f"{CHAPTERS[0]}.ipynb", as_version=4)
    cell = next(c.source for c in notebook.cells if c.cell_type == "code")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "calibkd" else real_find_spec(name, *a))
    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: calls.append(command))
    monkeypatch.chdir(cwd)
    if source_env is None:
        monkeypatch.delenv("CALIBKD_SOURCE", raising=False)
    else:
        monkeypatch.setenv("CALIBKD_SOURCE", source_env)
    exec(compile(cell, "install-cell", "exec"), {})
    return calls


def test_install_cell_installs_from_the_checkout_or_calibkd_source(monkeypatch, tmp_path):
    checkout = NOTEBOOK_DIR.parent
    [command] = _run_install_cell(monkeypatch, NOTEBOOK_DIR, None)
    assert command[1:] == ["-m", "pip", "install", "-q", str(checkout)]
    [command] = _run_install_cell(monkeypatch, tmp_path, "calibkd-0.1.0-py3-none-any.whl")
    assert command[-1] == "calibkd-0.1.0-py3-none-any.whl"
    with pytest.raises(ModuleNotFoundError, match="CALIBKD_SOURCE"):
        _run_install_cell(monkeypatch, tmp_path, None)


def test_course_targets_install_nothing():
    """`make student-edition` and `make site` run no pip and no set-up step
    (a lab's environment is the lecturer's): they only check for a Python."""
    import shutil
    import subprocess

    if not shutil.which("make"):
        pytest.skip("make is not installed")
    plan = subprocess.run(["make", "-n", "student-edition", "site"], cwd=NOTEBOOK_DIR.parent,
                          capture_output=True, text=True, check=True).stdout
    assert "calibkd.course.editions" in plan and "calibkd.course.site build" in plan
    steps = [line for line in plan.splitlines() if any(s in line for s in ("-m pip", "-m venv", "apt-get", "calibkd.data.fetch"))]
    assert steps == [], "course targets must not install or download"
    missing = subprocess.run(["make", "site", "PY=/nonexistent/python"], cwd=NOTEBOOK_DIR.parent,
                             capture_output=True, text=True)
    assert missing.returncode != 0 and "make setup" in missing.stderr

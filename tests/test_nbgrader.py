"""nbgrader and the project's own command make the same student edition
from the chapters' markers, and the chapters' checks say *that* an answer is
wrong and how to look again, never the expected answer."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys

import nbformat
import pytest
import torch

from calibkd.course import editions
from calibkd.course.editions import is_check, is_solution

CHAPTERS = editions.numbered_notebooks()


@pytest.fixture(scope="module")
def nbgrader_release(tmp_path_factory):
    """``nbgrader generate_assignment`` of a copy of the chapters, as a lecturer runs it
    (default configuration, no database)."""
    pytest.importorskip("nbgrader")
    root = tmp_path_factory.mktemp("course")
    source = root / "source" / "calibkd"
    source.mkdir(parents=True)
    for chapter in CHAPTERS:
        shutil.copy(chapter, source / chapter.name)
    done = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "calibkd", "--no-db", "--force",
                           "--CourseDirectory.root=."], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "release" / "calibkd"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_nbgrader_and_the_projects_command_give_the_same_student_edition(chapter, nbgrader_release):
    """Same cells, same types, same sources. Documented differences
    (docs/course.md, "nbgrader"): the project's edition adds its note cell
    after the title and keeps the committed outputs of the cells that are
    neither answers nor checks; nbgrader clears every output and adds
    checksums and lock flags to the metadata."""
    theirs = nbformat.read(nbgrader_release / chapter.name, as_version=4)
    ours = editions.student_edition(nbformat.read(chapter, as_version=4), chapter.stem)
    assert "Student edition" in ours.cells[1].source
    ours_cells = ours.cells[:1] + ours.cells[2:]
    assert [(c.cell_type, c.source) for c in ours_cells] == [(c.cell_type, c.source) for c in theirs.cells]
    for mine, release in zip(ours_cells, theirs.cells):
        assert mine.metadata.get("nbgrader", {}).get("grade_id") == release.metadata.get("nbgrader", {}).get("grade_id")
        if is_solution(release) or is_check(release):
            assert not mine.get("outputs") and not release.get("outputs")
    assert any(is_check(c) and c.metadata.get("editable") is False for c in theirs.cells), "nbgrader locks the checks"
    assert sum("YOUR CODE HERE" in c.source for c in theirs.cells) >= 1


def _check_cells(chapter):
    notebook = nbformat.read(chapter, as_version=4)
    return notebook, [i for i, c in enumerate(notebook.cells) if is_check(c)]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_checks_say_how_to_look_again_without_formatting_a_value(chapter):
    """Every assertion of a check has a plain-text message (no f-string, no
    variable: nothing computed can reach it), and nothing is printed before
    the last assertion passes."""
    notebook, checks = _check_cells(chapter)
    assert checks
    for index in checks:
        tree = ast.parse(notebook.cells[index].source)
        asserts = [node for node in ast.walk(tree) if isinstance(node, ast.Assert)]
        assert asserts, f"cell {index} checks nothing"
        for node in asserts:
            assert isinstance(node.msg, ast.Constant) and isinstance(node.msg.value, str) and len(node.msg.value) > 20, \
                f"cell {index}, line {node.lineno}: the message must be plain text saying how to look again"
        last = max(node.lineno for node in asserts)
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", "") in
                 ("print", "display") and node.lineno < last]
        assert not calls, f"cell {index} prints before its last assertion"


def _wrong(value):
    """A wrong answer of the same kind as ``value``."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 0.37
    if isinstance(value, str):
        return "not the answer"
    if callable(value):
        return lambda probs, labels, *args, **kwargs: probs.clone()  # the identity: moves nothing
    return value


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_a_wrong_answer_fails_its_check_without_showing_the_expected_value(chapter):
    """Run the chapter's imports, the toy cells of its exercise and its
    solution, replace each answer by a wrong one and run the check: it fails
    with an AssertionError whose text holds none of the expected values."""
    notebook, _ = _check_cells(chapter)
    solution = editions.find_solutions(notebook, chapter.stem)[0].index
    parameters = next(i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", []))
    first_code = next(i for i, c in enumerate(notebook.cells) if c.cell_type == "code")  # the install cell
    toy = solution - 1
    while notebook.cells[toy].cell_type != "markdown":
        toy -= 1
    cells = [c for i, c in enumerate(notebook.cells) if c.cell_type == "code" and first_code < i < parameters] + \
        [c for c in notebook.cells[toy + 1:solution] if c.cell_type == "code"]
    namespace: dict = {"display": lambda *a, **k: None}
    for cell in cells:
        exec(compile(cell.source, f"{chapter.stem}:setup", "exec"), namespace)
    before = dict(namespace)
    exec(compile(notebook.cells[solution].source, f"{chapter.stem}:solution", "exec"), namespace)
    answers = {k: v for k, v in namespace.items() if k not in before and not k.startswith("_")}
    expected_text = [format(v, f) for v in answers.values() if isinstance(v, float) and not isinstance(v, bool)
                     for f in (".2f", ".3f", ".4f", "") if format(v, f)]
    check = notebook.cells[solution + 1]
    assert is_check(check)
    exec(compile(check.source, f"{chapter.stem}:check", "exec"), dict(namespace))  # the solution passes
    failed = 0
    for name, value in answers.items():
        if isinstance(value, torch.Tensor) or _wrong(value) is value:
            continue
        try:
            exec(compile(check.source, f"{chapter.stem}:check", "exec"), {**namespace, name: _wrong(value)})
        except AssertionError as error:
            failed += 1
            assert str(error), f"a wrong {name} fails the check without saying how to look again"
            leaked = [text for text in expected_text if text in str(error)]
            assert not leaked, f"a wrong {name} makes the check print the expected value {leaked}"
        # passing: a helper of the solution that the check does not test
    assert failed, "no wrong answer failed the check"

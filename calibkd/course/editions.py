"""One source, two editions: the student edition of the numbered notebooks.

The committed notebooks are the *solution* (instructor) edition, written
with nbgrader's markers and cell metadata so that a lecturer's ``nbgrader
generate_assignment`` and ``python -m calibkd.course.editions`` make the same
student edition from them (docs/course.md, "nbgrader"):

- a **solution cell** has ``metadata.nbgrader.solution = true`` and holds one
  region from a line containing ``BEGIN SOLUTION`` to one containing
  ``END SOLUTION`` (``### BEGIN SOLUTION`` in code, ``<!-- BEGIN SOLUTION
  -->`` in markdown), after its *stub text*, what the student is asked to do
  (comments in a code cell, so that it runs in the solution edition too;
  code before the region, such as a ``def`` line, stays in both editions);
- a **check cell** (nbgrader's autograder test) has ``grade = true``,
  ``solution = false``, ``locked = true`` and ``points``: it holds the
  assertions the student's answer must pass.

The student edition replaces each region by nbgrader's stubs (``# YOUR CODE
HERE`` and ``raise NotImplementedError()`` in code, so "Run all" stops at the
first open exercise; ``YOUR ANSWER HERE`` in markdown), indented as the
marker line, removes the outputs of solution and check cells (they would
show the answer) and keeps every other committed output, so students read
the reference run without training; it adds one note cell after the title.
``python -m calibkd.course.editions`` writes it into ``course/student/``.
*Decision:* generated, never committed (``course/`` is git-ignored).

Bad input stops with ``EditionError`` naming the cell: a solution cell
without stub text or without a closed region, a marker outside a solution
cell, nested regions, a code stub that is not comments, nbgrader metadata
nbgrader itself would refuse, or the project's former ``solution``/``check``
tags. Other tools' tags (``nbval-skip``, ``margin``, ``thebe-init``, ...) pass
through untouched.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import nbformat

from calibkd.io import atomic_write_text
from calibkd.paths import PROJECT_ROOT

#: nbgrader's default delimiters and stubs (nbgrader.preprocessors.ClearSolutions)
BEGIN_SOLUTION = "BEGIN SOLUTION"
END_SOLUTION = "END SOLUTION"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"
#: the marker lines as the chapters write them
CODE_BEGIN, CODE_END = "### BEGIN SOLUTION", "### END SOLUTION"
MARKDOWN_BEGIN, MARKDOWN_END = "<!-- BEGIN SOLUTION -->", "<!-- END SOLUTION -->"
#: the project's tags before it used nbgrader's metadata: refused with a pointer to the new form
FORMER_TAGS = ("solution", "solution-start", "solution-end", "check", "exercise")

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
STUDENT_DIR = PROJECT_ROOT / "course" / "student"

STUDENT_NOTE = (
    "> **Student edition.** Each exercise says what to do; replace `# YOUR CODE HERE` and "
    "`raise NotImplementedError()` with your answer (or `YOUR ANSWER HERE` with your own "
    "words); the locked cell after a code exercise checks it. Every other cell shows the output "
    "of the committed reference run. To run it yourself on a laptop, set `profile = \"smoke\"` "
    "in the parameters cell. Generated from `notebooks/{name}` by `make student-edition` "
    "(the same cells as `nbgrader generate_assignment` makes)."
)


class EditionError(ValueError):
    """A notebook's solution or check cells cannot make a student edition."""


@dataclass(frozen=True)
class Solution:
    """One solution cell: its index, the stub text before its region and the answer inside it."""

    index: int
    stub: str
    answer: str


def nbgrader_meta(cell: nbformat.NotebookNode) -> dict:
    return dict(cell.get("metadata", {}).get("nbgrader", {}))


def is_solution(cell: nbformat.NotebookNode) -> bool:
    return bool(nbgrader_meta(cell).get("solution"))


def is_check(cell: nbformat.NotebookNode) -> bool:
    """A locked, graded cell that is not an answer: nbgrader's autograder test."""
    meta = nbgrader_meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution")


def _where(path: str, index: int, cell: nbformat.NotebookNode) -> str:
    first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else "(empty)"
    return f"{path}: cell {index} ({cell.cell_type}, starting {first_line[:60]!r})"


def clear_region(source: str, stub: str) -> tuple[str, bool]:
    """``source`` with each solution region replaced by ``stub`` indented as its
    BEGIN line, as nbgrader's ClearSolutions does; and whether there was one.
    Raises ``EditionError`` for a nested or unclosed region or a stray END."""
    out: list[str] = []
    inside = found = False
    for line in source.split("\n"):
        if BEGIN_SOLUTION in line:
            if inside:
                raise EditionError("nested BEGIN SOLUTION lines")
            inside = found = True
            indent = re.match(r"\s*", line).group(0)
            out.extend(indent + stub_line for stub_line in stub.split("\n"))
        elif END_SOLUTION in line:
            if not inside:
                raise EditionError("an END SOLUTION line without a BEGIN SOLUTION line before it")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise EditionError("a BEGIN SOLUTION line that no END SOLUTION line closes")
    return "\n".join(out), found


def _check_metadata(notebook: nbformat.NotebookNode, path: str) -> None:
    """What nbgrader's validator would refuse, said before any work."""
    seen: dict[str, int] = {}
    for index, cell in enumerate(notebook.cells):
        meta = nbgrader_meta(cell)
        if not meta:
            continue
        where = _where(path, index, cell)
        if meta.get("grade") or meta.get("solution") or meta.get("locked"):
            grade_id = meta.get("grade_id", "")
            if not grade_id:
                raise EditionError(f"{where} has nbgrader metadata without a grade_id")
            if grade_id in seen:
                raise EditionError(f"{where} repeats grade_id {grade_id!r} of cell {seen[grade_id]}")
            seen[grade_id] = index
        if meta.get("grade") and "points" not in meta:
            raise EditionError(f"{where} is an nbgrader grade cell without points")
        if cell.cell_type == "markdown" and bool(meta.get("grade")) != bool(meta.get("solution")):
            raise EditionError(f"{where}: a markdown answer must be both an nbgrader solution and a grade cell")
        if is_check(cell) and not meta.get("locked"):
            raise EditionError(f"{where} is a check (grade) cell that is not locked")


def find_solutions(notebook: nbformat.NotebookNode, path: str = "notebook") -> list[Solution]:
    """Every solution cell of ``notebook``, in order, after checking markers and metadata."""
    _check_metadata(notebook, path)
    solutions: list[Solution] = []
    for index, cell in enumerate(notebook.cells):
        where = _where(path, index, cell)
        tags = list(cell.get("metadata", {}).get("tags", []))
        former = [t for t in tags if t in FORMER_TAGS]
        if former:
            raise EditionError(
                f"{where} has the former course tag(s) {former}: mark solutions and checks with nbgrader's "
                f"cell metadata and BEGIN/END SOLUTION lines instead (docs/course.md)")
        try:
            _, found = clear_region(cell.source, "")
        except EditionError as error:
            raise EditionError(f"{where}: {error}") from None
        if not is_solution(cell):
            if found:
                raise EditionError(f"{where} has a BEGIN SOLUTION region but is not an nbgrader solution cell")
            continue
        if not found:
            raise EditionError(
                f"{where} is a solution with no region: start it with what the student should do, then a line "
                f"{CODE_BEGIN if cell.cell_type == 'code' else MARKDOWN_BEGIN!r}, the answer, and an END SOLUTION line")
        lines = cell.source.split("\n")
        begin = next(i for i, line in enumerate(lines) if BEGIN_SOLUTION in line)
        end = next(i for i, line in enumerate(lines) if END_SOLUTION in line)
        stub = "\n".join(lines[:begin]).strip()
        if not stub:
            raise EditionError(f"{where} is a solution with no exercise stub text before its BEGIN SOLUTION line")
        if cell.cell_type == "code" and not any(line.lstrip().startswith("#") for line in stub.splitlines()):
            raise EditionError(
                f"{where}: the stub of a code solution must say in comments what to do (code before the "
                f"region, such as a def line, is kept in both editions)")
        solutions.append(Solution(index, stub, "\n".join(lines[begin + 1:end]).strip()))
    return solutions


def student_edition(notebook: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The student edition of ``notebook`` (which is left unchanged)."""
    if notebook.metadata.get("calibkd", {}).get("edition") == "student":
        raise EditionError(f"{name} is already a student edition")
    solutions = find_solutions(notebook, name)
    if not solutions:
        raise EditionError(f"{name} has no nbgrader solution cell: nothing to turn into exercises")
    out = copy.deepcopy(notebook)
    for cell in out.cells:
        if is_solution(cell):
            cell.source, _ = clear_region(cell.source, CODE_STUB if cell.cell_type == "code" else TEXT_STUB)
        if cell.cell_type == "code" and (is_solution(cell) or is_check(cell)):
            cell.outputs = []
            cell.execution_count = None
    note = nbformat.v4.new_markdown_cell(STUDENT_NOTE.format(name=f"{name}.ipynb"))
    out.cells = out.cells[:1] + [note] + out.cells[1:]
    for index, cell in enumerate(out.cells):
        cell["id"] = f"cell-{index}"  # stable ids: regenerating gives the same file
    out.metadata["calibkd"] = {"edition": "student", "source": f"notebooks/{name}.ipynb"}
    return out


def _output_text(output: nbformat.NotebookNode) -> str:
    text = output.get("text", "")
    plain = output.get("data", {}).get("text/plain", "")
    html = output.get("data", {}).get("text/html", "")
    markdown = output.get("data", {}).get("text/markdown", "")
    return "\n".join("".join(t) if isinstance(t, list) else str(t) for t in (text, plain, html, markdown))


def _lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if line.strip()}


def solution_text(notebook: nbformat.NotebookNode, name: str = "notebook") -> list[str]:
    """Lines only answers hold (the regions of solution cells, their outputs
    and the outputs of check cells; at least 16 characters), minus any line
    that also appears (even inside a line) in what the student edition keeps
    (such a line gives nothing away). A student edition must contain none."""
    find_solutions(notebook, name)
    secret: set[str] = set()
    public: set[str] = {CODE_BEGIN, CODE_END, MARKDOWN_BEGIN, MARKDOWN_END}
    for cell in notebook.cells:
        outputs = "\n".join(_output_text(o) for o in cell.get("outputs", []))
        if is_solution(cell):
            kept, _ = clear_region(cell.source, "")
            public |= _lines(kept)
            secret |= _lines(cell.source) - _lines(kept)
            secret |= _lines(outputs)
        elif is_check(cell):
            public |= _lines(cell.source)
            secret |= _lines(outputs)
        else:
            public |= _lines(cell.source) | _lines(outputs)
    everywhere = "\n".join(public)  # a printed line whose text is in a public cell is no leak
    return sorted(line for line in secret - public if len(line) >= 16 and line not in everywhere)


def generate(sources: Sequence[Path], out_dir: Path = STUDENT_DIR) -> list[Path]:
    """Write the student edition of each notebook into ``out_dir``; all are
    checked before the first is written."""
    editions = []
    for source in sources:
        source = Path(source).with_suffix(".ipynb")
        if not source.is_file():
            raise EditionError(f"notebook {source} does not exist")
        notebook = nbformat.read(source, as_version=4)
        editions.append((source, student_edition(notebook, source.stem)))
    written = []
    for source, edition in editions:
        target = Path(out_dir) / source.name
        atomic_write_text(target, nbformat.writes(edition) + "\n")
        target.chmod(0o644)  # the students' copy, not a private temporary file
        written.append(target)
    return written


def numbered_notebooks(notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """The study's chapters, in order: ``notebooks/0*.ipynb``."""
    return sorted(Path(notebook_dir).glob("0*.ipynb"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m calibkd.course.editions", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="solution notebooks (default: notebooks/0*.ipynb)")
    parser.add_argument("--out", type=Path, default=STUDENT_DIR, help=f"output folder (default: {STUDENT_DIR})")
    args = parser.parse_args(argv)
    try:
        for path in generate(args.notebooks or numbered_notebooks(), args.out):
            print(f"wrote {path}")
    except EditionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One source, two editions: the student edition of the numbered notebooks.

The committed notebooks are the *solution* edition. Cells tagged
``solution`` (one cell) or a range from a cell tagged ``solution-start`` to
one tagged ``solution-end`` hold worked answers. Each solution starts with its
*stub text*, what the student is asked to do, separated from the answer by a
divider line:

- a code cell: comment lines, then ``# --- solution ---``, then the answer
  (the stub is comments because it also runs in the solution edition);
- a markdown cell: the task, then ``<!-- solution -->``, then the answer.

``python -m calibkd.course.editions`` writes the student edition into
``course/student/``: every solution (cell or range) becomes one stub cell
tagged ``exercise`` holding the stub text (a code stub ends with
``raise NotImplementedError``, so "Run all" stops at the first open
exercise), the outputs of ``check`` cells are removed (they would show the
answer), and every other cell keeps its committed outputs, so students read
the reference run without training. *Decision:* the student edition is
generated, never committed (``course/`` is git-ignored): there is one source.

Bad input stops with ``EditionError`` naming the cell: an unknown tag, a
range that is not closed (or closed without being opened, or nested), a
solution without stub text or divider, a code stub that is not comments.
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import nbformat

from calibkd.io import atomic_write_text
from calibkd.paths import PROJECT_ROOT

SOLUTION = "solution"
SOLUTION_START = "solution-start"
SOLUTION_END = "solution-end"
CHECK = "check"
#: put on the generated stub cells of the student edition
EXERCISE = "exercise"
COURSE_TAGS = (SOLUTION, SOLUTION_START, SOLUTION_END, CHECK, EXERCISE)
#: tags of papermill, nbclient, nbval and Jupyter Book, passed through unchanged
OTHER_TAGS = (
    "parameters", "injected-parameters", "raises-exception", "skip-execution",
    "remove-cell", "remove-input", "remove-output", "hide-input", "hide-output", "hide-cell",
)
KNOWN_TAGS = COURSE_TAGS + OTHER_TAGS

CODE_DIVIDER = "# --- solution ---"
MARKDOWN_DIVIDER = "<!-- solution -->"

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
STUDENT_DIR = PROJECT_ROOT / "course" / "student"

STUDENT_NOTE = (
    "> **Student edition.** Cells marked *Exercise* are yours to complete: each says what "
    "to do and stops with `NotImplementedError` until you replace its last line with your "
    "answer; the cell after it checks your answer. Every other cell shows the output of the "
    "committed reference run. To run it yourself on a laptop, set `profile = \"smoke\"` in "
    "the parameters cell. Generated from `notebooks/{name}` by `make student-edition`."
)


class EditionError(ValueError):
    """A notebook's course tags or solution cells cannot make a student edition."""


@dataclass(frozen=True)
class Solution:
    """One solution: cells ``first`` to ``last`` (inclusive) and the stub that replaces them."""

    first: int
    last: int
    stub: str
    answer: str


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _where(path: str, index: int, cell: nbformat.NotebookNode) -> str:
    first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else "(empty)"
    return f"{path}: cell {index} ({cell.cell_type}, starting {first_line[:60]!r})"


def split_stub(cell: nbformat.NotebookNode, where: str) -> tuple[str, str]:
    """``(stub, answer)`` of the first cell of a solution: the text before and after its divider."""
    divider = CODE_DIVIDER if cell.cell_type == "code" else MARKDOWN_DIVIDER
    lines = cell.source.splitlines()
    marks = [i for i, line in enumerate(lines) if line.strip() == divider]
    if not marks:
        raise EditionError(
            f"{where} is a solution with no exercise stub text: start it with what the student "
            f"should do, then a line {divider!r}, then the answer"
        )
    stub = "\n".join(lines[: marks[0]]).strip()
    answer = "\n".join(lines[marks[0] + 1:]).strip()
    if not stub:
        raise EditionError(f"{where} is a solution with no exercise stub text before {divider!r}")
    if cell.cell_type == "code":
        code = [line for line in stub.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        if code:
            raise EditionError(
                f"{where}: the stub of a code solution must be comments (it also runs in the "
                f"solution edition); found {code[0]!r}"
            )
    return stub, answer


def find_solutions(notebook: nbformat.NotebookNode, path: str = "notebook") -> list[Solution]:
    """Every solution of ``notebook``, in order, after checking all course tags."""
    solutions: list[Solution] = []
    opened: int | None = None
    for index, cell in enumerate(notebook.cells):
        tags = _tags(cell)
        where = _where(path, index, cell)
        unknown = [t for t in tags if t not in KNOWN_TAGS]
        if unknown:
            raise EditionError(f"{where} has unknown tag(s) {unknown}; allowed tags: {list(KNOWN_TAGS)}")
        if EXERCISE in tags:
            raise EditionError(f"{where} is tagged {EXERCISE!r}: this is already a student edition")
        course = [t for t in tags if t in (SOLUTION, SOLUTION_START, SOLUTION_END, CHECK)]
        if len(course) > 1 and set(course) != {SOLUTION_START, SOLUTION_END}:
            raise EditionError(f"{where} has conflicting tags {course}")
        if opened is not None and (SOLUTION in tags or CHECK in tags or SOLUTION_START in tags):
            raise EditionError(
                f"{where} is tagged {course} inside the solution range opened at cell {opened} "
                f"that is not closed; end that range with a cell tagged {SOLUTION_END!r}"
            )
        if SOLUTION in tags or SOLUTION_START in tags:
            opened = index
        if opened is None and SOLUTION_END in tags:
            raise EditionError(f"{where} is tagged {SOLUTION_END!r} but no {SOLUTION_START!r} cell opened a range")
        if SOLUTION in tags or SOLUTION_END in tags:
            first = notebook.cells[opened]
            stub, answer = split_stub(first, _where(path, opened, first))
            rest = [c.source for c in notebook.cells[opened + 1: index + 1]]
            solutions.append(Solution(opened, index, stub, "\n".join([answer, *rest]).strip()))
            opened = None
    if opened is not None:
        raise EditionError(
            f"{_where(path, opened, notebook.cells[opened])} opens a solution range with "
            f"{SOLUTION_START!r} that is never closed by a cell tagged {SOLUTION_END!r}"
        )
    return solutions


def _stub_cell(kind: str, stub: str, label: str) -> nbformat.NotebookNode:
    if kind == "code":
        source = f"{stub}\nraise NotImplementedError({label + ': replace this line with your answer'!r})"
        cell = nbformat.v4.new_code_cell(source)
    else:
        cell = nbformat.v4.new_markdown_cell(f"{stub}\n\n*{label}: your answer here.*")
    cell.metadata["tags"] = [EXERCISE]
    return cell


def student_edition(notebook: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The student edition of ``notebook`` (which is left unchanged)."""
    solutions = find_solutions(notebook, name)
    if not solutions:
        raise EditionError(f"{name} has no cell tagged {SOLUTION!r} or {SOLUTION_START!r}: nothing to turn into exercises")
    starts = {s.first: s for s in solutions}
    chapter = name.split("_", 1)[0]
    out = copy.deepcopy(notebook)
    cells: list[nbformat.NotebookNode] = []
    skip_to = -1
    for index, cell in enumerate(notebook.cells):
        if index <= skip_to:
            continue
        if index in starts:
            solution = starts[index]
            number = len([c for c in cells if EXERCISE in _tags(c)]) + 1
            cells.append(_stub_cell(cell.cell_type, solution.stub, f"Exercise {chapter}.{number}"))
            skip_to = solution.last
            continue
        cell = copy.deepcopy(cell)
        if CHECK in _tags(cell):
            cell.outputs = []
            cell.execution_count = None
        cells.append(cell)
    note = nbformat.v4.new_markdown_cell(STUDENT_NOTE.format(name=f"{name}.ipynb"))
    out.cells = cells[:1] + [note] + cells[1:]
    for index, cell in enumerate(out.cells):
        cell["id"] = f"cell-{index}"  # stable ids: regenerating gives the same file
    out.metadata["calibkd"] = {"edition": "student", "source": f"notebooks/{name}.ipynb"}
    return out


def _output_text(output: nbformat.NotebookNode) -> str:
    text = output.get("text", "")
    plain = output.get("data", {}).get("text/plain", "")
    html = output.get("data", {}).get("text/html", "")
    return "\n".join("".join(t) if isinstance(t, list) else str(t) for t in (text, plain, html))


def _lines(cell: nbformat.NotebookNode, source: bool = True, outputs: bool = True) -> set[str]:
    texts = ([cell.source] if source else []) + ([_output_text(o) for o in cell.get("outputs", [])] if outputs else [])
    return {line.strip() for text in texts for line in text.splitlines() if line.strip()}


def solution_text(notebook: nbformat.NotebookNode, name: str = "notebook") -> list[str]:
    """Lines only solutions hold (their answers, their outputs and the outputs
    of check cells; at least 16 characters), minus any line that also appears
    (even inside a line) elsewhere or in a stub (such a line gives nothing away). A student edition
    must contain none of them."""
    solutions = find_solutions(notebook, name)
    inside = {i for s in solutions for i in range(s.first, s.last + 1)}
    checks = {i for i, c in enumerate(notebook.cells) if CHECK in _tags(c)}
    secret = set().union(*(_lines(notebook.cells[i]) for i in inside),
                         *(_lines(notebook.cells[i], source=False) for i in checks))
    public = set().union(*(_lines(c, outputs=i not in checks) for i, c in enumerate(notebook.cells) if i not in inside))
    public |= {line.strip() for s in solutions for line in s.stub.splitlines()} | {CODE_DIVIDER, MARKDOWN_DIVIDER}
    everywhere = "\n".join(public)  # a printed line whose text is in a public cell's source is no leak
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

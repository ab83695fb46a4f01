"""The course sites: a student site and an instructor site from one source.

``python -m calibkd.course.site build`` (``make site``) writes two static
sites with Sphinx, myst-nb and sphinx-book-theme (the Jupyter Book 1 stack):

- ``site/student/``: the student editions (``calibkd.course.editions``):
  exercises with nbgrader's stubs, no solution, no worked answer;
- ``site/instructor/``: the solution notebooks, with every answer.

Each page has the chapters in a sidebar, the page's contents beside it,
offline search, a readable line length, a "download notebook" button (the
page's own notebook: the student edition on the student site) and math
typeset by MathJax 2 copied into the site. The install, import and parameter
cells are collapsed (tags added to a copy at build time, never to the
sources). Nothing is executed (``nb_execution_mode = "off"``): a notebook
without outputs is an error. Nothing comes from the network, at build time
or when a page is viewed. Each site is assembled in a temporary folder and
moved into place when complete.

*Decision* (docs/course.md, "The sites"): Sphinx + myst-nb +
sphinx-book-theme, what Jupyter Book 1 is made of, driven directly with one
configuration (``site_config/conf.py``) rather than through the
``jupyter-book`` command, whose version 2 is a different (Node-based) tool.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import nbformat

from calibkd.course import editions
from calibkd.io import atomic_write_text
from calibkd.paths import PROJECT_ROOT

SITE_DIR = PROJECT_ROOT / "site"
CONFIG_DIR = Path(__file__).resolve().parent / "site_config"
EDITIONS = ("student", "instructor")
SITE_TITLE = "calibkd: knowledge distillation from calibrated teachers"
#: tags put (on the build's copy) on the set-up cells: collapsed, one click away
HIDE_CELL, HIDE_INPUT = "hide-cell", "hide-input"

ANNOUNCEMENT = {
    "student": "Student edition: exercises without their solutions.",
    "instructor": "Instructor edition: with solutions and worked answers. Give students the student site.",
}
INTRO = {
    "student": (
        "The chapters of the study as executed for the committed reference run. Each chapter ends "
        "with an exercise (checked by the cell after it) and questions to try; download a chapter "
        "with the button at the top of its page and run it with `profile = \"smoke\"` on a laptop "
        "or a hosted notebook."),
    "instructor": (
        "The chapters of the study as executed for the committed reference run, **with the "
        "solutions of the exercises and the worked answers to the questions**. The student site "
        "is built from the same notebooks without them (`make site`, docs/course.md)."),
}


class SiteError(ValueError):
    """The site cannot be built from these notebooks; nothing was written."""


@dataclass(frozen=True)
class Chapter:
    """One notebook of the site: where it comes from and its title."""

    source: Path
    title: str
    notebook: nbformat.NotebookNode


def mathjax_source() -> Path:
    """The MathJax 2 files that ``jupyter-server-mathjax`` installs."""
    try:
        import jupyter_server_mathjax
    except ImportError as error:
        raise SiteError(_missing("jupyter-server-mathjax")) from error
    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (static / "MathJax.js").is_file():
        raise SiteError(f"no MathJax.js in {static}; reinstall jupyter-server-mathjax")
    return static


def _missing(package: str) -> str:
    return (f"{package} is not installed: the course sites need calibkd's course extra "
            f"(`make setup`, or `pip install -e \".[course]\"`, once, with access to PyPI)")


def check_builder() -> None:
    """Refuse early, with the command that fixes it, when the builder is missing."""
    for module, package in (("sphinx", "sphinx"), ("myst_nb", "myst-nb"), ("sphinx_book_theme", "sphinx-book-theme")):
        try:
            __import__(module)
        except ImportError as error:
            raise SiteError(_missing(package)) from error
    mathjax_source()


def load_chapter(path: Path) -> Chapter:
    """Read one executed notebook; refuse one that was never executed."""
    path = Path(path).with_suffix(".ipynb")
    if not path.is_file():
        raise SiteError(f"notebook {path} does not exist")
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    if code and not any(c.get("outputs") for c in code):
        raise SiteError(
            f"{path} has no outputs: the site shows committed outputs and executes nothing; "
            f"execute it first (make notebooks)"
        )
    unexecuted = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and c.execution_count is None]
    if unexecuted:
        warnings.warn(f"{path}: {len(unexecuted)} code cell(s) were not executed (cells {unexecuted[:8]}); "
                      "their outputs are missing from the site", stacklevel=2)
    headings = [line[2:].strip() for c in notebook.cells if c.cell_type == "markdown"
                for line in c.source.splitlines() if line.startswith("# ")]
    return Chapter(path, headings[0] if headings else path.stem, notebook)


def hide_setup(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``notebook`` whose set-up cells are collapsed: every code cell
    up to and including the parameters cell (install, imports, parameters) gets
    ``hide-cell``; the cell right after the parameters (which starts the run)
    shows its output with its code collapsed (``hide-input``). Without a
    parameters cell, only the first code cell (the install cell) is hidden."""
    out = copy.deepcopy(notebook)
    code = [i for i, c in enumerate(out.cells) if c.cell_type == "code"]
    parameters = next((i for i in code if "parameters" in out.cells[i].metadata.get("tags", [])), None)
    hidden = [i for i in code if i <= parameters] if parameters is not None else code[:1]
    after = [i for i in code if parameters is not None and i > parameters][:1]
    for index, tag in [(i, HIDE_CELL) for i in hidden] + [(i, HIDE_INPUT) for i in after]:
        tags = out.cells[index].metadata.setdefault("tags", [])
        if tag not in tags:
            tags.append(tag)
    return out


def _index(edition: str, chapters: Sequence[Chapter]) -> str:
    names = "\n".join(c.source.stem for c in chapters)
    return (f"# {SITE_TITLE}\n\n{INTRO[edition]}\n\n"
            f"```{{toctree}}\n:maxdepth: 1\n:caption: Chapters\n\n{names}\n```\n")


def _sphinx(source: Path, out: Path, edition: str) -> None:
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-E", "-c", str(CONFIG_DIR),
               "-D", f"html_title=calibkd · {edition} edition",
               "-D", f"html_theme_options.announcement={ANNOUNCEMENT[edition]}",
               "-D", f"html_static_path={source / '_static_extra'}",
               str(source), str(out)]
    env = {**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    problems = [line for line in done.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    if done.returncode != 0 or problems:
        raise SiteError(f"Sphinx failed for the {edition} site:\n" + "\n".join((problems or done.stderr.splitlines())[-20:]))


def edition_notebooks(edition: str, chapters: Sequence[Chapter]) -> list[nbformat.NotebookNode]:
    """The notebooks of one site: the chapters themselves (instructor) or their
    student editions, every one made (and checked) before anything is written."""
    if edition not in EDITIONS:
        raise SiteError(f"unknown edition {edition!r}; choose from {list(EDITIONS)}")
    return [editions.student_edition(c.notebook, c.source.stem) if edition == "student" else c.notebook
            for c in chapters]


def build_edition(edition: str, chapters: Sequence[Chapter], out: Path,
                  notebooks: Sequence[nbformat.NotebookNode] | None = None) -> Path:
    """One site (``student`` or ``instructor``) from executed chapters into
    ``out``; ``notebooks``: its pages when already made (``edition_notebooks``)."""
    if notebooks is None:
        notebooks = edition_notebooks(edition, chapters)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial"))
    try:
        source, html = work / "source", work / "html"
        source.mkdir()
        shutil.copytree(mathjax_source(), source / "_static_extra" / "mathjax")
        shutil.copy(CONFIG_DIR / "calibkd.css", source / "_static_extra")
        for chapter, notebook in zip(chapters, notebooks):
            nbformat.write(hide_setup(notebook), source / chapter.source.name)
        (source / "index.md").write_text(_index(edition, chapters))
        _sphinx(source, html, edition)
        shutil.rmtree(html / ".doctrees", ignore_errors=True)
        (html / ".buildinfo").unlink(missing_ok=True)
        _readable(html)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            html.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            html.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def build(notebooks: Sequence[Path] | None = None, out: Path = SITE_DIR,
          which: Sequence[str] = EDITIONS) -> dict[str, Path]:
    """Build the sites (default: both) from executed notebooks (default:
    ``notebooks/0*.ipynb``) into ``out/student`` and ``out/instructor``."""
    check_builder()
    sources = list(notebooks) if notebooks is not None else editions.numbered_notebooks()
    if not sources:
        raise SiteError("no notebooks to build a site from")
    chapters = [load_chapter(p) for p in sources]
    # the student edition of every chapter exists before any site is written
    pages = {"student": edition_notebooks("student", chapters), "instructor": None}
    return {edition: build_edition(edition, chapters, Path(out) / edition, pages.get(edition))
            for edition in which}


def _readable(root: Path) -> None:
    """World-readable, as a web server needs (temporary folders are created private)."""
    root.chmod(0o755)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m calibkd.course.site", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("build", help="build the student and the instructor site from the executed notebooks")
    cmd.add_argument("notebooks", nargs="*", type=Path, help="executed notebooks (default: notebooks/0*.ipynb)")
    cmd.add_argument("--out", type=Path, default=SITE_DIR, help=f"output folder (default: {SITE_DIR})")
    cmd.add_argument("--edition", choices=EDITIONS, action="append",
                     help="build only this site (repeatable; default: both)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        built = build(args.notebooks or None, args.out, args.edition or EDITIONS)
    except (SiteError, editions.EditionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for edition, path in built.items():
        print(f"{edition} site: {path / 'index.html'}")
    print(f"built in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

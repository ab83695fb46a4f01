"""The course site: static HTML of the committed, executed notebooks.

``python -m calibkd.course.site build`` (``make site``) writes ``site/``:
``index.html`` (the chapters in order, each with its title and what it
teaches), one page per chapter, the student edition of each chapter to
download (``student/``), and MathJax, so that the site works offline and
students can read it without installing anything.

*Decisions:* nbconvert's ``lab`` template, not Jupyter Book: it renders the
committed outputs as they are (figures embedded as PNG, pandas tables as
HTML), needs no extra toolchain, and its math goes through MathJax 2, which
``jupyter-server-mathjax`` ships, copied into the site instead of loaded from
a CDN (the page loads no script from the network). Nothing is executed at build time: a notebook without outputs is an
error (execute it with ``make notebooks`` first). Links between chapters
(``0N_name.ipynb``) are rewritten to their pages. The site is assembled in a
temporary folder and moved into place when complete.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import nbformat

from calibkd.course import editions
from calibkd.io import atomic_write_text
from calibkd.paths import PROJECT_ROOT

SITE_DIR = PROJECT_ROOT / "site"
MATHJAX_DIR = "mathjax"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"  # the full TeX config that jupyter-server-mathjax ships
MATHJAX_FONTS = ('<script type="text/x-mathjax-config">MathJax.Hub.Config({"HTML-CSS": '
                 '{availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null}});</script>')
SITE_TITLE = "calibkd: knowledge distillation from calibrated teachers"

STYLE = """
nav.calibkd { font-family: system-ui, sans-serif; padding: 0.6em 1em; background: #f3f4f6;
              border-bottom: 1px solid #d1d5db; display: flex; gap: 1.5em; flex-wrap: wrap; }
nav.calibkd a { color: #1d4ed8; text-decoration: none; }
body.calibkd-index { font-family: system-ui, sans-serif; max-width: 52em; margin: 2em auto; padding: 0 1em; }
body.calibkd-index li.chapter { margin-bottom: 1.5em; }
"""


class SiteError(ValueError):
    """The site cannot be built from these notebooks; nothing was written."""


@dataclass(frozen=True)
class Chapter:
    """One notebook of the site: where it comes from and what its page is called."""

    source: Path
    title: str
    notebook: nbformat.NotebookNode

    @property
    def page(self) -> str:
        return f"{self.source.stem}.html"


def mathjax_source() -> Path:
    """The MathJax 2 files that ``jupyter-server-mathjax`` installs."""
    try:
        import jupyter_server_mathjax
    except ImportError as error:
        raise SiteError("jupyter-server-mathjax is not installed (pip install -e .): the site needs its MathJax") from error
    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (static / "MathJax.js").is_file():
        raise SiteError(f"no MathJax.js in {static}; reinstall jupyter-server-mathjax")
    return static


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


def _link_chapters(page: str, chapters: Sequence[Chapter]) -> str:
    """Links to another chapter's notebook point to its page instead."""
    for chapter in chapters:
        pattern = rf'href="(?:\.\./notebooks/|\./)?{re.escape(chapter.source.name)}(#[^"]*)?"'
        page = re.sub(pattern, lambda m, target=chapter.page: f'href="{target}{m.group(1) or ""}"', page)
    return page


def _nav(chapters: Sequence[Chapter], index: int) -> str:
    links = ['<a href="index.html">Contents</a>']
    if index > 0:
        links.append(f'<a href="{chapters[index - 1].page}">&larr; {html.escape(chapters[index - 1].title)}</a>')
    if index + 1 < len(chapters):
        links.append(f'<a href="{chapters[index + 1].page}">{html.escape(chapters[index + 1].title)} &rarr;</a>')
    links.append(f'<a href="student/{chapters[index].source.name}" download>Student edition (.ipynb)</a>')
    return f'<nav class="calibkd">{" ".join(links)}</nav>'


def render_chapter(chapters: Sequence[Chapter], index: int, mathjax_url: str) -> str:
    """One chapter as a full HTML page with the site's navigation."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", mathjax_url=mathjax_url)
    body, _ = exporter.from_notebook_node(chapters[index].notebook,
                                          resources={"metadata": {"name": chapters[index].title}})
    # require.js only serves widgets, which the study has none of: the site loads nothing from a CDN
    body = re.sub(r'<script src="https?://[^"]*require[^"]*"></script>', "", body)
    # jupyter-server-mathjax ships only the STIX-Web web fonts: use them, never look for others
    body = body.replace(f'<script src="{mathjax_url}"', f"{MATHJAX_FONTS}\n<script src=\"{mathjax_url}\"", 1)
    body = _link_chapters(body, chapters)
    nav = _nav(chapters, index)
    body = re.sub(r"(<body[^>]*>)", lambda m: f"{m.group(1)}\n{nav}", body, count=1)
    body = body.replace("</head>", f'<link rel="icon" href="data:,"><style>{STYLE}</style>\n</head>', 1)
    return body.replace("</body>", f"{nav}\n</body>", 1)


def _summary(chapter: Chapter) -> str:
    """The chapter's opening cell without its title, as HTML."""
    import mistune

    opening = next(c.source for c in chapter.notebook.cells if c.cell_type == "markdown")
    text = "\n".join(line for line in opening.splitlines() if not line.startswith("# "))
    return mistune.html(text)


def render_index(chapters: Sequence[Chapter]) -> str:
    """The contents page: every chapter in order, with its opening text."""
    items = "\n".join(
        f'<li class="chapter"><h2><a href="{c.page}">{html.escape(c.title)}</a></h2>\n'
        f'<p><a href="student/{c.source.name}" download>Student edition (.ipynb)</a></p>\n{_summary(c)}</li>'
        for c in chapters
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(SITE_TITLE)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,"><style>{STYLE}</style></head>
<body class="calibkd-index">
<h1>{html.escape(SITE_TITLE)}</h1>
<p>The chapters of the study as executed for the committed reference run: read them here, or
download a chapter's student edition (exercises without their solutions) and run it with
<code>profile = "smoke"</code> on a laptop or a hosted notebook.</p>
<ol>
{items}
</ol>
</body></html>
"""


def build(notebooks: Sequence[Path] | None = None, out: Path = SITE_DIR) -> Path:
    """Build the site from executed notebooks (default: ``notebooks/0*.ipynb``) into ``out``."""
    sources = list(notebooks) if notebooks is not None else editions.numbered_notebooks()
    if not sources:
        raise SiteError("no notebooks to build a site from")
    chapters = [load_chapter(p) for p in sources]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial"))
    try:
        shutil.copytree(mathjax_source(), staging / MATHJAX_DIR)
        mathjax_url = f"{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}"
        for index, chapter in enumerate(chapters):
            atomic_write_text(staging / chapter.page, render_chapter(chapters, index, mathjax_url))
        editions.generate([c.source for c in chapters], staging / "student")
        atomic_write_text(staging / "index.html", render_index(chapters))
        _readable(staging)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            staging.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _readable(root: Path) -> None:
    """World-readable, as a web server needs (temporary files are created private)."""
    root.chmod(0o755)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m calibkd.course.site", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("build", help="build the static site from the executed notebooks")
    cmd.add_argument("notebooks", nargs="*", type=Path, help="executed notebooks (default: notebooks/0*.ipynb)")
    cmd.add_argument("--out", type=Path, default=SITE_DIR, help=f"output folder (default: {SITE_DIR})")
    args = parser.parse_args(argv)
    try:
        out = build(args.notebooks or None, args.out)
    except (SiteError, editions.EditionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"site written to {out}; open {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

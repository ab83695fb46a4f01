"""Keep the committed notebooks reviewable: ``python -m calibkd.course.notebook_tools``.

``sync`` rebuilds each ``.ipynb`` from its paired jupytext ``.py`` source
(keeping outputs); ``execute`` also runs it in place with the default
parameters; ``smoke`` executes a copy at the smoke profile into
``tests/notebooks_smoke/`` (the copies CI's nbval re-executes in minutes:
docs/testing.md); ``clean`` strips execution-time metadata so diffs show only
content. nbclient (not papermill) executes the committed references, since a
papermill-executed notebook can split stderr streams and is a poor nbval
reference.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import nbformat

from calibkd.io import atomic_write_text
from calibkd.paths import PROJECT_ROOT

#: Where ``smoke`` writes the chapters executed at the smoke profile.
SMOKE_COPIES = PROJECT_ROOT / "tests" / "notebooks_smoke"
#: The cell a smoke copy adds after the parameters cell (tagged like papermill's).
SMOKE_PARAMETERS = 'profile = "smoke"\n'
SMOKE_TAG = "injected-parameters"

NOISY_NOTEBOOK_METADATA = ("papermill", "widgets", "execution")
NOISY_CELL_METADATA = ("execution", "papermill", "collapsed", "scrolled")


def clean(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop timing and executor metadata; keep outputs and execution counts."""
    for key in NOISY_NOTEBOOK_METADATA:
        notebook.metadata.pop(key, None)
    for cell in notebook.cells:
        for key in NOISY_CELL_METADATA:
            cell.metadata.pop(key, None)
    return notebook


def sync(source: Path) -> Path:
    """Update ``<name>.ipynb`` from the paired ``<name>.py`` (outputs kept)."""
    subprocess.run([sys.executable, "-m", "jupytext", "--quiet", "--to", "ipynb", "--update", str(source)], check=True)
    return source.with_suffix(".ipynb")


def without_images(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop rendered figures (kept: text outputs, which nbval compares)."""
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not any(k.startswith("image/") for k in o.get("data", {}))]
    return notebook


def _run(notebook: nbformat.NotebookNode, target: Path, keep_images: bool = True) -> Path:
    """Execute ``notebook`` with nbclient in ``target``'s folder and write it there, cleaned."""
    from nbclient import NotebookClient

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("CALIBKD_PROGRESS", "0")
    NotebookClient(notebook, kernel_name="python3", timeout=None, record_timing=False,
                   resources={"metadata": {"path": str(target.parent)}}).execute()
    if not keep_images:
        without_images(notebook)
    atomic_write_text(target, nbformat.writes(clean(notebook)) + "\n")
    print(f"executed {target}")
    return target


def execute(source: Path) -> Path:
    """Sync, then execute the notebook in place with nbclient and clean it."""
    target = sync(source)
    return _run(nbformat.read(target, as_version=4), target)


def declares_profile(notebook: nbformat.NotebookNode) -> bool:
    """Whether the notebook's parameters cell sets ``profile`` (chapter 05,
    which reads committed batches, does not: nbval checks it as it is)."""
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    return any(isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "profile" for t in node.targets)
               for node in ast.parse(cell.source).body)


def smoke_copy(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The chapter with one cell added after its parameters cell that selects
    the smoke profile; every other cell is the chapter's own."""
    index = next(i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", []))
    if not declares_profile(notebook):
        raise ValueError("the notebook has no `profile` parameter: it has no smoke size")
    cell = nbformat.v4.new_code_cell(SMOKE_PARAMETERS, metadata={"tags": [SMOKE_TAG]})
    cell["id"] = "smoke-parameters"  # stable, so regenerated copies diff cleanly
    notebook.cells.insert(index + 1, cell)
    for cell in notebook.cells:  # stale outputs of the default run must not survive a failed cell
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return notebook


def execute_smoke(source: Path, folder: Path = SMOKE_COPIES) -> Path:
    """Sync, then execute a smoke copy of the chapter into ``folder`` (without
    its figures: the copies exist to be checked, the chapters to be read)."""
    notebook = smoke_copy(nbformat.read(sync(source), as_version=4))
    folder.mkdir(parents=True, exist_ok=True)
    return _run(notebook, folder / source.with_suffix(".ipynb").name, keep_images=False)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    usage = "usage: python -m calibkd.course.notebook_tools {sync|execute|smoke|clean} NOTEBOOK.py ..."
    if argv and argv[0] in ("-h", "--help"):
        print(usage + "\n\n" + __doc__)
        return 0
    if not argv or argv[0] not in ("sync", "execute", "smoke", "clean"):
        print(usage, file=sys.stderr)
        return 2
    command, paths = argv[0], [Path(p) for p in argv[1:]]
    for path in paths:
        if command == "sync":
            print(f"synced {sync(path)}")
        elif command == "execute":
            execute(path)
        elif command == "smoke":
            if declares_profile(nbformat.read(path.with_suffix(".ipynb"), as_version=4)):
                execute_smoke(path)
            else:
                print(f"skipped {path}: no profile parameter, so no smoke size")
        else:
            target = path.with_suffix(".ipynb")
            atomic_write_text(target, nbformat.writes(clean(nbformat.read(target, as_version=4))) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

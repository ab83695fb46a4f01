"""Keep the committed notebooks reviewable: ``python -m calibkd.notebook_tools``.

``sync`` rebuilds each ``.ipynb`` from its paired jupytext ``.py`` source
(keeping outputs); ``execute`` also runs it in place with the default
parameters; ``clean`` strips execution-time metadata so diffs show only
content. nbclient (not papermill) executes the committed references, since a
papermill-executed notebook can split stderr streams and is a poor nbval
reference.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat

from calibkd.checkpoints import atomic_write_text

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


def execute(source: Path) -> Path:
    """Sync, then execute the notebook in place with nbclient and clean it."""
    from nbclient import NotebookClient

    target = sync(source)
    notebook = nbformat.read(target, as_version=4)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("CALIBKD_PROGRESS", "0")
    NotebookClient(notebook, kernel_name="python3", timeout=None, record_timing=False,
                   resources={"metadata": {"path": str(target.parent)}}).execute()
    atomic_write_text(target, nbformat.writes(clean(notebook)) + "\n")
    print(f"executed {target}")
    return target


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("sync", "execute", "clean"):
        print("usage: python -m calibkd.notebook_tools {sync|execute|clean} NOTEBOOK.py ...", file=sys.stderr)
        return 2
    command, paths = argv[0], [Path(p) for p in argv[1:]]
    for path in paths:
        if command == "sync":
            print(f"synced {sync(path)}")
        elif command == "execute":
            execute(path)
        else:
            target = path.with_suffix(".ipynb")
            atomic_write_text(target, nbformat.writes(clean(nbformat.read(target, as_version=4))) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

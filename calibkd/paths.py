"""Where the project reads and writes.

Two different places, never confused:

- the **home** (``home()``): where data, caches and batches live.
  ``$CALIBKD_HOME`` if set, else the calibkd checkout found from the working
  directory (a folder whose ``pyproject.toml`` names the ``calibkd`` project,
  searched upward), else the checkout the package was imported from (an
  editable install), else a user cache folder (``$XDG_CACHE_HOME/calibkd``,
  ``~/.cache/calibkd`` by default). It holds ``.cache/`` (trained models,
  downloads, generated data, the kernels' IPython and matplotlib folders) and
  ``papermill_runs/`` (batches and study runs). Never the package's install
  location: after ``pip install`` that is ``site-packages``.
- the **source** (``CODE_ROOT``, ``source_checkout()``): the package's own
  files, which code fingerprints read (``CODE_ROOT/calibkd/...``: identical in
  a checkout and in an installed copy of the same source), and the checkout
  whose notebooks, README and course files the study runner and the course
  tools read.

The per-folder overrides ``$CALIBKD_CACHE`` (models), ``$CALIBKD_DOWNLOADS``
and ``$CALIBKD_GENERATED`` still win over the home.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: The environment variable that names the home.
HOME_VARIABLE = "CALIBKD_HOME"
#: The package's folder (``.../calibkd``).
PACKAGE_ROOT = Path(__file__).resolve().parent
#: The folder the running package was imported from: the checkout in an
#: editable install, ``site-packages`` after a plain install. Code
#: fingerprints read ``calibkd/**`` relative to it; never put data here.
CODE_ROOT = PACKAGE_ROOT.parent
#: Former name of ``CODE_ROOT``, kept for the course tools that read source
#: files beside the package (notebooks, README): source only, never data.
PROJECT_ROOT = CODE_ROOT

_PROJECT_NAME = re.compile(r'^\s*name\s*=\s*["\']calibkd["\']', re.MULTILINE)


def is_checkout(folder: Path) -> bool:
    """Whether ``folder`` holds a ``pyproject.toml`` naming the calibkd project."""
    try:
        text = (Path(folder) / "pyproject.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return bool(_PROJECT_NAME.search(text))


def find_checkout(start: Path | None = None) -> Path | None:
    """The calibkd checkout containing ``start`` (default: the working
    directory), searched upward; ``None`` when there is none."""
    try:
        here = Path(start if start is not None else Path.cwd()).resolve()
    except OSError:  # the working directory was deleted
        return None
    for folder in (here, *here.parents):
        if is_checkout(folder):
            return folder
    return None


def user_home() -> Path:
    """The home when neither ``$CALIBKD_HOME`` nor a checkout decides:
    ``$XDG_CACHE_HOME/calibkd``, else ``~/.cache/calibkd``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "calibkd"


def home() -> Path:
    """Where data, caches and batches live (see the module docstring): read
    anew on each call, so a notebook or test may set ``$CALIBKD_HOME`` late."""
    if os.environ.get(HOME_VARIABLE):
        return Path(os.environ[HOME_VARIABLE]).expanduser().resolve()
    return find_checkout() or (CODE_ROOT if is_checkout(CODE_ROOT) else user_home())


def batches_dir() -> Path:
    """Where batches and study runs live: ``<home>/papermill_runs``."""
    return home() / "papermill_runs"


def source_checkout() -> Path | None:
    """The checkout whose source files (notebooks, README, course files) the
    study runner and course tools read: the one the package was imported from
    (an editable install), else the home when it is a checkout; ``None``
    for an installed package with no checkout at hand."""
    if is_checkout(CODE_ROOT):
        return CODE_ROOT
    place = home()
    return place if is_checkout(place) else None


def _cache_folder(variable: str, name: str) -> Path:
    """``$variable``, else ``<home>/.cache/<name>`` (so a fresh clone starts empty)."""
    if os.environ.get(variable):
        return Path(os.environ[variable]).expanduser()
    return home() / ".cache" / name


def cache_dir() -> Path:
    """Where trained models are cached (``$CALIBKD_CACHE``, see ``_cache_folder``)."""
    return _cache_folder("CALIBKD_CACHE", "models")


def download_dir() -> Path:
    """Where torchvision downloads land when no local copy of a dataset exists (``$CALIBKD_DOWNLOADS``)."""
    return _cache_folder("CALIBKD_DOWNLOADS", "downloads")


def generated_dir() -> Path:
    """Where generated datasets (glyphs) are cached: ``$CALIBKD_GENERATED``, else
    ``generated/`` beside the downloads folder (``.cache/generated`` in the home)."""
    if os.environ.get("CALIBKD_GENERATED"):
        return Path(os.environ["CALIBKD_GENERATED"]).expanduser()
    return download_dir().parent / "generated"


#: pyproject.toml's ``[project.urls]`` key of the repository address.
REPOSITORY_KEY = "Repository"
#: The host of a placeholder address (RFC 2606's reserved ``.invalid``): no public one exists yet.
PLACEHOLDER_HOST = "example.invalid"


def repository_url() -> str | None:
    """Where to get the project: the ``Repository`` address of the installed
    package's metadata (pyproject.toml's ``[project.urls]``), else of the
    source checkout's pyproject.toml; ``None`` when neither names one."""
    from importlib import metadata

    try:
        for entry in metadata.metadata("calibkd").get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip() == REPOSITORY_KEY and url.strip():
                return url.strip()
    except metadata.PackageNotFoundError:
        pass
    checkout = source_checkout()
    if checkout is not None:
        found = re.search(rf'^\s*{REPOSITORY_KEY}\s*=\s*"([^"]+)"', (checkout / "pyproject.toml").read_text(encoding="utf-8"),
                          re.MULTILINE)
        if found:
            return found.group(1)
    return None


def is_placeholder(url: str | None) -> bool:
    """Whether ``url`` is missing or the placeholder address (no public repository yet)."""
    return not url or PLACEHOLDER_HOST in url

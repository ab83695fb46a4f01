"""Where the project reads and writes: the source checkout, the model cache,
downloads and generated data (each overridable by an environment variable)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_ROOT.parent


def _in_source_checkout() -> bool:
    return (PROJECT_ROOT / "pyproject.toml").is_file()


def cache_dir() -> Path:
    """Where trained models are cached: ``$CALIBKD_CACHE``, else ``.cache/`` in
    the source checkout (so a fresh clone starts empty), else ``~/.cache/calibkd``."""
    if os.environ.get("CALIBKD_CACHE"):
        return Path(os.environ["CALIBKD_CACHE"]).expanduser()
    if _in_source_checkout():
        return PROJECT_ROOT / ".cache" / "models"
    return Path.home() / ".cache" / "calibkd" / "models"


def download_dir() -> Path:
    """Where torchvision downloads land when no local copy of a dataset exists."""
    if os.environ.get("CALIBKD_DOWNLOADS"):
        return Path(os.environ["CALIBKD_DOWNLOADS"]).expanduser()
    if _in_source_checkout():
        return PROJECT_ROOT / ".cache" / "downloads"
    return Path.home() / ".cache" / "calibkd" / "downloads"


def generated_dir() -> Path:
    """Where generated datasets (glyphs) are cached: ``$CALIBKD_GENERATED``, else
    ``generated/`` beside the downloads folder (``.cache/generated`` in the checkout)."""
    if os.environ.get("CALIBKD_GENERATED"):
        return Path(os.environ["CALIBKD_GENERATED"]).expanduser()
    return download_dir().parent / "generated"

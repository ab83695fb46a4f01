"""Where the project reads and writes: the source checkout, the model cache,
downloads and generated data (each overridable by an environment variable)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_ROOT.parent


def _in_source_checkout() -> bool:
    return (PROJECT_ROOT / "pyproject.toml").is_file()


def _cache_folder(variable: str, name: str) -> Path:
    """``$variable``, else ``.cache/<name>`` in the source checkout (so a fresh
    clone starts empty), else ``~/.cache/calibkd/<name>``."""
    if os.environ.get(variable):
        return Path(os.environ[variable]).expanduser()
    if _in_source_checkout():
        return PROJECT_ROOT / ".cache" / name
    return Path.home() / ".cache" / "calibkd" / name


def cache_dir() -> Path:
    """Where trained models are cached (``$CALIBKD_CACHE``, see ``_cache_folder``)."""
    return _cache_folder("CALIBKD_CACHE", "models")


def download_dir() -> Path:
    """Where torchvision downloads land when no local copy of a dataset exists (``$CALIBKD_DOWNLOADS``)."""
    return _cache_folder("CALIBKD_DOWNLOADS", "downloads")


def generated_dir() -> Path:
    """Where generated datasets (glyphs) are cached: ``$CALIBKD_GENERATED``, else
    ``generated/`` beside the downloads folder (``.cache/generated`` in the checkout)."""
    if os.environ.get("CALIBKD_GENERATED"):
        return Path(os.environ["CALIBKD_GENERATED"]).expanduser()
    return download_dir().parent / "generated"

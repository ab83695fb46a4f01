"""Fingerprints of the code: which version of the program trained a model or
made a run.

``code_version()`` hashes the modules that determine a trained model's
weights and record (``MODEL_CODE``); it is part of every model's cache key
(``model_cache.model_params``), so editing one of them retrains instead of
silently reusing a model the old code trained. ``study_code_version()``
hashes every module a run's numbers can depend on (``STUDY_CODE``), and
``notebook_code_versions()`` each notebook's jupytext source; run
provenance records all three, and ``calibkd.runs.results.aggregate``
refuses to pool runs whose code differs.

A fingerprint is the SHA-256 over, for each file in a fixed (sorted) order,
its path relative to the project root and a canonical dump of its syntax
tree with the docstrings (module, class, function) and the command-line
part (a top-level ``def main`` and ``if __name__ == "__main__":``) removed:
comments, docstrings, blank lines and formatting never change it, any
change to what the code does does. The dump leaves out empty fields (as
``ast.dump`` does from Python 3.13 on), so a Python release that adds an
optional field to a node does not change it. The cache key's is computed
once per process (the code a process trains with is the code it imported);
the code is read where the package was imported from (``paths.CODE_ROOT``:
the checkout, or ``site-packages`` after a plain install, whose
``calibkd/...`` files and relative paths are the same, so the same source
gives the same fingerprints and cache keys wherever it is installed);
provenance reads the files anew for every run (``cached=False``), since a
long-lived runner outlives many edits while each run imports afresh.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path
from typing import Iterable

from calibkd.paths import CODE_ROOT, source_checkout

#: The modules whose code determines a trained model's weights and record
#: (test accuracy, ECE, TS temperature), relative to the project root; a
#: pattern may be a glob. The one list the cache key's ``code`` hashes.
MODEL_CODE = (
    "calibkd/runtime.py",                   # seeding and determinism
    "calibkd/metrics.py",                   # recorded accuracy, ECE; monitored NLL
    "calibkd/config/specs.py",              # recipes, losses, splits as the key records them
    "calibkd/config/design.py",             # profiles, regimes, method tables
    "calibkd/config/datasets.py",           # dataset facts, glyph settings
    "calibkd/config/charsets.py",           # the glyph classes
    "calibkd/data/*.py",                    # loading, splitting, subsets, augmentation, generated data
    "calibkd/nn/blocks.py",
    "calibkd/nn/models.py",
    "calibkd/nn/cifar_models.py",           # the CIFAR-100 benchmark's architectures
    "calibkd/nn/inference.py",
    "calibkd/methods/*.py",                 # losses, distillation targets, calibration (the record's temperature)
    "calibkd/training/loop.py",
    "calibkd/training/students.py",
    "calibkd/training/teacher_logits.py",
    "calibkd/training/cross_fit.py",
    "calibkd/training/stage.py",
    "calibkd/training/model_cache.py",      # get_trained: seeding, initial weights, the record
)
#: Left out of ``MODEL_CODE``'s globs: fetching puts files on disk, it does not change them.
MODEL_CODE_EXCLUDED = ("calibkd/data/fetch.py",)

#: Every module a run's numbers can depend on: the package but the batch
#: machinery (``runs``) and the course tooling (``course``), which compute no
#: run's numbers. Notebooks are fingerprinted one by one (``notebook_code_versions``).
STUDY_CODE = ("calibkd/**/*.py",)
STUDY_CODE_EXCLUDED = ("calibkd/runs/*.py", "calibkd/course/*.py")

#: Hex digits a version keeps (the cache key's ``code``, provenance's ``code_version``).
LENGTH = 16


def files_of(patterns: Iterable[str], excluded: Iterable[str] = (), root: Path = CODE_ROOT) -> list[str]:
    """The files ``patterns`` name under ``root`` (relative, sorted), less ``excluded``.

    A pattern without a glob character must name an existing file; a glob must
    match at least one (a renamed module is an error, not a silent gap)."""
    root = Path(root)
    skip = {str(p.relative_to(root)) for pattern in excluded for p in root.glob(pattern)}
    found = set()
    for pattern in patterns:
        matches = [str(p.relative_to(root)) for p in root.glob(pattern) if p.is_file()]
        if not matches:
            raise FileNotFoundError(f"code fingerprint: {pattern!r} names no file under {root}; "
                                    "update the list in calibkd/training/code_version.py")
        found |= set(matches)
    return sorted(found - skip)


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _is_command_line(node: ast.stmt) -> bool:
    """A top-level ``def main`` or ``if __name__ == "__main__":``."""
    if isinstance(node, ast.FunctionDef) and node.name == "main":
        return True
    test = getattr(node, "test", None) if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")


def _strip(tree: ast.Module) -> ast.Module:
    """``tree`` without docstrings and without its command-line part."""
    tree.body = [node for node in tree.body if not _is_command_line(node)]
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.body and _is_docstring(node.body[0]):
                node.body = node.body[1:]
    return tree


def _canonical(value: object) -> str:
    """``ast.dump`` without the position attributes and without empty fields."""
    if isinstance(value, ast.AST):
        fields = []
        for name in value._fields:
            field = getattr(value, name, None)
            if field is None or (isinstance(field, list) and not field):
                continue
            fields.append(f"{name}={_canonical(field)}")
        return f"{type(value).__name__}({', '.join(fields)})"
    if isinstance(value, list):
        return "[" + ", ".join(_canonical(v) for v in value) + "]"
    return repr(value)


def source_form(source: str) -> str:
    """The canonical form of one module's source that fingerprints hash."""
    return _canonical(_strip(ast.parse(source)))


def fingerprint(patterns: Iterable[str], excluded: Iterable[str] = (), root: Path = CODE_ROOT) -> str:
    """SHA-256 (hex) over the canonical form of every file ``patterns`` name, with its relative path."""
    digest = hashlib.sha256()
    for relative in files_of(patterns, excluded, root):
        form = source_form((Path(root) / relative).read_text(encoding="utf-8"))
        digest.update(f"{relative}\n{len(form)}\n{form}\n".encode())
    return digest.hexdigest()


#: ``fingerprint`` once per process and arguments (the code does not change under a running process).
_fingerprint_once = functools.lru_cache(maxsize=None)(fingerprint)


def _versions(cached: bool):
    return _fingerprint_once if cached else fingerprint


def code_version(root: Path = CODE_ROOT, cached: bool = True) -> str:
    """The fingerprint of ``MODEL_CODE`` (first ``LENGTH`` hex digits): the
    cache key's ``code``. Read once per process unless ``cached=False``."""
    return _versions(cached)(MODEL_CODE, MODEL_CODE_EXCLUDED, Path(root))[:LENGTH]


def study_code_version(root: Path = CODE_ROOT, cached: bool = True) -> str:
    """The fingerprint of ``STUDY_CODE`` (first ``LENGTH`` hex digits)."""
    return _versions(cached)(STUDY_CODE, STUDY_CODE_EXCLUDED, Path(root))[:LENGTH]


def notebook_code_versions(root: Path | None = None, cached: bool = True) -> dict[str, str]:
    """Each notebook's fingerprint, from its jupytext source ``notebooks/<name>.py``
    (markdown cells are comments there, so prose edits do not count), under
    ``root`` (default: ``paths.source_checkout()``, the checkout whose
    notebooks run); empty outside a source checkout."""
    if root is None:
        root = source_checkout()
        if root is None:
            return {}
    folder = Path(root) / "notebooks"
    return {path.stem: _versions(cached)((f"notebooks/{path.name}",), (), Path(root))[:LENGTH]
            for path in sorted(folder.glob("*.py"))}

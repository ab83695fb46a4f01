"""The package's shape: every module imports on its own, the subpackages form
layers (a lower layer never imports a higher one), and nothing imports in a
circle. Read from the source with ``ast``, so an import hidden inside a
function counts as much as one at the top."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "calibkd"

LEAVES = {"errors", "paths", "io", "runtime", "metrics", "plots"}
#: What each part of the package may import (besides itself).
ALLOWED = {
    "errors": set(), "paths": set(), "io": set(), "runtime": set(), "metrics": set(),
    # figures draw every method in its configured style (config.display)
    "plots": {"metrics", "config"},
    "config": LEAVES - {"plots"},
    "data": LEAVES | {"config"},
    "nn": LEAVES | {"config"},
    "methods": LEAVES | {"config"},
    "training": LEAVES | {"config", "data", "nn", "methods"},
    "evaluation": LEAVES | {"config", "data", "nn", "methods"},
    "study": LEAVES | {"config", "data", "nn", "methods", "training", "evaluation"},
    "runs": LEAVES | {"config", "study"},
    "course": LEAVES | {"config", "study"},
}
#: The study's entry points that ``runs`` and ``course`` may use.
STUDY_ENTRY_POINTS = {"calibkd.study.runner"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "__main__.py"}


def imports_of(path: Path) -> set[str]:
    """Every ``calibkd`` module ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "calibkd":
                found |= {f"calibkd.{a.name}" for a in node.names}
            elif node.module.startswith("calibkd."):
                names = [f"{node.module}.{a.name}" for a in node.names]
                found |= {n for n in names if n in MODULES} or {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("calibkd.")}
    return found


def part(module: str) -> str:
    return module.split(".")[1]


GRAPH = {name: imports_of(path) - {name} for name, path in MODULES.items()}


def test_every_module_belongs_to_a_known_part():
    assert {part(m) for m in MODULES if m != "calibkd"} <= set(ALLOWED)


@pytest.mark.parametrize("name", [m for m in MODULES if m != "calibkd"])
def test_a_module_imports_only_the_layers_below_it(name):
    mine = part(name)
    wrong = sorted(m for m in GRAPH[name] if part(m) != mine and part(m) not in ALLOWED[mine])
    assert not wrong, f"{name} ({mine}) may import {sorted(ALLOWED[mine])}, not {wrong}"
    if mine in ("runs", "course"):
        inner = sorted(m for m in GRAPH[name] if part(m) == "study" and m not in STUDY_ENTRY_POINTS)
        assert not inner, f"{name} may use the study only through {sorted(STUDY_ENTRY_POINTS)}, not {inner}"


def test_no_import_circles():
    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, path = stack.pop()
            for nxt in GRAPH.get(node, ()):
                if nxt == start:
                    return path + [start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
        return None

    circles = [c for c in map(cycle_from, GRAPH) if c]
    assert not circles, "import circle: " + " -> ".join(circles[0])


#: Run in a fresh interpreter: load the heavy third-party libraries once,
#: then fork one child per module that imports it before any other calibkd
#: module (the parent never imports calibkd, so no child inherits any of it).
FIRST_IMPORTS = """
import importlib, json, os, sys
import matplotlib, numpy, pandas, scipy.stats, torch, yaml  # noqa: F401 (third-party only)
failures = {}
for name in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(name)
            message = ""
        except BaseException as error:
            message = f"{type(error).__name__}: {error}"
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        message = pipe.read()
    os.waitpid(pid, 0)
    if message:
        failures[name] = message
print(json.dumps(failures))
"""


def test_every_module_imports_first_in_a_fresh_interpreter():
    """``import calibkd.<x>`` as the very first calibkd import, for every
    module (a test that imported config first would hide a circle)."""
    done = subprocess.run([sys.executable, "-c", FIRST_IMPORTS, *MODULES], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {}


def test_notebooks_import_only_public_names():
    private = []
    for source in sorted((ROOT / "notebooks").glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("calibkd"):
                private += [f"{source.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert not private, private


def test_the_config_tables_match_what_the_code_builds():
    """config names the architectures and losses without importing the code
    that builds them (that import was a circle); the names must agree."""
    from calibkd.config import ARCHITECTURE_NAMES, LOSS_DEFAULTS
    from calibkd.methods.losses import build_loss
    from calibkd.nn.models import ARCHITECTURES

    assert set(ARCHITECTURE_NAMES) == set(ARCHITECTURES)
    for name in LOSS_DEFAULTS:
        assert callable(build_loss(name))

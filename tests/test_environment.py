"""environment.yml (conda) lists the same packages as pyproject.toml (pip)."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _by_name(specs):
    return {re.split(r"[<>=!~\[ ]", spec, maxsplit=1)[0].lower(): spec.replace(" ", "") for spec in specs}


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_specs = list(project["dependencies"]) + [s for extra in project["optional-dependencies"].values() for s in extra]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _by_name(pip_section) == _by_name(pip_specs)


def test_required_packages_are_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = set(_by_name(project["dependencies"])) | set(_by_name(project["optional-dependencies"]["test"]))
    assert {"jupyterlab", "papermill", "torch", "torchvision", "matplotlib", "seaborn", "nbval", "torchmetrics"} <= names


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make study" in readme
    assert "make test" in [line.strip() for line in ci.splitlines()]

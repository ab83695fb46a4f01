"""Batch definitions: ``papermill_runs/<batch>/batch.yaml``, validated and
expanded into runs before anything executes.

A definition has four keys::

    description: what the batch is for (optional)
    notebooks: [04_student_distillation]   # registered notebook names, run in this order
    parameters:                            # fixed: each value is taken as it is
      profile: smoke
      student_methods: [ce, kd, cud]       #   (a list here is ONE list value)
    grid:                                  # varied: each name maps to a LIST of values
      seed: [0, 1, 2]
      student_methods: [[kd], [kd, cud]]   #   (to vary a list parameter, give a list of lists)

The runs are the cartesian product of the grid values, for each notebook. A
parameter (fixed or in the grid) applies to every notebook that declares it in
its ``parameters`` cell and must be declared by at least one; ``output_dir`` is
set by the runner. Every expanded run is validated with
``config.validate_parameters``. A run's id is a hash of its notebook and
resolved parameters (the notebook's defaults with the batch's values), so the
same run always lands in the same folder and identical runs are run once.

The first ``run`` of a batch stores the resolved definition in
``definition.json``; a later run whose resolved definition differs (an edited
``batch.yaml``, or a changed notebook default) is refused, so one batch folder
never mixes runs of two experiments.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from calibkd.config import NOTEBOOK_PARAMETERS, result_identity
from calibkd.errors import ConfigError
from calibkd.io import atomic_write_text, load_yaml, params_key
from calibkd.paths import batches_dir
from calibkd.study.runner import NOTEBOOK_DIR, notebook_path, resolve_parameters

BATCH_FILE = "batch.yaml"
RECORD_FILE = "definition.json"
RUNS_DIR = "runs"
ALLOWED_KEYS = ("description", "notebooks", "parameters", "grid")
#: Parameters the runner sets itself: a batch may not give them.
RUNNER_PARAMETERS = ("output_dir",)


class BatchError(ConfigError):
    """A batch definition, or the batch folder, is not usable; nothing was run."""


@dataclass(frozen=True)
class RunSpec:
    """One notebook execution of a batch."""

    run_id: str
    notebook: str
    #: resolved, validated notebook parameters (without ``output_dir``)
    parameters: dict[str, Any]
    #: this run's values of the batch's grid (the names its notebook declares)
    grid: dict[str, Any]

    @property
    def needs_gpu(self) -> bool:
        """Runs that ask for ``device="cuda"`` get a GPU of their own."""
        return self.parameters.get("device") == "cuda"

    @property
    def threads(self) -> int:
        return int(self.parameters.get("num_threads") or 1)

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "notebook": self.notebook,
                "parameters": self.parameters, "grid": self.grid}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunSpec":
        return cls(data["run_id"], data["notebook"], dict(data["parameters"]), dict(data["grid"]))


@dataclass(frozen=True)
class Batch:
    """A validated batch definition and its expanded runs."""

    root: Path
    notebooks: tuple[str, ...]
    parameters: dict[str, Any]
    grid: dict[str, list[Any]]
    runs: tuple[RunSpec, ...]
    #: what ``definition.json`` stores: notebooks, grid, resolved fixed parameters
    resolved: dict[str, Any]
    description: str = ""
    notebook_dir: Path = field(default=NOTEBOOK_DIR)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def runs_dir(self) -> Path:
        return self.root / RUNS_DIR

    @property
    def definition_hash(self) -> str:
        return params_key(self.resolved)


def batch_root(path: str | Path) -> Path:
    """The batch folder for ``path``: a folder, its ``batch.yaml``, or a batch
    name under ``papermill_runs/`` of the home (``calibkd.paths.home``)."""
    path = Path(path)
    if path.name == BATCH_FILE:
        return path.parent
    if not path.exists() and not path.is_absolute() and len(path.parts) == 1 and (batches_dir() / path).is_dir():
        return batches_dir() / path
    return path


def run_id_for(notebook: str, parameters: Mapping[str, Any], grid: Mapping[str, Any]) -> str:
    """``<notebook number>-<grid values>-<hash>``: the hash of notebook and
    parameters is the identity; the readable middle is for people."""
    key = params_key({"notebook": notebook, "parameters": dict(parameters)})[:10]
    words = [re.sub(r"[^A-Za-z0-9_.]+", "", f"{name}{value}") for name, value in grid.items()
             if isinstance(value, (int, float, str)) and not isinstance(value, bool)]
    slug = "-".join(words)[:48].strip("-")
    prefix = notebook.split("_", 1)[0]
    return "-".join(part for part in (prefix, slug, key) if part)


def _read_yaml(file: Path) -> dict[str, Any]:
    if not file.is_file():
        raise BatchError(f"no batch definition: {file} does not exist")
    try:
        data = load_yaml(file.read_text())
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(error, "problem", None) or str(error)
        raise BatchError(f"batch definition {file} is not valid YAML{at}: {problem}") from None
    if not isinstance(data, dict):
        raise BatchError(f"batch definition {file} must be a mapping with keys {list(ALLOWED_KEYS)}, "
                         f"got {type(data).__name__}")
    unknown = sorted(set(data) - set(ALLOWED_KEYS))
    if unknown:
        raise BatchError(f"unknown key(s) {unknown} in {file}; allowed keys: {list(ALLOWED_KEYS)}")
    return data


def _check_sections(file: Path, data: Mapping[str, Any]) -> tuple[list[str], dict[str, Any], dict[str, list]]:
    notebooks = data.get("notebooks")
    if not isinstance(notebooks, list) or not notebooks or not all(isinstance(n, str) for n in notebooks):
        raise BatchError(f"{file}: 'notebooks' must be a non-empty list of notebook names; "
                         f"known notebooks: {sorted(NOTEBOOK_PARAMETERS)}")
    for name in notebooks:
        if name not in NOTEBOOK_PARAMETERS:
            raise BatchError(f"{file}: unknown notebook {name!r}; known notebooks: {sorted(NOTEBOOK_PARAMETERS)}")
    if len(set(notebooks)) != len(notebooks):
        raise BatchError(f"{file}: a notebook is listed twice in {notebooks}")
    fixed = data.get("parameters") or {}
    if not isinstance(fixed, dict):
        raise BatchError(f"{file}: 'parameters' must be a mapping of parameter -> value, got {fixed!r}")
    grid = data.get("grid")
    if not grid:
        raise BatchError(f"{file}: the grid is empty, so there is nothing to run; give at least one "
                         "parameter to vary, e.g. 'grid: {seed: [0, 1, 2]}'")
    if not isinstance(grid, dict):
        raise BatchError(f"{file}: 'grid' must be a mapping of parameter -> list of values, got {grid!r}")
    for name, values in grid.items():
        if not isinstance(values, list):
            raise BatchError(f"{file}: grid parameter {name!r} must map to a list of values to expand, got "
                             f"{values!r}; write [{values!r}] or move it to 'parameters'")
        if not values:
            raise BatchError(f"{file}: grid parameter {name!r} has an empty list of values: the grid is empty")
    both = sorted(set(grid) & set(fixed))
    if both:
        raise BatchError(f"{file}: parameter(s) {both} are both fixed and in the grid; keep each in one place")
    runner = sorted((set(grid) | set(fixed)) & set(RUNNER_PARAMETERS))
    if runner:
        raise BatchError(f"{file}: {runner} is set by the runner (each run writes into its own folder); remove it")
    return list(notebooks), dict(fixed), {name: list(values) for name, values in grid.items()}


def load_batch(path: str | Path, notebook_dir: Path = NOTEBOOK_DIR) -> Batch:
    """Read and validate ``<path>/batch.yaml`` and expand its grid; raises
    ``BatchError`` naming the bad key, notebook, parameter or value."""
    root = batch_root(path)
    file = root / BATCH_FILE
    data = _read_yaml(file)
    notebooks, fixed, grid = _check_sections(file, data)
    for name in notebooks:
        notebook_path(name, notebook_dir)
    runs: dict[str, RunSpec] = {}
    base: dict[str, dict[str, Any]] = {}
    for point in itertools.product(*grid.values()):
        values = dict(zip(grid, point))
        try:
            resolved = resolve_parameters(notebooks, {**fixed, **values}, notebook_dir)
        except ConfigError as error:
            at = f" (run {values})" if "unknown parameter" not in str(error) else ""
            raise BatchError(f"{file}{at}: {error}") from None
        for name in notebooks:
            params = resolved[name]
            params.pop("output_dir", None)
            run_grid = {k: v for k, v in values.items() if k in params}
            identity = result_identity(params)
            spec = RunSpec(run_id_for(name, identity, run_grid), name, params, run_grid)
            runs.setdefault(spec.run_id, spec)
            base.setdefault(name, {k: v for k, v in identity.items() if k not in grid})
    resolved_definition = {"notebooks": notebooks, "grid": grid, "parameters": base}
    return Batch(root, tuple(notebooks), fixed, grid, tuple(runs.values()), resolved_definition,
                 str(data.get("description") or ""), Path(notebook_dir))


def _differences(old: Any, new: Any, where: str = "") -> list[str]:
    """Readable lines naming where two JSON-like values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in list(old) + [k for k in new if k not in old]:
            here = f"{where}.{key}" if where else str(key)
            if key not in new:
                lines.append(f"{here}: {old[key]!r} -> (absent)")
            elif key not in old:
                lines.append(f"{here}: (absent) -> {new[key]!r}")
            else:
                lines += _differences(old[key], new[key], here)
        return lines
    return [] if old == new else [f"{where}: {old!r} -> {new!r}"]


def read_record(root: Path) -> dict[str, Any] | None:
    """The stored resolved definition of a batch folder, or None before its first run."""
    file = root / RECORD_FILE
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise BatchError(f"{file} is unreadable ({error}); it records which definition wrote the runs") from None


def check_folder(batch: Batch) -> None:
    """Refuse a batch folder written by a different definition, saying what differs."""
    record = read_record(batch.root)
    if record is None:
        expected = {spec.run_id for spec in batch.runs}
        strays = sorted(p.name for p in batch.runs_dir.glob("*")
                        if p.is_dir() and not p.name.startswith(".") and p.name not in expected)
        if strays:
            raise BatchError(
                f"{batch.runs_dir} holds runs that {batch.root / BATCH_FILE} does not define ({strays[:3]}...) "
                f"and has no {RECORD_FILE}; use a new batch folder, or delete {batch.runs_dir}")
        return
    if record.get("hash") == batch.definition_hash:
        return
    lines = _differences(json.loads(json.dumps(record.get("definition"))),
                         json.loads(json.dumps(batch.resolved)))
    shown = "\n  ".join(lines[:8] or ["(the stored record is incomplete)"])
    raise BatchError(
        f"{batch.root} was written by a different batch definition (stored in {RECORD_FILE}: "
        f"{record.get('hash')}; {BATCH_FILE} now resolves to {batch.definition_hash}). What differs "
        f"(edits of {BATCH_FILE}, or changed notebook defaults):\n  {shown}\n"
        f"Put the new definition in a new batch folder, or delete {RECORD_FILE} and {RUNS_DIR}/ to start over.")


def write_record(batch: Batch) -> None:
    """Store the resolved definition on a batch's first run (atomic; idempotent)."""
    if read_record(batch.root) is not None:
        return
    record = {"batch": batch.name, "hash": batch.definition_hash, "definition": batch.resolved,
              "run_ids": [spec.run_id for spec in batch.runs]}
    atomic_write_text(batch.root / RECORD_FILE, json.dumps(record, indent=1, default=str) + "\n")

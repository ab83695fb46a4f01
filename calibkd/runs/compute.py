"""What a batch cost to compute: ``python -m calibkd.runs compute <batch> [<batch> ...]``.

A run's ``run.json`` holds the wall seconds of its *last* sitting only: a run
interrupted by the end of a session starts its notebook again and reloads
the models it had already trained from the model cache. The training itself
is recorded elsewhere, once per model: each cache record (``<key>.json``)
holds the ``train_seconds`` it took. This module joins the two. It reads the
model keys a run used from its executed notebook (every model prints
``(key <16 hex digits>)`` when trained or loaded) and looks up their records
in the model cache.

For each batch it reports:
- the runs' last-sitting seconds;
- the models used, and those trained for this batch;
- their training seconds.

Several batches are read in the order given. A model that an earlier batch
already used (a teacher of the tuning batch reused by the reference batch) is
counted with that earlier batch only, so the totals add up to the compute of
all of them.

The seconds are those of the machine as it was (a shared machine trains more
slowly), and they leave out what is not training: logit passes, evaluation,
corrupted images, kernel starts. So the training seconds are a lower bound,
and the last-sitting seconds of a run that never stopped are its whole cost.
The cache is local and not committed, so ``--write`` stores the report as
``<batch>/compute.json``, next to the runs it describes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from calibkd.errors import ConfigError
from calibkd.io import atomic_write_text
from calibkd.runs import store as run_store
from calibkd.runs.estimate import duration
from calibkd.runs.results import finished_runs

#: How a model's cache key appears in an executed notebook (``TrainedModel.describe``).
KEY_PATTERN = re.compile(r"\(key ([0-9a-f]{16})\)")
#: The part of a recipe name that marks a student (``<regime>/student/<method>``).
STUDENT_MARK = "/student/"


def keys_in_notebook(path: Path) -> list[str]:
    """The model keys printed in the outputs of the executed notebook at
    ``path``, each once, in order of first appearance."""
    notebook = json.loads(path.read_text())
    found: dict[str, None] = {}
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            texts = [output.get("text", "")] + list(output.get("data", {}).values())
            for text in texts:
                text = "".join(text) if isinstance(text, list) else text
                if isinstance(text, str):
                    found.update(dict.fromkeys(KEY_PATTERN.findall(text)))
    return list(found)


@dataclass
class RunCompute:
    """One finished run: its id, its last sitting's seconds and the models it used."""

    run_id: str
    seconds: float
    keys: list[str]


@dataclass
class BatchCompute:
    """One batch's compute (see the module docstring): the records of the
    models it used first (``trained``), those an earlier batch used
    (``reused``) and the first-used ones without a record in the cache
    (``missing``: trained elsewhere, or the cache was cleared)."""

    name: str
    runs: list[RunCompute]
    trained: dict[str, dict[str, Any]] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def train_seconds(self, students: bool | None = None) -> float:
        """Training seconds of the models first used by this batch (only
        students, only teachers, or all when ``students`` is None)."""
        return sum(r["train_seconds"] for r in self.trained.values()
                   if students is None or (STUDENT_MARK in r["recipe"]) == students)

    def as_dict(self) -> dict[str, Any]:
        """The report written as ``compute.json``."""
        return {
            "batch": self.name,
            "runs": [{"run_id": r.run_id, "last_sitting_seconds": r.seconds, "models": len(r.keys)}
                     for r in self.runs],
            "last_sitting_seconds": round(sum(r.seconds for r in self.runs), 1),
            "models_used": len({k for r in self.runs for k in r.keys}),
            "models_first_used_here": len(self.trained) + len(self.missing),
            "models_reused_from_earlier_batches": len(self.reused),
            "models_without_record": self.missing,
            "train_seconds": round(self.train_seconds(), 1),
            "teacher_train_seconds": round(self.train_seconds(students=False), 1),
            "student_train_seconds": round(self.train_seconds(students=True), 1),
            "models": {key: {"recipe": r["recipe"], "train_seconds": round(r["train_seconds"], 1)}
                       for key, r in sorted(self.trained.items())},
        }


def run_computes(root: Path) -> list[RunCompute]:
    """Every finished run of the batch folder ``root`` with its seconds and
    model keys (a clear error when the batch has none)."""
    runs = []
    for folder in finished_runs(root):
        record = run_store.read_json(folder / "run.json")
        notebooks = sorted(folder.glob("*.ipynb"))
        if not notebooks:
            raise ConfigError(f"run {folder.name} of batch {root.name} has no executed notebook")
        runs.append(RunCompute(folder.name, float(record.get("seconds", 0.0)), keys_in_notebook(notebooks[0])))
    if not runs:
        raise ConfigError(f"batch {root.name} has no finished run: nothing to report")
    return runs


def batch_compute(roots: Sequence[Path], cache: Path) -> list[BatchCompute]:
    """The compute of each batch folder in ``roots``, in that order, with the
    model records of the cache folder ``cache``. A model counts with the
    first batch that used it."""
    seen: set[str] = set()
    reports = []
    for root in roots:
        report = BatchCompute(root.name, run_computes(root))
        for key in dict.fromkeys(k for r in report.runs for k in r.keys):
            if key in seen:
                report.reused.append(key)
                continue
            seen.add(key)
            record_path = cache / f"{key}.json"
            if not record_path.is_file():
                report.missing.append(key)
                continue
            record = json.loads(record_path.read_text())
            report.trained[key] = {"recipe": str(record.get("recipe", "")),
                                   "train_seconds": float(record.get("train_seconds") or 0.0)}
        reports.append(report)
    return reports


def compute_table(reports: Sequence[BatchCompute | dict[str, Any]]) -> str:
    """A Markdown table: one row per batch and a total row. Takes reports or
    their ``as_dict`` form, so the table can be rebuilt from committed
    ``compute.json`` files without the model cache."""
    dicts = [r.as_dict() if isinstance(r, BatchCompute) else r for r in reports]
    header = ("| batch | runs | runs' last sittings | models used (first used here) "
              "| their training: teachers + students |\n|---|---|---|---|---|")
    rows = [f"| {d['batch']} | {len(d['runs'])} | {duration(d['last_sitting_seconds'])} "
            f"| {d['models_used']} ({d['models_first_used_here']}) "
            f"| {duration(d['train_seconds'])}: {duration(d['teacher_train_seconds'])} + "
            f"{duration(d['student_train_seconds'])} |" for d in dicts]
    rows.append(f"| all | {sum(len(d['runs']) for d in dicts)} "
                f"| {duration(sum(d['last_sitting_seconds'] for d in dicts))} "
                f"| {sum(d['models_first_used_here'] for d in dicts)} "
                f"| {duration(sum(d['train_seconds'] for d in dicts))} |")
    missing = sorted({k for d in dicts for k in d["models_without_record"]})
    note = f"\n\n{len(missing)} model(s) had no record in the cache and are not counted." if missing else ""
    return "\n".join([header, *rows]) + note


def write_reports(reports: Sequence[BatchCompute], roots: Sequence[Path]) -> list[Path]:
    """Write each report atomically as ``<batch>/compute.json``; the paths."""
    paths = []
    for report, root in zip(reports, roots):
        path = root / "compute.json"
        atomic_write_text(path, json.dumps(report.as_dict(), indent=1) + "\n")
        paths.append(path)
    return paths

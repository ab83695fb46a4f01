"""docs/batches.md's table of the committed batches, generated from the
batches themselves (``python -m calibkd.runs batches-table``): what each is,
how many of its runs finished, the commit and code they were made at, each
run's wall time, where ``compute`` wrote a ``compute.json``, the training
it took, and what its reproductions (``<batch>/reproduced/``) found. A test
keeps the table equal to what the batches give, so the documentation cannot
go stale when a batch is re-run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from calibkd.errors import ConfigError
from calibkd.runs import store as run_store
from calibkd.runs.batches import BATCH_FILE, load_batch
from calibkd.runs.estimate import duration
from calibkd.runs.results import finished_runs, run_code
from calibkd.runs.table_rows import markdown_table, replace_marked_block, write_generated

#: The markers between which ``python -m calibkd.runs batches-table`` writes the table.
TABLE_START, TABLE_END = "<!-- batches:start -->", "<!-- batches:end -->"
COLUMNS = ["batch", "what", "runs", "made at", "wall time per run (last sitting)", "training (compute.json)",
           "reproduced (from nothing)"]
#: Where the table lives, relative to the checkout.
DOCS_FILE = Path("docs") / "batches.md"


def batch_folders(runs_root: Path) -> list[Path]:
    """Every batch folder under ``runs_root`` (a folder holding ``batch.yaml``), by name."""
    return sorted(p.parent for p in Path(runs_root).glob(f"*/{BATCH_FILE}"))


def _run_label(grid: dict[str, Any]) -> str:
    """A run named by its grid values: ``seed 0``, ``seed 0, regimes default``."""
    def value(v: Any) -> str:
        return ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
    return ", ".join(f"{name} {value(v)}" for name, v in grid.items()) or "the run"


def made_at(provenances: Sequence[dict[str, Any]]) -> str:
    """The commits a batch's finished runs record (short hashes, with how many
    came from a dirty tree) and whether one code made them all."""
    if not provenances:
        return "no finished run"
    commits = list(dict.fromkeys(str(p.get("git_commit") or "unknown")[:7] for p in provenances))
    dirty = sum(p.get("git_dirty") is True for p in provenances)
    codes = {run_code(p) for p in provenances}
    text = commits[0] if len(commits) == 1 else f"{len(commits)} commits ({', '.join(commits)})"
    if dirty:
        text += f", {dirty} from a dirty tree"
    if len(codes) > 1:
        text += f"; {len(codes)} code versions"
    elif any(p.get("study_code_version") for p in provenances):
        text += "; one code version"
    else:
        text += "; recorded without code versions"
    return text


def training(root: Path) -> str:
    """The batch's training compute from its ``compute.json``, or why there is none."""
    path = root / "compute.json"
    if not path.is_file():
        return "not recorded"
    report = json.loads(path.read_text())
    return (f"{duration(report['train_seconds'])} ({duration(report['teacher_train_seconds'])} teachers + "
            f"{duration(report['student_train_seconds'])} students), "
            f"{report['models_first_used_here']} models first used here")


def reproductions(root: Path) -> str:
    """What the batch's reproduction reports (``python -m calibkd.runs.reproduce``,
    ``<batch>/reproduced/*.json``) found: per report, the run it retrained and
    whether every compared row came out the same; "-" without a report."""
    found = []
    for path in sorted((Path(root) / "reproduced").glob("*.json")):
        report = run_store.read_json(path)
        rows = sum(int(table.get("matched", 0)) for table in (report.get("tables") or {}).values())
        largest = float(report.get("max_abs_difference", float("nan")))
        if not report.get("reproduced"):
            outcome = f"differs (largest difference {largest:.3g})"
        elif largest == 0:
            outcome = f"the same numbers, {rows} rows"
        else:
            outcome = f"within {report.get('tolerance')}, {rows} rows (largest difference {largest:.3g})"
        found.append(f"seed {report.get('seed')} {report.get('method')} ({report.get('regime')}): {outcome}")
    return "; ".join(found) or "-"


def batch_row(root: Path) -> list[str]:
    """One batch's row of the table (see ``COLUMNS``): its definition's runs
    and how many finished, and every finished run in its folder (what
    chapter 05 reads), including runs of an earlier definition."""
    batch = load_batch(root)
    defined = {spec.run_id for spec in batch.runs}
    folders = finished_runs(batch.root)
    records = [run_store.read_json(folder / "run.json") for folder in folders]
    provenances = [run_store.read_json(folder / "provenance.json") for folder in folders]
    finished = sum(folder.name in defined for folder in folders)
    earlier = len(folders) - finished
    runs = f"{finished} of {len(defined)} finished" + (f"; {earlier} of an earlier definition" if earlier else "")
    walls = "; ".join(f"{_run_label(record.get('grid') or {})}: {duration(float(record.get('seconds', 0)))}"
                      for record in records) or "-"
    name = batch.root.name
    return [f"[`{name}`](../papermill_runs/{name}/{BATCH_FILE})", batch.description or "-", runs,
            made_at(provenances), walls, training(batch.root), reproductions(batch.root)]


def batches_table(runs_root: Path) -> str:
    """The Markdown table of every batch under ``runs_root``."""
    folders = batch_folders(runs_root)
    if not folders:
        raise ConfigError(f"no batch (a folder with {BATCH_FILE}) under {runs_root}")
    return markdown_table(COLUMNS, [batch_row(root) for root in folders])


def replace_block(text: str, table: str) -> str:
    """``text`` (docs/batches.md) with its block between ``TABLE_START`` and
    ``TABLE_END`` replaced by ``table``; a clear error without the markers."""
    return replace_marked_block(text, TABLE_START, TABLE_END, table, str(DOCS_FILE))


def batches_table_main(argv: Sequence[str] | None = None) -> int:
    """``python -m calibkd.runs batches-table``: write the table of the
    committed batches into docs/batches.md, between its markers; ``--check``
    writes nothing and exits 1 when the file differs."""
    import argparse
    import sys

    from calibkd.paths import batches_dir, home, source_checkout

    parser = argparse.ArgumentParser(prog="python -m calibkd.runs batches-table",
                                     description=batches_table_main.__doc__)
    parser.add_argument("--docs", type=Path, default=(source_checkout() or home()) / DOCS_FILE)
    parser.add_argument("--runs-root", type=Path, default=batches_dir(), help="where the batches are")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the table differs")
    args = parser.parse_args(argv)
    try:
        text = args.docs.read_text(encoding="utf-8")
        new = replace_block(text, batches_table(args.runs_root))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return write_generated(args.docs, text, new, "the batches' table", args.check)

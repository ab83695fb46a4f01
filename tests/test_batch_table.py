"""``calibkd.runs.batch_table``: docs/batches.md's table of the committed
batches, read from the batch folders (definitions, finished runs, their
provenance and compute reports)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from calibkd.errors import ConfigError
from calibkd.runs import batch_table
from calibkd.runs.batches import load_batch

ROOT = Path(__file__).resolve().parents[1]
CODE = {"code_version": "c" * 16, "study_code_version": "s" * 16, "notebook": "04_student_distillation",
        "notebook_code_versions": {"04_student_distillation": "n" * 16}}


def finish(batch: Path, run_id: str, seconds: float, provenance: dict) -> None:
    """A finished run as the runner leaves it: ``run.json`` and ``provenance.json``."""
    folder = batch / "runs" / run_id
    folder.mkdir(parents=True)
    grid = {"seed": int(run_id.split("-seed")[1].split("-")[0])} if "-seed" in run_id else {}
    (folder / "run.json").write_text(json.dumps({"run_id": run_id, "status": "finished", "seconds": seconds,
                                                 "grid": grid}))
    (folder / "provenance.json").write_text(json.dumps(provenance))


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    """A copy of the two-seed smoke batch's definition, no run yet."""
    folder = tmp_path / "runs_root" / "two-seeds"
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "papermill_runs" / "smoke-example" / "batch.yaml", folder / "batch.yaml")
    return folder


def run_ids(batch: Path) -> list[str]:
    return [spec.run_id for spec in load_batch(batch).runs]


def test_a_row_counts_finished_runs_names_their_commit_and_code_and_times_each(batch: Path) -> None:
    first, _ = run_ids(batch)
    finish(batch, first, 100.0, {**CODE, "git_commit": "0123456789abcdef", "git_dirty": False})
    row = dict(zip(batch_table.COLUMNS, batch_table.batch_row(batch)))
    assert row["batch"] == "[`two-seeds`](../papermill_runs/two-seeds/batch.yaml)"
    assert row["what"] == "notebook 04 at the smoke size, a few students, two seeds"
    assert row["runs"] == "1 of 2 finished"
    assert row["made at"] == "0123456; one code version"
    assert row["wall time per run (last sitting)"] == "seed 0: 1 min 40 s"
    assert row["training (compute.json)"] == "not recorded"


def test_mixed_commits_dirty_trees_and_code_versions_are_said(batch: Path) -> None:
    first, second = run_ids(batch)
    finish(batch, first, 30.0, {**CODE, "git_commit": "aaaaaaa111", "git_dirty": True})
    finish(batch, second, 7200.0, {**CODE, "code_version": "d" * 16, "git_commit": "bbbbbbb222", "git_dirty": False})
    row = dict(zip(batch_table.COLUMNS, batch_table.batch_row(batch)))
    assert row["made at"] == "2 commits (aaaaaaa, bbbbbbb), 1 from a dirty tree; 2 code versions"
    assert row["wall time per run (last sitting)"] == "seed 0: 30 s; seed 1: 2 h 00 min"


def test_runs_recorded_before_code_versions_say_so(batch: Path) -> None:
    first, second = run_ids(batch)
    for run_id in (first, second):
        finish(batch, run_id, 60.0, {"git_commit": "e1881b12b8", "git_dirty": False})
    assert batch_table.batch_row(batch)[3] == "e1881b1; recorded without code versions"


def test_the_training_comes_from_the_compute_report(batch: Path) -> None:
    (batch / "compute.json").write_text(json.dumps({"train_seconds": 7080.0, "teacher_train_seconds": 1860.0,
                                                     "student_train_seconds": 5220.0,
                                                     "models_first_used_here": 129}))
    assert batch_table.training(batch) == "1 h 58 min (31 min 00 s teachers + 1 h 27 min students), " \
                                          "129 models first used here"


def test_reproductions_say_what_was_retrained_and_whether_it_came_out_the_same(batch: Path) -> None:
    assert batch_table.reproductions(batch) == "-"
    (batch / "reproduced").mkdir()
    same = {"seed": 0, "regime": "overconfident", "method": "cud", "reproduced": True, "tolerance": 0.0,
            "max_abs_difference": 0.0, "tables": {"metrics_*.csv": {"matched": 150}, "shift_*.csv": {"matched": 3}}}
    (batch / "reproduced" / "04-seed0-a-overconfident-cud.json").write_text(json.dumps(same))
    assert batch_table.reproductions(batch) == "seed 0 cud (overconfident): the same numbers, 153 rows"
    moved = {**same, "seed": 1, "method": "kd", "reproduced": False, "max_abs_difference": 0.0125}
    (batch / "reproduced" / "04-seed1-b-overconfident-kd.json").write_text(json.dumps(moved))
    assert batch_table.reproductions(batch).endswith("; seed 1 kd (overconfident): differs (largest difference 0.0125)")


def test_the_table_lists_every_batch_folder_and_replaces_only_its_block(batch: Path, tmp_path: Path) -> None:
    (batch.parent / "not-a-batch").mkdir()  # no batch.yaml: not listed
    table = batch_table.batches_table(batch.parent)
    assert table.splitlines()[0] == "| " + " | ".join(batch_table.COLUMNS) + " |"
    assert len(table.splitlines()) == 3 and "two-seeds" in table.splitlines()[2]
    text = f"quoted `{batch_table.TABLE_START}`\n{batch_table.TABLE_START}\nstale\n{batch_table.TABLE_END}\nafter\n"
    assert batch_table.replace_block(text, table) == \
        f"quoted `{batch_table.TABLE_START}`\n{batch_table.TABLE_START}\n{table}\n{batch_table.TABLE_END}\nafter\n"
    with pytest.raises(ConfigError, match="no <!-- batches:start -->"):
        batch_table.replace_block("no markers", table)
    with pytest.raises(ConfigError, match="no batch"):
        batch_table.batches_table(tmp_path / "empty")


def test_the_command_writes_the_block_and_check_says_when_it_is_stale(batch: Path, tmp_path: Path) -> None:
    docs = tmp_path / "batches.md"
    docs.write_text(f"# Batches\n{batch_table.TABLE_START}\n{batch_table.TABLE_END}\n")
    args = ["--docs", str(docs), "--runs-root", str(batch.parent)]
    assert batch_table.batches_table_main([*args, "--check"]) == 1
    assert batch_table.batches_table_main(args) == 0
    assert "0 of 2 finished" in docs.read_text()
    assert batch_table.batches_table_main([*args, "--check"]) == 0
    docs.write_text("no markers")
    assert batch_table.batches_table_main(args) == 2


def test_finished_runs_of_an_earlier_definition_are_counted_apart_and_still_described(batch: Path) -> None:
    first, _ = run_ids(batch)
    finish(batch, first, 100.0, {**CODE, "git_commit": "0123456789abcdef", "git_dirty": False})
    finish(batch, "04-seed1-0ld0ld0ld0", 50.0, {**CODE, "git_commit": "0123456789abcdef", "git_dirty": False})
    row = dict(zip(batch_table.COLUMNS, batch_table.batch_row(batch)))
    assert row["runs"] == "1 of 2 finished; 1 of an earlier definition"
    assert row["wall time per run (last sitting)"] == "seed 0: 1 min 40 s; seed 1: 50 s"

"""``calibkd.runs.compute``: a batch's cost from its runs and the model cache,
each model counted once, with the batch that used it first."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from calibkd.errors import ConfigError
from calibkd.runs import runner
from calibkd.runs.compute import batch_compute, compute_table, keys_in_notebook

KEYS = {name: f"{i:x}" * 16 for i, name in enumerate(("teacher", "ce", "kd", "cud", "orphan"), start=10)}


def executed_notebook(path: Path, keys: list[str]) -> None:
    """A notebook whose outputs print ``keys`` as the model cache does: one
    as a stream, one as rich output, one twice."""
    lines = [f"default/student/x: small_cnn, loaded from cache; test accuracy 0.9 (key {k})\n" for k in keys]
    stream = nbformat.v4.new_output("stream", name="stdout", text="".join(lines[:1] * 2))
    rich = nbformat.v4.new_output("execute_result", data={"text/plain": "".join(lines[1:])}, execution_count=1)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("train()", outputs=[stream, rich]),
                                               nbformat.v4.new_markdown_cell("(key 0123456789abcdef) in prose")])
    nbformat.write(notebook, path)


def finished_run(batch: Path, run_id: str, seconds: float, keys: list[str]) -> None:
    folder = batch / "runs" / run_id
    folder.mkdir(parents=True)
    executed_notebook(folder / "04_student_distillation.ipynb", keys)
    (folder / "run.json").write_text(json.dumps({"run_id": run_id, "status": "finished", "seconds": seconds}))


def cache_record(cache: Path, name: str, recipe: str, seconds: float) -> None:
    cache.mkdir(exist_ok=True)
    (cache / f"{KEYS[name]}.json").write_text(json.dumps({"key": KEYS[name], "recipe": recipe,
                                                          "train_seconds": seconds}))


@pytest.fixture
def two_batches(tmp_path):
    cache = tmp_path / "models"
    cache_record(cache, "teacher", "default", 600.0)
    cache_record(cache, "ce", "default/student/ce", 60.0)
    cache_record(cache, "kd", "default/student/kd", 70.0)
    cache_record(cache, "cud", "default/student/cud", 80.0)
    tuning, reference = tmp_path / "tuning", tmp_path / "reference"
    finished_run(tuning, "04-seed0-a", 1000.0, [KEYS["teacher"], KEYS["ce"]])
    finished_run(reference, "04-seed0-b", 300.0, [KEYS["teacher"], KEYS["kd"], KEYS["orphan"]])
    finished_run(reference, "04-seed1-c", 200.0, [KEYS["teacher"], KEYS["kd"], KEYS["cud"]])
    (reference / "runs" / "04-seed2-d").mkdir()  # unfinished: no run.json, not counted
    return cache, tuning, reference


def test_the_keys_of_an_executed_notebook_are_read_from_its_outputs_once_each(tmp_path):
    executed_notebook(tmp_path / "nb.ipynb", [KEYS["teacher"], KEYS["kd"], KEYS["cud"]])
    assert keys_in_notebook(tmp_path / "nb.ipynb") == [KEYS["teacher"], KEYS["kd"], KEYS["cud"]]


def test_a_model_counts_once_with_the_first_batch_that_used_it(two_batches):
    cache, tuning, reference = two_batches
    first, second = batch_compute([tuning, reference], cache)
    assert first.as_dict()["train_seconds"] == 660.0 and first.as_dict()["last_sitting_seconds"] == 1000.0
    second_report = second.as_dict()
    assert second_report["models_used"] == 4  # teacher, kd, orphan, cud
    assert second_report["models_first_used_here"] == 3  # all but the teacher
    assert second_report["models_reused_from_earlier_batches"] == 1  # the teacher, trained for tuning
    assert second_report["models_without_record"] == [KEYS["orphan"]]
    assert (second_report["teacher_train_seconds"], second_report["student_train_seconds"]) == (0.0, 150.0)
    assert second_report["last_sitting_seconds"] == 500.0 and len(second.runs) == 2
    # alone, the reference batch is charged for its teacher
    (alone,) = batch_compute([reference], cache)
    assert alone.as_dict()["teacher_train_seconds"] == 600.0


def test_the_table_adds_up_and_names_the_uncounted_models(two_batches):
    cache, tuning, reference = two_batches
    table = compute_table(batch_compute([tuning, reference], cache))
    assert "| tuning | 1 | 16 min 40 s | 2 (2) | 11 min 00 s: 10 min 00 s + 1 min 00 s |" in table
    assert "| all | 3 | 25 min 00 s | 5 | 13 min 30 s |" in table  # 5 models, 4 with a record
    assert "1 model(s) had no record in the cache" in table
    reports = [r.as_dict() for r in batch_compute([tuning, reference], cache)]
    assert compute_table(json.loads(json.dumps(reports))) == table  # rebuilt from compute.json alone


def test_the_cli_prints_the_table_and_writes_each_report(two_batches, monkeypatch, capsys):
    cache, tuning, reference = two_batches
    monkeypatch.setenv("CALIBKD_CACHE", str(cache))
    assert runner.main(["compute", str(tuning), str(reference), "--write"]) == 0
    assert "| reference | 2 |" in capsys.readouterr().out
    written = json.loads((reference / "compute.json").read_text())
    assert written["batch"] == "reference" and sorted(written["models"]) == sorted([KEYS["kd"], KEYS["cud"]])


def test_a_batch_without_finished_runs_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    with pytest.raises(ConfigError, match="no finished run"):
        batch_compute([tmp_path / "empty"], tmp_path / "models")
    assert runner.main(["compute", str(tmp_path / "empty")]) == 2
    assert "no finished run" in capsys.readouterr().err

"""Which code made a model or a run: the code fingerprint in every model's
cache key and in run provenance, and ``aggregate`` refusing to pool runs made
by different code or from a dirty working tree.

Fingerprint tests work on copies of the modules in tmp_path (``root=``), never
on the checkout's files.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from calibkd.config import ModelConfig, Recipe, TrainConfig
from calibkd.errors import ConfigError
from calibkd.io import params_key
from calibkd.paths import PROJECT_ROOT
from calibkd.runs import runner
from calibkd.runs.results import aggregate
from calibkd.training import code_version as cv
from calibkd.training import model_cache
from calibkd.training.model_cache import MissingModelError, get_trained, model_params, set_training_allowed

RECIPE = Recipe("tiny", ModelConfig("small_cnn", (("width", 4),)),
                TrainConfig(epochs=1, batch_size=64, lr=0.05, monitor_size=100))


# ---------------------------------------------------------------------------
# the fingerprint
# ---------------------------------------------------------------------------


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The model code (and data/fetch.py, which it leaves out) copied under tmp_path."""
    root = tmp_path / "checkout"
    for relative in [*cv.files_of(cv.MODEL_CODE, cv.MODEL_CODE_EXCLUDED), *cv.MODEL_CODE_EXCLUDED]:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT_ROOT / relative, root / relative)
    return root


def model_fingerprint(root: Path) -> str:
    return cv.fingerprint(cv.MODEL_CODE, cv.MODEL_CODE_EXCLUDED, root)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_the_fingerprint_depends_on_the_code_not_on_where_it_lies(copy):
    assert model_fingerprint(copy) == model_fingerprint(PROJECT_ROOT)
    assert cv.code_version() == model_fingerprint(PROJECT_ROOT)[:cv.LENGTH]
    assert re.fullmatch(r"[0-9a-f]{16}", cv.code_version())
    listed = cv.files_of(cv.MODEL_CODE, cv.MODEL_CODE_EXCLUDED)
    assert "calibkd/training/loop.py" in listed and "calibkd/data/splits.py" in listed
    assert "calibkd/data/fetch.py" not in listed and "calibkd/evaluation/shift.py" not in listed


def test_comments_docstrings_and_formatting_do_not_change_it(copy):
    before = model_fingerprint(copy)
    loop = copy / "calibkd/training/loop.py"
    text = loop.read_text()
    # a new comment, blank lines, and a module docstring edited
    text = text.replace('"""One training loop', '"""ONE training loop, reworded', 1)
    text = text.replace("\nfrom __future__ import annotations\n",
                        "\n# a comment added\n\n\nfrom __future__ import annotations  # and another\n", 1)
    loop.write_text(text)
    # a function's docstring rewritten
    edit(copy / "calibkd/methods/losses.py", '"""', '"""A new first line.\n\n', )
    # the command line of a data module (top-level def main) edited
    edit(copy / "calibkd/data/glyphs.py", "def main(argv", "def main(argv_renamed=None, argv")
    # a file the list leaves out
    (copy / "calibkd/data/fetch.py").write_text("x = 1\n")
    assert model_fingerprint(copy) == before


def test_a_change_to_what_the_code_does_changes_it(copy):
    before = model_fingerprint(copy)
    loop = copy / "calibkd/training/loop.py"
    original = loop.read_text()
    loop.write_text(original + "\nEXTRA_CONSTANT = 1\n")
    changed = model_fingerprint(copy)
    assert changed != before
    loop.write_text(original)
    assert model_fingerprint(copy) == before
    # a renamed function in another listed module
    edit(copy / "calibkd/nn/models.py", "def build_model(", "def build_model_renamed(")
    assert model_fingerprint(copy) != before
    # the path counts too: the same code in a module of another name is another program
    moved = copy / "calibkd/data/renamed.py"
    shutil.copy(copy / "calibkd/data/augment.py", moved)
    assert model_fingerprint(copy) != before


def test_a_listed_module_that_is_gone_is_an_error_not_a_gap(copy):
    (copy / "calibkd/training/students.py").unlink()
    with pytest.raises(FileNotFoundError, match="students.py.*code_version.py"):
        model_fingerprint(copy)


def test_the_key_reads_the_code_once_per_process_provenance_every_time(copy):
    before = cv.code_version(copy)
    (copy / "calibkd/training/loop.py").write_text("EDITED = True\n")
    assert cv.code_version(copy) == before  # the code this process trains with is what it imported
    fresh = cv.code_version(copy, cached=False)
    assert fresh != before and fresh == model_fingerprint(copy)[:cv.LENGTH]


# ---------------------------------------------------------------------------
# the cache key: another code version is another model
# ---------------------------------------------------------------------------


def test_the_cache_key_holds_the_code_version(tiny_splits, monkeypatch):
    params = model_params(RECIPE, tiny_splits, torch.device("cpu"))
    assert params["code"] == cv.code_version()
    monkeypatch.setattr(model_cache, "code_version", lambda: "0123456789abcdef")
    other = model_params(RECIPE, tiny_splits, torch.device("cpu"))
    assert other["code"] == "0123456789abcdef" and params_key(other) != params_key(params)


def test_a_model_trained_by_other_code_is_never_reused(tiny_splits, monkeypatch):
    first = get_trained(RECIPE, tiny_splits, progress=False)
    assert first.record["params"]["code"] == cv.code_version()
    assert json.loads((model_cache.cache_dir() / f"{first.record['key']}.json").read_text())["params"]["code"] \
        == cv.code_version()  # the record on disk says which code trained it
    current = model_cache.code_version
    monkeypatch.setattr(model_cache, "code_version", lambda: "0123456789abcdef")  # the code was edited
    set_training_allowed(False)
    try:
        with pytest.raises(MissingModelError, match="is not in the model cache"):
            get_trained(RECIPE, tiny_splits, progress=False)
    finally:
        set_training_allowed(True)
    retrained = get_trained(RECIPE, tiny_splits, progress=False)
    assert not retrained.from_cache and retrained.record["key"] != first.record["key"]
    monkeypatch.setattr(model_cache, "code_version", current)  # (not undo(): that would drop the test's cache)
    again = get_trained(RECIPE, tiny_splits, progress=False)
    assert again.from_cache and again.record["key"] == first.record["key"]


def test_run_provenance_records_the_code_versions():
    from calibkd.study.runner import provenance

    record = provenance()
    assert record["code_version"] == cv.code_version()
    assert re.fullmatch(r"[0-9a-f]{16}", record["study_code_version"])
    assert record["study_code_version"] != record["code_version"]
    assert set(record["notebook_code_versions"]) >= {"01_teacher_training", "04_student_distillation"}
    assert "git_dirty" in record and record["git_commit"]


# ---------------------------------------------------------------------------
# aggregate: one code per batch, from a clean tree
# ---------------------------------------------------------------------------


def fake_run(root: Path, run_id: str, seed: int, code: str | None = "aaaa000000000000",
             commit: str = "c0ffee", dirty: bool = False) -> None:
    folder = root / "runs" / run_id
    folder.mkdir(parents=True)
    rows = [{"notebook": "04_student_distillation", "model": m, "split": "test", "metric": "ece",
             "value": v + seed / 100, "regime": "default"} for m, v in (("kd", 0.05), ("cud", 0.03))]
    pd.DataFrame(rows).to_csv(folder / "metrics_04.csv", index=False)
    (folder / "run.json").write_text(json.dumps({"run_id": run_id, "notebook": "04_student_distillation",
                                                 "grid": {"seed": seed}}))
    provenance = {"run_id": run_id, "notebook": "04_student_distillation", "git_commit": commit, "git_dirty": dirty}
    if code is not None:
        provenance |= {"code_version": code, "study_code_version": "5" * 16,
                       "notebook_code_versions": {"04_student_distillation": "4" * 16, "01_teacher_training": "1" * 16}}
    (folder / "provenance.json").write_text(json.dumps(provenance))


def test_runs_made_by_one_code_are_aggregated(tmp_path):
    fake_run(tmp_path, "04-seed0-a", 0, commit="c1")
    fake_run(tmp_path, "04-seed1-b", 1, commit="c2")  # another commit, the same code: pooled
    written = aggregate(tmp_path)
    meta = json.loads(written["meta"].read_text())
    assert meta["code_versions"] == {
        f"code aaaa000000000000, study code {'5' * 16}, notebook code {'4' * 16}": ["04-seed0-a", "04-seed1-b"]}
    assert meta["mixed_code"] is False and meta["dirty_runs"] == [] and meta["git_commits"] == ["c1", "c2"]


def test_runs_made_by_different_code_are_refused_naming_both(tmp_path):
    fake_run(tmp_path, "04-seed0-a", 0, code="aaaa000000000000")
    fake_run(tmp_path, "04-seed1-b", 1, code="bbbb000000000000")
    with pytest.raises(ConfigError) as refused:
        aggregate(tmp_path)
    message = str(refused.value)
    assert re.search(r"code aaaa000000000000[^;]*: 04-seed0-a", message)
    assert re.search(r"code bbbb000000000000[^;]*: 04-seed1-b", message)
    assert "--allow-mixed-code" in message
    assert not list(tmp_path.glob("results.*")) and not (tmp_path / "paired.csv").exists()

    with pytest.warns(UserWarning, match="made by different code"):
        written = aggregate(tmp_path, allow_mixed_code=True)
    meta = json.loads(written["meta"].read_text())
    assert meta["mixed_code"] is True
    assert sorted(meta["code_versions"].values()) == [["04-seed0-a"], ["04-seed1-b"]]


def test_another_notebook_version_or_an_old_run_without_versions_is_another_code(tmp_path):
    fake_run(tmp_path, "04-seed0-a", 0)
    fake_run(tmp_path, "04-seed1-b", 1)
    record = tmp_path / "runs/04-seed1-b/provenance.json"
    provenance = json.loads(record.read_text())
    provenance["notebook_code_versions"]["04_student_distillation"] = "9" * 16
    record.write_text(json.dumps(provenance))
    with pytest.raises(ConfigError, match=f"notebook code {'9' * 16}: 04-seed1-b"):
        aggregate(tmp_path)
    provenance["notebook_code_versions"]["04_student_distillation"] = "4" * 16
    provenance["notebook_code_versions"]["01_teacher_training"] = "9" * 16  # another notebook's: no matter
    record.write_text(json.dumps(provenance))
    aggregate(tmp_path)

    fake_run(tmp_path, "04-seed2-c", 2, code=None, commit="abc123")  # recorded before code versions
    with pytest.raises(ConfigError, match="git commit abc123 .recorded without a code version.: 04-seed2-c"):
        aggregate(tmp_path)


def test_runs_from_a_dirty_tree_are_refused_unless_allowed(tmp_path):
    fake_run(tmp_path, "04-seed0-a", 0, dirty=True)
    fake_run(tmp_path, "04-seed1-b", 1)
    with pytest.raises(ConfigError, match=r"differed from its commit \(git_dirty\): 04-seed0-a\..*--allow-dirty"):
        aggregate(tmp_path)
    assert not (tmp_path / "results.json").exists()
    with pytest.warns(UserWarning, match="git_dirty"):
        written = aggregate(tmp_path, allow_dirty=True)
    assert json.loads(written["meta"].read_text())["dirty_runs"] == ["04-seed0-a"]


def test_the_cli_refuses_mixed_and_dirty_runs_in_one_message_and_takes_both_flags(tmp_path, capsys):
    fake_run(tmp_path, "04-seed0-a", 0, code="aaaa000000000000", dirty=True)
    fake_run(tmp_path, "04-seed1-b", 1, code="bbbb000000000000")
    assert runner.main(["aggregate", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "made by different code" in error and "git_dirty" in error
    assert runner.main(["aggregate", str(tmp_path), "--allow-mixed-code"]) == 2
    assert "made by different code" not in capsys.readouterr().err
    with pytest.warns(UserWarning):
        assert runner.main(["aggregate", str(tmp_path), "--allow-mixed-code", "--allow-dirty"]) == 0
    meta = json.loads((tmp_path / "results.json").read_text())
    assert meta["mixed_code"] is True and meta["dirty_runs"] == ["04-seed0-a"]


#: While the evidence batches are re-run (docs/batches.md, "Sittings"), the
#: committed batches are the old ones; ``evidence_sitting.sh finish`` replaces them.
EVIDENCE_IN_PROGRESS = (PROJECT_ROOT / "papermill_runs" / "evidence-in-progress" / "COMMIT").is_file()
#: The evidence batches and how many seeds each must have.
EVIDENCE_BATCHES = {"tuning-fmnist": 1, "reference-fmnist": 3, "long-tail-fmnist": 3, "tuning-glyphs": 1,
                    "glyphs-diagnosis": 1, "glyphs-central": 3}


@pytest.mark.skipif(EVIDENCE_IN_PROGRESS, reason="the evidence batches are being re-run (papermill_runs/evidence-in-progress)")
@pytest.mark.parametrize("name", sorted(EVIDENCE_BATCHES))
def test_each_evidence_batch_is_finished_at_one_commit_by_the_code_that_ships_and_aggregates_as_committed(name, tmp_path):
    """Chapter 05's verdicts are those of the code that ships: every run of
    an evidence batch finished, at one commit, from a clean tree, made by
    this checkout's fingerprinted code, with the seeds the study asks for;
    aggregated without any flag, it gives the committed results.csv."""
    from calibkd.runs.batches import load_batch
    from calibkd.runs.results import checkout_code, run_code
    committed = PROJECT_ROOT / "papermill_runs" / name
    batch = load_batch(committed)
    records = {spec.run_id: json.loads((committed / "runs" / spec.run_id / "provenance.json").read_text())
               for spec in batch.runs}
    assert all(json.loads((committed / "runs" / run / "run.json").read_text())["status"] == "finished" for run in records)
    assert len({record["git_commit"] for record in records.values()}) == 1
    assert not any(record["git_dirty"] for record in records.values())
    for run, record in records.items():
        assert run_code(record) == checkout_code(record["notebook"]), (
            f"{name}/{run} was made by other code than this checkout's: change the code back, or rerun the batch")
    assert len({spec.grid.get("seed") for spec in batch.runs}) == EVIDENCE_BATCHES[name]
    copy = tmp_path / name
    shutil.copytree(committed, copy)
    reference = json.loads((committed / "results.json").read_text())["reference"]
    written = aggregate(copy, reference=reference)
    assert written["summary"].read_bytes() == (committed / "results.csv").read_bytes()


@pytest.mark.skipif(not EVIDENCE_IN_PROGRESS, reason="the old batches were replaced by the evidence at one commit")
def test_the_committed_batches_were_made_at_mixed_commits_and_still_aggregate_with_both_flags(tmp_path):
    """The committed reference batch predates code versions; its runs were made
    at three commits, one from a dirty tree (they will be rerun at one
    commit). aggregate refuses it as it stands and, told to, reproduces the
    committed results.csv exactly."""
    batch = tmp_path / "reference-fmnist"
    shutil.copytree(PROJECT_ROOT / "papermill_runs" / "reference-fmnist", batch)
    with pytest.raises(ConfigError, match="recorded without a code version"):
        aggregate(batch)
    with pytest.warns(UserWarning):
        written = aggregate(batch, allow_mixed_code=True, allow_dirty=True)
    assert written["summary"].read_bytes() == (PROJECT_ROOT / "papermill_runs/reference-fmnist/results.csv").read_bytes()
    assert json.loads(written["meta"].read_text())["dirty_runs"] == ["04-seed0-3dcae48160"]


def test_checkout_code_names_this_checkouts_fingerprints():
    from calibkd.runs.results import checkout_code
    from calibkd.training import code_version as versions
    notebook = versions.notebook_code_versions(PROJECT_ROOT, cached=False)["04_student_distillation"]
    assert checkout_code("04_student_distillation") == (
        f"code {versions.code_version(root=PROJECT_ROOT, cached=False)}, "
        f"study code {versions.study_code_version(root=PROJECT_ROOT, cached=False)}, notebook code {notebook}")

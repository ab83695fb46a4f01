"""Which code made a model or a run: the code fingerprint in every model's
cache key and in run provenance.

Fingerprint tests work on copies of the modules in tmp_path (``root=``), never
on the checkout's files.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from calibkd.config import ModelConfig, Recipe, TrainConfig
from calibkd.io import params_key
from calibkd.paths import PROJECT_ROOT
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

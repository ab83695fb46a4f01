"""Nothing silent: an edited cache record, a malformed archive, a batch file
with a repeated key, out-of-range aggregate and run arguments, and a seed
NumPy cannot take are each refused with a message (docs/testing.md lists
the bad inputs and faults the suite covers)."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile

import pytest
import yaml

from calibkd.config import ModelConfig, Recipe, TrainConfig, validate_parameters
from calibkd.errors import CheckpointError, ConfigError
from calibkd.io import atomic_write_text, load_yaml
from calibkd.paths import PROJECT_ROOT, cache_dir
from calibkd.runs import runner
from calibkd.runs.batches import BatchError, load_batch
from calibkd.study.runner import declared_parameters, notebook_path
from calibkd.training import cache_archive
from calibkd.training.model_cache import get_trained

RECIPE = Recipe("tiny", ModelConfig("small_cnn", (("width", 4),)),
                TrainConfig(epochs=1, batch_size=64, lr=0.05, monitor_size=100))


@pytest.fixture
def trained(tiny_splits):
    return get_trained(RECIPE, tiny_splits, progress=False)


def edit_record(path, **changes):
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record, indent=1, sort_keys=True))


def test_a_record_with_an_edited_temperature_is_refused_on_load(tiny_splits, trained):
    record = cache_dir() / f"{trained.record['key']}.json"
    edit_record(record, temperature=trained.record["temperature"] + 1.0)
    with pytest.raises(CheckpointError, match=r"differs from the record stored in the checkpoint \(fields \['temperature'\]\)"):
        get_trained(RECIPE, tiny_splits, progress=False)


def test_a_record_with_an_edited_temperature_is_refused_on_import(trained, tmp_path):
    archive = tmp_path / "models.tar.gz"
    cache_archive.export_cache(archive)
    edited = tmp_path / "edited.tar.gz"
    with tarfile.open(archive) as source, tarfile.open(edited, "w:gz") as target:
        for member in source.getmembers():
            payload = source.extractfile(member).read()
            if member.name.endswith(".json") and member.name != cache_archive.MANIFEST:
                record = json.loads(payload)
                record["temperature"] += 1.0
                payload = json.dumps(record).encode()
            member.size = len(payload)
            target.addfile(member, io.BytesIO(payload))
    with pytest.raises(cache_archive.CacheArchiveError, match="fields \\['temperature'\\]"):
        cache_archive.import_cache(edited, tmp_path / "class-cache")
    assert not (tmp_path / "class-cache").exists()


def _archive(path, members: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


@pytest.mark.parametrize("members, message", [
    ({"calibkd-cache.json": b"{not json"}, "is malformed"),
    ({"calibkd-cache.json": b'{"format": "calibkd-cache"}'}, "is malformed"),
    ({"calibkd-cache.json": b'{"models": []}'}, "is malformed"),
    ({"calibkd-cache.json": b'{"models": {"0123456789abcdef": {}}}', "0123456789abcdef.pt": b"x",
      "0123456789abcdef.json": b"{oops"}, "not valid JSON"),
    ({"calibkd-cache.json": b'{"models": {"0123456789abcdef": {}}}', "0123456789abcdef.pt": b"x",
      "0123456789abcdef.json": b"[1, 2]"}, "not a JSON object"),
])
def test_every_malformed_archive_is_one_message(tmp_path, members, message):
    with pytest.raises(cache_archive.CacheArchiveError, match=message):
        cache_archive.import_cache(_archive(tmp_path / "bad.tar.gz", members), tmp_path / "cache")
    assert cache_archive.main(["--cache", str(tmp_path / "cache"), "import", str(tmp_path / "bad.tar.gz")]) != 0


def test_a_repeated_yaml_key_is_refused_not_overwritten(tmp_path):
    with pytest.raises(yaml.YAMLError, match="key 'seed' appears twice"):
        load_yaml("grid:\n  seed: [0]\n  seed: [1]\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "batch.yaml").write_text(
        "notebooks: [01_teacher_training]\nparameters: {profile: smoke}\ngrid: {seed: [0]}\ngrid: {seed: [1]}\n")
    with pytest.raises(BatchError, match="key 'grid' appears twice"):
        load_batch(tmp_path / "b")


@pytest.mark.parametrize("argv, message", [
    (["--replicate", "bogus"], "replicate='bogus' is not a grid parameter of batch reference-fmnist; "
                               "its grid parameters: \\['seed'\\]"),
    (["--confidence", "1.5"], "confidence=1.5 must lie strictly between 0 and 1"),
    (["--confidence", "0"], "confidence=0.0 must lie strictly between 0 and 1"),
])
def test_aggregate_refuses_bad_arguments_before_writing(argv, message, capsys, tmp_path):
    import shutil

    batch = tmp_path / "reference-fmnist"
    shutil.copytree(PROJECT_ROOT / "papermill_runs" / "reference-fmnist", batch)
    before = (batch / "results.csv").read_bytes()
    assert runner.main(["aggregate", str(batch), *argv]) == 2
    assert message.replace("\\", "") in capsys.readouterr().err.replace("\\", "")
    assert (batch / "results.csv").read_bytes() == before


@pytest.mark.parametrize("argv, message", [
    (["--connect-timeout", "-1"], "--connect-timeout -1: must be a positive number of seconds"),
    (["--workers", "0"], "--workers 0: must be at least 1"),
])
def test_run_refuses_out_of_range_numbers(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        runner.main(["run", "smoke-example", *argv])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_a_seed_numpy_cannot_take_is_refused_with_its_range():
    params = declared_parameters(notebook_path("01_teacher_training")) | {"seed": 2**32}
    with pytest.raises(ConfigError, match="above its maximum 4294967295"):
        validate_parameters("01_teacher_training", params)


def test_files_written_atomically_get_the_umask_mode(tmp_path):
    atomic_write_text(tmp_path / "shared.csv", "a,b\n")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "shared.csv").stat().st_mode) == 0o666 & ~mask

"""Checkpoints are atomic, verified, and fail loudly when corrupt or foreign."""

from __future__ import annotations

import pytest
import torch

from calibkd.errors import CheckpointError
from calibkd.io import params_key
from calibkd.training.model_cache import ModelCache, load_checkpoint, save_checkpoint


def state():
    return {"w": torch.arange(6.0).view(2, 3), "b": torch.zeros(2)}


def test_roundtrip_with_weights_only(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, state(), {"params": {"a": 1}})
    loaded, record = load_checkpoint(path)
    assert torch.equal(loaded["w"], state()["w"]) and record == {"params": {"a": 1}}
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary files left


def test_corrupt_file(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, state(), {})
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_foreign_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"model": state()}, path)
    with pytest.raises(CheckpointError, match="not a calibkd checkpoint"):
        load_checkpoint(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")


def test_cache_checks_checksum_and_parameters(tmp_path):
    cache = ModelCache(tmp_path)
    params = {"lr": 0.1}
    key = params_key(params)
    cache.put(key, state(), {"params": params, "test_accuracy": 0.5})
    loaded, record = cache.get(key, params)
    assert record["sha256"] and record["key"] == key
    with pytest.raises(CheckpointError, match="other parameters"):
        cache.get(key, {"lr": 0.2})
    weights, sidecar = cache.paths(key)
    save_checkpoint(weights, {"w": torch.ones(1)}, {"params": params})
    with pytest.raises(CheckpointError, match="checksum"):
        cache.get(key, params)
    sidecar.write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable"):
        cache.get(key, params)


def test_params_key_is_order_independent():
    assert params_key({"a": 1, "b": [1, 2]}) == params_key({"b": [1, 2], "a": 1})
    assert params_key({"a": 1}) != params_key({"a": 2})

"""Atomic, verified checkpoints and a model cache keyed by a hash of the
parameters that determine the model.

A cache entry is two files: ``<key>.pt`` (weights and record, loaded with
``weights_only=True``) and ``<key>.json`` (the same record plus the SHA-256 of
the ``.pt`` file, for humans and for verification). Both are written to a
temporary file and renamed into place, so an interrupted write never leaves a
file that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch

FORMAT = "calibkd-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, foreign, or not the model asked for."""


def params_key(params: Mapping[str, Any]) -> str:
    """A short, stable hash of JSON-serialisable parameters."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_checkpoint(path: Path, state_dict: Mapping[str, torch.Tensor], record: Mapping[str, Any]) -> str:
    """Save weights and a JSON-able record atomically; returns the file's SHA-256."""
    import io

    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "version": FORMAT_VERSION,
                "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
                "record_json": json.dumps(record, sort_keys=True, default=str)}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return sha256_file(path)


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load ``(state_dict, record)`` with ``weights_only=True``.

    Raises ``CheckpointError`` for a missing, unreadable or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a PyTorch file ({type(error).__name__}: {error}); "
            "delete it and the model will be retrained"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a calibkd checkpoint (no '{FORMAT}' marker); it may come from another tool")
    if payload.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {payload.get('version')}, expected {FORMAT_VERSION}")
    return payload["state_dict"], json.loads(payload["record_json"])


class ModelCache:
    """Trained models on disk, found by the hash of their determining parameters."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.pt", self.root / f"{key}.json"

    def contains(self, key: str) -> bool:
        weights, record = self.paths(key)
        return weights.is_file() and record.is_file()

    def put(self, key: str, state_dict: Mapping[str, torch.Tensor], record: Mapping[str, Any]) -> dict[str, Any]:
        """Store a model; the JSON (with the checksum) is written last, so an
        entry without it is unfinished and ignored."""
        weights, record_path = self.paths(key)
        checksum = save_checkpoint(weights, state_dict, record)
        full = {**record, "key": key, "sha256": checksum}
        atomic_write_text(record_path, json.dumps(full, indent=1, sort_keys=True, default=str))
        return full

    def get(self, key: str, expected_params: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Load and verify a cached model: checksum, and parameters equal to those asked for."""
        weights, record_path = self.paths(key)
        try:
            sidecar = json.loads(record_path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise CheckpointError(f"cache record {record_path} is unreadable ({error}); delete it to retrain") from None
        if sidecar.get("sha256") != sha256_file(weights):
            raise CheckpointError(f"checkpoint {weights} does not match the checksum in {record_path}; delete both to retrain")
        state_dict, record = load_checkpoint(weights)
        expected = json.loads(json.dumps(expected_params, sort_keys=True, default=str))
        if record.get("params") != expected:
            raise CheckpointError(f"checkpoint {weights} was trained with other parameters than asked for")
        return state_dict, sidecar

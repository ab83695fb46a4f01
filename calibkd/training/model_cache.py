"""The model cache: trained models on disk, found by a hash of everything
that determines their weights, and ``get_trained``, the train-or-load entry
point every chapter asks its models from.

A cache entry is two files: ``<key>.pt`` (weights and record, loaded with
``weights_only=True``) and ``<key>.json`` (the same record plus the SHA-256 of
the ``.pt`` file, for humans and for verification). Both are written to a
temporary file and renamed into place, so an interrupted write never leaves a
file that looks finished.

The cache key is a hash of everything that determines the weights: dataset
and split, architecture, training recipe, seed, device type, the torch
version, and the version of the code that trains (``code``: the fingerprint
of the modules ``code_version.MODEL_CODE`` lists), so editing that code
retrains rather than reusing a model the old code made. Each entry's record
(parameters, checksum, test accuracy, ECE, the temperature TS fits on
validation, and the per-epoch history) is checked when it is loaded: the
weights must reproduce the recorded test accuracy.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd
import torch
from torch import nn

from calibkd import metrics
from calibkd.config import Recipe, as_record
from calibkd.data.splits import DataSplits
from calibkd.errors import CheckpointError
from calibkd.io import atomic_write_bytes, atomic_write_text, params_key, sha256_file
from calibkd.methods.calibration import fit_temperature
from calibkd.nn.inference import predict_logits, use_fast_layout
from calibkd.nn.models import build_model, count_parameters
from calibkd.paths import cache_dir
from calibkd.runtime import set_determinism
from calibkd.training.code_version import code_version
from calibkd.training.loop import TrainResult, train_model

FORMAT = "calibkd-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: Path, state_dict: Mapping[str, torch.Tensor], record: Mapping[str, Any]) -> str:
    """Save weights and a JSON-able record atomically; returns the file's SHA-256."""
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


#: Fields the JSON record adds to the record stored inside the checkpoint.
SIDECAR_FIELDS = ("key", "sha256")


def check_record(sidecar: Mapping[str, Any], stored: Mapping[str, Any], where: str) -> None:
    """The JSON record beside a checkpoint must equal the record stored inside
    it (the weights' checksum covers that one): an edited temperature or
    accuracy in the JSON is refused, never used."""
    outside = {k: v for k, v in sidecar.items() if k not in SIDECAR_FIELDS}
    inside = json.loads(json.dumps(stored, sort_keys=True, default=str))
    if outside != inside:
        fields = sorted(k for k in set(outside) | set(inside) if outside.get(k) != inside.get(k))
        raise CheckpointError(f"{where}: the JSON record differs from the record stored in the checkpoint "
                              f"(fields {fields}): it was edited or corrupted. Delete both files of the entry "
                              "to retrain it, or import the cache archive again")


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
        check_record(sidecar, record, f"cache entry {record_path}")
        expected = json.loads(json.dumps(expected_params, sort_keys=True, default=str))
        if record.get("params") != expected:
            raise CheckpointError(f"checkpoint {weights} was trained with other parameters than asked for")
        return state_dict, {**record, **{k: sidecar[k] for k in SIDECAR_FIELDS if k in sidecar}}


CACHE_VERSION = 1


@dataclass
class TrainedModel:
    """A model ready to evaluate, with where it came from."""

    recipe: Recipe
    model: nn.Module
    history: pd.DataFrame
    record: dict[str, Any]
    from_cache: bool

    @property
    def num_parameters(self) -> int:
        return count_parameters(self.model)

    def summary(self) -> str:
        r = self.record
        origin = "loaded from cache" if self.from_cache else f"trained in {r['train_seconds']:.0f}s"
        return (f"{self.recipe.name}: {r['arch']} with {r['num_parameters']:,} parameters, {origin}; "
                f"weights from epoch {r['selected_epoch']} ({self.recipe.train.report_epoch}); "
                f"test accuracy {r['test_accuracy']:.4f}, test ECE {r['test_ece']:.4f}, "
                f"TS temperature {r['temperature']:.3f} (key {r['key']})")


class MissingModelError(CheckpointError):
    """A model is not in the cache and training was switched off (``train_missing=False``)."""


#: Whether ``get_trained`` may train a model the cache does not hold; notebooks
#: set it from their ``train_missing`` parameter (``set_training_allowed``).
_training_allowed = True


def set_training_allowed(allowed: bool) -> None:
    """Allow or forbid training missing models in this process (a class with a
    prepared cache sets False: every model must load, none is retrained)."""
    global _training_allowed
    _training_allowed = bool(allowed)


def model_params(recipe: Recipe, data: DataSplits, device: torch.device,
                 init: TrainedModel | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameters that determine a trained model (and so its cache key).

    Optional settings at their defaults (no loss hyper-parameters, no initial
    weights) are left out, so that keys stay stable as options are added.
    ``code`` is the fingerprint of the training code (``code_version``): a
    model the code before an edit trained is never found again.
    """
    train = as_record(recipe.train)
    if not train["loss_params"]:
        del train["loss_params"]
    if train["long_tail"] is None:
        del train["long_tail"]
    params = {
        "cache_version": CACHE_VERSION,
        "split": as_record(data.config),
        "model": {"arch": recipe.model.arch, **recipe.model.arguments},
        "train": train,
        "device_type": device.type,
        "torch": torch.__version__.split("+")[0],
        "code": code_version(),
    }
    if data.manifest is not None:
        # generated data (glyphs, mixture): what was generated, not just its name
        params["data"] = data.generated_identity()
    if init is not None:
        params["init_from"] = {"recipe": init.recipe.name, "key": init.record["key"]}
    if extra:
        params["extra"] = extra
    return params


def _build(recipe: Recipe, data: DataSplits, device: torch.device) -> nn.Module:
    return build_model(recipe.model.arch, data.info.channels, data.info.num_classes,
                       **recipe.model.arguments).to(device)


def get_trained(
    recipe: Recipe,
    data: DataSplits,
    device: torch.device | str = "cpu",
    cache: ModelCache | None = None,
    progress: bool | None = None,
    init: TrainedModel | None = None,
    extra: dict[str, Any] | None = None,
    trainer: Callable[[nn.Module], TrainResult] | None = None,
) -> TrainedModel:
    """The model ``recipe`` gives on ``data``: from the cache if there, else
    trained (from ``init``'s weights, when given) and cached.

    A student passes ``extra`` (what else determines its weights: the
    teacher's key, the distillation method, the target map; part of the
    cache key) and ``trainer`` (trains the freshly initialised model; by
    default ``train_model`` with the recipe's loss). ``trainer`` is only
    called when the cache has no entry.
    """
    device = torch.device(device)
    cache = cache or ModelCache(cache_dir())
    if (recipe.init_from is None) != (init is None):
        raise ValueError(f"recipe {recipe.name!r} has init_from={recipe.init_from!r}; pass its trained model as init")
    params = model_params(recipe, data, device, init, extra)
    key = params_key(params)
    if cache.contains(key):
        state_dict, record = cache.get(key, params)
        model = _build(recipe, data, device)
        model.load_state_dict(state_dict)
        use_fast_layout(model).eval()
        test_probs = metrics.softmax(predict_logits(model, data.test.images))
        accuracy = metrics.accuracy(test_probs, data.test.labels)
        if abs(accuracy - record["test_accuracy"]) > 1e-9:
            raise CheckpointError(
                f"cached model {key} gives test accuracy {accuracy:.6f}, its record says "
                f"{record['test_accuracy']:.6f}; delete {cache.root / key}.* to retrain"
            )
        history = pd.DataFrame(record["history"]["data"], columns=record["history"]["columns"])
        return TrainedModel(recipe, model, history, record, from_cache=True)

    if not _training_allowed:
        raise MissingModelError(
            f"{recipe.name}: model {key} is not in the model cache {cache.root}, and this run was started with "
            "train_missing=False (load, never train). Import a prepared cache with `python -m calibkd.training.cache_archive "
            "import FILE`, or set train_missing=True to train it.")
    set_determinism(recipe.train.seed)
    model = _build(recipe, data, device)
    if init is not None:
        model.load_state_dict(init.model.state_dict())
    if trainer is None:
        result = train_model(model, data, recipe.train, label=recipe.name, progress=progress)
    else:
        result = trainer(model)
    test_probs = metrics.softmax(predict_logits(model, data.test.images))
    val_logits = predict_logits(model, data.val.images)
    record = {
        "params": params,
        "recipe": recipe.name,
        "arch": recipe.model.arch,
        "num_parameters": count_parameters(model),
        "selected_epoch": result.selected_epoch,
        "train_seconds": result.seconds,
        "test_accuracy": metrics.accuracy(test_probs, data.test.labels),
        "test_ece": metrics.ece(test_probs, data.test.labels),
        "temperature": fit_temperature(val_logits, data.val.labels),
        "history": result.history.to_dict(orient="split", index=False),
    }
    record = cache.put(key, model.state_dict(), record)
    return TrainedModel(recipe, model, result.history, record, from_cache=False)

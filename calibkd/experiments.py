"""Train-or-load: every notebook asks for the models it needs by recipe, and
gets them from the cache when an identical run already finished.

The cache key is a hash of everything that determines the weights: dataset
and split, architecture, training recipe, seed, device type, and the torch
version. Each entry's record (parameters, checksum, test accuracy, ECE, the
temperature TS fits on validation, and the per-epoch history) is checked when
it is loaded: the weights must reproduce the recorded test accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd
import torch
from torch import nn

from calibkd import metrics
from calibkd.calibration import fit_temperature
from calibkd.checkpoints import CheckpointError, ModelCache, params_key
from calibkd.config import Recipe, as_record, cache_dir
from calibkd.data import DataSplits
from calibkd.models import build_model, count_parameters
from calibkd.runtime import set_determinism
from calibkd.train import TrainResult, predict_logits, train_model, use_fast_layout

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
            "train_missing=False (load, never train). Import a prepared cache with `python -m calibkd.cache "
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

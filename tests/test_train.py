"""The training loop and the train-or-load cache, on tiny data."""

from __future__ import annotations

import pytest
import torch

from calibkd.config import ModelConfig, Recipe, TrainConfig
from calibkd.errors import CheckpointError
from calibkd.nn.inference import predict_logits
from calibkd.nn.models import build_model
from calibkd.training.loop import train_model
from calibkd.training.model_cache import ModelCache, get_trained, load_checkpoint

TINY = ModelConfig("resnet", (("width", 4), ("blocks_per_stage", 1), ("stem_stride", 2)))


def recipe(**changes) -> Recipe:
    return Recipe("tiny", TINY, TrainConfig(**{"epochs": 2, "batch_size": 64, "lr": 0.05, "monitor_size": 100, **changes}))


def test_same_seed_same_weights(tiny_splits):
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model("resnet", 1, 10, width=4, stem_stride=2)
        results.append(train_model(model, tiny_splits, recipe().train, progress=False))
    a, b = (r.model.state_dict() for r in results)
    assert all(torch.equal(a[k], b[k]) for k in a)
    history = results[0].history
    assert list(history["epoch"]) == [1, 2]
    for column in ("train_nll", "train_ece", "val_acc", "val_nll", "test_nll", "test_ece", "lr"):
        assert column in history


def test_learns_the_synthetic_task(tiny_splits):
    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 10, width=8)
    result = train_model(model, tiny_splits, recipe(epochs=8, lr=0.1, augment=False).train, progress=False)
    assert result.history["val_acc"].iloc[-1] > 0.5  # chance is 0.1


def test_best_val_epoch_restores_those_weights(tiny_splits):
    torch.manual_seed(0)
    model = build_model("resnet", 1, 10, width=4, stem_stride=2)
    result = train_model(model, tiny_splits, recipe(epochs=3, report_epoch="best_val").train, progress=False)
    best = int(result.history["val_nll"].idxmin()) + 1
    assert result.selected_epoch == best
    from calibkd import metrics
    probs = metrics.softmax(predict_logits(result.model, tiny_splits.val.images))
    assert metrics.nll(probs, tiny_splits.val.labels) == pytest.approx(result.history["val_nll"].min(), abs=1e-6)


def test_progress_bars_when_interactive(tiny_splits, capsys):
    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 10, width=4)
    train_model(model, tiny_splits, recipe(epochs=1).train, progress=True)
    assert "[model] epoch" not in capsys.readouterr().out


def test_cache_trains_once_then_loads(tiny_splits, isolated_cache):
    first = get_trained(recipe(), tiny_splits)
    second = get_trained(recipe(), tiny_splits)
    assert not first.from_cache and second.from_cache
    assert first.record["key"] == second.record["key"]
    for name in ("temperature", "test_accuracy", "test_ece", "sha256", "params", "history"):
        assert name in second.record
    a, b = first.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    import pandas as pd
    pd.testing.assert_frame_equal(second.history, first.history)
    other = get_trained(recipe(seed=1), tiny_splits)
    assert other.record["key"] != first.record["key"]


def test_cache_refuses_weights_that_do_not_reproduce_their_record(tiny_splits, isolated_cache):
    import json

    first = get_trained(recipe(), tiny_splits)
    key = first.record["key"]
    state_dict, record = load_checkpoint(isolated_cache / f"{key}.pt")
    record["test_accuracy"] += 0.1
    ModelCache(isolated_cache).put(key, state_dict, record)  # consistent files, but not what the weights give
    assert json.loads((isolated_cache / f"{key}.json").read_text())["test_accuracy"] == record["test_accuracy"]
    with pytest.raises(CheckpointError, match="record says"):
        get_trained(recipe(), tiny_splits)


def test_corrupt_cached_checkpoint_is_reported(tiny_splits, isolated_cache):
    first = get_trained(recipe(), tiny_splits)
    weights = isolated_cache / f"{first.record['key']}.pt"
    weights.write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        get_trained(recipe(), tiny_splits)


def test_fine_tuning_starts_from_the_initial_weights_and_keys_on_them(tiny_splits):
    from dataclasses import replace

    base = get_trained(recipe(), tiny_splits)
    tuned_recipe = Recipe("tuned", TINY, TrainConfig(epochs=1, batch_size=64, lr=1e-9, monitor_size=100,
                                                     loss="dus", loss_params=(("gate", "soft"),)), init_from="tiny")
    with pytest.raises(ValueError, match="pass its trained model as init"):
        get_trained(tuned_recipe, tiny_splits)
    tuned = get_trained(tuned_recipe, tiny_splits, init=base)
    assert tuned.record["params"]["init_from"] == {"recipe": "tiny", "key": base.record["key"]}
    a, b = base.model.state_dict(), tuned.model.state_dict()
    weights = [k for k in a if k.endswith("weight")]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in weights)  # lr ~ 0: barely moved
    other_base = get_trained(recipe(seed=5), tiny_splits)
    retuned = get_trained(replace(tuned_recipe), tiny_splits, init=other_base)
    assert retuned.record["key"] != tuned.record["key"]


def test_teacher_variants_change_only_the_loss_or_fine_tune():
    from calibkd.config import PROFILES, TEACHER_METHODS, teacher_variant
    from calibkd.errors import ConfigError

    profile = PROFILES["default"]
    base = profile.teacher_recipes["default"]
    for method, (loss, _, finetune) in TEACHER_METHODS.items():
        variant = teacher_variant(profile, "default", method)
        assert variant.model == base.model and variant.train.loss == loss
        if finetune:
            assert variant.init_from == "default" and variant.train.epochs == profile.finetune_epochs
        else:
            assert variant.train.epochs == base.train.epochs and variant.train.augment == base.train.augment
            assert variant.train.weight_decay == base.train.weight_decay
    scratch = teacher_variant(profile, "default", "dus_soft_scratch")
    assert scratch.init_from is None and scratch.train.epochs == base.train.epochs and scratch.train.loss == "dus"
    with pytest.raises(ConfigError, match="unknown teacher method"):
        teacher_variant(profile, "default", "dropout")
    with pytest.raises(ConfigError, match="unknown regime"):
        teacher_variant(profile, "sharp", "focal")


def test_batch_stream_order_is_iterate_batches_order_and_indexes_its_examples(tiny_splits):
    from calibkd.data.splits import iterate_batches
    from calibkd.training.loop import BatchStream

    config = TrainConfig(epochs=2, batch_size=64, augment=False, seed=5)
    stream = BatchStream(tiny_splits.train, config, tiny_splits.info, torch.device("cpu"))
    reference = torch.Generator().manual_seed(5)
    for _ in range(2):
        expected = list(iterate_batches(tiny_splits.train, 64, shuffle=True, generator=reference))
        got = list(stream.epoch_with_index())
        assert len(got) == len(expected)
        for (images, _, labels, index), (ref_images, ref_labels) in zip(got, expected):
            assert torch.equal(images, ref_images) and torch.equal(labels, ref_labels)
            assert torch.equal(tiny_splits.train.labels[index], labels)

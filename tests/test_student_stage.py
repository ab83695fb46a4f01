"""The student stage: students cached under their teacher and method, the
teacher pass skipped when every student is cached, scores and the sweep."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from calibkd.config import STUDENT_METHODS, ModelConfig, Recipe, TrainConfig
from calibkd.errors import ConfigError
from calibkd.study.report import score_students, stage_fidelity, target_diagnostics
from calibkd.training.model_cache import get_trained
from calibkd.training.stage import StudentStage, sweep_methods

TEACHER = Recipe("teacher", ModelConfig("resnet", (("width", 4), ("stem_stride", 2))),
                 TrainConfig(epochs=1, batch_size=64, lr=0.05, monitor_size=100))
STUDENT = Recipe("student", ModelConfig("small_cnn", (("width", 4),)),
                 TrainConfig(epochs=2, batch_size=64, lr=0.05, monitor_size=100))


def make_stage(splits, **kwargs):
    asked = []

    def source(method, overrides):
        asked.append((method, overrides))
        loss = {"ce": "ce", "dus_soft": "dus", "label_smoothing": "label_smoothing"}[method]
        params = (("gate", "soft"),) if loss == "dus" else ()
        if overrides:
            params = tuple(sorted((dict(params) | dict(overrides)).items()))
        recipe = replace(TEACHER, name=method, train=replace(TEACHER.train, loss=loss, loss_params=params))
        return get_trained(recipe, splits, progress=False)

    stage = StudentStage(splits, torch.device("cpu"), "default", STUDENT, source, progress=False, **kwargs)
    return stage, asked


def test_students_are_cached_and_the_teacher_pass_is_skipped_when_all_are(tiny_splits):
    stage, _ = make_stage(tiny_splits)
    first = {name: stage.student(name) for name in ("ce", "kd", "cud", "cudp")}
    assert not any(r.student.from_cache for r in first.values())
    assert len(stage.teacher_pass_seconds) == 2  # the CE and the DUS teacher, once each
    again, _ = make_stage(tiny_splits)
    second = {name: again.student(name) for name in ("ce", "kd", "cud", "cudp")}
    assert all(r.student.from_cache for r in second.values())
    assert again.teacher_pass_seconds == {}
    for name in first:
        for a, b in zip(first[name].model.state_dict().values(), second[name].model.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_cache_keys_separate_teacher_method_and_map(tiny_splits):
    stage, _ = make_stage(tiny_splits)
    keys = {name: stage.student(name).student.record["key"] for name in ("ce", "kd", "kd_ts", "dus_kd", "cud")}
    assert len(set(keys.values())) == len(keys)
    # the labels-only student is the plain student recipe: the same cache entry as chapter 01's
    assert keys["ce"] == get_trained(STUDENT, tiny_splits, progress=False).record["key"]
    cudp_temperature = stage.student("cudp").student.record["key"]
    iso_stage, _ = make_stage(tiny_splits, cudp_map="isotonic")
    assert iso_stage.student("cudp").student.record["key"] != cudp_temperature


def test_distilling_students_start_from_the_same_weights_and_differ_after(tiny_splits):
    stage, _ = make_stage(tiny_splits)
    kd, ts = stage.student("kd").model, stage.student("cud").model
    assert any(not torch.equal(a, b) for a, b in zip(kd.state_dict().values(), ts.state_dict().values()))


def test_unknown_student_and_bad_teacher(tiny_splits):
    stage, _ = make_stage(tiny_splits)
    with pytest.raises(ConfigError, match="unknown student method"):
        stage.student("fitnet")
    broken = replace(STUDENT_METHODS["kd"], teacher=None)
    with pytest.raises(ConfigError, match="names no teacher"):
        stage.student("orphan", broken)


def test_scores_have_every_split_and_fidelity(tiny_splits):
    stage, _ = make_stage(tiny_splits)
    results = {name: stage.student(name) for name in ("ce", "kd")}
    scores = score_students(results, tiny_splits)
    assert set(scores.split) == {"test", "validation", "test after TS"}
    kd = scores[scores.model == "kd"].set_index("metric")["value"]
    assert 0 <= kd["agreement"] <= 1 and kd["teacher_kl"] >= 0
    assert "agreement" not in set(scores[scores.model == "ce"].metric)
    targets = target_diagnostics(stage, results, tiny_splits.train).set_index("model")
    assert list(targets.index) == ["kd"] and 0 < targets.loc["kd", "target confidence"] <= 1


def test_sweep_varies_one_setting_at_a_time():
    runs = sweep_methods({"temperature": [2.0], "eta": [0.25, 1.0], "lambda_h": [0.3]})
    labels = [r[0] for r in runs]
    assert labels == ["cud[temperature=2]", "cud[eta=0.25]", "cud[eta=1]", "cud[lambda_h=0.3]"]
    base = STUDENT_METHODS["cud"].distill
    assert runs[0][3].distill == replace(base, temperature=2.0) and runs[0][4] is None
    assert runs[3][3] == STUDENT_METHODS["cud"] and runs[3][4] == {"lambda_h": 0.3}
    with pytest.raises(ConfigError, match="unknown sweep setting"):
        sweep_methods({"gamma_f": [1.0]})
    with pytest.raises(ConfigError, match="out of range"):
        sweep_methods({"eta": [1.5]})
    with pytest.raises(ConfigError, match="must be a list"):
        sweep_methods({"eta": 0.5})


def test_sweep_teacher_overrides_reach_the_teacher(tiny_splits):
    stage, asked = make_stage(tiny_splits)
    label, _, _, method, overrides = sweep_methods({"lambda_h": [0.3]})[0]
    stage.student(label, method, overrides)
    assert ("dus_soft", {"lambda_h": 0.3}) in asked


def test_cross_fitted_cudp_uses_out_of_fold_teachers_and_is_cached(tiny_splits):
    from calibkd.training.cross_fit import fold_of

    stage, _ = make_stage(tiny_splits)
    result = stage.student("cudp_xfit")
    folds, teachers = stage.fold_teachers()
    assert len(teachers) == 2 and sorted(folds.unique().tolist()) == [0, 1]
    assert abs(int((folds == 0).sum()) - int((folds == 1).sum())) <= 1
    record = result.student.record["params"]["extra"]
    assert record["calibrator"] == "cross_fit" and record["cross_fit"]["teachers"] == [t.record["key"] for t in teachers]
    # every c(x) is a probability, one per example of every batch
    confidences = stage.cross_fit_confidence()
    assert all(len(e) == len(tiny_splits.train) for e in confidences.epochs)
    assert all(((e >= 0) & (e <= 1)).all() for e in confidences.epochs)
    # a teacher never gives c(x) for an example it trained on
    again, _ = make_stage(tiny_splits)
    assert again.student("cudp_xfit").student.from_cache
    assert "cross-fit folds" not in again.teacher_pass_seconds
    assert torch.equal(fold_of(10, 2, 0), fold_of(10, 2, 0))
    with pytest.raises(ConfigError, match="at least 2 folds"):
        fold_of(10, 1, 0)


def test_cross_fit_confidence_comes_from_the_teacher_of_the_other_fold(tiny_splits):
    from calibkd.methods.calibration import make_calibrator
    from calibkd.nn.inference import predict_logits
    from calibkd.training.cross_fit import CrossFitConfidence
    from calibkd.training.loop import BatchStream

    stage, _ = make_stage(tiny_splits)
    folds, teachers = stage.fold_teachers()
    confidences = CrossFitConfidence(folds, teachers, tiny_splits, STUDENT.train)
    maps = [make_calibrator("temperature").fit(predict_logits(t.model, tiny_splits.val.images), tiny_splits.val.labels)
            for t in teachers]
    stream = BatchStream(tiny_splits.train, STUDENT.train, tiny_splits.info, torch.device("cpu"))
    images, _, labels, index = next(stream.epoch_with_index())
    c = confidences.batch(1, 0)
    for row in range(5):
        f = int(folds[index[row]])
        probs = maps[f].probs(predict_logits(teachers[f].model, images[row: row + 1]))
        assert float(c[row]) == pytest.approx(float(probs[0, labels[row]]), rel=1e-5)


def test_transfer_targets_are_the_diagnosed_targets_and_score_against_a_truth(tiny_splits):
    from calibkd.data.splits import group_label_distribution
    from calibkd.training.stage import transfer_targets

    stage, _ = make_stage(tiny_splits)
    results = {name: stage.student(name) for name in ("ce", "kd", "wclip", "cudp")}
    targets = transfer_targets(stage, results, tiny_splits.train)
    assert list(targets) == ["kd", "wclip", "cudp"]
    diagnosed = target_diagnostics(stage, results, tiny_splits.train).set_index("model")
    for name, target in targets.items():
        assert torch.allclose(target.sum(1), torch.ones(len(target), dtype=target.dtype), atol=1e-5)
        assert diagnosed.loc[name, "target confidence"] == pytest.approx(float(target.max(1).values.mean()))
    # fidelity to a made-up truth (garment groups tied), as for glyphs
    groups = [(0, 2, 4, 6), (5, 7, 9)]
    splits = replace(tiny_splits, info=replace(tiny_splits.info, class_groups=groups))
    for name in ("train", "val", "test"):
        split = getattr(splits, name)
        splits = replace(splits, **{name: replace(split, true_probs=group_label_distribution(split.labels, groups, 10))})
    table = stage_fidelity(stage, results, splits, sample_size=100, seed=0)
    assert set(table.split) == {"test", "target (training views)"}
    assert set(table[table.split == "test"].model) == {"ce", "kd", "wclip", "cudp"}
    assert set(table[table.split == "target (training views)"].model) == {"kd", "wclip", "cudp"}
    assert {"kl_true", "tv_true", "group_mass", "group_uniformity", "group_recovery_auc"} == set(table.metric)
    with pytest.raises(ValueError, match="no true label distributions"):
        stage_fidelity(stage, results, tiny_splits)

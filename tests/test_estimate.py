"""``python -m calibkd.runs estimate``: the work a run trains, counted from
its parameters, and the CLI printing an expected time from measured throughput."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
import torch

from calibkd.config import TUNING_GRIDS, get_profile
from calibkd.runs import estimate
from calibkd.runs.runner import main as runs_main
from calibkd.study.runner import resolve_parameters

CHAPTER_04 = "04_student_distillation"


def params(**overrides):
    base = {"profile": "smoke", "regimes": ["default"], "student_methods": ["ce", "kd"], "central_methods": ["ce"],
            "sweep": {}, "tuning": ""}
    return resolve_parameters([CHAPTER_04], {**base, **overrides})[CHAPTER_04]


def by_kind(items, field):
    counts = Counter()
    for item in items:
        counts[item.kind] += getattr(item, field)
    return +counts  # kinds with a count


def test_work_of_a_tiny_run_is_counted_exactly():
    profile = get_profile("smoke")
    n = profile.split.train_size
    teacher, student = profile.teacher_recipes["default"].train, profile.student.train
    items = estimate.run_work(CHAPTER_04, params())
    models = by_kind(items, "models")
    # the CE teacher, the DUS teacher of the regime check, and one student per method
    assert models == {"CE teacher": 1, "fine-tuned teacher": 1, "student": 2}
    train = by_kind(items, "train_images")
    assert train["CE teacher"] == teacher.epochs * n
    assert train["fine-tuned teacher"] == profile.finetune_epochs * n
    assert train["student"] == 2 * student.epochs * n
    passes = [item for item in items if item.kind == "teacher logit pass"]
    assert [p.infer_images for p in passes] == [student.epochs * n]  # KD's teacher, once per student epoch
    epochs = {item.label: item.epochs for item in items if item.models}
    assert epochs == {"default": teacher.epochs, "default/dus_soft": profile.finetune_epochs,
                      "default/student/ce": student.epochs, "default/student/kd": student.epochs}


def test_shared_teachers_cross_fitting_and_other_regimes():
    items = estimate.run_work(CHAPTER_04, params(
        regimes=["default", "overconfident"], student_methods=["ce", "kd", "kd_ts", "dus_kd", "cud", "cudp_xfit"],
        central_methods=["ce", "kd_ls"]))
    models = by_kind(items, "models")
    # students: 6 in the first regime, the central methods in the second
    assert models["student"] == 6 + 2
    assert models["cross-fit fold teacher"] == 2
    assert models["calibrated teacher"] == 1  # label smoothing, overconfident regime only
    assert models["fine-tuned teacher"] == 2  # one DUS teacher per regime, shared by dus_kd and cud
    passes = Counter(item.label for item in items if item.kind == "teacher logit pass")
    assert all(count == 1 for count in passes.values())  # one pass per teacher and regime
    assert len(passes) == 4  # default: CE, DUS, cross-fitted c(x); overconfident: the label-smoothing teacher
    profile = get_profile("smoke")
    fold = next(item for item in items if item.kind == "cross-fit fold teacher")
    assert fold.examples == profile.split.train_size // 2


def test_tuning_and_sweep_add_their_trials():
    items = estimate.run_work(CHAPTER_04, params(tuning="run", sweep={"temperature": [2.0], "lambda_h": [2.0]}))
    models = by_kind(items, "models")
    assert models["tuning student"] == sum(len(grid.configurations()) for grid in TUNING_GRIDS.values())
    dus_grid = TUNING_GRIDS["dus"].configurations()
    # the regime check's DUS teacher, one per DUS configuration, and the sweep's lambda_h teacher (a
    # value the tuning grid has would reuse that grid's teacher: same recipe)
    assert models["fine-tuned teacher"] == 1 + len(dus_grid) + 1
    assert models["sweep student"] == 1 + 2  # CUD itself (not among the methods) and one per swept value


def test_long_tail_and_hard_slice_reference():
    from calibkd.data.subsets import long_tail_counts

    items = estimate.run_work(CHAPTER_04, params(profile="default", regimes=["long_tail"]))
    profile = get_profile("default")
    n = profile.split.train_size or 60_000 - profile.split.val_size
    student = next(item for item in items if item.label == "long_tail/student/ce")
    assert student.examples == sum(long_tail_counts(n // 10, 10, 100.0)) < n
    # the default regime's CE teacher is trained for the hard slice even when no regime uses it
    assert any(item.label == "default" and item.kind == "CE teacher" for item in items)


def test_constants_follow_the_evaluation_code():
    from calibkd.evaluation.corruptions import CORRUPTIONS, SEVERITIES
    from calibkd.evaluation.shift import Suite

    assert estimate.SUITE_CORRUPTIONS == len(CORRUPTIONS) and estimate.SUITE_SEVERITIES == len(SEVERITIES)
    assert estimate.SUITE_MIXTURE_WEIGHTS == len(Suite().mixture_lambdas)
    assert estimate.SUITE_HARD_FRACTION == Suite().hard_fraction


def test_other_chapters_and_the_results_chapter():
    chapter_01 = resolve_parameters(["01_teacher_training"], {"profile": "smoke"})["01_teacher_training"]
    assert by_kind(estimate.run_work("01_teacher_training", chapter_01), "models") == {"CE teacher": 2, "student": 1}
    chapter_03 = resolve_parameters(["03_calibration_methods"], {"profile": "smoke"})["03_calibration_methods"]
    models = by_kind(estimate.run_work("03_calibration_methods", chapter_03), "models")
    assert models["CE teacher"] == 1 and models["calibrated teacher"] + models["fine-tuned teacher"] == len(
        chapter_03["methods"])
    assert estimate.run_work("05_results", {}) == []


def fixed_rates(shapes, device, threads, quick):
    return {"device": "cpu", "device_name": "stub", "threads": threads, "torch": torch.__version__,
            "rates": [{"shape": s, "label": s["arch"], "train_images_per_s": 1000.0, "infer_images_per_s": 4000.0}
                      for s in shapes]}


def test_batch_estimate_prices_the_work_and_counts_unfinished_runs():
    report = estimate.estimate_batch("smoke-example", measure=fixed_rates)
    assert len(report["runs"]) == 2 and report["unfinished_runs"] == sum(
        run["state"] != "finished" for run in report["runs"])
    run = report["runs"][0]
    expected = sum(row["train_images"] / 1000.0 + row["infer_images"] / 4000.0 for row in run["work"].values())
    assert run["seconds"] == pytest.approx(expected) and run["seconds"] > 0
    assert report["total_seconds"] == pytest.approx(sum(r["seconds"] for r in report["runs"]))
    text = estimate.format_estimate(report)
    assert "per run" in text and "batch:" in text


def test_cli_measures_and_prints_a_time(capsys):
    assert runs_main(["estimate", "smoke-example", "--quick", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"per run\s+\d+ (s|min|h)", out)
    assert re.search(r"small_cnn\S*\s+128\s+[\d,]+\s+[\d,]+", out)  # the throughput measured now is shown


def test_cli_json(capsys, monkeypatch):
    monkeypatch.setattr(estimate, "measure_throughput", fixed_rates)
    assert runs_main(["estimate", "smoke-example", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["device_name"] == "stub" and report["total_seconds"] > 0
    assert {"run_id", "state", "work", "seconds"} <= set(report["runs"][0])


def test_the_runs_device_is_measured_unless_another_is_asked_for():
    seen = []

    def record(shapes, device, threads, quick):
        seen.append(device)
        return fixed_rates(shapes, device, threads, quick)

    estimate.estimate_batch("smoke-example", measure=record)  # its runs ask for device: cpu
    estimate.estimate_batch("smoke-example", device="auto", measure=record)
    assert seen == ["cpu", "auto"]
    assert estimate.run_device(["cpu", "auto"]) == "auto"


def test_bad_batch_names_give_one_clear_error(capsys):
    assert runs_main(["estimate", "no-such-batch"]) == 2
    assert "no batch definition" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(capsys):
    assert runs_main(["estimate", "smoke-example", "--device", "cuda", "--quick"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fallback of a machine without a GPU")
def test_the_gpu_batch_is_estimated_here_on_the_cpu_and_says_so(capsys, monkeypatch):
    """The cifar100-gpu batch asks for device cuda: without a GPU the estimate
    measures this CPU and says so (the real measurement of resnet32x4 on 2
    cores takes minutes; the rates are stubbed here)."""
    seen = []

    def record(shapes, device, threads, quick):
        seen.append((device, sorted(s["arch"] for s in shapes)))
        return fixed_rates(shapes, device, threads, quick)

    monkeypatch.setattr(estimate, "measure_throughput", record)
    assert runs_main(["estimate", "cifar100-gpu"]) == 0
    out = capsys.readouterr().out
    assert seen == [("cpu", ["resnet32x4", "resnet8x4"])]
    assert "no GPU: measured on its CPU" in out and re.search(r"per run\s+[\d.]+ (days|h)", out)

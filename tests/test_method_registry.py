"""Adding a distillation method is one row of ``config.STUDENT_METHODS`` and,
for a new loss, one row of ``training.students.DISTILL_KINDS``: chapter 04's
student stage and tables pick it up with no other edit. Checked with a method
that exists only in this file: logit matching (Ba & Caruana 2014), the
student regressing the teacher's logits."""

from __future__ import annotations

import pytest
import torch.nn.functional as F

from calibkd.config import STUDENT_METHODS, DistillMethod, StudentMethod
from calibkd.errors import ConfigError
from calibkd.evaluation.shift import evaluate_suite
from calibkd.study.context import start
from calibkd.study.report import method_table, score_students, summary_table
from calibkd.study.runner import declared_parameters, notebook_path
from calibkd.training.students import DISTILL_KINDS, DistillBatch, DistillKind

CHAPTER = "04_student_distillation"


def logit_matching(method: DistillMethod, batch: DistillBatch):
    return F.mse_loss(batch.student, batch.teacher)


@pytest.fixture
def logit_mse(monkeypatch):
    monkeypatch.setitem(DISTILL_KINDS, "logit_mse", DistillKind(logit_matching, "MSE to the teacher's logits"))
    monkeypatch.setitem(STUDENT_METHODS, "logit_mse",
                        StudentMethod("ce", DistillMethod("logit_mse"), description="test only: logit matching"))
    return "logit_mse"


def smoke_parameters(**changes):
    params = declared_parameters(notebook_path(CHAPTER))
    return {**params, "profile": "smoke", "regimes": ["default"], "sweep": {}, "shift_test_size": 200, **changes}


def test_a_method_defined_only_in_a_test_runs_through_chapter_04s_student_stage(logit_mse):
    methods = ["kd", logit_mse]
    ctx = start(CHAPTER, smoke_parameters(student_methods=methods, central_methods=methods))
    rows = method_table(methods)
    assert rows.loc[logit_mse, "loss"] == "MSE to the teacher's logits"
    assert rows.loc[logit_mse, "teacher"] == "ce"
    stage = ctx.student_stage("default")
    results = {name: stage.student(name) for name in methods}
    assert results[logit_mse].teacher is results["kd"].teacher  # one teacher pass serves both
    scores = score_students(results, ctx.data)
    shift = evaluate_suite({n: r.model for n, r in results.items()}, ctx.data, ctx.suite(200, mixture_count=200))
    table = summary_table(scores, shift, methods)
    assert table.loc[logit_mse, ["accuracy", "ECE", "shift ECE (mean)", "agreement"]].notna().all()
    assert results[logit_mse].student.record["key"] != results["kd"].student.record["key"]
    # the model cache keys on the method: asking again loads it, no retraining
    assert stage.student(logit_mse).student.from_cache


def test_a_row_naming_an_unknown_loss_fails_before_any_data_is_read(monkeypatch):
    monkeypatch.setitem(STUDENT_METHODS, "typo", StudentMethod("ce", DistillMethod("kdd")))
    with pytest.raises(ConfigError, match=r"unknown distillation kind 'kdd'; allowed kinds: \['ce', 'kd'"):
        start(CHAPTER, smoke_parameters(student_methods=["typo"]))


def test_every_row_of_the_method_table_names_a_known_loss():
    assert {m.distill.kind for m in STUDENT_METHODS.values()} <= set(DISTILL_KINDS)

"""What chapter 04 reports about a student stage: the regime check (its
teacher on the students' actual training views), every student's scores
(test, validation, after its own temperature scaling, fidelity to its
teacher), the transfer targets' diagnostics, per-class-group scores for the
long tail, and fidelity to the truth where the true label distributions are
known. It sits above training and evaluation because it needs both.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd
import torch

from calibkd import metrics
from calibkd.config import LOSS_DEFAULTS, STUDENT_METHODS, TrainConfig
from calibkd.data.augment import training_views
from calibkd.data.splits import DataSplits, Split
from calibkd.data.subsets import training_examples
from calibkd.evaluation.fidelity import Scored, fidelity_table
from calibkd.evaluation.regime import classify_regime, gate_rate, view_scores
from calibkd.evaluation.shift import AFTER_TS, group_scores
from calibkd.methods.calibration import fit_temperature
from calibkd.nn.inference import predict_logits
from calibkd.training.stage import StudentResult, StudentStage, transfer_targets
from calibkd.training.students import distill_kind


def method_table(names: Sequence[str], dus_teacher: str = "dus_soft", cudp_map: str = "temperature") -> pd.DataFrame:
    """One row per student method: its teacher, target, loss and what it tests
    (from ``config.STUDENT_METHODS`` and ``training.students.DISTILL_KINDS``)."""
    rows = []
    for name in names:
        m = STUDENT_METHODS[name]
        teacher = {None: "-", "dus": f"DUS ({dus_teacher})"}.get(m.teacher, m.teacher)
        target = {"temperature": "temperature-scaled", "cudp": f"CUD-P projection (c(x) from {cudp_map})",
                  "cross_fit": "CUD-P projection (c(x) cross-fitted)"}.get(m.calibrator, "teacher softmax")
        if m.distill.wclip:
            target += " + W-Clip"
        kind = distill_kind(m.distill.kind)
        loss = kind.description + ("" if m.distill.temper_target or not kind.shapes_target else " (untempered)")
        rows.append({"student": name, "teacher": teacher, "target": target if m.teacher else "-", "loss": loss,
                     "what it tests": m.description})
    return pd.DataFrame(rows).set_index("student")


def teacher_table(stage: StudentStage) -> pd.DataFrame:
    """Test accuracy, test ECE and TS temperature of every teacher a stage used,
    with the seconds of its one-off logit pass (empty when every student came from the cache)."""
    return pd.DataFrame([{"teacher": t.recipe.name, "test accuracy": t.record["test_accuracy"],
                          "test ECE": t.record["test_ece"], "TS temperature": t.record["temperature"],
                          "logit pass (s)": stage.teacher_pass_seconds.get(t.record["key"])}
                         for t in stage.teachers.values()]).set_index("teacher")


#: The split name under which tables carry scores on the students' training views.
TRAINING_VIEWS = "target (training views)"


def student_views(stage: StudentStage, sample_size: int, seed: int, data: DataSplits | None = None) -> Split:
    """``sample_size`` of the stage's training examples (of ``data``, default
    the stage's) as its students see them: one seeded augmented view each, or
    the clean examples where the student recipe does not augment (the
    overconfident regime)."""
    return _views_of(stage.data if data is None else data, stage.recipe.train, sample_size, seed, seed + 100)


def _views_of(data: DataSplits, train: TrainConfig, sample_size: int, seed: int, view_seed: int) -> Split:
    """A seeded sample of the training examples of ``train``, as a model
    trained with it sees them (augmented with ``view_seed``, or not)."""
    sample = training_examples(data, train).subset(sample_size, seed)
    return training_views(sample, data.info, train.augment, view_seed)


def regime_check(stage: StudentStage, sample_size: int = 10_000, seed: int = 0, dus: bool = True) -> pd.DataFrame:
    """The regime check (brief section 3b), one row per regime: the CE
    teacher's accuracy, mean confidence, ECE and non-target mass on the
    students' actual training views (``student_views``), its test accuracy
    and ECE, its TS temperature, and the regime's class
    (``evaluation.regime.classify_regime``, with the reason). With ``dus``:
    the fraction of its fine-tuning views on which the DUS teacher's gate
    opens before (the CE teacher it starts from) and after fine-tuning, and
    the DUS teacher's test ECE and ECE on the students' views."""
    ce = stage.teacher("ce")
    views = student_views(stage, sample_size, seed)
    labels = views.labels.cpu()
    on_views = view_scores(metrics.softmax(predict_logits(ce.model, views.images)), labels)
    kind, reason = classify_regime(on_views["accuracy"], ce.record["test_accuracy"], ce.record["temperature"])
    row: dict[str, Any] = {
        "regime": stage.regime, "student views": "augmented" if stage.recipe.train.augment else "clean",
        "teacher accuracy (views)": on_views["accuracy"], "teacher confidence (views)": on_views["confidence"],
        "teacher ECE (views)": on_views["ece"], "non-target mass (views)": on_views["non_target_mass"],
        "teacher accuracy (test)": ce.record["test_accuracy"], "teacher ECE (test)": ce.record["test_ece"],
        "TS temperature": ce.record["temperature"], "overconfident": float(kind == "overconfident"),
        "class": kind, "reason": reason,
    }
    if dus:
        teacher = stage.teacher("dus")
        train = teacher.recipe.train
        settings = dict(LOSS_DEFAULTS["dus"]) | dict(train.loss_params)
        tuning = _views_of(stage.data, train, sample_size, seed, seed + 200)
        tuning_labels = tuning.labels.cpu()
        row.update({
            "DUS gate rate (before)": gate_rate(predict_logits(ce.model, tuning.images), tuning_labels, settings),
            "DUS gate rate (after)": gate_rate(predict_logits(teacher.model, tuning.images), tuning_labels, settings),
            "DUS teacher ECE (test)": teacher.record["test_ece"],
            "DUS teacher ECE (views)": view_scores(metrics.softmax(predict_logits(teacher.model, views.images)),
                                                   labels)["ece"],
        })
    return pd.DataFrame([row]).set_index("regime")


def tidy(frame: pd.DataFrame, split: str, regime: str) -> pd.DataFrame:
    """A wide table (one row per model) as tidy rows (model, metric, value, split, regime)."""
    long = frame.reset_index(names="model").melt(id_vars="model", var_name="metric", value_name="value")
    return long.dropna(subset=["value"]).assign(split=split, regime=regime)


def summary_table(scores: pd.DataFrame, shift_table: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """One row per student: the columns of chapter 04's results table, from
    ``score_students`` and ``evaluate_suite`` output."""
    def pick(frame: pd.DataFrame, **where: Any) -> pd.Series:
        for key, value in where.items():
            frame = frame[frame[key] == value]
        return frame.set_index("model")["value"]

    corrupted = shift_table[(shift_table.condition == "corruption_mean") & (shift_table.severity > 0)]
    columns = {
        "accuracy": pick(scores, split="test", metric="accuracy"),
        "NLL": pick(scores, split="test", metric="nll"),
        "Brier": pick(scores, split="test", metric="brier"),
        "ECE": pick(scores, split="test", metric="ece"),
        "ECE after TS": pick(scores, split="test after TS", metric="ece"),
        "NLL after TS": pick(scores, split="test after TS", metric="nll"),
        "own TS T": pick(scores, split="validation", metric="ts_temperature"),
        "shift acc (mean)": corrupted[corrupted.metric == "accuracy"].groupby("model")["value"].mean(),
        "shift ECE (mean)": corrupted[corrupted.metric == "ece"].groupby("model")["value"].mean(),
        "shift ECE (sev 5)": pick(corrupted[corrupted.severity == 5], metric="ece"),
        "mixture NLL": pick(shift_table, condition="mixture_0.5", metric="soft_nll"),
        "mixture NLL after TS": pick(shift_table, condition="mixture_0.5" + AFTER_TS, metric="soft_nll"),
        "hard-slice NLL": pick(shift_table, condition="hard_slice", metric="nll"),
        "hard-slice NLL after TS": pick(shift_table, condition="hard_slice" + AFTER_TS, metric="nll"),
        "agreement": pick(scores, split="test", metric="agreement"),
        "KL(teacher||student)": pick(scores, split="test", metric="teacher_kl"),
    }
    return pd.DataFrame(columns).dropna(axis=1, how="all").reindex(names)


def own_temperatures(scores: pd.DataFrame) -> dict[str, float]:
    """Each student's own TS temperature (fitted on validation), from ``score_students`` output."""
    rows = scores[(scores.split == "validation") & (scores.metric == "ts_temperature")]
    return dict(zip(rows.model, rows.value.astype(float)))


def _split_rows(name: str, split: str, probs: torch.Tensor, labels: torch.Tensor) -> list[dict[str, Any]]:
    return [{"model": name, "split": split, "metric": m, "value": v}
            for m, v in metrics.evaluate(probs, labels).items()]


def score_students(results: Mapping[str, StudentResult], data: DataSplits) -> pd.DataFrame:
    """Tidy scores (model, split, metric, value) of every student: on test, on
    validation, on test after the student's own temperature scaling (fitted on
    validation), and its fidelity to its teacher on test (top-1 agreement and
    mean KL(teacher || student), Stanton et al. 2021)."""
    rows: list[dict[str, Any]] = []
    test_labels, val_labels = data.test.labels.cpu(), data.val.labels.cpu()
    teacher_probs: dict[str, torch.Tensor] = {}
    for name, result in results.items():
        test_logits = predict_logits(result.model, data.test.images)
        val_logits = predict_logits(result.model, data.val.images)
        rows += _split_rows(name, "test", metrics.softmax(test_logits), test_labels)
        rows += _split_rows(name, "validation", metrics.softmax(val_logits), val_labels)
        temperature = fit_temperature(val_logits, data.val.labels)
        rows += _split_rows(name, "test after TS", metrics.softmax(test_logits, temperature), test_labels)
        rows.append({"model": name, "split": "validation", "metric": "ts_temperature", "value": temperature})
        if result.teacher is not None:
            key = result.teacher.record["key"]
            if key not in teacher_probs:
                teacher_probs[key] = metrics.softmax(predict_logits(result.teacher.model, data.test.images))
            student_probs = metrics.softmax(test_logits)
            rows.append({"model": name, "split": "test", "metric": "agreement",
                         "value": metrics.agreement(student_probs, teacher_probs[key])})
            rows.append({"model": name, "split": "test", "metric": "teacher_kl",
                         "value": metrics.mean_kl(teacher_probs[key], student_probs)})
    return pd.DataFrame(rows)


def target_diagnostics(stage: StudentStage, results: Mapping[str, StudentResult], split: Split) -> pd.DataFrame:
    """What each student was taught, on ``split`` (e.g. the students' training
    views): the mean confidence, entropy and non-target mass of its target at
    T = 1, and its ECE against the labels (the calibration of the target
    itself). One row per distilling student."""
    labels = split.labels.cpu()
    rows = []
    for name, target in transfer_targets(stage, results, split).items():
        rows.append({
            "model": name,
            "target confidence": float(target.max(1).values.mean()),
            "target p_y": float(target.gather(1, labels[:, None]).mean()),
            "target entropy": float(metrics.entropy(target).mean()),
            "non-target mass": float(metrics.non_target_mass(target, labels).mean()),
            "target ECE": metrics.ece(target, labels),
            "target accuracy": metrics.accuracy(target, labels),
            # rows a tempering through probabilities clamped at 1e-12 would have got wrong
            "rows with p < 1e-12": float((target.min(1).values < 1e-12).double().mean()),
        })
    return pd.DataFrame(rows)


def class_group_scores(models: Mapping[str, torch.nn.Module], data: DataSplits,
                       groups: Mapping[str, Sequence[int]],
                       temperatures: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Accuracy, ECE and NLL of every model on the test examples of each class
    group (e.g. the many-, medium- and few-shot classes of a long-tailed
    training set), tidy: model, group, classes, metric, value, after_ts. A
    model with a temperature in ``temperatures`` (its own TS, fitted on
    validation) is also scored on logits / T (``after_ts`` True)."""
    frames = []
    for name, model in models.items():
        logits = predict_logits(model, data.test.images)
        scalings = [(False, 1.0)] + ([(True, temperatures[name])] if temperatures and name in temperatures else [])
        for after_ts, t in scalings:
            frames.append(group_scores(metrics.softmax(logits, t), data.test.labels, dict(groups))
                          .assign(model=name, after_ts=after_ts))
    return pd.concat(frames, ignore_index=True)[["model", "group", "classes", "metric", "value", "after_ts"]]


def stage_fidelity(stage: StudentStage, results: Mapping[str, StudentResult], data: DataSplits,
                   sample_size: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """Fidelity to the truth of one ``student_stage.StudentStage``: every
    student's predictions on test (split ``"test"``, model = student name) and
    every transfer target (``student_stage.transfer_targets``) on
    ``sample_size`` of the students' training views (``student_views``: one
    seeded augmented view each where the students augment; split
    ``TRAINING_VIEWS``). Crops keep a glyph's identity (glyph data never
    flips), so a view keeps its example's true distribution. Needs
    ``data.known_posterior``."""
    if not data.known_posterior:
        raise ValueError(f"{data.info.name} has no true label distributions (DataSplits.known_posterior is False)")
    info = data.info
    views = student_views(stage, sample_size, seed, data)
    predictions: dict[tuple[str, str], Scored] = {}
    test_labels, test_truth = data.test.labels.cpu(), data.test.true_probs.cpu()
    for name, result in results.items():
        probs = metrics.softmax(predict_logits(result.model, data.test.images))
        predictions[name, "test"] = (probs, test_labels, test_truth)
    for name, target in transfer_targets(stage, results, views).items():
        predictions[name, TRAINING_VIEWS] = (target, views.labels.cpu(), views.true_probs.cpu())
    return fidelity_table(predictions, info.class_groups)

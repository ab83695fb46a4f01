"""The regime check of brief section 3b: what a teacher does on the inputs
its students distill from, and whether that makes the regime overconfident.

A regime is only what it does to the students' training views. A teacher
that memorised clean images but is queried on augmented views it never saw
is *wrong*, not collapsed; so a regime counts as overconfident only when
its teacher is at least as accurate on those views as on test and
temperature scaling finds it clearly overconfident on held-out data.
"""

from __future__ import annotations

from typing import Any

import torch

from calibkd import metrics
from calibkd.config.checks import check_float
from calibkd.config.design import OVERCONFIDENT_MIN_TEMPERATURE, VIEW_ACCURACY_TOLERANCE
from calibkd.methods.losses import dus_gate

#: The regime classes ``classify_regime`` returns.
REGIME_CLASSES = ("overconfident", "calibrated", "underconfident", "wrong on the students' views")


def view_scores(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """A teacher on the students' training views: accuracy, mean confidence,
    ECE, and mean mass on the non-target classes (what KD passes on)."""
    return {"accuracy": metrics.accuracy(probs, labels), "confidence": float(probs.max(1).values.mean()),
            "ece": metrics.ece(probs, labels), "non_target_mass": float(metrics.non_target_mass(probs, labels).mean())}


def classify_regime(view_accuracy: float, test_accuracy: float, temperature: float,
                    min_temperature: float = OVERCONFIDENT_MIN_TEMPERATURE,
                    tolerance: float = VIEW_ACCURACY_TOLERANCE) -> tuple[str, str]:
    """(class, reason) of a regime from its CE teacher: ``"wrong on the
    students' views"`` when the teacher is less accurate there than on test
    (beyond ``tolerance``), else by the fitted temperature: overconfident
    (T >= ``min_temperature``), underconfident (T <= 1 / it), calibrated."""
    check_float("min_temperature", min_temperature, low=1.0, high=100.0, low_open=True)
    check_float("tolerance", tolerance, low=0.0, high=1.0)
    for name, value in (("view_accuracy", view_accuracy), ("test_accuracy", test_accuracy)):
        check_float(name, value, low=0.0, high=1.0)
    check_float("temperature", temperature, low=0.0, high=1e6, low_open=True)
    if view_accuracy < test_accuracy - tolerance:
        return REGIME_CLASSES[3], (f"the teacher is right on {view_accuracy:.1%} of the students' views but on "
                                   f"{test_accuracy:.1%} of test: its targets are wrong, not collapsed")
    if temperature >= min_temperature:
        return REGIME_CLASSES[0], f"TS temperature {temperature:.2f} >= {min_temperature:g}"
    if temperature <= 1 / min_temperature:
        return REGIME_CLASSES[2], f"TS temperature {temperature:.2f} <= 1/{min_temperature:g}"
    return REGIME_CLASSES[1], f"TS temperature {temperature:.2f} within 1/{min_temperature:g} and {min_temperature:g}"


def gate_rate(logits: torch.Tensor, labels: torch.Tensor, settings: dict[str, Any]) -> float:
    """The mean of DUS's gate g(x) (``methods.losses.dus_gate``) over examples:
    the fraction of them DUS treats as hard (hard gate), or the mean gate
    value (soft gate). Zero means DUS cannot act there."""
    gate = dus_gate(logits, labels, str(settings["gate"]), float(settings["threshold"]), float(settings["sharpness"]))
    return float(gate.mean())

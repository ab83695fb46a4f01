"""Accuracy, proper scores, calibration errors, selective prediction and
dark-knowledge diagnostics of a predictive distribution (brief section 5).

Every function takes probabilities ``probs`` of shape (N, K) (rows sum to one)
and integer ``labels`` of shape (N,). Calibration estimators differ (binning
scheme, number of bins, norm) and their values are not comparable across
estimators, so each reported number is named by ``ESTIMATORS``.

Binning convention (Guo et al. 2017): 15 equal-width bins [i/15, (i+1)/15),
the last one closed at 1. torchmetrics' ``MulticlassCalibrationError`` uses
the same bins except that a confidence of exactly 1.0 gets a 16th bin of its
own; computing in float64 makes exact 1.0 confidences rare (a logit margin
above ~37), and tests pin both facts.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import torch

#: What each calibration number in a table means.
ESTIMATORS = {
    "ece": "top-label ECE, 15 equal-width bins, L1 (Guo et al. 2017)",
    "adaptive_ece": "top-label ECE, 15 equal-mass bins, L1 (Nguyen & O'Connor 2015)",
    "classwise_ece": "classwise ECE, 15 equal-width bins per class, mean over classes (Kull et al. 2019)",
    "mce": "top-label MCE, 15 equal-width bins, max over non-empty bins",
}
DEFAULT_BINS = 15


def softmax(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Float64 softmax of ``logits / temperature`` (float64 avoids exact 1.0s)."""
    return torch.softmax(logits.double() / temperature, dim=1)


def _check(probs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if probs.ndim != 2 or labels.ndim != 1 or probs.shape[0] != labels.shape[0]:
        raise ValueError(f"expected probs (N, K) and labels (N,), got {tuple(probs.shape)} and {tuple(labels.shape)}")
    if probs.shape[0] == 0:
        raise ValueError("cannot score an empty set of predictions")
    probs = probs.detach().double().cpu()
    row_sums = probs.sum(1)
    if (probs.min() < -1e-6) or not torch.allclose(row_sums, torch.ones_like(row_sums), atol=1e-4):
        raise ValueError("probs must be probability vectors (non-negative, rows summing to 1); pass softmax(logits)")
    return probs, labels.detach().long().cpu()


# ---------------------------------------------------------------------------
# accuracy and proper scores
# ---------------------------------------------------------------------------


def _accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return float((probs.argmax(1) == labels).double().mean())


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy."""
    return _accuracy(*_check(probs, labels))


def topk_accuracy(probs: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Fraction of examples whose label is among the ``k`` most probable classes."""
    probs, labels = _check(probs, labels)
    if not 1 <= k <= probs.shape[1]:
        raise ValueError(f"k={k} must be between 1 and the number of classes {probs.shape[1]}")
    top = probs.topk(k, dim=1).indices
    return float((top == labels[:, None]).any(1).double().mean())


def _nll(probs: torch.Tensor, labels: torch.Tensor, eps: float = 1e-12) -> float:
    return float(-probs.gather(1, labels[:, None]).clamp_min(eps).log().mean())


def nll(probs: torch.Tensor, labels: torch.Tensor, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood of the labels (natural log)."""
    return _nll(*_check(probs, labels), eps)


def _brier(probs: torch.Tensor, labels: torch.Tensor) -> float:
    onehot = torch.nn.functional.one_hot(labels, probs.shape[1]).double()
    return float(((probs - onehot) ** 2).sum(1).mean())


def brier(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Multi-class Brier score: mean squared distance to the one-hot label, in [0, 2]."""
    return _brier(*_check(probs, labels))


# ---------------------------------------------------------------------------
# calibration
# ---------------------------------------------------------------------------


def _equal_width_bin(confidence: torch.Tensor, n_bins: int) -> torch.Tensor:
    return (confidence * n_bins).floor().long().clamp(0, n_bins - 1)


def _equal_mass_bin(confidence: torch.Tensor, n_bins: int) -> torch.Tensor:
    order = torch.argsort(confidence, stable=True)
    bins = torch.empty_like(order)
    for b, chunk in enumerate(torch.tensor_split(order, n_bins)):
        bins[chunk] = b
    return bins


def _bin_sums(probs: torch.Tensor, labels: torch.Tensor, n_bins: int, scheme: str
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per top-label confidence bin: count, sum of confidences, sum of hits,
    and each example's bin and confidence (``probs`` and ``labels`` checked)."""
    confidence, predicted = probs.max(1)
    correct = (predicted == labels).double()
    if scheme == "width":
        bins = _equal_width_bin(confidence, n_bins)
    elif scheme == "mass":
        bins = _equal_mass_bin(confidence, n_bins)
    else:
        raise ValueError(f"unknown binning scheme {scheme!r}; allowed: ['width', 'mass']")
    count = torch.bincount(bins, minlength=n_bins).double()
    conf_sum = torch.bincount(bins, weights=confidence, minlength=n_bins)
    acc_sum = torch.bincount(bins, weights=correct, minlength=n_bins)
    return count, conf_sum, acc_sum, bins, confidence


def reliability_table(
    probs: torch.Tensor, labels: torch.Tensor, n_bins: int = DEFAULT_BINS, scheme: str = "width"
) -> pd.DataFrame:
    """Top-label confidence bins: count, mean confidence, accuracy and gap per bin.

    ``scheme`` is ``"width"`` (equal-width bins on [0, 1]) or ``"mass"``
    (equal-count bins). Empty bins are kept with count 0 and NaN means.
    """
    probs, labels = _check(probs, labels)
    count, conf_sum, acc_sum, bins, confidence = _bin_sums(probs, labels, n_bins, scheme)
    if scheme == "width":
        lower = np.arange(n_bins) / n_bins
        upper = (np.arange(n_bins) + 1) / n_bins
    else:
        lower = np.full(n_bins, np.nan)
        upper = np.full(n_bins, np.nan)
        for b in range(n_bins):
            members = confidence[bins == b]
            if len(members):
                lower[b], upper[b] = float(members.min()), float(members.max())
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = (conf_sum / count).numpy()
        mean_acc = (acc_sum / count).numpy()
    return pd.DataFrame({
        "bin": np.arange(n_bins), "lower": lower, "upper": upper,
        "count": count.numpy().astype(int), "confidence": mean_conf,
        "accuracy": mean_acc, "gap": mean_conf - mean_acc,
    })


def _filled_gaps(probs: torch.Tensor, labels: torch.Tensor, n_bins: int, scheme: str
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Count and |mean confidence - accuracy| of the non-empty bins (tensors:
    ``evaluate`` calls this hundreds of times per chapter, a table would cost more than the sums)."""
    count, conf_sum, acc_sum, _, _ = _bin_sums(probs, labels, n_bins, scheme)
    filled = count > 0
    count = count[filled]
    return count, (conf_sum[filled] / count - acc_sum[filled] / count).abs()


def _weighted_gap(probs: torch.Tensor, labels: torch.Tensor, n_bins: int, scheme: str) -> float:
    count, gap = _filled_gaps(probs, labels, n_bins, scheme)
    return float((gap * count).sum() / count.sum())


def ece(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = DEFAULT_BINS) -> float:
    """Expected calibration error, top label, equal-width bins, L1."""
    return _weighted_gap(*_check(probs, labels), n_bins, "width")


def adaptive_ece(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = DEFAULT_BINS) -> float:
    """Expected calibration error with equal-mass (adaptive) bins."""
    return _weighted_gap(*_check(probs, labels), n_bins, "mass")


def mce(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = DEFAULT_BINS) -> float:
    """Maximum calibration error over the non-empty equal-width bins."""
    return float(_filled_gaps(*_check(probs, labels), n_bins, "width")[1].max())


def _classwise_ece(probs: torch.Tensor, labels: torch.Tensor, n_bins: int) -> float:
    n, k = probs.shape
    # every (class, bin) pair is one slot of a single bincount: K classes at once
    slots = (_equal_width_bin(probs, n_bins) + n_bins * torch.arange(k)).flatten()
    hits = torch.nn.functional.one_hot(labels, k).double().flatten()
    gap = (torch.bincount(slots, weights=probs.flatten(), minlength=k * n_bins)
           - torch.bincount(slots, weights=hits, minlength=k * n_bins))
    return float(gap.view(k, n_bins).abs().sum(1).div(n).sum() / k)


def classwise_ece(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = DEFAULT_BINS) -> float:
    """Classwise ECE: for each class k, bin p_k over all examples and compare it
    with the frequency of label k in the bin; averaged over classes."""
    return _classwise_ece(*_check(probs, labels), n_bins)


# ---------------------------------------------------------------------------
# selective prediction
# ---------------------------------------------------------------------------


def risk_coverage(probs: torch.Tensor, labels: torch.Tensor) -> pd.DataFrame:
    """Selective risk (error rate among kept examples) when keeping the most
    confident examples first, at every coverage 1/N, 2/N, ..., 1."""
    risks = _risks(*_check(probs, labels))
    coverage = torch.arange(1, len(risks) + 1, dtype=torch.float64) / len(risks)
    return pd.DataFrame({"coverage": coverage.numpy(), "risk": risks.numpy()})


def _risks(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Selective risk at every coverage 1/N, ..., 1 (``probs``, ``labels`` checked)."""
    confidence, predicted = probs.max(1)
    order = torch.argsort(confidence, descending=True, stable=True)
    errors = (predicted[order] != labels[order]).double().cumsum(0)
    return errors / torch.arange(1, len(order) + 1, dtype=torch.float64)


def aurc(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the risk-coverage curve (Geifman et al. 2019): lower is better."""
    return float(_risks(*_check(probs, labels)).mean())


def accuracy_at_coverage(probs: torch.Tensor, labels: torch.Tensor, coverage: float) -> float:
    """Accuracy on the ``coverage`` fraction of examples the model is surest of."""
    if not 0 < coverage <= 1:
        raise ValueError(f"coverage={coverage} must be in (0, 1]")
    table = risk_coverage(probs, labels)
    keep = max(1, math.ceil(coverage * len(table)))
    return float(1 - table["risk"].iloc[keep - 1])


# ---------------------------------------------------------------------------
# dark knowledge
# ---------------------------------------------------------------------------


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Per-example Shannon entropy in nats."""
    p = probs.double()
    return -(p * p.clamp_min(1e-300).log()).sum(1)


def effective_classes(probs: torch.Tensor) -> torch.Tensor:
    """Per-example effective number of classes exp(H): 1 for one-hot, K for uniform."""
    return entropy(probs).exp()


def non_target_mass(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-example probability on classes other than the label, 1 - p_y."""
    return 1 - probs.double().gather(1, labels.long()[:, None]).squeeze(1)


def class_similarity(probs: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None) -> np.ndarray:
    """Class-similarity matrix read from soft outputs.

    Row i is the average, over examples of class i, of the non-target
    distribution p_j / (1 - p_i) (j != i): where the teacher puts the mass it
    does not give the label, independent of how confident it is. The matrix is
    symmetrised; the diagonal is zero.
    """
    probs, labels = _check(probs, labels)
    k = num_classes or probs.shape[1]
    rest = probs.clone()
    rest[torch.arange(len(labels)), labels] = 0.0
    rest = rest / rest.sum(1, keepdim=True).clamp_min(1e-300)
    sim = np.zeros((k, k))
    for c in range(k):
        members = rest[labels == c]
        if len(members):
            sim[c] = members.mean(0).numpy()
    sim = (sim + sim.T) / 2
    np.fill_diagonal(sim, 0.0)
    return sim


def group_recovery_auc(similarity: np.ndarray, groups: Sequence[Sequence[int]]) -> float:
    """How well a similarity matrix recovers known class groups, as an AUC.

    The probability that a random pair of classes from the same group is more
    similar than a random pair from different groups (ties count half): 1 means
    every within-group pair ranks above every between-group pair, 0.5 is chance.
    """
    k = similarity.shape[0]
    group_of = {c: g for g, members in enumerate(groups) for c in members}
    within, between = [], []
    for i in range(k):
        for j in range(i + 1, k):
            same = i in group_of and group_of.get(i) == group_of.get(j)
            (within if same else between).append(similarity[i, j])
    if not within or not between:
        raise ValueError("groups must give at least one within-group and one between-group pair")
    w = np.asarray(within)[:, None]
    b = np.asarray(between)[None, :]
    return float(((w > b) + 0.5 * (w == b)).mean())


# ---------------------------------------------------------------------------
# teacher-student fidelity (Stanton et al. 2021)
# ---------------------------------------------------------------------------


def agreement(student_probs: torch.Tensor, teacher_probs: torch.Tensor) -> float:
    """Top-1 agreement: the fraction of inputs where student and teacher predict the same class."""
    if student_probs.shape != teacher_probs.shape:
        raise ValueError(f"shapes differ: {tuple(student_probs.shape)} vs {tuple(teacher_probs.shape)}")
    return float((student_probs.argmax(1) == teacher_probs.argmax(1)).double().mean())


def mean_kl(teacher_probs: torch.Tensor, student_probs: torch.Tensor, eps: float = 1e-12) -> float:
    """Mean over inputs of KL(teacher || student), in nats: how far the
    student's predictive distribution is from the teacher's."""
    if student_probs.shape != teacher_probs.shape:
        raise ValueError(f"shapes differ: {tuple(student_probs.shape)} vs {tuple(teacher_probs.shape)}")
    p, q = teacher_probs.double(), student_probs.double()
    return float((p * (p.clamp_min(eps).log() - q.clamp_min(eps).log())).sum(1).mean())


# ---------------------------------------------------------------------------
# fidelity to the truth (data that carries true label distributions)
# ---------------------------------------------------------------------------


def _check_pair(true_probs: torch.Tensor, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if true_probs.shape != probs.shape or probs.ndim != 2:
        raise ValueError(f"true and model distributions must both be (N, K); got {tuple(true_probs.shape)} "
                         f"and {tuple(probs.shape)}")
    return true_probs.detach().double().cpu(), probs.detach().double().cpu()


def kl_from_truth(true_probs: torch.Tensor, probs: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-example KL(true || model) in nats: the information the model's
    distribution loses about the true one (model probabilities clamped at
    ``eps``, so a zero where the truth has mass costs -log eps, not infinity)."""
    p, q = _check_pair(true_probs, probs)
    terms = torch.where(p > 0, p * (p.clamp_min(1e-300).log() - q.clamp_min(eps).log()), torch.zeros_like(p))
    return terms.sum(1)


def total_variation(true_probs: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Per-example total variation distance, half the L1 distance, in [0, 1]."""
    p, q = _check_pair(true_probs, probs)
    return 0.5 * (p - q).abs().sum(1)


def group_of_labels(labels: torch.Tensor, groups: Sequence[Sequence[int]], num_classes: int) -> torch.Tensor:
    """(N, K) boolean mask of the classes in each label's group (just the
    label itself for a label in no group)."""
    table = torch.eye(num_classes, dtype=torch.bool)
    for group in groups:
        members = list(group)
        for c in members:
            table[c, members] = True
    return table[labels.long().cpu()]


def group_mass(probs: torch.Tensor, labels: torch.Tensor, groups: Sequence[Sequence[int]]) -> torch.Tensor:
    """Per-example probability inside the label's ambiguity group (p_y for a
    label in no group): 1 when the model keeps all its mass on the classes the
    input could truly be."""
    probs, labels = _check(probs, labels)
    return (probs * group_of_labels(labels, groups, probs.shape[1])).sum(1)


def within_group_uniformity(probs: torch.Tensor, labels: torch.Tensor,
                            groups: Sequence[Sequence[int]]) -> torch.Tensor:
    """Per-example normalised entropy, in [0, 1], of the model's distribution
    restricted to the label's ambiguity group and renormalised there:
    H(p | G) / log |G|. 1: the mass inside the group is spread evenly (the
    truth of tied homoglyphs); 0: it sits on one member. NaN for a label in no
    group (nothing to spread over) and for a row with no mass in its group."""
    probs, labels = _check(probs, labels)
    mask = group_of_labels(labels, groups, probs.shape[1])
    inside = torch.where(mask, probs, torch.zeros_like(probs))
    total = inside.sum(1, keepdim=True)
    q = inside / total.clamp_min(1e-300)
    terms = torch.where(q > 0, -q * q.clamp_min(1e-300).log(), torch.zeros_like(q))
    size = mask.sum(1)
    result = terms.sum(1) / size.clamp_min(2).to(probs.dtype).log()
    return torch.where((size > 1) & (total.squeeze(1) > 0), result, torch.full_like(result, float("nan")))


def fidelity(probs: torch.Tensor, labels: torch.Tensor, true_probs: torch.Tensor | None,
             groups: Sequence[Sequence[int]]) -> dict[str, float]:
    """How close a predictive distribution (teacher, transfer target or student)
    is to the truth. ``kl_true`` = mean KL(true || model), ``tv_true`` = mean total
    variation (both need ``true_probs``); ``group_mass`` = mean mass inside the
    label's group over examples whose label is in a group; ``group_uniformity`` =
    mean ``within_group_uniformity`` over those examples; ``group_recovery_auc``
    = how well the groups are read back from the soft outputs alone
    (``class_similarity`` then ``group_recovery_auc``)."""
    probs, labels = _check(probs, labels)
    result: dict[str, float] = {}
    if true_probs is not None:
        result["kl_true"] = float(kl_from_truth(true_probs, probs).mean())
        result["tv_true"] = float(total_variation(true_probs, probs).mean())
    grouped = group_of_labels(labels, groups, probs.shape[1]).sum(1) > 1
    if grouped.any():
        result["group_mass"] = float(group_mass(probs[grouped], labels[grouped], groups).mean())
        result["group_uniformity"] = float(within_group_uniformity(probs[grouped], labels[grouped], groups).nanmean())
        result["group_recovery_auc"] = group_recovery_auc(class_similarity(probs, labels), groups)
    return result


# ---------------------------------------------------------------------------
# all at once
# ---------------------------------------------------------------------------


def evaluate(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = DEFAULT_BINS) -> dict[str, float]:
    """Every scalar metric of brief section 5 for one set of predictions
    (checked once, then each metric on the checked tensors)."""
    probs, labels = _check(probs, labels)
    width_count, width_gap = _filled_gaps(probs, labels, n_bins, "width")
    result = {
        "accuracy": _accuracy(probs, labels),
        "nll": _nll(probs, labels),
        "brier": _brier(probs, labels),
        "ece": float((width_gap * width_count).sum() / width_count.sum()),
        "adaptive_ece": _weighted_gap(probs, labels, n_bins, "mass"),
        "classwise_ece": _classwise_ece(probs, labels, n_bins),
        "mce": float(width_gap.max()),
        "aurc": float(_risks(probs, labels).mean()),
        "mean_confidence": float(probs.max(1).values.mean()),
        "mean_entropy": float(entropy(probs).mean()),
        "effective_classes": float(effective_classes(probs).mean()),
        "non_target_mass": float(non_target_mass(probs, labels).mean()),
    }
    if probs.shape[1] >= 20:
        result["top5_accuracy"] = topk_accuracy(probs, labels, 5)
    return result

"""Soft outputs against the truth, on data whose true label distributions are
known (the tied glyphs, the mixture: ``DataSplits.known_posterior``).

``metrics.fidelity`` scores one set of predictions; this module lays those
scores out as tables for the notebooks: one row per model, input set and
metric (``fidelity_table``), the within-group uniformity of each homoglyph
group (``uniformity_by_group``), and, for chapter 04, the fidelity of every
student and of every transfer target (``stage_fidelity``).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd
import torch

from calibkd import metrics

#: Reading order of the scores, with what a perfect model gets.
FIDELITY_METRICS = {
    "kl_true": 0.0,  # mean KL(true || model), nats
    "tv_true": 0.0,  # mean total variation, in [0, 1]
    "group_mass": 1.0,  # mean mass inside the true ambiguity group
    "group_uniformity": 1.0,  # mean normalised entropy inside the group (examples whose group has > 1 member)
    "group_recovery_auc": 1.0,  # groups read back from the soft outputs alone (0.5: chance)
}

#: One prediction set: (probabilities (N, K), labels (N,), true distributions (N, K) or None).
Scored = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


def fidelity_table(predictions: Mapping[tuple[str, str], Scored], groups: Sequence[Sequence[int]]) -> pd.DataFrame:
    """Tidy fidelity scores (model, split, metric, value), one block of rows
    per (model, split) key of ``predictions``; ``metrics.fidelity`` computes
    them (without true distributions only the group scores)."""
    rows = []
    for (model, split), (probs, labels, true_probs) in predictions.items():
        for metric, value in metrics.fidelity(probs, labels, true_probs, groups).items():
            rows.append({"model": model, "split": split, "metric": metric, "value": value})
    return pd.DataFrame(rows, columns=["model", "split", "metric", "value"])


def fidelity_wide(table: pd.DataFrame, index: Sequence[str] = ("model", "split")) -> pd.DataFrame:
    """``fidelity_table`` rows as one row per ``index`` and one column per
    metric, in the order of ``FIDELITY_METRICS``."""
    wide = table.pivot_table(index=list(index), columns="metric", values="value", sort=False)
    return wide[[m for m in FIDELITY_METRICS if m in wide.columns]]


def uniformity_by_group(probs: torch.Tensor, labels: torch.Tensor, groups: Sequence[Sequence[int]],
                        class_names: Sequence[str]) -> pd.DataFrame:
    """One row per homoglyph group with examples among ``labels``: its members
    (``class_names`` joined), size, number of examples, and the mean
    ``metrics.within_group_uniformity`` and ``metrics.group_mass`` over them.
    Groups of one class and groups without examples are left out."""
    if probs.shape[1] != len(class_names):
        raise ValueError(f"{probs.shape[1]} classes in probs but {len(class_names)} class names")
    uniformity = metrics.within_group_uniformity(probs, labels, groups)
    mass = metrics.group_mass(probs, labels, groups)
    labels = labels.cpu()
    rows = []
    for group in groups:
        members = list(group)
        if len(members) < 2:
            continue
        inside = torch.isin(labels, torch.tensor(members))
        if not inside.any():
            continue
        rows.append({"group": " ".join(class_names[c] for c in members), "size": len(members),
                     "examples": int(inside.sum()), "group_uniformity": float(uniformity[inside].nanmean()),
                     "group_mass": float(mass[inside].mean())})
    return pd.DataFrame(rows, columns=["group", "size", "examples", "group_uniformity", "group_mass"])



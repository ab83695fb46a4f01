"""Fidelity to true label distributions, checked against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import entropy

from calibkd import metrics
from calibkd.data import group_label_distribution
from calibkd.distill import cudp_projection, wclip

GROUPS = [(0, 1, 2), (3, 4)]
K = 8


@pytest.fixture
def case():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, K, (40,), generator=generator)
    true = group_label_distribution(labels, GROUPS, K).double()
    probs = torch.softmax(torch.randn(40, K, generator=generator, dtype=torch.float64) * 2, 1)
    return probs, labels, true


def test_kl_and_total_variation_match_scipy_and_numpy(case):
    probs, _, true = case
    kl = metrics.kl_from_truth(true, probs)
    expected = [entropy(t, p) for t, p in zip(true.numpy(), probs.numpy())]
    assert np.allclose(kl.numpy(), expected)
    tv = metrics.total_variation(true, probs)
    assert np.allclose(tv.numpy(), [0.5 * np.abs(t - p).sum() for t, p in zip(true.numpy(), probs.numpy())])
    assert metrics.kl_from_truth(true, true).abs().max() < 1e-12 and metrics.total_variation(true, true).max() == 0


def test_group_mass_matches_a_loop(case):
    probs, labels, _ = case
    mass = metrics.group_mass(probs, labels, GROUPS)
    for p, y, m in zip(probs, labels.tolist(), mass.tolist()):
        group = next((g for g in GROUPS if y in g), (y,))
        assert m == pytest.approx(float(p[list(group)].sum()))


def test_fidelity_of_the_truth_and_of_transfer_targets(case):
    probs, labels, true = case
    perfect = metrics.fidelity(true, labels, true, GROUPS)
    assert perfect["kl_true"] == pytest.approx(0, abs=1e-12) and perfect["tv_true"] == 0
    assert perfect["group_mass"] == pytest.approx(1.0) and perfect["group_recovery_auc"] == 1.0
    teacher = metrics.fidelity(probs, labels, true, GROUPS)
    assert teacher["kl_true"] > 0 and 0 < teacher["group_mass"] < 1
    # transfer targets are distributions too: W-Clip and the CUD-P projection
    for target in (wclip(probs, labels), cudp_projection(probs, labels, torch.full((40,), 0.9, dtype=torch.float64))):
        scores = metrics.fidelity(target, labels, true, GROUPS)
        assert set(scores) == {"kl_true", "tv_true", "group_mass", "group_recovery_auc"}
    # without true distributions (natural glyphs), only the group scores
    assert set(metrics.fidelity(probs, labels, None, GROUPS)) == {"group_mass", "group_recovery_auc"}


def test_fidelity_refuses_mismatched_shapes(case):
    probs, _, true = case
    with pytest.raises(ValueError, match="must both be"):
        metrics.kl_from_truth(true[:, :3], probs)

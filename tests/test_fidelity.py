"""Fidelity to true label distributions, checked against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import entropy

from calibkd import metrics
from calibkd.data.splits import group_label_distribution
from calibkd.methods.distill import cudp_projection, wclip

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
        assert set(scores) == {"kl_true", "tv_true", "group_mass", "group_uniformity", "group_recovery_auc"}
    # without true distributions (natural glyphs), only the group scores
    assert set(metrics.fidelity(probs, labels, None, GROUPS)) == {"group_mass", "group_uniformity", "group_recovery_auc"}


def test_fidelity_refuses_mismatched_shapes(case):
    probs, _, true = case
    with pytest.raises(ValueError, match="must both be"):
        metrics.kl_from_truth(true[:, :3], probs)


def test_within_group_uniformity_matches_a_loop_with_scipy(case):
    probs, labels, _ = case
    uniformity = metrics.within_group_uniformity(probs, labels, GROUPS)
    for p, y, u in zip(probs.numpy(), labels.tolist(), uniformity.tolist()):
        group = next((list(g) for g in GROUPS if y in g), None)
        if group is None:
            assert np.isnan(u)  # a label in no group: nothing to spread over
        else:
            inside = p[group] / p[group].sum()
            assert u == pytest.approx(entropy(inside) / np.log(len(group)))


def test_within_group_uniformity_extremes():
    labels = torch.tensor([0, 3, 5])
    even = torch.tensor([[1 / 3, 1 / 3, 1 / 3, 0, 0, 0, 0, 0], [0, 0, 0, 0.5, 0.5, 0, 0, 0],
                         [0, 0, 0, 0, 0, 1.0, 0, 0]], dtype=torch.float64)
    assert metrics.within_group_uniformity(even, labels, GROUPS)[:2].tolist() == pytest.approx([1.0, 1.0])
    collapsed = torch.zeros(3, K, dtype=torch.float64)
    collapsed[[0, 1, 2], [0, 3, 5]] = 1.0
    u = metrics.within_group_uniformity(collapsed, labels, GROUPS)
    assert u[:2].tolist() == [0.0, 0.0] and torch.isnan(u[2])
    # no mass at all inside the group: undefined, not 0 or 1
    elsewhere = torch.zeros(1, K, dtype=torch.float64)
    elsewhere[0, 7] = 1.0
    assert torch.isnan(metrics.within_group_uniformity(elsewhere, torch.tensor([0]), GROUPS)).all()


def test_fidelity_reports_group_uniformity(case):
    probs, labels, true = case
    assert metrics.fidelity(true, labels, true, GROUPS)["group_uniformity"] == pytest.approx(1.0)
    grouped = metrics.group_of_labels(labels, GROUPS, K).sum(1) > 1
    expected = metrics.within_group_uniformity(probs, labels, GROUPS)[grouped].mean()
    assert metrics.fidelity(probs, labels, true, GROUPS)["group_uniformity"] == pytest.approx(float(expected))


def test_fidelity_table_and_uniformity_by_group(case):
    from calibkd.evaluation import fidelity

    probs, labels, true = case
    table = fidelity.fidelity_table({("teacher", "test"): (probs, labels, true),
                                     ("truth", "test"): (true, labels, true),
                                     ("natural", "test"): (probs, labels, None)}, GROUPS)
    assert list(table.columns) == ["model", "split", "metric", "value"]
    wide = fidelity.fidelity_wide(table)
    assert list(wide.columns) == list(fidelity.FIDELITY_METRICS)
    assert wide.loc[("truth", "test"), "kl_true"] == pytest.approx(0, abs=1e-12)
    assert np.isnan(wide.loc[("natural", "test"), "kl_true"])
    assert wide.loc[("teacher", "test"), "kl_true"] == pytest.approx(float(metrics.kl_from_truth(true, probs).mean()))
    names = [f"c{i}" for i in range(K)]
    by_group = fidelity.uniformity_by_group(probs, labels, GROUPS, names)
    assert list(by_group.group) == ["c0 c1 c2", "c3 c4"]
    for row, group in zip(by_group.itertuples(), GROUPS):
        members = torch.isin(labels, torch.tensor(group))
        assert row.examples == int(members.sum())
        assert row.group_mass == pytest.approx(float(metrics.group_mass(probs, labels, GROUPS)[members].mean()))
        expected = np.mean([entropy(p[list(group)] / p[list(group)].sum()) / np.log(len(group))
                            for p in probs[members].numpy()])
        assert row.group_uniformity == pytest.approx(expected)
    with pytest.raises(ValueError, match="class names"):
        fidelity.uniformity_by_group(probs, labels, GROUPS, names[:3])


def test_splits_keep_true_distributions_where_the_truth_still_holds(case):
    from calibkd.data.splits import Split
    from calibkd.data.subsets import long_tail_subset
    from calibkd.evaluation.shift import corrupted_split

    _, labels, true = case
    split = Split(torch.rand(40, 1, 8, 8), labels, true)
    tail = long_tail_subset(split, K, 4.0, seed=0).split
    assert tail.true_probs is not None and len(tail) < len(split)
    index = [int(torch.nonzero((split.images == image).all(3).all(2).all(1))[0]) for image in tail.images]
    assert torch.equal(tail.true_probs, true[index]) and torch.equal(tail.labels, labels[index])
    # a corruption destroys information: the clean truth is not the corrupted inputs' truth
    assert corrupted_split(split, "glyphs", "gaussian_noise", 3).true_probs is None


def test_many_class_similarity_heatmap_is_grouped_and_unlabelled():
    import matplotlib.pyplot as plt

    from calibkd import plots

    k = 40
    groups = [(5, 30, 7), (1, 2)]
    sim = np.random.default_rng(0).random((k, k))
    ax = plots.class_similarity_heatmap(sim, [f"c{i}" for i in range(k)], groups)
    shown = ax.collections[0].get_array().reshape(k, k)
    order = [5, 30, 7, 1, 2] + [c for c in range(k) if c not in (5, 30, 7, 1, 2)]
    assert np.allclose(shown, sim[np.ix_(order, order)])
    assert not [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert [(p.get_xy(), p.get_width()) for p in ax.patches] == [((0, 0), 3), ((3, 3), 2)]
    plt.close("all")

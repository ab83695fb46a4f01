"""Each metric against an independent computation or a hand-worked case."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassCalibrationError

from calibkd import metrics


def random_predictions(n: int = 2000, k: int = 10, seed: int = 0, sharpness: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g) * sharpness
    labels = torch.randint(0, k, (n,), generator=g)
    # make accuracy non-trivial: the label is the argmax for about half the examples
    boost = torch.rand(n, generator=g) < 0.5
    logits[boost, labels[boost]] += 5
    return metrics.softmax(logits), labels


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("norm,ours", [("l1", metrics.ece), ("max", metrics.mce)])
def test_ece_and_mce_agree_with_torchmetrics(seed, norm, ours):
    probs, labels = random_predictions(seed=seed)
    assert (probs.max(1).values < 1).all()  # no exact 1.0: both conventions coincide
    reference = MulticlassCalibrationError(num_classes=10, n_bins=15, norm=norm)
    expected = float(reference(probs.float(), labels))
    assert ours(probs, labels) == pytest.approx(expected, abs=1e-5)


def test_confidence_exactly_one_goes_to_last_bin():
    """torchmetrics gives conf == 1.0 a 16th bin; we keep it in [14/15, 1] (Guo et al.)."""
    probs = torch.tensor([[1.0, 0.0], [0.95, 0.05], [0.95, 0.05]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 0])
    table = metrics.reliability_table(probs, labels, n_bins=15)
    assert table["count"].iloc[-1] == 3
    # last bin: mean confidence (1 + .95 + .95) / 3, accuracy 2 / 3
    assert metrics.ece(probs, labels) == pytest.approx((1 + 0.95 + 0.95) / 3 - 2 / 3)


def loop_ece(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> float:
    """Guo et al.'s definition written as a plain loop."""
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        members = (conf >= lo) & ((conf < hi) if b < n_bins - 1 else (conf <= hi))
        if members.any():
            total += members.mean() * abs(conf[members].mean() - correct[members].mean())
    return total


@pytest.mark.parametrize("n_bins", [5, 15, 30])
def test_ece_matches_plain_loop(n_bins):
    probs, labels = random_predictions(seed=3)
    assert metrics.ece(probs, labels, n_bins) == pytest.approx(loop_ece(probs.numpy(), labels.numpy(), n_bins))


def test_adaptive_ece_hand_worked():
    # 4 examples, 2 equal-mass bins: {0.6, 0.7} and {0.8, 0.9}
    probs = torch.tensor([[0.6, 0.4], [0.7, 0.3], [0.8, 0.2], [0.9, 0.1]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 0])
    # bin 1: conf 0.65, acc 0.5 -> 0.15; bin 2: conf 0.85, acc 1 -> 0.15
    assert metrics.adaptive_ece(probs, labels, n_bins=2) == pytest.approx(0.15)


def test_classwise_ece_matches_loop():
    probs, labels = random_predictions(n=500, k=4, seed=4)
    p, y = probs.numpy(), labels.numpy()
    expected = 0.0
    for c in range(4):
        bins = np.minimum((p[:, c] * 15).astype(int), 14)
        for b in range(15):
            m = bins == b
            if m.any():
                expected += m.mean() * abs(p[m, c].mean() - (y[m] == c).mean())
    assert metrics.classwise_ece(probs, labels) == pytest.approx(expected / 4)


def test_nll_brier_accuracy_against_torch():
    probs, labels = random_predictions(seed=5)
    assert metrics.nll(probs, labels) == pytest.approx(float(F.nll_loss(probs.log(), labels)))
    onehot = F.one_hot(labels, 10).double()
    assert metrics.brier(probs, labels) == pytest.approx(float(((probs - onehot) ** 2).sum(1).mean()))
    assert metrics.accuracy(probs, labels) == pytest.approx(float((probs.argmax(1) == labels).double().mean()))
    top3 = probs.argsort(1, descending=True)[:, :3]
    assert metrics.topk_accuracy(probs, labels, 3) == pytest.approx(float((top3 == labels[:, None]).any(1).double().mean()))


def test_aurc_hand_worked():
    # confidences 0.9 (right), 0.8 (wrong), 0.7 (right): risks 0, 1/2, 1/3
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 0])
    assert metrics.aurc(probs, labels) == pytest.approx((0 + 1 / 2 + 1 / 3) / 3)
    assert metrics.accuracy_at_coverage(probs, labels, 1 / 3) == pytest.approx(1.0)


def test_entropy_and_effective_classes_against_scipy():
    probs, labels = random_predictions(n=50, seed=6)
    expected = scipy.stats.entropy(probs.numpy(), axis=1)
    assert np.allclose(metrics.entropy(probs).numpy(), expected)
    uniform = torch.full((3, 7), 1 / 7, dtype=torch.float64)
    assert np.allclose(metrics.effective_classes(uniform).numpy(), 7)
    assert np.allclose(metrics.non_target_mass(probs, labels).numpy(),
                       1 - probs.numpy()[np.arange(50), labels.numpy()])


def test_class_similarity_hand_worked():
    # class 0 sends its non-target mass to class 1, class 1 to class 2, class 2 to class 0
    probs = torch.tensor([[0.6, 0.4, 0.0], [0.0, 0.5, 0.5], [0.3, 0.0, 0.7]], dtype=torch.float64)
    sim = metrics.class_similarity(probs, torch.tensor([0, 1, 2]))
    assert np.allclose(sim, [[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    probs = torch.tensor([[0.8, 0.2, 0.0], [0.1, 0.9, 0.0], [0.0, 0.5, 0.5]], dtype=torch.float64)
    sim = metrics.class_similarity(probs, torch.tensor([0, 1, 2]))
    assert sim[0, 1] == pytest.approx(1.0) and sim[1, 2] == pytest.approx(0.5) and sim[0, 2] == 0.0


def test_group_recovery_auc_against_mann_whitney():
    rng = np.random.default_rng(0)
    sim = rng.random((10, 10))
    sim = (sim + sim.T) / 2
    groups = ((0, 2, 4, 6), (5, 7, 9))
    ours = metrics.group_recovery_auc(sim, groups)
    group_of = {c: g for g, m in enumerate(groups) for c in m}
    within = [sim[i, j] for i in range(10) for j in range(i + 1, 10) if i in group_of and group_of.get(i) == group_of.get(j)]
    between = [sim[i, j] for i in range(10) for j in range(i + 1, 10) if not (i in group_of and group_of.get(i) == group_of.get(j))]
    assert len(within) == 9 and len(between) == 36
    u = scipy.stats.mannwhitneyu(within, between).statistic
    assert ours == pytest.approx(u / (9 * 36))
    perfect = np.zeros((10, 10))
    for g in groups:
        for i in g:
            for j in g:
                perfect[i, j] = 1.0
    assert metrics.group_recovery_auc(perfect, groups) == 1.0


def test_refuses_logits_and_bad_shapes():
    with pytest.raises(ValueError, match="probability vectors"):
        metrics.ece(torch.randn(10, 3), torch.zeros(10, dtype=torch.long))
    with pytest.raises(ValueError, match="expected probs"):
        metrics.nll(torch.full((4, 2), 0.5), torch.zeros(3, dtype=torch.long))


def test_evaluate_names_every_calibration_estimator():
    probs, labels = random_predictions(n=200, k=25, seed=7)
    result = metrics.evaluate(probs, labels)
    assert set(metrics.ESTIMATORS) <= set(result)
    assert "top5_accuracy" in result


def test_agreement_and_mean_kl_against_scipy():
    from scipy.stats import entropy

    rng = np.random.default_rng(0)
    teacher = rng.dirichlet(np.ones(5), size=40)
    student = rng.dirichlet(np.ones(5), size=40)
    expected_kl = np.mean([entropy(t, s) for t, s in zip(teacher, student)])
    t, s = torch.tensor(teacher), torch.tensor(student)
    assert metrics.mean_kl(t, s) == pytest.approx(expected_kl, rel=1e-9)
    assert metrics.mean_kl(t, t) == pytest.approx(0.0, abs=1e-12)
    assert metrics.agreement(s, t) == pytest.approx(np.mean(teacher.argmax(1) == student.argmax(1)))
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.agreement(s, t[:, :4])

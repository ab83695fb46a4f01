"""Distillation losses and targets against hand-worked values and direct computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from calibkd.errors import ConfigError
from calibkd.methods import distill


def test_kd_at_t1_a1_is_cross_entropy_to_the_teacher():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(5, 4, generator=g, requires_grad=True)
    t = torch.randn(5, 4, generator=g)
    y = torch.randint(0, 4, (5,), generator=g)
    p_t = torch.softmax(t, 1)
    kd = distill.kd_loss(s, t, y, temperature=1.0, alpha=1.0)
    ce = -(p_t * F.log_softmax(s, 1)).sum(1).mean()
    entropy = -(p_t * p_t.log()).sum(1).mean()
    assert float(kd.detach()) == pytest.approx(float((ce - entropy).detach()), abs=1e-6)  # KL = CE - H(teacher)
    (grad_kd,) = torch.autograd.grad(kd, s)
    (grad_ce,) = torch.autograd.grad(ce, s)
    assert torch.allclose(grad_kd, grad_ce, atol=1e-6)


def test_kd_hand_worked():
    s = torch.zeros(1, 2)                      # student uniform at any T
    t = torch.tensor([[2 * math.log(3.0), 0.0]])  # teacher at T = 2: [0.75, 0.25]
    y = torch.tensor([0])
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    expected = 0.5 * math.log(2) + 0.5 * 4 * kl
    assert float(distill.kd_loss(s, t, y, temperature=2.0, alpha=0.5)) == pytest.approx(expected)


def test_tempering_a_softmax_target_equals_softening_its_logits():
    z = torch.randn(6, 5)
    assert torch.allclose(distill.temper(torch.log_softmax(z, 1), 4.0).exp(), torch.softmax(z / 4.0, 1), atol=1e-6)
    s, y = torch.randn(6, 5), torch.randint(0, 5, (6,))
    a = distill.target_kd_loss(s, torch.log_softmax(z, 1), y, temperature=4.0)
    b = distill.kd_loss(s, z, y, temperature=4.0)
    assert float(a) == pytest.approx(float(b), rel=1e-5)


def _confident_logits(rows: int, classes: int, margin: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits whose top class leads every other by at least ``margin`` (a memorising teacher)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(rows, classes, generator=g)
    y = torch.randint(0, classes, (rows,), generator=g)
    z[torch.arange(rows), y] = z.max(1).values + margin
    return z, y


@pytest.mark.parametrize("classes", [2, 10, 183])
@pytest.mark.parametrize("margin", [40.0, 100.0])
def test_tempering_stays_exact_for_confident_teachers(classes, margin):
    """The old probability-space tempering clamped at 1e-12 and broke past margin ~27.6:
    at K = 183, margin 40, T = 4 its non-target mass was 0.154 instead of 0.008."""
    z, y = _confident_logits(64, classes, margin)
    exact = torch.softmax(z.double() / 4.0, 1)
    tempered = distill.temper(torch.log_softmax(z, 1), 4.0).exp().double()
    torch.testing.assert_close(tempered, exact, rtol=1e-4, atol=1e-7)
    def non_target(p):
        return p.scatter(1, y[:, None], 0.0).sum(1)

    torch.testing.assert_close(non_target(tempered), non_target(exact), rtol=1e-4, atol=1e-12)
    s = torch.randn(64, classes, generator=torch.Generator().manual_seed(1))
    a = distill.target_kd_loss(s, torch.log_softmax(z, 1), y, temperature=4.0)
    b = distill.kd_loss(s, z, y, temperature=4.0)
    assert float(a) == pytest.approx(float(b), rel=1e-5)


def test_kl_to_a_target_with_zero_classes_is_finite_with_finite_gradients():
    log_target = torch.tensor([[0.0, -torch.inf, -torch.inf]])
    s = torch.zeros(1, 3, requires_grad=True)
    kl = distill.kl_to_target(s, log_target, 1.0)
    assert float(kl.detach()) == pytest.approx(math.log(3))
    (grad,) = torch.autograd.grad(kl, s)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("margin", [3.0, 40.0, 100.0])
def test_log_space_wclip_and_cudp_match_the_probability_maps_and_keep_tiny_entries(margin):
    z, y = _confident_logits(50, 10, margin, seed=2)
    y = torch.where(torch.arange(50) % 2 == 0, y, (y + 1) % 10)  # half the rows wrong
    lp = torch.log_softmax(z.double(), 1)
    clipped = distill.wclip_log(lp, y, 0.5, 0.7)
    torch.testing.assert_close(clipped.exp(), distill.wclip(lp.exp(), y, 0.5, 0.7), rtol=1e-9, atol=1e-12)
    untouched = torch.ones_like(lp, dtype=torch.bool)
    rows = torch.arange(50)
    untouched[rows, lp.argmax(1)] = False
    untouched[rows, y] = False
    assert torch.equal(clipped[untouched], lp[untouched])  # exact, however small the probability
    c = torch.full((50,), 0.9, dtype=torch.float64)
    q = distill.cudp_projection_log(lp, y, c.log())
    torch.testing.assert_close(q.exp(), distill.cudp_projection(lp.exp(), y, c), rtol=1e-6, atol=1e-12)
    # ratios among the non-target classes are kept exactly, in log space
    others = torch.ones_like(lp, dtype=torch.bool)
    others[rows, y] = False
    diff = (q - lp)[others].view(50, 9)
    torch.testing.assert_close(diff, diff[:, :1].expand(-1, 9), rtol=0, atol=1e-9)


def test_wclip_moves_exactly_delta_and_leaves_correct_rows():
    probs = torch.tensor([[0.6, 0.3, 0.1],    # label 0, correct: unchanged
                          [0.6, 0.3, 0.1],    # label 1, wrong: delta = min(.5 * .6, .7 * .3) = .21
                          [0.5, 0.1, 0.4]])   # label 1: delta = min(.25, .7 * .4 = .28) = .25
    labels = torch.tensor([0, 1, 1])
    out = distill.wclip(probs, labels, eta=0.5, m=0.7)
    assert torch.equal(out[0], probs[0])
    assert torch.allclose(out[1], torch.tensor([0.39, 0.51, 0.1]))
    assert torch.allclose(out[2], torch.tensor([0.25, 0.35, 0.4]))
    assert torch.allclose(out.sum(1), torch.ones(3))


def test_cudp_keeps_ratios_and_ranks_the_label_first():
    g = torch.Generator().manual_seed(1)
    probs = torch.softmax(torch.randn(50, 6, generator=g) * 3, 1)
    labels = torch.randint(0, 6, (50,), generator=g)
    confidence = torch.rand(50, generator=g)
    q = distill.cudp_projection(probs, labels, confidence)
    rows = torch.arange(50)
    assert torch.allclose(q.sum(1), torch.ones(50, dtype=q.dtype), atol=1e-6)
    q_y = q[rows, labels]
    others = q.clone()
    others[rows, labels] = -1
    assert (q_y >= others.max(1).values - 1e-6).all()
    # ratios among non-target classes are those of the teacher
    p_rest, q_rest = probs.clone(), q.clone()
    p_rest[rows, labels] = 0
    q_rest[rows, labels] = 0
    assert torch.allclose(q_rest / q_rest.sum(1, keepdim=True), p_rest / p_rest.sum(1, keepdim=True), atol=1e-5)
    # where the calibrated confidence already ranks the label first, q_y = c exactly
    bound = p_rest.max(1).values / (1 - probs[rows, labels] + p_rest.max(1).values)
    free = confidence >= bound
    assert torch.allclose(q_y[free], confidence[free], atol=1e-6)


def test_cudp_hand_worked():
    probs = torch.tensor([[0.2, 0.6, 0.2]])
    q = distill.cudp_projection(probs, torch.tensor([0]), torch.tensor([0.1]))
    # bound: m' = 0.6, 1 - p_y = 0.8 -> c >= 0.6 / 1.4 = 3/7; rest keeps 3:1
    c = 3 / 7
    assert torch.allclose(q, torch.tensor([[c, (1 - c) * 0.75, (1 - c) * 0.25]]), atol=1e-6)


def test_dkd_matches_a_direct_computation():
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    y = torch.tensor([0, 3, 2, 4])
    T = 4.0
    tckd = nckd = 0.0
    for i in range(4):
        ps, pt = torch.softmax(s[i] / T, 0), torch.softmax(t[i] / T, 0)
        bs = torch.tensor([ps[y[i]], 1 - ps[y[i]]])
        bt = torch.tensor([pt[y[i]], 1 - pt[y[i]]])
        tckd += float((bt * (bt / bs).log()).sum())
        keep = [j for j in range(5) if j != y[i]]
        qs, qt = torch.softmax(s[i, keep] / T, 0), torch.softmax(t[i, keep] / T, 0)
        nckd += float((qt * (qt / qs).log()).sum())
    expected = (1.0 * tckd + 8.0 * nckd) / 4 * T ** 2
    assert float(distill.dkd_loss(s, t, y, 1.0, 8.0, T)) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("call,message", [
    (lambda: distill.kd_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([0]), temperature=0.0), "temperature"),
    (lambda: distill.kd_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([0]), alpha=1.5), "alpha"),
    (lambda: distill.wclip(torch.full((1, 2), 0.5), torch.tensor([0]), eta=-0.1), "eta"),
    (lambda: distill.wclip(torch.full((1, 2), 0.5), torch.tensor([0]), m=2.0), "m=2.0"),
    (lambda: distill.temper(torch.full((1, 2), 0.5), -1.0), "temperature"),
    (lambda: distill.dkd_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([0]), beta=-1.0), "DKD weights"),
])
def test_bad_input(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_cudp_rejects_confidence_out_of_range():
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        distill.cudp_projection(torch.full((1, 2), 0.5), torch.tensor([0]), torch.tensor([1.5]))


def test_cudp_rows_sum_to_one_when_the_label_probability_rounds_to_one():
    logits = torch.tensor([[30.0, 0.0, -5.0], [40.0, 1.0, 0.5], [200.0, 0.0, 0.0]])
    probs = torch.softmax(logits, 1)  # float32: p_y is 1.0 or within an ulp of it
    labels = torch.tensor([0, 0, 0])
    q = distill.cudp_projection(probs, labels, torch.tensor([0.9, 0.95, 0.8]))
    torch.testing.assert_close(q.sum(1), torch.ones(3), rtol=0, atol=1e-6)
    torch.testing.assert_close(q[:, 0], torch.tensor([0.9, 0.95, 0.8]))
    # the third row has no non-target mass at all: 1 - c is spread evenly
    torch.testing.assert_close(q[2, 1:], torch.tensor([0.1, 0.1]))

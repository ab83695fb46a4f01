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
    assert torch.allclose(distill.temper(torch.softmax(z, 1), 4.0), torch.softmax(z / 4.0, 1), atol=1e-6)
    s, y = torch.randn(6, 5), torch.randint(0, 5, (6,))
    a = distill.target_kd_loss(s, torch.softmax(z, 1), y, temperature=4.0)
    b = distill.kd_loss(s, z, y, temperature=4.0)
    assert float(a) == pytest.approx(float(b), rel=1e-5)


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

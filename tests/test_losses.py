"""Each loss against a hand-worked value on a tiny example; DUS's gate; bad input."""

from __future__ import annotations

import math

import pytest
import torch

from calibkd.config import LOSS_DEFAULTS, check_loss
from calibkd.errors import ConfigError
from calibkd.methods import losses

# p = [0.75, 0.25] for label 0
LOGITS = torch.tensor([[math.log(3.0), 0.0]])
LABEL = torch.tensor([0])


def test_label_smoothing_hand_worked():
    expected = -(0.95 * math.log(0.75) + 0.05 * math.log(0.25))
    assert float(losses.label_smoothing_ce(LOGITS, LABEL, 0.1)) == pytest.approx(expected)


def test_focal_hand_worked():
    expected = -(0.25 ** 3) * math.log(0.75)
    assert float(losses.focal_loss(LOGITS, LABEL, 3.0)) == pytest.approx(expected)
    assert float(losses.focal_loss(LOGITS, LABEL, 0.0)) == pytest.approx(-math.log(0.75))


def test_flsd53_switches_gamma_at_0_2():
    logits = torch.tensor([[math.log(3.0), 0.0], [0.0, math.log(9.0)]])  # p_y = 0.75 and 0.1
    labels = torch.tensor([0, 0])
    expected = (-(0.25 ** 3) * math.log(0.75) - (0.9 ** 5) * math.log(0.1)) / 2
    assert float(losses.flsd53_loss(logits, labels)) == pytest.approx(expected)


def test_mdca_hand_worked():
    logits = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])  # p = [.75, .25], [.5, .5]
    labels = torch.tensor([0, 0])
    # mean p = [0.625, 0.375]; mean one-hot = [1, 0]; mean |diff| over classes = 0.375
    assert float(losses.mdca_term(logits, labels)) == pytest.approx(0.375)
    ce = (-math.log(0.75) - math.log(0.5)) / 2
    assert float(losses.mdca_loss(logits, labels, 1.0)) == pytest.approx(ce + 0.375)


def test_mixup_mixes_images_and_targets_convexly():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(8, 1, 4, 4)
    labels = torch.arange(8) % 3
    mixed, targets = losses.mixup_batch(images, labels, 3, 0.2, g)
    assert torch.allclose(targets.sum(1), torch.ones(8))
    again = losses.mixup_batch(images, labels, 3, 0.2, torch.Generator().manual_seed(0))
    assert torch.equal(mixed, again[0]) and torch.equal(targets, again[1])
    assert float(losses.soft_cross_entropy(torch.zeros(8, 3), targets)) == pytest.approx(math.log(3))


def test_dus_hard_gate_is_zero_on_easy_and_one_on_hard():
    logits = torch.log(torch.tensor([[0.9, 0.05, 0.05],     # easy: right and confident
                                     [0.2, 0.7, 0.1],       # wrong
                                     [0.45, 0.35, 0.2]]))   # right but p_y < 0.5
    labels = torch.tensor([0, 0, 0])
    assert losses.dus_gate(logits, labels, "hard", threshold=0.5).tolist() == [0.0, 1.0, 1.0]


def test_dus_soft_gate_is_a_sigmoid_of_the_margin():
    logits = torch.log(torch.tensor([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1]]))
    gate = losses.dus_gate(logits, torch.tensor([0, 0]), "soft", sharpness=10.0)
    assert float(gate[0]) == pytest.approx(1 / (1 + math.exp(10 * 0.85)), rel=1e-4)
    assert float(gate[1]) == pytest.approx(1 / (1 + math.exp(-10 * 0.5)), rel=1e-4)
    assert float(gate[0]) < 1e-3 and float(gate[1]) > 0.99


def test_dus_loss_hand_worked():
    probs = torch.tensor([[0.2, 0.7, 0.1]])
    logits, labels = torch.log(probs), torch.tensor([0])
    entropy = float(-(probs * probs.log()).sum())
    focal = -(0.8 ** 3) * math.log(0.2)
    expected = focal - 0.1 * 1.0 * entropy
    assert float(losses.dus_loss(logits, labels, 3.0, 0.1, "hard")) == pytest.approx(expected, rel=1e-5)


def test_dus_raises_entropy_on_hard_examples_more_than_focal_does():
    logits = torch.log(torch.tensor([[0.2, 0.7, 0.1]])).requires_grad_(True)
    labels = torch.tensor([0])

    def entropy_after_step(loss_fn):
        z = logits.detach().clone().requires_grad_(True)
        loss_fn(z, labels).backward()
        p = torch.softmax(z.detach() - 0.5 * z.grad, 1)
        return float(-(p * p.log()).sum())

    with_bonus = entropy_after_step(lambda z, y: losses.dus_loss(z, y, 3.0, 1.0, "hard"))
    without = entropy_after_step(lambda z, y: losses.focal_loss(z, y, 3.0))
    assert with_bonus > without


@pytest.mark.parametrize("name,params,message", [
    ("huber", {}, "allowed losses"),
    ("label_smoothing", {"eps": 1.0}, "out of range"),
    ("label_smoothing", {"eps": -0.1}, "out of range"),
    ("focal", {"gamma": -1.0}, "out of range"),
    ("mixup", {"alpha": 0.0}, "out of range"),
    ("dus", {"lambda_h": -0.1}, "out of range"),
    ("dus", {"gate": "medium"}, "allowed values"),
    ("dus", {"sharpness": 0.0}, "out of range"),
    ("focal", {"eps": 0.1}, "unknown parameter"),
    ("mdca", {"beta": "one"}, "must be a number"),
])
def test_bad_loss_parameters(name, params, message):
    with pytest.raises(ConfigError, match=message):
        check_loss(name, params)


def test_every_loss_builds_and_trains_one_step():
    logits = torch.randn(6, 4, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    for name in LOSS_DEFAULTS:
        value = losses.build_loss(name)(logits, labels)
        value.backward()
        assert torch.isfinite(value) and logits.grad is not None
        logits.grad = None

from __future__ import annotations

import pytest
import torch

from calibkd.calibration import fit_temperature


def test_recovers_the_temperature_that_generated_the_labels():
    g = torch.Generator().manual_seed(0)
    true_logits = torch.randn(20000, 10, generator=g) * 2
    labels = torch.multinomial(torch.softmax(true_logits, 1), 1, generator=g).squeeze(1)
    # a model 2.5x too sharp: the fitted T must undo it
    assert fit_temperature(true_logits * 2.5, labels) == pytest.approx(2.5, rel=0.05)
    assert fit_temperature(true_logits / 2.0, labels) == pytest.approx(0.5, rel=0.05)


def test_refuses_probabilities():
    probs = torch.softmax(torch.randn(50, 4), 1)
    with pytest.raises(ValueError, match="probabilities"):
        fit_temperature(probs, torch.zeros(50, dtype=torch.long))

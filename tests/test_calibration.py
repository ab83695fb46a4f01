from __future__ import annotations

import pytest
import torch

from calibkd.methods.calibration import fit_temperature


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


import numpy as np

from calibkd.methods.calibration import (
    CALIBRATORS,
    Calibrator,
    HistogramBinning,
    IsotonicCalibration,
    make_calibrator,
)


def synthetic(n=3000, k=5, seed=1, sharpness=3.0):
    g = torch.Generator().manual_seed(seed)
    true_logits = torch.randn(n, k, generator=g) * 2
    labels = torch.multinomial(torch.softmax(true_logits, 1), 1, generator=g).squeeze(1)
    return true_logits * sharpness, labels


@pytest.mark.parametrize("name", list(CALIBRATORS))
def test_every_map_gives_normalised_full_vectors_and_lowers_nll(name):
    logits, labels = synthetic()
    calibrator = make_calibrator(name).fit(logits[:2000], labels[:2000])
    probs = calibrator.probs(logits[2000:])
    assert probs.shape == (1000, 5) and (probs >= 0).all()
    assert torch.allclose(probs.sum(1), torch.ones(1000, dtype=torch.float64))
    assert calibrator.usable_for_targets
    assert calibrator.nll_after < calibrator.nll_before


def test_temperature_scaling_keeps_the_argmax():
    logits, labels = synthetic()
    probs = make_calibrator("temperature").fit(logits, labels).probs(logits)
    assert torch.equal(probs.argmax(1), logits.argmax(1))


def test_isotonic_hand_worked():
    # one-vs-rest for class 0 with p_0 ascending and hits 0, 1, 0, 1 -> fit 0, .5, .5, 1
    p0 = torch.tensor([0.3, 0.4, 0.6, 0.7], dtype=torch.float64)
    logits = torch.stack([torch.log(p0), torch.log(1 - p0)], 1)
    labels = torch.tensor([1, 0, 1, 0])
    calibrator = IsotonicCalibration()
    calibrator._fit(logits, labels)
    x, fitted = calibrator.points[0]
    assert np.allclose(x, [0.3, 0.4, 0.6, 0.7]) and np.allclose(fitted, [0, 0.5, 0.5, 1])


def test_histogram_binning_hand_worked():
    p0 = torch.tensor([0.1, 0.2, 0.8, 0.9], dtype=torch.float64)
    logits = torch.stack([torch.log(p0), torch.log(1 - p0)], 1)
    labels = torch.tensor([0, 1, 0, 0])
    calibrator = HistogramBinning(n_bins=2)
    calibrator._fit(logits, labels)
    # class 0: low bin holds labels {0, 1} -> 0.5; high bin {0, 0} -> 1.0
    assert calibrator.values[0].tolist() == [0.5, 1.0]


@pytest.mark.parametrize("logits,labels,message", [
    (torch.randn(5, 3), torch.zeros(4, dtype=torch.long), "do not match"),
    (torch.randn(0, 3), torch.zeros(0, dtype=torch.long), "empty"),
    (torch.randn(4, 3), torch.tensor([0, 1, 2, 3]), "labels must be in 0..2"),
    (torch.softmax(torch.randn(4, 3), 1), torch.tensor([0, 1, 2, 0]), "probabilities"),
])
@pytest.mark.parametrize("name", list(CALIBRATORS))
def test_bad_fit_inputs(name, logits, labels, message):
    with pytest.raises(ValueError, match=message):
        make_calibrator(name).fit(logits, labels)


def test_unknown_method():
    with pytest.raises(ValueError, match="allowed methods"):
        make_calibrator("platt")


def test_warns_when_the_fit_raises_nll():
    class Sharpen(Calibrator):
        name = "sharpen"

        def _fit(self, z, y):
            pass

        def _probs(self, z):
            return torch.softmax(z * 10, 1)

    logits, labels = synthetic(sharpness=1.0)
    with pytest.warns(UserWarning, match="NLL on the calibration split rose"):
        Sharpen().fit(logits, labels)

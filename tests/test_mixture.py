"""The known-posterior Gaussian mixture: exact posterior against scipy and Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import softmax
from scipy.stats import multivariate_normal

from calibkd.config import SplitConfig, dataset_info, get_profile
from calibkd.data.mixture import Mixture, MixtureConfig, MixtureError, sample_mixture
from calibkd.data.splits import NORMALIZATION, make_splits
from calibkd.nn.models import build_model

SMALL = MixtureConfig(num_classes=6, superclasses=2, dim=2, overlap=1.0, spread=3.0,
                      train_size=600, test_size=300, seed=4)


def test_posterior_sums_to_one_and_matches_scipy():
    mixture = Mixture(SMALL)
    x, _ = mixture.sample(50, torch.Generator().manual_seed(0))
    posterior = mixture.posterior(x)
    assert torch.allclose(posterior.sum(1), torch.ones(50, dtype=torch.float64), atol=1e-12)
    # independent: Bayes' rule with scipy's Gaussian densities and equal priors
    cov = SMALL.overlap ** 2 * np.eye(SMALL.dim)
    log_lik = np.stack([multivariate_normal(mean.numpy(), cov).logpdf(x.numpy())
                        for mean in mixture.means], axis=1)
    expected = softmax(log_lik + np.log(1 / SMALL.num_classes), axis=1)
    assert np.allclose(posterior.numpy(), expected, atol=1e-10)


def test_posterior_matches_monte_carlo_frequencies():
    """Among inputs the posterior gives p(y = k | x) in a bin, class k occurs
    with that frequency (200,000 draws; tolerance several standard errors)."""
    mixture = Mixture(SMALL)
    x, labels = mixture.sample(200_000, torch.Generator().manual_seed(1))
    posterior = mixture.posterior(x)
    onehot = torch.nn.functional.one_hot(labels, SMALL.num_classes).double()
    p, hit = posterior.flatten(), onehot.flatten()
    bins = torch.clamp((p * 10).long(), max=9)
    for b in range(10):
        inside = bins == b
        n = int(inside.sum())
        if n < 2_000:
            continue
        mean_p, freq = float(p[inside].mean()), float(hit[inside].mean())
        stderr = (mean_p * (1 - mean_p) / n) ** 0.5
        assert abs(freq - mean_p) < 5 * stderr + 1e-3, (b, n, mean_p, freq)


def test_sampling_is_seeded_and_balanced():
    a, b = sample_mixture(SMALL), sample_mixture(SMALL)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_posterior, b.test_posterior)
    assert torch.bincount(a.train_y, minlength=6).tolist() == [100] * 6
    assert a.train_x.shape == (600, 2, 1, 1) and a.test_posterior.shape == (300, 6)
    c = sample_mixture(MixtureConfig(**{**SMALL.__dict__, "seed": 5}))
    assert not torch.equal(a.train_x, c.train_x)


def test_overlap_controls_confusion_inside_superclasses():
    accuracy = []
    for overlap in (0.5, 2.0):
        config = MixtureConfig(**{**SMALL.__dict__, "overlap": overlap, "test_size": 3_000})
        sample = sample_mixture(config)
        accuracy.append(sample.mixture.bayes_accuracy(sample.test_x.flatten(1), sample.test_y))
    assert accuracy[0] > accuracy[1]


@pytest.mark.parametrize("changes,message", [
    ({"num_classes": 7}, "multiple of superclasses"),
    ({"overlap": 0.0}, "overlap"),
    ({"dim": 0}, "dim"),
    ({"spread": float("inf")}, "spread"),
])
def test_bad_mixture_parameters(changes, message):
    with pytest.raises(MixtureError, match=message):
        MixtureConfig(**changes)


def test_mixture_dataset_is_registered_consistently():
    default = MixtureConfig()
    info = dataset_info("mixture")
    assert (info.channels, info.num_classes, info.image_size) == (default.dim, default.num_classes, 1)
    assert info.class_groups == default.groups and info.horizontal_flip is False and info.crop_padding == 0
    assert len(NORMALIZATION["mixture"][0]) == default.dim
    profile = get_profile("smoke", "mixture")
    data = make_splits(profile.split)
    assert data.known_posterior and data.train.images.shape[1:] == (default.dim, 1, 1)
    assert torch.allclose(data.val.true_probs.sum(1), torch.ones(len(data.val)), atol=1e-5)
    for model in (profile.teacher_recipes["default"].model, profile.student.model):
        assert model.arch == "mlp"
        net = build_model(model.arch, info.channels, info.num_classes, **model.arguments).eval()
        assert net(data.test.images[:3]).shape == (3, info.num_classes)
    # the other profiles' models are untouched for image data
    assert get_profile("smoke", "fashion_mnist").student.model.arch == "small_cnn"
    assert make_splits(SplitConfig("mixture", val_size=10, train_size=20, test_size=5)).sizes() == \
        {"train": 20, "val": 10, "test": 5}


def test_notebooks_accept_image_datasets_only():
    from calibkd.config import PARAMETER_RULES
    from calibkd.errors import ConfigError

    rule = PARAMETER_RULES["dataset"]
    rule.check("dataset", "glyphs")
    rule.check("dataset", "glyphs_natural")
    with pytest.raises(ConfigError, match="unknown value 'mixture'"):
        rule.check("dataset", "mixture")

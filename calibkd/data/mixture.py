"""A known-posterior task: a hierarchical Gaussian mixture with exact p(y | x).

K classes fall into S superclasses (class k in superclass k // (K / S)).
Superclass centres are drawn from N(0, spread^2 I), class means from
N(centre, I) around their superclass's centre, and an input of class k from
N(mean_k, overlap^2 I). Classes are equally likely, so the Bayes posterior is

    p(y = k | x) = softmax_k( -|x - mean_k|^2 / (2 overlap^2) ),

exact in closed form. ``overlap`` sets how much classes of one superclass are
confused (dark knowledge inside superclasses); ``spread`` how far superclasses
are apart. Small and fast: where unit tests and exercises check dark
knowledge against the truth. Features are stored as (N, D, 1, 1) so the
image pipeline (splits, batches, MLP models) takes them unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


class MixtureError(ValueError):
    """Bad mixture parameters; raised before anything is sampled."""


@dataclass(frozen=True)
class MixtureConfig:
    """The mixture's structure and sample sizes (all of it is seeded)."""

    num_classes: int = 100
    superclasses: int = 10
    dim: int = 16
    #: standard deviation of the inputs around their class mean (class means
    #: sit at unit standard deviation around their superclass centre)
    overlap: float = 1.25
    #: standard deviation of the superclass centres
    spread: float = 4.0
    train_size: int = 50_000
    test_size: int = 10_000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("num_classes", "superclasses", "dim", "train_size", "test_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise MixtureError(f"{name}={value!r} must be a positive integer")
        if self.num_classes % self.superclasses:
            raise MixtureError(f"num_classes={self.num_classes} must be a multiple of superclasses={self.superclasses}")
        for name in ("overlap", "spread"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
                raise MixtureError(f"{name}={value!r} must be a positive finite number")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise MixtureError(f"seed={self.seed!r} must be a non-negative integer")

    @property
    def groups(self) -> tuple[tuple[int, ...], ...]:
        """The superclasses as groups of class indices."""
        per = self.num_classes // self.superclasses
        return tuple(tuple(range(s * per, (s + 1) * per)) for s in range(self.superclasses))

    @property
    def feature_std(self) -> float:
        """Expected standard deviation of one input coordinate (for normalisation)."""
        return math.sqrt(self.spread ** 2 + 1.0 + self.overlap ** 2)


class Mixture:
    """The mixture's means and its exact posterior; samples on request."""

    def __init__(self, config: MixtureConfig) -> None:
        self.config = config
        generator = torch.Generator().manual_seed(config.seed)
        per = config.num_classes // config.superclasses
        centres = torch.randn(config.superclasses, config.dim, generator=generator, dtype=torch.float64) * config.spread
        offsets = torch.randn(config.num_classes, config.dim, generator=generator, dtype=torch.float64)
        self.superclass_of = torch.arange(config.num_classes) // per
        self.means = centres[self.superclass_of] + offsets

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` inputs (float64, (n, D)) and labels: classes balanced (n // K
        each, the rest at random), in a seeded random order."""
        k = self.config.num_classes
        labels = torch.cat([torch.arange(k).repeat(n // k), torch.randperm(k, generator=generator)[: n % k]])
        labels = labels[torch.randperm(n, generator=generator)]
        noise = torch.randn(n, self.config.dim, generator=generator, dtype=torch.float64) * self.config.overlap
        return self.means[labels] + noise, labels

    def log_posterior(self, x: torch.Tensor) -> torch.Tensor:
        """log p(y | x) for inputs of shape (N, D) or (N, D, 1, 1), float64."""
        x = x.double().reshape(x.shape[0], -1)
        if x.shape[1] != self.config.dim:
            raise MixtureError(f"inputs have {x.shape[1]} features, the mixture {self.config.dim}")
        logits = -torch.cdist(x, self.means).pow(2) / (2 * self.config.overlap ** 2)
        return torch.log_softmax(logits, dim=1)

    def posterior(self, x: torch.Tensor) -> torch.Tensor:
        """The exact p(y | x), (N, K), rows summing to one."""
        return self.log_posterior(x).exp()

    def bayes_accuracy(self, x: torch.Tensor, labels: torch.Tensor) -> float:
        """Accuracy of the Bayes classifier (the ceiling any model can reach)."""
        return float((self.posterior(x).argmax(1) == labels).double().mean())


@dataclass(frozen=True)
class MixtureSample:
    """Train and test inputs (N, D, 1, 1) float32, labels, and exact posteriors."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    train_posterior: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    test_posterior: torch.Tensor
    mixture: Mixture


def sample_mixture(config: MixtureConfig = MixtureConfig()) -> MixtureSample:
    """Draw the train and test sets of ``config`` (the same tensors for a seed)."""
    mixture = Mixture(config)
    generator = torch.Generator().manual_seed(config.seed + 1)
    train_x, train_y = mixture.sample(config.train_size, generator)
    test_x, test_y = mixture.sample(config.test_size, generator)

    def stored(x: torch.Tensor) -> torch.Tensor:
        return x.float()[:, :, None, None]

    return MixtureSample(stored(train_x), train_y, mixture.posterior(train_x).float(),
                         stored(test_x), test_y, mixture.posterior(test_x).float(), mixture)

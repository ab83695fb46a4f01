"""How much evaluation each profile runs around its trained models.

Training sizes live in ``design.PROFILES`` (part of the model-cache key);
what is only *evaluated* lives here, so that it can shrink without retraining
anything. At the smoke profile the corruption suite, not training, dominated
a run (every corrupted set is a forward pass of every model), so smoke caps
the suite's test images and mixtures, and the samples of training inputs
the chapters score every model on; the corruptions and severities kept at
smoke are the profile's own (``Profile.suite_corruptions`` /
``suite_severities``). The default and full profiles are not capped: their
numbers are the study's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EvaluationLimits:
    """Upper bounds on what one profile evaluates (None: no bound)."""

    #: seeded test images scored under every corruption (and clean, and the hard slice)
    test_images: int | None = None
    #: two-image mixtures per mixing weight
    mixtures: int | None = None
    #: training examples in the samples chapters 03 and 04 score every model on
    training_sample: int | None = None

    def test_size(self, requested: int | None) -> int | None:
        """The suite's test size: the notebook's ``shift_test_size`` (None: the
        whole split), at most ``test_images``."""
        if self.test_images is None:
            return requested
        return self.test_images if requested is None else min(requested, self.test_images)

    def mixture_count(self, requested: int) -> int:
        return requested if self.mixtures is None else min(requested, self.mixtures)

    def training_sample_size(self, requested: int) -> int:
        return requested if self.training_sample is None else min(requested, self.training_sample)


#: Profile name -> its limits; a profile not listed evaluates what is asked.
EVALUATION_LIMITS: dict[str, EvaluationLimits] = {
    "smoke": EvaluationLimits(test_images=250, mixtures=250, training_sample=500),
    "cifar100_smoke": EvaluationLimits(test_images=64, mixtures=64, training_sample=64),
}


def evaluation_limits(profile: str) -> EvaluationLimits:
    """The limits of ``profile`` (none for a profile not in ``EVALUATION_LIMITS``)."""
    return EVALUATION_LIMITS.get(profile, EvaluationLimits())

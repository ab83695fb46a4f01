"""Training losses of the calibrated teachers: plain functions of logits and
targets (integer labels, or probability vectors for mixup), each with its paper.

``build_loss(name, params)`` returns the loss a ``TrainConfig`` names, with
its hyper-parameters checked; ``LOSS_DEFAULTS`` lists them.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from calibkd.config import check_loss

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against integer labels or against probability vectors."""
    if targets.ndim == 1:
        return F.cross_entropy(logits, targets)
    return -(targets * F.log_softmax(logits, 1)).sum(1).mean()


def label_smoothing_ce(logits: torch.Tensor, labels: torch.Tensor, eps: float = 0.1) -> torch.Tensor:
    """CE against (1 - eps) one-hot + eps / K uniform (Szegedy et al. 2016;
    Müller, Kornblith & Hinton 2019 show it calibrates but erases class structure)."""
    return F.cross_entropy(logits, labels, label_smoothing=eps)


def focal_loss(logits: torch.Tensor, labels: torch.Tensor, gamma: float = 3.0) -> torch.Tensor:
    """Focal loss -(1 - p_y)^gamma log p_y (Lin et al. 2017), which Mukhoti et al.
    (2020) show improves calibration (gamma 3 is their fixed choice)."""
    log_p = F.log_softmax(logits, 1).gather(1, labels[:, None]).squeeze(1)
    return (-(1 - log_p.exp()) ** gamma * log_p).mean()


def flsd53_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sample-dependent focal loss FLSD-53 (Mukhoti et al. 2020): gamma 5 where
    p_y < 0.2, gamma 3 elsewhere (p_y read without gradient)."""
    log_p = F.log_softmax(logits, 1).gather(1, labels[:, None]).squeeze(1)
    p = log_p.exp()
    gamma = torch.where(p.detach() < 0.2, torch.full_like(p, 5.0), torch.full_like(p, 3.0))
    return (-(1 - p) ** gamma * log_p).mean()


def mdca_term(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Multi-class difference in confidence and accuracy (Hebbalaguppe et al. 2022):
    the mean over classes of |mean_i p_ik - mean_i 1[y_i = k]| in a batch."""
    probs = F.softmax(logits, 1)
    onehot = F.one_hot(labels, logits.shape[1]).to(probs)
    return (probs.mean(0) - onehot.mean(0)).abs().mean()


def mdca_loss(logits: torch.Tensor, labels: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """CE + beta * MDCA (the paper's best setting adds it to CE with beta 1)."""
    return F.cross_entropy(logits, labels) + beta * mdca_term(logits, labels)


def mixup_batch(images: torch.Tensor, labels: torch.Tensor, num_classes: int, alpha: float,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al. 2018): one lambda ~ Beta(alpha, alpha) per batch, each
    image mixed with a shuffled partner; targets are the mixed one-hot vectors.
    Thulasidasan et al. (2019) show mixup-trained models are better calibrated.
    Lambda comes from NumPy's Beta sampler seeded by ``generator``."""
    seed = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=generator, device=generator.device))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    order = torch.randperm(images.shape[0], generator=generator, device=generator.device).to(images.device)
    onehot = F.one_hot(labels, num_classes).float()
    return lam * images + (1 - lam) * images[order], lam * onehot + (1 - lam) * onehot[order]


def dus_gate(logits: torch.Tensor, labels: torch.Tensor, gate: str = "hard", threshold: float = 0.5,
             sharpness: float = 10.0) -> torch.Tensor:
    """Which examples DUS treats as hard, in [0, 1], without gradient.

    ``hard``: 1 where the prediction is wrong or p_y < ``threshold``, else 0.
    ``soft``: sigmoid(-sharpness * margin) with the probability margin
    p_y - max_{j != y} p_j (in [-1, 1]); ``sharpness`` plays the paper's gamma.
    """
    with torch.no_grad():
        probs = F.softmax(logits.float(), 1)
        p_y = probs.gather(1, labels[:, None]).squeeze(1)
        if gate == "hard":
            wrong = probs.argmax(1) != labels
            return (wrong | (p_y < threshold)).float()
        rest = probs.scatter(1, labels[:, None], -1.0).max(1).values
        return torch.sigmoid(-sharpness * (p_y - rest))


def dus_loss(logits: torch.Tensor, labels: torch.Tensor, gamma: float = 3.0, lambda_h: float = 0.1,
             gate: str = "hard", threshold: float = 0.5, sharpness: float = 10.0) -> torch.Tensor:
    """CUD stage 1, Difficulty-aware Uncertainty Shaping (Kim et al. 2026, as this
    study defines it, brief section 3): focal(p, y; gamma) - lambda_H * g(x) * H(p),
    raising the entropy of hard examples while focal loss keeps easy ones sharp."""
    log_probs = F.log_softmax(logits, 1)
    entropy = -(log_probs.exp() * log_probs).sum(1)
    g = dus_gate(logits, labels, gate, threshold, sharpness)
    return focal_loss(logits, labels, gamma) - lambda_h * (g * entropy).mean()


def build_loss(name: str, params: Mapping[str, float | str] = {}) -> Loss:
    """The loss function ``name`` with its hyper-parameters bound."""
    full = check_loss(name, params)
    if name == "ce" or name == "mixup":
        return soft_cross_entropy
    if name == "label_smoothing":
        return lambda z, y: label_smoothing_ce(z, y, float(full["eps"]))
    if name == "focal":
        return lambda z, y: focal_loss(z, y, float(full["gamma"]))
    if name == "flsd53":
        return flsd53_loss
    if name == "mdca":
        return lambda z, y: mdca_loss(z, y, float(full["beta"]))
    return lambda z, y: dus_loss(z, y, float(full["gamma"]), float(full["lambda_h"]), str(full["gate"]),
                                 float(full["threshold"]), float(full["sharpness"]))

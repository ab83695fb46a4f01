"""Post-hoc calibration fitted on held-out (validation) logits, never on test.

Temperature scaling (Guo et al. 2017): one scalar T divides the logits; it is
fitted by minimising validation NLL with a bounded one-dimensional optimiser.
T > 1 means the model was overconfident (its softmax is softened), T < 1
underconfident.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar

#: Search interval for T; a fit that lands on an edge is reported as such.
TEMPERATURE_BOUNDS = (0.05, 20.0)


def looks_like_probabilities(values: torch.Tensor) -> bool:
    """True when every row is non-negative and sums to one: not logits."""
    rows = values.double().sum(1)
    return bool((values >= 0).all() and torch.allclose(rows, torch.ones_like(rows), atol=1e-4))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature that minimises NLL of ``softmax(logits / T)`` on ``labels``.

    Refuses probabilities passed as logits (a common silent mistake), and
    warns if the fitted T does not lower the NLL or lies on a search bound.
    """
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"expected logits (N, K) and labels (N,), got {tuple(logits.shape)}, {tuple(labels.shape)}")
    if looks_like_probabilities(logits):
        raise ValueError("fit_temperature got probabilities; it needs logits (pre-softmax scores)")
    z = logits.detach().double().cpu()
    y = labels.detach().long().cpu()

    def nll_at(log_t: float) -> float:
        return float(F.cross_entropy(z / math.exp(log_t), y))

    low, high = (math.log(b) for b in TEMPERATURE_BOUNDS)
    result = minimize_scalar(nll_at, bounds=(low, high), method="bounded", options={"xatol": 1e-5})
    temperature = math.exp(result.x)
    before, after = nll_at(0.0), nll_at(result.x)
    if after > before + 1e-9:
        warnings.warn(f"temperature scaling did not lower NLL ({before:.4f} -> {after:.4f}); keeping T=1")
        return 1.0
    if min(abs(result.x - low), abs(result.x - high)) < 1e-3:
        warnings.warn(f"fitted temperature {temperature:.3g} lies on the search bound {TEMPERATURE_BOUNDS}")
    return temperature

"""Post-hoc calibration fitted on held-out (validation) logits, never on test.

Temperature scaling (Guo et al. 2017): one scalar T divides the logits; it is
fitted by minimising validation NLL with a bounded one-dimensional optimiser.
T > 1 means the model was overconfident (its softmax is softened), T < 1
underconfident. Vector scaling, histogram binning and isotonic regression
share one interface (``Calibrator``: ``fit(logits, labels)``, then
``probs(logits)``), refuse probabilities where logits are expected, and warn
when the fit does not lower NLL on the data it was fitted on.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar

from calibkd import metrics

#: Search interval for T; a fit that lands on an edge is reported as such.
TEMPERATURE_BOUNDS = (0.05, 20.0)


def looks_like_probabilities(values: torch.Tensor) -> bool:
    """True when every row is non-negative and sums to one: not logits."""
    rows = values.double().sum(1)
    return bool((values >= 0).all() and torch.allclose(rows, torch.ones_like(rows), atol=1e-4))


def _check_fit_inputs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if logits.ndim != 2 or labels.ndim != 1 or logits.shape[0] != labels.shape[0]:
        raise ValueError(f"logits (N, K) and labels (N,) do not match: {tuple(logits.shape)} and {tuple(labels.shape)}")
    if logits.shape[0] == 0:
        raise ValueError("cannot fit a calibrator on an empty set")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(f"labels must be in 0..{logits.shape[1] - 1}; got {int(labels.min())}..{int(labels.max())}")
    if looks_like_probabilities(logits):
        raise ValueError("the calibrator got probabilities; it needs logits (pre-softmax scores)")
    return logits.detach().double().cpu(), labels.detach().long().cpu()


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature that minimises NLL of ``softmax(logits / T)`` on ``labels``.

    Refuses probabilities passed as logits (a common silent mistake), and
    warns if the fitted T does not lower the NLL or lies on a search bound.
    """
    z, y = _check_fit_inputs(logits, labels)

    def nll_at(log_t: float) -> float:
        return float(F.cross_entropy(z / math.exp(log_t), y))

    low, high = (math.log(b) for b in TEMPERATURE_BOUNDS)
    result = minimize_scalar(nll_at, bounds=(low, high), method="bounded", options={"xatol": 1e-5})
    temperature = math.exp(result.x)
    before, after = nll_at(0.0), nll_at(result.x)
    if after > before + 1e-9:
        warnings.warn(f"temperature scaling did not lower NLL ({before:.4f} -> {after:.4f}); keeping T=1", stacklevel=2)
        return 1.0
    if min(abs(result.x - low), abs(result.x - high)) < 1e-3:
        warnings.warn(f"fitted temperature {temperature:.3g} lies on the search bound {TEMPERATURE_BOUNDS}", stacklevel=2)
    return temperature


# ---------------------------------------------------------------------------
# post-hoc calibrators with one interface
# ---------------------------------------------------------------------------


class Calibrator(ABC):
    """Fit on held-out (logits, labels); then map logits to full, normalised
    probability vectors. ``usable_for_targets`` says whether the map's output
    can serve as a distillation target (every calibrator here returns the
    whole vector, so all can)."""

    name = "calibrator"
    usable_for_targets = True
    #: the map is plain tensor arithmetic: applied on the logits' device (a GPU
    #: training step then never copies to the host); other maps run on the CPU
    maps_on_device = False

    def fit(self, logits: torch.Tensor, labels: torch.Tensor) -> "Calibrator":
        z, y = _check_fit_inputs(logits, labels)
        before = metrics.nll(torch.softmax(z, 1), y)
        self._fit(z, y)
        after = metrics.nll(self.probs(z), y)
        self.nll_before, self.nll_after = before, after
        if after > before + 1e-9:
            warnings.warn(f"{self.name}: NLL on the calibration split rose from {before:.4f} to {after:.4f}; "
                          "the map makes this model worse calibrated on its own fitting data", stacklevel=2)
        return self

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        """Calibrated probabilities (N, K), float64, rows summing to one."""
        if looks_like_probabilities(logits):
            raise ValueError(f"{self.name} got probabilities; it maps logits")
        return self._probs(self._as_input(logits))

    __call__ = probs

    def log_probs(self, logits: torch.Tensor, check_logits: bool = True) -> torch.Tensor:
        """log of ``probs``, computed in log space where the map allows (a
        scaling map: log_softmax), so that tiny probabilities keep their value
        (distillation targets are tempered in log space). ``check_logits``
        False skips the probabilities-passed-as-logits check, which reads a
        value back to the host: for a training step's teacher logits, which
        are logits by construction."""
        if check_logits and looks_like_probabilities(logits):
            raise ValueError(f"{self.name} got probabilities; it maps logits")
        return self._log_probs(self._as_input(logits))

    def _as_input(self, logits: torch.Tensor) -> torch.Tensor:
        """float64 logits, on the CPU unless the map runs on their device."""
        z = logits.detach().double()
        return z if self.maps_on_device else z.cpu()

    def _log_probs(self, z: torch.Tensor) -> torch.Tensor:
        return self._probs(z).log()

    @abstractmethod
    def _fit(self, z: torch.Tensor, y: torch.Tensor) -> None:
        """Fit the map on float64 logits and labels."""

    @abstractmethod
    def _probs(self, z: torch.Tensor) -> torch.Tensor:
        """Apply the fitted map to float64 logits."""


class TemperatureScaling(Calibrator):
    """softmax(z / T), T fitted by NLL with a bounded 1-D search (Guo et al. 2017).
    Keeps the argmax and the ranking of every class."""

    name = "temperature"
    maps_on_device = True

    def _fit(self, z: torch.Tensor, y: torch.Tensor) -> None:
        self.temperature = fit_temperature(z, y)

    def _probs(self, z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(z / self.temperature, 1)

    def _log_probs(self, z: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(z / self.temperature, 1)


class VectorScaling(Calibrator):
    """softmax(w * z + b) with a scale and a bias per class, fitted by NLL with
    L-BFGS from the identity (Guo et al. 2017). Can change the argmax."""

    name = "vector"
    maps_on_device = True

    def _fit(self, z: torch.Tensor, y: torch.Tensor) -> None:
        k = z.shape[1]
        w = torch.ones(k, dtype=torch.float64, requires_grad=True)
        b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([w, b], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = F.cross_entropy(z * w + b, y)
            loss.backward()
            return loss

        optimizer.step(closure)
        self.scale, self.bias = w.detach(), b.detach()

    def _probs(self, z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(z * self.scale.to(z) + self.bias.to(z), 1)

    def _log_probs(self, z: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(z * self.scale.to(z) + self.bias.to(z), 1)


#: Floor on binned probabilities before renormalising, so that a class whose
#: bin never held its label keeps a finite NLL.
BINNED_FLOOR = 1e-4


class HistogramBinning(Calibrator):
    """One-vs-rest histogram binning (Zadrozny & Elkan 2001): for each class,
    15 equal-width bins of p_k; a bin maps to the frequency of label k among
    the calibration examples in it (empty bins keep their mean confidence);
    rows are floored and renormalised."""

    name = "histogram"

    def __init__(self, n_bins: int = 15) -> None:
        self.n_bins = n_bins

    def _bins(self, p: torch.Tensor) -> torch.Tensor:
        return (p * self.n_bins).floor().long().clamp(0, self.n_bins - 1)

    def _fit(self, z: torch.Tensor, y: torch.Tensor) -> None:
        probs = torch.softmax(z, 1)
        k = probs.shape[1]
        centres = (torch.arange(self.n_bins, dtype=torch.float64) + 0.5) / self.n_bins
        self.values = torch.empty(k, self.n_bins, dtype=torch.float64)
        for c in range(k):
            bins = self._bins(probs[:, c])
            count = torch.bincount(bins, minlength=self.n_bins).double()
            hits = torch.bincount(bins, weights=(y == c).double(), minlength=self.n_bins)
            self.values[c] = torch.where(count > 0, hits / count.clamp_min(1), centres)

    def _probs(self, z: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(z, 1)
        mapped = torch.stack([self.values[c][self._bins(probs[:, c])] for c in range(probs.shape[1])], 1)
        mapped = mapped.clamp_min(BINNED_FLOOR)
        return mapped / mapped.sum(1, keepdim=True)


class IsotonicCalibration(Calibrator):
    """One-vs-rest isotonic regression of 1[y = k] on p_k (Zadrozny & Elkan
    2002), fitted by scipy's pool-adjacent-violators, interpolated linearly
    between fitted points; rows floored and renormalised."""

    name = "isotonic"

    def _fit(self, z: torch.Tensor, y: torch.Tensor) -> None:
        from scipy.optimize import isotonic_regression

        probs = torch.softmax(z, 1).numpy()
        self.points = []
        for c in range(probs.shape[1]):
            order = np.argsort(probs[:, c], kind="stable")
            x = probs[order, c]
            fitted = isotonic_regression((y.numpy()[order] == c).astype(float), increasing=True).x
            self.points.append((x, fitted))

    def _probs(self, z: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(z, 1).numpy()
        mapped = np.stack([np.interp(probs[:, c], x, f) for c, (x, f) in enumerate(self.points)], 1)
        out = torch.from_numpy(mapped).clamp_min(BINNED_FLOOR)
        return out / out.sum(1, keepdim=True)


CALIBRATORS: dict[str, type[Calibrator]] = {
    "temperature": TemperatureScaling,
    "vector": VectorScaling,
    "histogram": HistogramBinning,
    "isotonic": IsotonicCalibration,
}


def make_calibrator(name: str) -> Calibrator:
    """A fresh calibrator by name; an unknown name lists the allowed ones."""
    if name not in CALIBRATORS:
        raise ValueError(f"unknown calibration method {name!r}; allowed methods: {list(CALIBRATORS)}")
    return CALIBRATORS[name]()

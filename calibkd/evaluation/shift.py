"""The robustness suite: corruptions, ambiguous inputs and long tail, behind one
evaluation entry point (brief section 6).

``evaluate_suite(model, data, suite)`` scores a model (or any function from
normalised images to logits) on the clean test split, on every corruption and
severity of ``calibkd.evaluation.corruptions``, on two-image mixtures with soft ground
truth, and on the high-entropy slice of the test set, and returns one tidy
table: a row per (condition, severity, metric).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from calibkd import metrics
from calibkd.data.splits import DataSplits, Split, denormalize, normalize
from calibkd.evaluation.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from calibkd.nn.inference import predict_logits

LogitFn = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------
# corrupted test sets
# ---------------------------------------------------------------------------


def corrupted_split(split: Split, dataset: str, name: str, severity: int, seed: int = 0,
                    batch_size: int = 2048) -> Split:
    """The split with corruption ``name`` at ``severity`` applied (in pixel
    space, then normalised again); seeded, batched to bound memory.

    The result has no ``true_probs``: a corruption destroys information, so
    the clean inputs' true label distributions are no longer the truth of the
    corrupted ones (they would flatter a model that spreads its mass more)."""
    pixels = denormalize(split.images, dataset).clamp(0, 1)
    out = torch.cat([
        corrupt(pixels[i: i + batch_size], name, severity, seed=seed * 7919 + i // batch_size)
        for i in range(0, len(split), batch_size)
    ])
    return Split(normalize(out, dataset), split.labels)


# ---------------------------------------------------------------------------
# ambiguous inputs
# ---------------------------------------------------------------------------


@dataclass
class SoftLabelled:
    """Inputs with a known label distribution per example (rows sum to one)."""

    images: torch.Tensor
    distributions: torch.Tensor

    def __post_init__(self) -> None:
        if self.distributions.ndim != 2 or self.distributions.shape[0] != self.images.shape[0]:
            raise ValueError("distributions must have shape (N, K) matching the images")
        sums = self.distributions.double().sum(1)
        if (self.distributions < 0).any() or not torch.allclose(sums, torch.ones_like(sums), atol=1e-5):
            raise ValueError("each row of distributions must be a probability vector")


def mixtures(split: Split, num_classes: int, lam: float, count: int, seed: int = 0) -> SoftLabelled:
    """``count`` mixtures lam * a + (1 - lam) * b of two test images of
    different classes, with soft ground truth lam on a's class and 1 - lam on
    b's. Mixing normalised images equals mixing pixels (normalisation is affine)."""
    if not 0.0 <= lam <= 1.0 or isinstance(lam, bool):
        raise ValueError(f"mixing weight lam={lam!r} must be in [0, 1]")
    if count < 1:
        raise ValueError(f"count={count} must be at least 1")
    generator = torch.Generator().manual_seed(seed)
    labels = split.labels.cpu()
    first = torch.randint(0, len(split), (count,), generator=generator)
    second = torch.randint(0, len(split), (count,), generator=generator)
    clash = labels[first] == labels[second]
    while clash.any():  # redraw partners of the same class
        second[clash] = torch.randint(0, len(split), (int(clash.sum()),), generator=generator)
        clash = labels[first] == labels[second]
    images = lam * split.images[first.to(split.images.device)] + (1 - lam) * split.images[second.to(split.images.device)]
    truth = torch.zeros(count, num_classes, dtype=torch.float64)
    truth[torch.arange(count), labels[first]] += lam
    truth[torch.arange(count), labels[second]] += 1 - lam
    return SoftLabelled(images, truth)


def soft_label_scores(probs: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """Scores against a known label distribution: cross-entropy (NLL of the soft
    truth), KL(truth || prediction), and total variation; plus how often the
    prediction's top class is the truth's top class."""
    p = probs.double().clamp_min(1e-12)
    t = truth.double()
    cross_entropy = float(-(t * p.log()).sum(1).mean())
    truth_entropy = float(-(t * t.clamp_min(1e-300).log()).sum(1).mean())
    return {
        "soft_nll": cross_entropy,
        "soft_kl": cross_entropy - truth_entropy,
        "soft_tv": float(0.5 * (probs.double() - t).abs().sum(1).mean()),
        "soft_top1_agreement": float((probs.argmax(1) == t.argmax(1)).double().mean()),
    }


def hard_slice(reference_probs: torch.Tensor, fraction: float) -> torch.Tensor:
    """Indices of the ``fraction`` of examples with the highest entropy under a
    reference model (an ensemble or the teacher): the "hard" test subset."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction={fraction!r} must be in (0, 1]")
    keep = max(1, int(round(fraction * reference_probs.shape[0])))
    return torch.argsort(metrics.entropy(reference_probs), descending=True)[:keep]


# ---------------------------------------------------------------------------
# class groups (the long tail's many-, medium- and few-shot classes)
# ---------------------------------------------------------------------------


def group_scores(probs: torch.Tensor, labels: torch.Tensor, groups: dict[str, Sequence[int]]) -> pd.DataFrame:
    """Accuracy, ECE and NLL on the test examples of each class group (tidy)."""
    rows = []
    for group, classes in groups.items():
        if not classes:
            continue
        mask = torch.isin(labels.cpu(), torch.tensor(list(classes)))
        p, y = probs[mask], labels.cpu()[mask]
        for metric, value in (("accuracy", metrics.accuracy(p, y)), ("ece", metrics.ece(p, y)),
                              ("nll", metrics.nll(p, y))):
            rows.append({"group": group, "classes": len(classes), "metric": metric, "value": value})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# the suite
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Suite:
    """What to evaluate. Defaults: every corruption at every severity, mixtures
    at lambda 0.5 and 0.7, the 10 % highest-entropy slice."""

    corruptions: tuple[str, ...] = tuple(CORRUPTIONS)
    severities: tuple[int, ...] = SEVERITIES
    mixture_lambdas: tuple[float, ...] = (0.5, 0.7)
    mixture_count: int = 2000
    hard_fraction: float = 0.1
    #: evaluate on a seeded subset of the test split (None: all of it)
    test_size: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [c for c in self.corruptions if c not in CORRUPTIONS]
        if unknown:
            raise ValueError(f"unknown corruption(s) {unknown}; allowed corruptions: {list(CORRUPTIONS)}")
        bad = [s for s in self.severities if s not in SEVERITIES]
        if bad:
            raise ValueError(f"severities {bad} are outside 1-5")
        for lam in self.mixture_lambdas:
            if not 0.0 <= lam <= 1.0:
                raise ValueError(f"mixing weight {lam} must be in [0, 1]")
        if not 0.0 < self.hard_fraction <= 1.0:
            raise ValueError(f"hard_fraction={self.hard_fraction} must be in (0, 1]")


def as_logit_fn(model: nn.Module | LogitFn, batch_size: int = 512) -> LogitFn:
    """A function from images to CPU logits, from a model or such a function."""
    if isinstance(model, nn.Module):

        return lambda images: predict_logits(model, images, batch_size)
    return model


def _rows(model: str, condition: str, severity: int, scores: dict[str, float]) -> list[dict]:
    return [{"model": model, "condition": condition, "severity": severity, "metric": m, "value": v}
            for m, v in scores.items()]


#: Suffix of the conditions scored after each model's own temperature scaling.
AFTER_TS = " after TS"


def evaluate_suite(models: nn.Module | LogitFn | Mapping[str, nn.Module | LogitFn], data: DataSplits,
                   suite: Suite = Suite(), reference: nn.Module | LogitFn | None = None,
                   progress: bool = False, temperatures: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Score one model, or several (a mapping name -> model), on the clean test
    split and under the whole suite; every corrupted set is built once and
    shared by all models.

    Returns a tidy table with columns model, condition, severity, metric,
    value (severity 0 = clean). Conditions: ``clean``; ``in_distribution``
    (only where ``data.iid_test`` exists: glyphs, whose test fonts are held
    out, are then also scored on new images of the training fonts);
    each corruption name;
    ``corruption_mean`` (mean over the corruptions, per severity);
    ``mixture_<lam>`` (scored against the soft truth); ``hard_slice`` (the
    highest-entropy test examples under ``reference``, the same images for
    every model; under each model itself when no reference is given).

    ``temperatures`` (model name -> its own TS temperature, fitted on
    validation) adds the control of brief section 7: ``clean``, each
    ``mixture_<lam>``, ``hard_slice`` and ``corruption_mean`` (per
    severity) scored again on logits / T, as conditions ending in
    ``AFTER_TS``; a difference that
    disappears there is a confidence level TS would have fixed for free.
    """
    named = dict(models) if isinstance(models, Mapping) else {"model": models}
    logit_fns = {name: as_logit_fn(m) for name, m in named.items()}
    scaled = dict(temperatures or {})
    unknown = sorted(set(scaled) - set(named))
    if unknown:
        raise ValueError(f"temperatures given for models that are not scored: {unknown}")
    test = data.test if suite.test_size is None else data.test.subset(suite.test_size, suite.seed)
    labels = test.labels.cpu()
    rows: list[dict] = []

    def score(name: str, condition: str, severity: int, logits: torch.Tensor, keep: torch.Tensor | None = None,
              soft: torch.Tensor | None = None) -> None:
        """Rows for one model on one input set, and after its TS when it has a temperature."""
        for suffix, t in (("", 1.0), *(((AFTER_TS, scaled[name]),) if name in scaled else ())):
            probs = metrics.softmax(logits, t)
            if soft is not None:
                rows.extend(_rows(name, condition + suffix, severity, soft_label_scores(probs, soft)))
            elif keep is not None:
                rows.extend(_rows(name, condition + suffix, severity, metrics.evaluate(probs[keep], labels[keep])))
            else:
                rows.extend(_rows(name, condition + suffix, severity, metrics.evaluate(probs, labels)))

    clean = {name: fn(test.images) for name, fn in logit_fns.items()}
    for name, logits in clean.items():
        score(name, "clean", 0, logits)
    if data.iid_test is not None:
        seen = data.iid_test if suite.test_size is None else data.iid_test.subset(suite.test_size, suite.seed)
        for name, fn in logit_fns.items():
            rows += _rows(name, "in_distribution", 0, metrics.evaluate(metrics.softmax(fn(seen.images)),
                                                                        seen.labels.cpu()))
    pairs = [(c, s) for c in suite.corruptions for s in suite.severities]
    iterator: Sequence = pairs
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(pairs, desc="corruptions", unit="set")
    for corruption, severity in iterator:
        shifted = corrupted_split(test, data.info.name, corruption, severity, seed=suite.seed)
        for name, fn in logit_fns.items():
            score(name, corruption, severity, fn(shifted.images))
    for lam in suite.mixture_lambdas:
        mixed = mixtures(test, data.info.num_classes, lam, suite.mixture_count, seed=suite.seed)
        for name, fn in logit_fns.items():
            score(name, f"mixture_{lam:g}", 0, fn(mixed.images), soft=mixed.distributions)
    reference_probs = None if reference is None else metrics.softmax(as_logit_fn(reference)(test.images))
    for name, logits in clean.items():
        hard = hard_slice(metrics.softmax(logits) if reference_probs is None else reference_probs, suite.hard_fraction)
        score(name, "hard_slice", 0, logits, keep=hard)
    table = pd.DataFrame(rows)
    for suffix in ("", AFTER_TS):
        shifted_only = table[table.condition.isin([c + suffix for c in suite.corruptions])]
        if not shifted_only.empty:
            mean = shifted_only.groupby(["model", "severity", "metric"], as_index=False)["value"].mean()
            table = pd.concat([table, mean.assign(condition="corruption_mean" + suffix)[table.columns]],
                              ignore_index=True)
    # after TS, only the mean over corruptions is kept: the per-corruption rows would double the table
    return table[~table.condition.isin([c + AFTER_TS for c in suite.corruptions])].reset_index(drop=True)


def natural_shift_summary(table: pd.DataFrame, metrics_shown: Sequence[str] = ("accuracy", "nll", "ece")
                          ) -> pd.DataFrame:
    """Held-out test data as a natural shift, beside the corruption suite: per
    model (rows) and metric, the score on in-distribution inputs
    (``in_distribution``), on the test split (``clean``: for glyphs, held-out
    fonts), the change between them, and the corruption suite's mean over
    corruptions and severities on the test split. ``table`` is
    ``evaluate_suite`` output; empty when it has no ``in_distribution`` rows."""
    shown = table[table.metric.isin(metrics_shown)]

    def by_model(rows: pd.DataFrame) -> pd.DataFrame:
        return rows.pivot_table(index="model", columns="metric", values="value", sort=False)

    parts = {
        "in distribution": by_model(shown[shown.condition == "in_distribution"]),
        "held-out test": by_model(shown[shown.condition == "clean"]),
        "corruptions (mean)": by_model(shown[(shown.condition == "corruption_mean") & (shown.severity > 0)]),
    }
    if parts["in distribution"].empty:
        return pd.DataFrame()
    parts["natural shift (held-out - in distribution)"] = parts["held-out test"] - parts["in distribution"]
    order = ["in distribution", "held-out test", "natural shift (held-out - in distribution)", "corruptions (mean)"]
    wide = pd.concat({k: parts[k] for k in order}, axis=1, names=["inputs", "metric"])
    return wide[[(k, m) for k in order for m in metrics_shown if (k, m) in wide.columns]]


def evaluate_soft(model: nn.Module | LogitFn, dataset: SoftLabelled) -> dict[str, float]:
    """Scores of a model on any inputs with known label distributions."""
    probs = metrics.softmax(as_logit_fn(model)(dataset.images))
    return soft_label_scores(probs, dataset.distributions)


def pooled_corrupted_split(split: Split, dataset: str, severity: int, per_corruption: int,
                           corruptions: Sequence[str] = tuple(CORRUPTIONS), seed: int = 0) -> Split:
    """``per_corruption`` seeded test examples under each corruption at one
    severity, pooled: one shifted set for reliability diagrams."""
    parts = [corrupted_split(split.subset(per_corruption, seed + i), dataset, name, severity, seed)
             for i, name in enumerate(corruptions)]
    return Split(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]))

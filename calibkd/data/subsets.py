"""The training examples a run fits: a seeded subset of the training split,
and seeded long-tailed subsets (CIFAR-LT's profile) with each class's shot
group."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from calibkd.config import TrainConfig
from calibkd.config.design import long_tail_counts  # noqa: F401  (the class sizes; re-exported)
from calibkd.data.splits import DataSplits, Split
from calibkd.errors import ConfigError


@dataclass
class LongTail:
    """A long-tailed training subset and the shot group of every class."""

    split: Split
    class_order: list[int]
    counts: dict[int, int]
    groups: dict[str, list[int]]


#: Shot-group thresholds of CIFAR-100-LT (many > 100, few < 20 images, of at
#: most 500 per class), expressed as fractions of the largest class.
MANY_SHOT_FRACTION = 100 / 500


FEW_SHOT_FRACTION = 20 / 500


def long_tail_subset(split: Split, num_classes: int, imbalance_ratio: float, seed: int = 0) -> LongTail:
    """A seeded long-tailed subset: a seeded class order decides which class is
    largest; each class keeps a seeded sample of its examples."""
    labels = split.labels.cpu()
    per_class = torch.bincount(labels, minlength=num_classes)
    max_count = int(per_class.min())
    if max_count < 1:
        missing = torch.nonzero(per_class == 0).flatten().tolist()
        raise ConfigError(f"a long tail needs every class in the training split, but {len(missing)} of "
                          f"{num_classes} classes have no example (e.g. class {missing[0]}); use a larger split")
    counts_by_rank = long_tail_counts(max_count, num_classes, imbalance_ratio)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(num_classes, generator=generator).tolist()
    counts = {cls: counts_by_rank[rank] for rank, cls in enumerate(order)}
    keep = []
    for cls, n in counts.items():
        members = torch.nonzero(labels == cls).flatten()
        keep.append(members[torch.randperm(len(members), generator=generator)[:n]])
    index = torch.cat(keep).sort().values.to(split.labels.device)
    many = [c for c, n in counts.items() if n > MANY_SHOT_FRACTION * max_count]
    few = [c for c, n in counts.items() if n < FEW_SHOT_FRACTION * max_count]
    medium = [c for c in counts if c not in many and c not in few]
    return LongTail(split.select(index), order, counts,
                    {"many": sorted(many), "medium": sorted(medium), "few": sorted(few)})


def training_examples(data: DataSplits, config: TrainConfig) -> Split:
    """The training split a run uses: all of it, or its seeded ``config.subset``,
    made long-tailed when ``config.long_tail`` asks for it."""
    if config.long_tail is not None:
        return long_tail_of(data, config).split
    return _subset_examples(data, config)


def _subset_examples(data: DataSplits, config: TrainConfig) -> Split:
    return data.train if config.subset is None else data.train.subset(config.subset, config.seed)


def long_tail_of(data: DataSplits, config: TrainConfig) -> LongTail:
    """The long-tailed training set of a run with ``config.long_tail`` and its
    class groups (many, medium, few shot). Seeded by ``config.seed``, so a
    teacher and its students of one seed share it, and the seed also decides
    which classes are in the tail."""
    if config.long_tail is None:
        raise ValueError("this run is not long-tailed (config.long_tail is None)")
    return long_tail_subset(_subset_examples(data, config), data.info.num_classes, config.long_tail, seed=config.seed)

"""One training loop for teachers and students.

SGD with momentum (or AdamW), a per-step cosine or step schedule, weight decay,
batched tensor augmentation, seeded shuffling. After every epoch the model is
scored on a fixed monitor subset of its training data, on the validation split
and on a monitor subset of the test split, so the history shows whether
overconfidence emerges (train NLL falling while test NLL rises). Which epoch's
weights are kept is ``TrainConfig.report_epoch``: the last, or the best on
validation NLL; never chosen on test.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import pandas as pd
import torch
from torch import nn

from calibkd import metrics
from calibkd.config import DatasetInfo, TrainConfig
from calibkd.data.augment import random_crop_flip
from calibkd.data.splits import DataSplits, Split
from calibkd.data.subsets import training_examples
from calibkd.methods.losses import build_loss, mixup_batch
from calibkd.nn.inference import (
    in_layout,
    predict_logits,
    use_fast_layout,
    uses_channels_last,
)
from calibkd.runtime import interactive

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class TrainResult:
    """A trained model, its per-epoch history and the epoch its weights come from."""

    model: nn.Module
    history: pd.DataFrame
    selected_epoch: int
    seconds: float


def _score(model: nn.Module, split: Split) -> dict[str, float]:
    probs = metrics.softmax(predict_logits(model, split.images))
    return {
        "acc": metrics.accuracy(probs, split.labels),
        "nll": metrics.nll(probs, split.labels),
        "ece": metrics.ece(probs, split.labels),
    }


def make_optimizer(model: nn.Module, config: TrainConfig, steps_per_epoch: int
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The optimiser of ``config`` and its per-step schedule: cosine to zero
    over the run, or ``step`` (the learning rate times ``lr_decay`` after
    each epoch listed in ``milestones``, as the CIFAR toolboxes do).

    Weight decay applies to conv and linear weights only, not to batch-norm
    parameters or biases (the usual practice; decaying BN scales only adds
    noise), unless ``decay_all`` (the CIFAR toolboxes' recipe).
    """
    params = list(model.parameters())
    if config.decay_all:
        groups = [{"params": params, "weight_decay": config.weight_decay}]
    else:
        groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": config.weight_decay},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov and config.momentum > 0)
    else:
        optimizer = torch.optim.AdamW(groups, lr=config.lr)
    steps = config.epochs * steps_per_epoch
    if config.schedule == "step":
        def factor(step: int) -> float:
            finished_epochs = step // steps_per_epoch
            return config.lr_decay ** sum(finished_epochs >= m for m in config.milestones)
    else:
        def factor(step: int) -> float:
            return 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class BatchStream:
    """The seeded sequence of training batches of one run, replayable: two
    streams built from the same split, config and device yield identical
    batches (order, crops, flips, mixup), which is what lets a teacher's
    outputs on them be computed once and reused by every student."""

    def __init__(self, train: Split, config: TrainConfig, info: DatasetInfo, device: torch.device) -> None:
        self.train, self.config, self.info = train, config, info
        self.order_rng = torch.Generator().manual_seed(config.seed)
        self.augment_rng = torch.Generator(device=device).manual_seed(config.seed + 3)
        self.mixup_alpha = float(dict(config.loss_params).get("alpha", 0.2)) if config.loss == "mixup" else None

    def epoch(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One epoch of (images, targets, labels); targets are soft under mixup."""
        for images, targets, labels, _ in self.epoch_with_index():
            yield images, targets, labels

    def epoch_with_index(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One epoch of (images, targets, labels, index), where ``index`` says
        which training examples (positions in the run's training split) the
        batch holds: what cross-fitting needs to know which fold each came from."""
        n, batch_size = len(self.train), self.config.batch_size
        order = torch.randperm(n, generator=self.order_rng).to(self.train.labels.device)
        for start in range(0, n, batch_size):
            index = order[start: start + batch_size]
            images, labels = self.train.images[index], self.train.labels[index]
            if self.config.augment:
                images = random_crop_flip(images, self.info.crop_padding, self.info.horizontal_flip,
                                          self.augment_rng)
            targets = labels
            if self.mixup_alpha is not None:
                images, targets = mixup_batch(images, labels, self.info.num_classes, self.mixup_alpha,
                                              self.augment_rng)
            yield images, targets, labels, index


#: A distillation loss hook: (student logits, images, labels, epoch, step) -> loss.
DistillHook = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int, int], torch.Tensor]


def train_model(
    model: nn.Module,
    data: DataSplits,
    config: TrainConfig,
    loss_fn: LossFn | None = None,
    label: str = "model",
    progress: bool | None = None,
    distill: DistillHook | None = None,
) -> TrainResult:
    """Train ``model`` on ``data.train`` (or its seeded ``config.subset``) and
    return it with a per-epoch history table.

    The model is trained on the device its parameters live on; the data must be
    on that device too. Randomness (order, augmentation) comes from generators
    seeded by ``config.seed`` (``BatchStream``). The loss is ``config.loss``
    unless ``loss_fn`` is given; mixup mixes each batch before the forward
    pass; a ``distill`` hook, when given, replaces the loss and also sees the
    batch's images, epoch and step (to look up or compute teacher outputs).
    """
    device = next(model.parameters()).device
    loss_fn = loss_fn or build_loss(config.loss, dict(config.loss_params))
    train = training_examples(data, config)
    monitor_train = train.subset(config.monitor_size, config.seed + 1)
    monitor_test = data.test.subset(config.monitor_size, config.seed + 2)
    channels_last = uses_channels_last(model)
    use_fast_layout(model)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    optimizer, schedule = make_optimizer(model, config, steps_per_epoch)
    stream = BatchStream(train, config, data.info, device)
    show_bars = interactive() if progress is None else progress
    rows: list[dict[str, float]] = []
    best_nll, best_state, best_epoch = math.inf, None, config.epochs
    start = time.perf_counter()

    epochs = range(1, config.epochs + 1)
    if show_bars:
        from tqdm.auto import tqdm

        epochs = tqdm(epochs, desc=label, unit="epoch")
    for epoch in epochs:
        model.train()
        epoch_start = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for step, (images, targets, labels) in enumerate(stream.epoch()):
            images = in_layout(images, channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(images)
            if distill is None:
                loss = loss_fn(logits.float(), targets)
            else:
                loss = distill(logits.float(), images, labels, epoch, step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.detach() * labels.shape[0]
            correct += (logits.detach().argmax(1) == labels).sum()
        row: dict[str, float] = {
            "epoch": epoch,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": float(loss_sum) / len(train),
            "train_batch_acc": float(correct) / len(train),
            "seconds": time.perf_counter() - epoch_start,
        }
        for name, split in (("train", monitor_train), ("val", data.val), ("test", monitor_test)):
            for metric, value in _score(model, split).items():
                row[f"{name}_{metric}"] = value
        rows.append(row)
        if config.report_epoch == "best_val" and row["val_nll"] < best_nll:
            best_nll, best_epoch = row["val_nll"], epoch
            best_state = copy.deepcopy(model.state_dict())
        if show_bars:
            epochs.set_postfix(train_nll=f"{row['train_nll']:.3f}", val_acc=f"{row['val_acc']:.3f}")  # type: ignore[union-attr]
        else:
            print(f"[{label}] epoch {epoch}/{config.epochs}  loss {row['train_loss']:.4f}  "
                  f"train nll {row['train_nll']:.4f}  val acc {row['val_acc']:.4f} nll {row['val_nll']:.4f}  "
                  f"test nll {row['test_nll']:.4f} ece {row['test_ece']:.4f}  ({row['seconds']:.1f}s)", flush=True)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model, pd.DataFrame(rows), best_epoch, time.perf_counter() - start)

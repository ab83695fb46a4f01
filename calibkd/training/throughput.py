"""How fast this device trains and runs one architecture: images/s of a
training step and of inference, measured on synthetic data of a dataset's
shape, the way ``calibkd.training.loop`` and ``calibkd.nn.inference`` run
them (channels-last, bf16 autocast on CUDA, the loop's optimiser, batched
crop and flip). ``calibkd.runs.estimate`` turns these rates into expected
wall times; it starts ``python -m calibkd.training.throughput`` in a process
of its own (the batch machinery sits above the training code, and a fresh
process at the runs' thread count is what a run gets).

    python -m calibkd.training.throughput --shape '{"arch": "resnet8x4", "channels": 3, "image_size": 32,
        "num_classes": 100, "batch_size": 64}' [--device auto] [--threads 2] [--quick]

prints one JSON object: the device, its name, the thread count and one rate
per shape. Nothing is cached or written.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from calibkd.config import TrainConfig
from calibkd.data.augment import random_crop_flip
from calibkd.nn.inference import in_layout, predict_logits, use_fast_layout, uses_channels_last
from calibkd.nn.models import build_model
from calibkd.runtime import resolve_device, set_determinism
from calibkd.training.loop import make_optimizer

#: ``predict_logits``'s batch size: every inference pass of the study runs at it.
INFERENCE_BATCH = 512


@dataclass(frozen=True)
class Shape:
    """One architecture at one batch size on one dataset's image shape."""

    arch: str
    channels: int
    image_size: int
    num_classes: int
    batch_size: int
    kwargs: tuple[tuple[str, int], ...] = field(default=())
    crop_padding: int = 0
    horizontal_flip: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Shape":
        data = dict(data)
        data["kwargs"] = tuple((str(k), int(v)) for k, v in dict(data.get("kwargs", {})).items())
        return cls(**data)

    def label(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in self.kwargs)
        return f"{self.arch}({args})" if args else self.arch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step, device: torch.device, warmup: int, min_seconds: float, max_steps: int) -> tuple[int, float, float]:
    """(steps, wall seconds, CPU seconds of this process) of ``step`` after
    ``warmup`` untimed calls: at least two steps, until ``min_seconds`` have
    passed or ``max_steps`` were run."""
    for _ in range(warmup):
        step()
    _sync(device)
    start, cpu_start, steps = time.perf_counter(), time.process_time(), 0
    while steps < 2 or (time.perf_counter() - start < min_seconds and steps < max_steps):
        step()
        steps += 1
        if device.type == "cuda" and steps % 10 == 0:
            _sync(device)
    _sync(device)
    return steps, time.perf_counter() - start, time.process_time() - cpu_start


def measure(shape: Shape, device: torch.device, quick: bool = False) -> dict[str, Any]:
    """Training and inference images/s of ``shape`` on ``device`` (synthetic data).

    Training: augmentation, forward under the loop's autocast, cross-entropy,
    backward, SGD step and schedule step, as ``train_model`` runs a batch.
    Inference: ``predict_logits`` on ``INFERENCE_BATCH``-image blocks."""
    set_determinism(0)
    model = build_model(shape.arch, shape.channels, shape.num_classes, **dict(shape.kwargs)).to(device)
    channels_last = uses_channels_last(model)
    use_fast_layout(model)
    optimizer, schedule = make_optimizer(model, TrainConfig(batch_size=shape.batch_size), 100)
    generator = torch.Generator(device=device).manual_seed(0)
    size = (shape.channels, shape.image_size, shape.image_size)
    images = torch.rand((shape.batch_size, *size), device=device)
    labels = torch.randint(0, shape.num_classes, (shape.batch_size,), device=device)
    model.train()

    def train_step() -> None:
        batch = random_crop_flip(images, shape.crop_padding, shape.horizontal_flip, generator)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(in_layout(batch, channels_last))
        loss = nn.functional.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()

    budget = 0.5 if quick else 2.0
    train_steps, train_seconds, train_cpu = _timed(train_step, device, warmup=1 if quick else 3, min_seconds=budget,
                                        max_steps=10 if quick else 200)
    block = torch.rand((INFERENCE_BATCH if not quick else min(INFERENCE_BATCH, 4 * shape.batch_size), *size),
                       device=device)
    infer_steps, infer_seconds, infer_cpu = _timed(lambda: predict_logits(model, block), device, warmup=1,
                                        min_seconds=budget / 2, max_steps=5 if quick else 100)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2 ** 20
    else:
        peak = None
    return {
        "shape": {**asdict(shape), "kwargs": dict(shape.kwargs)}, "label": shape.label(),
        "train_images_per_s": train_steps * shape.batch_size / train_seconds,
        "infer_images_per_s": infer_steps * len(block) / infer_seconds,
        "train_steps_timed": train_steps, "infer_blocks_timed": infer_steps, "peak_memory_mb": peak,
        # on CPU: the share of its threads' time the measurement got (low when other jobs share the cores)
        "cpu_share": None if device.type == "cuda" else min(1.0, (train_cpu + infer_cpu) / (
            (train_seconds + infer_seconds) * min(torch.get_num_threads(), _cores()))),
    }


def _cores() -> int:
    """The cores this process may run on (more threads than that cannot use more)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name and core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            name = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name} ({os.cpu_count()} cores)"


def measure_all(shapes: Sequence[Shape], device: str = "auto", threads: int | None = None,
                quick: bool = False) -> dict[str, Any]:
    """Every shape's rates on ``device`` at ``threads`` CPU threads, with the device's name."""
    resolved = resolve_device(device)
    if threads is not None:
        torch.set_num_threads(threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    rates = [measure(shape, resolved, quick) for shape in shapes]
    return {"device": str(resolved), "device_name": device_name(resolved), "threads": torch.get_num_threads(),
            "load_average": load, "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "quick": quick, "autocast": "bf16" if resolved.type == "cuda" else None,
            "rates": rates, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "inference_batch": INFERENCE_BATCH}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m calibkd.training.throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", action="append", required=True, help="a Shape as JSON (repeatable)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="fewer timed steps (a rough figure in a second or two)")
    args = parser.parse_args(argv)
    shapes = [Shape.from_dict(json.loads(text)) for text in args.shape]
    report = measure_all(shapes, args.device, args.threads, args.quick)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

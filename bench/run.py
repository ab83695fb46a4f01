"""calibkd's benchmark: how fast the study's loops are, against plain PyTorch
and against what the machine allows. ``python bench/run.py --help``.

Measured in one run, side by side, on the default teacher and student (or,
with ``--preset gpu``, CIFAR-100-shaped synthetic tensors and the ``full``
profile's models, so no download is needed):

1. training throughput (images/s) of calibkd's loop against a plain PyTorch
   loop (a ``Dataset`` with torchvision per-sample transforms in a
   ``DataLoader``), same model, data and batch size;
2. the student stage: each distillation method with shared teacher logits,
   against the student on labels alone (the floor) and against computing
   the teacher on every step; the one-off teacher pass separately;
3. achieved FLOP/s of a training step (``torch.utils.flop_counter``) against
   a large ``torch.mm`` timed in the same run;
4. peak memory (RSS on CPU; ``torch.cuda.max_memory_allocated`` on GPU);
5. with ``--omp``: the training loop under ``OMP_WAIT_POLICY`` ACTIVE and
   PASSIVE, idle and with one competing process;
6. the default study's wall time (``--study`` runs it from an empty model
   cache; otherwise the latest committed run's provenance is reported).

It prints a table and writes JSON with the hardware and versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calibkd.config import DistillMethod, SplitConfig, get_profile  # noqa: E402
from calibkd.data.splits import DataSplits, RawDataset, make_splits  # noqa: E402
from calibkd.methods import distill  # noqa: E402
from calibkd.methods.calibration import make_calibrator  # noqa: E402
from calibkd.nn.inference import predict_logits
from calibkd.nn.models import build_model  # noqa: E402
from calibkd.runtime import set_determinism  # noqa: E402
from calibkd.study.runner import kernel_environment  # noqa: E402
from calibkd.training.loop import train_model  # noqa: E402
from calibkd.training.students import train_student  # noqa: E402
from calibkd.training.teacher_logits import TeacherLogits  # noqa: E402

RESULTS = ROOT / "bench" / "results"


# ---------------------------------------------------------------------------
# data and models of a preset
# ---------------------------------------------------------------------------


def synthetic_cifar100(train: int, test: int, seed: int = 0) -> RawDataset:
    """CIFAR-100-shaped uint8 tensors (3x32x32, 100 classes): throughput needs no real data."""
    g = torch.Generator().manual_seed(seed)
    return RawDataset(
        torch.randint(0, 256, (train, 3, 32, 32), dtype=torch.uint8, generator=g),
        torch.randint(0, 100, (train,), generator=g),
        torch.randint(0, 256, (test, 3, 32, 32), dtype=torch.uint8, generator=g),
        torch.randint(0, 100, (test,), generator=g),
        "synthetic CIFAR-100-shaped tensors")


def preset(name: str, quick: bool, device: torch.device) -> tuple[DataSplits, Any, Any, int]:
    """(data, teacher recipe, student recipe, training examples per measurement)."""
    if name == "cpu":
        profile = get_profile("default")
        split = SplitConfig(val_size=500, train_size=2_000 if quick else 20_000, test_size=500)
        data = make_splits(split, None, device)
    else:
        profile = get_profile("full")
        size = 2_000 if quick else 45_000
        data = make_splits(SplitConfig(dataset="cifar100", val_size=500, train_size=size, test_size=500),
                           raw=synthetic_cifar100(size + 500, 500), device=device)
    teacher, student = profile.teacher_recipes["default"], profile.student
    if quick:
        teacher = replace(teacher, model=replace(teacher.model, kwargs=(("width", 8), ("stem_stride", 2))))
        student = replace(student, model=replace(student.model, kwargs=(("width", 4),)))
    return data, teacher, student, len(data.train)


def build(recipe: Any, data: DataSplits, device: torch.device, seed: int = 0) -> nn.Module:
    set_determinism(seed)
    return build_model(recipe.model.arch, data.info.channels, data.info.num_classes,
                       **recipe.model.arguments).to(device)


# ---------------------------------------------------------------------------
# 1. calibkd's loop against a plain PyTorch loop
# ---------------------------------------------------------------------------


def calibkd_throughput(recipe: Any, data: DataSplits, device: torch.device, epochs: int = 2,
                       compile_model: bool = False) -> tuple[float, float]:
    """Images/s of ``train_model`` in its last epoch (training steps only: the
    per-epoch evaluation is timed apart by the loop itself), and the extra
    seconds of the first epoch (compilation, warm-up)."""
    config = replace(recipe.train, epochs=epochs, monitor_size=100)
    model = build(recipe, data, device)
    if compile_model:
        model = torch.compile(model)
    seconds = train_model(model, data, config, progress=False).history["seconds"]
    return len(data.train) / float(seconds.iloc[-1]), float(seconds.iloc[0] - seconds.iloc[-1])


class PerSampleDataset(torch.utils.data.Dataset):
    """The torchvision tutorial's way: one image at a time through per-sample transforms."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, padding: int, flip: bool) -> None:
        from torchvision.transforms import v2

        self.images, self.labels = images.cpu(), labels.cpu()
        size = images.shape[-1]
        steps = [v2.RandomCrop(size, padding=padding)]
        if flip:
            steps.append(v2.RandomHorizontalFlip())
        self.transform = v2.Compose(steps)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[index]), self.labels[index]


def plain_throughput(recipe: Any, data: DataSplits, device: torch.device, num_workers: int, epochs: int = 2) -> float:
    """Images/s of a plain loop: DataLoader + per-sample transforms, SGD, CE; last epoch timed."""
    model = build(recipe, data, device).train()
    config = recipe.train
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    dataset = PerSampleDataset(data.train.images, data.train.labels, data.info.crop_padding,
                               data.info.horizontal_flip)
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, shuffle=True,
                                         num_workers=num_workers, pin_memory=device.type == "cuda",
                                         persistent_workers=num_workers > 0)
    seconds = 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        for images, labels in loader:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            loss = nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return len(dataset) / seconds


# ---------------------------------------------------------------------------
# 2. the student stage
# ---------------------------------------------------------------------------


STAGE_METHODS: dict[str, DistillMethod] = {
    "kd": DistillMethod("kd"),
    "dkd": DistillMethod("dkd"),
    "wclip (CUD)": DistillMethod("target", wclip=True),
    "kd_ts": DistillMethod("target"),
    "cudp": DistillMethod("target", cudp=True),
}


def _train_seconds(result: Any) -> float:
    return float(result.history["seconds"].sum())


def student_stage(teacher_recipe: Any, student_recipe: Any, data: DataSplits, device: torch.device,
                  epochs: int, repeats: int) -> dict[str, Any]:
    """Training seconds of the student per method, shared teacher logits vs
    labels alone vs the teacher computed on every step (median of ``repeats``)."""
    teacher = build(teacher_recipe, data, device, seed=1).eval()
    config = replace(student_recipe.train, epochs=epochs, monitor_size=100)
    start = time.perf_counter()
    logits = TeacherLogits(teacher, "bench-teacher", data, config, device)
    teacher_pass = time.perf_counter() - start
    with warnings.catch_warnings():  # an untrained teacher's temperature sits on the search bound: irrelevant to timing
        warnings.simplefilter("ignore")
        calibrator = make_calibrator("temperature").fit(predict_logits(teacher, data.val.images), data.val.labels)

    def timed(run: Callable[[], Any]) -> float:
        return statistics.median(_train_seconds(run()) for _ in range(repeats))

    labels_only = timed(lambda: train_student(build(student_recipe, data, device), data, config,
                                              DistillMethod("ce"), progress=False))
    rows = {}
    for name, method in STAGE_METHODS.items():
        needs_map = method.kind == "target" and (method.cudp or not method.wclip)
        seconds = timed(lambda: train_student(build(student_recipe, data, device), data, config, method, logits,
                                              "bench-teacher", calibrator if needs_map else None, progress=False))
        rows[name] = {"seconds": seconds, "overhead_vs_labels_only": seconds / labels_only - 1}

    def on_the_fly(student: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, epoch: int, step: int):
        with torch.no_grad():
            teacher_logits = teacher(images).float()
        return distill.kd_loss(student, teacher_logits, labels)

    every_step = timed(lambda: train_model(build(student_recipe, data, device), data, config, progress=False,
                                           distill=on_the_fly))
    kd = rows["kd"]["seconds"]
    return {
        "epochs": epochs, "train_examples": len(data.train), "repeats": repeats,
        "labels_only_seconds": labels_only,
        "teacher_pass_seconds": teacher_pass,
        "methods": rows,
        "kd_teacher_every_step_seconds": every_step,
        "kd_shared_vs_every_step": kd / every_step,
        "max_overhead_vs_labels_only": max(r["overhead_vs_labels_only"] for r in rows.values()),
    }


# ---------------------------------------------------------------------------
# 3. FLOPs against the measured matmul peak; 4. memory
# ---------------------------------------------------------------------------


def training_step_flops(recipe: Any, data: DataSplits, device: torch.device) -> float:
    """FLOPs of one forward + backward pass on one batch, counted by torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build(recipe, data, device).train()
    images = data.train.images[: recipe.train.batch_size]
    labels = data.train.labels[: recipe.train.batch_size]
    counter = FlopCounterMode(display=False)
    with counter:
        nn.functional.cross_entropy(model(images), labels).backward()
    return float(counter.get_total_flops())


def matmul_peak(device: torch.device, n: int = 3072, repeats: int = 5, trials: int = 3) -> float:
    """FLOP/s of a large float32 (CPU) or bf16 (GPU) ``torch.mm``, best of
    ``trials``: the practical peak of this machine at this thread count."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    torch.mm(a, b)
    best = 0.0
    for _ in range(trials):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * n ** 3 * repeats / (time.perf_counter() - start))
    return best


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ---------------------------------------------------------------------------
# 5. OpenMP wait policy, idle and with a competing process
# ---------------------------------------------------------------------------

#: a second job of the same kind: a 2-thread torch process (two studies on one 2-core machine)
_COMPETITOR = ("import torch\ntorch.set_num_threads(2)\na = torch.randn(800, 800)\n"
               "while True:\n    a = torch.tanh(a @ a / 800)\n")


def omp_policies(quick: bool) -> dict[str, float]:
    """Teacher-loop images/s in a fresh process per OMP_WAIT_POLICY, idle and with one competitor."""
    out = {}
    for competing in (False, True):
        for policy in ("ACTIVE", "PASSIVE"):
            env = dict(os.environ, OMP_WAIT_POLICY=policy)  # the competitor runs under the same policy
            competitor = subprocess.Popen([sys.executable, "-c", _COMPETITOR], env=env) if competing else None
            try:
                cmd = [sys.executable, str(Path(__file__)), "--only-throughput"] + (["--quick"] if quick else [])
                text = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
                out[f"{policy.lower()}{', one competing 2-thread process' if competing else ', idle'}"] = float(
                    text.strip().splitlines()[-1])
            finally:
                if competitor is not None:
                    competitor.kill()
                    competitor.wait()
    return out


# ---------------------------------------------------------------------------
# 6. the study's wall time
# ---------------------------------------------------------------------------


def study_seconds(run: bool) -> dict[str, Any]:
    """Run the default study from an empty model cache (``run``), or report the
    latest committed run's provenance (models then came from the cache)."""
    if run:
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, CALIBKD_CACHE=str(Path(tmp) / "cache"))
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "calibkd.study.runner", "--output", str(Path(tmp) / "out")],
                           env=env, check=True, cwd=ROOT)
            seconds = time.perf_counter() - start
            record = json.loads(next((Path(tmp) / "out").glob("*/provenance.json")).read_text())
            return {"seconds": seconds, "per_notebook": record["seconds"],
                    "kernel_omp_wait_policy": kernel_environment()["OMP_WAIT_POLICY"],
                    "how": "measured now, empty model cache"}
    runs = sorted((ROOT / "papermill_runs" / "study").glob("default-*/provenance.json"),
                  key=lambda p: p.stat().st_mtime)
    if not runs:
        return {"seconds": None, "how": "no committed study run"}
    record = json.loads(runs[-1].read_text())
    return {"seconds": record["total_seconds"], "per_notebook": record["seconds"],
            "how": f"provenance of {runs[-1].parent.name} (models from the cache)"}


# ---------------------------------------------------------------------------


def hardware(device: torch.device) -> dict[str, Any]:
    info = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"), "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, not the machine")
    parser.add_argument("--omp", action="store_true", help="also measure OMP_WAIT_POLICY idle and under load")
    parser.add_argument("--study", action="store_true", help="run the default study from an empty cache (long)")
    parser.add_argument("--compile", action="store_true", help="also measure the loop with torch.compile")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the plain loop")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default bench/results/<preset>-<device>.json)")
    parser.add_argument("--only-throughput", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    set_determinism(0, args.threads)
    data, teacher, student, n = preset(args.preset, args.quick, device)
    if args.only_throughput:
        print(calibkd_throughput(teacher, data, device)[0])
        return 0

    report: dict[str, Any] = {"preset": args.preset, "quick": args.quick, "hardware": hardware(device),
                              "train_examples": n}
    loops = {}
    for role, recipe in (("teacher", teacher), ("student", student)):
        ours, _ = calibkd_throughput(recipe, data, device)
        plain = plain_throughput(recipe, data, device, args.workers)
        flops = training_step_flops(recipe, data, device)
        loops[role] = {"arch": recipe.model.arch, "kwargs": dict(recipe.model.kwargs),
                       "batch_size": recipe.train.batch_size,
                       "calibkd_images_per_s": ours, "plain_images_per_s": plain, "ratio": ours / plain,
                       "flops_per_step": flops,
                       "achieved_flops_per_s": flops * ours / recipe.train.batch_size}
        if args.compile:
            compiled, first_epoch_extra = calibkd_throughput(recipe, data, device, compile_model=True)
            loops[role]["compiled_images_per_s"] = compiled
            loops[role]["compile_first_epoch_extra_seconds"] = first_epoch_extra
    peak = matmul_peak(device)
    for entry in loops.values():
        entry["percent_of_matmul_peak"] = 100 * entry["achieved_flops_per_s"] / peak
    report["loops"] = loops
    report["matmul_peak_flops_per_s"] = peak
    report["student_stage"] = student_stage(teacher, student, data, device, epochs=1 if args.quick else 2,
                                            repeats=1 if args.quick else 3)
    report["peak_memory_mb"] = peak_memory_mb(device)
    if args.omp:
        report["omp_wait_policy_images_per_s"] = omp_policies(args.quick)
    report["study"] = study_seconds(args.study)

    print(format_table(report))
    out = args.out or RESULTS / f"{args.preset}-{device.type}{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


def format_table(report: dict[str, Any]) -> str:
    """The report as a short plain-text table."""
    lines = [f"preset {report['preset']} on {report['hardware']['device']} "
             f"({report['hardware']['threads']} threads, OMP_WAIT_POLICY {report['hardware']['omp_wait_policy']})"]
    for role, e in report["loops"].items():
        lines.append(f"{role:8s} calibkd {e['calibkd_images_per_s']:9.0f} img/s | plain {e['plain_images_per_s']:9.0f} "
                     f"img/s | ratio {e['ratio']:.2f}x | {e['percent_of_matmul_peak']:.1f} % of matmul peak")
        if "compiled_images_per_s" in e:
            lines.append(f"{'':8s} torch.compile {e['compiled_images_per_s']:9.0f} img/s "
                         f"(first epoch +{e['compile_first_epoch_extra_seconds']:.0f}s)")
    s = report["student_stage"]
    lines.append(f"student stage ({s['epochs']} epochs on {s['train_examples']} images): labels only "
                 f"{s['labels_only_seconds']:.2f}s; one-off teacher pass {s['teacher_pass_seconds']:.2f}s")
    for name, row in s["methods"].items():
        lines.append(f"  {name:12s} {row['seconds']:.2f}s  overhead {100 * row['overhead_vs_labels_only']:+.1f} %")
    lines.append(f"  KD with the teacher on every step {s['kd_teacher_every_step_seconds']:.2f}s; "
                 f"shared / every step = {s['kd_shared_vs_every_step']:.2f}")
    lines.append(f"peak memory {report['peak_memory_mb']:.0f} MB; matmul peak "
                 f"{report['matmul_peak_flops_per_s'] / 1e9:.1f} GFLOP/s")
    for name, value in report.get("omp_wait_policy_images_per_s", {}).items():
        lines.append(f"teacher loop, OMP_WAIT_POLICY {name}: {value:.0f} img/s")
    study = report["study"]
    if study["seconds"] is not None:
        lines.append(f"default study: {study['seconds']:.0f}s ({study['how']})")
        for name, seconds in study.get("per_notebook", {}).items():
            lines.append(f"  {name}: {seconds:.0f}s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

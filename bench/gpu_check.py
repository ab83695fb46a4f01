"""The prepared GPU check: what one GPU does with the study's CIFAR-100 path,
in a few minutes, written as one JSON file. ``python bench/gpu_check.py --help``.

On a GPU machine it

1. runs the benchmark's GPU preset (``bench/run.py --preset gpu``, in a
   process of its own, with a time limit; ``--bench-quick`` for its tiny sizes);
2. trains one epoch of the reference pair of the ``cifar100`` profile with
   calibkd's own code: the resnet32x4 teacher (``training.loop.train_model``,
   the profile's recipe), its logits on the student's batch stream
   (``training.teacher_logits.TeacherLogits``) and the resnet8x4 student by
   KD (``training.students.train_student``), on synthetic CIFAR-100-shaped
   data (45,000 training, 5,000 validation and 10,000 test images of
   uniform random bytes, as the profile splits CIFAR-100): seconds,
   images/s and peak memory of each step;
3. estimates ``papermill_runs/cifar100-gpu`` on this device
   (``calibkd.runs.estimate``);

and writes ``bench/results/gpu-check-<device name>.json`` with the device,
torch and CUDA versions. ``--tiny`` runs the same path on two batches of 8 (16
training images) and the benchmark at its quick size, which is how the
tests check it on a CPU; nothing here needs a GPU to run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calibkd.config import DistillMethod, get_profile  # noqa: E402
from calibkd.data.splits import make_splits  # noqa: E402
from calibkd.runtime import resolve_device, set_determinism  # noqa: E402
from calibkd.training.loop import train_model  # noqa: E402
from calibkd.training.students import train_student  # noqa: E402
from calibkd.training.teacher_logits import TeacherLogits  # noqa: E402

RESULTS = ROOT / "bench" / "results"
#: The reference pair's profile and the GPU batch this check estimates.
PROFILE, BATCH = "cifar100", "cifar100-gpu"
#: Full size: CIFAR-100's 50,000 training images (5,000 of them validation) and 10,000 test images.
FULL_SIZES = {"train": 45_000, "val": 5_000, "test": 10_000}
#: --tiny: two batches of 8 (the recipe's batch of 64 cut, so that a CPU runs resnet32x4 in seconds).
TINY_SIZES = {"train": 16, "val": 16, "test": 16}
TINY_BATCH = 8


def load_bench() -> Any:
    """``bench/run.py`` as a module (its synthetic data, model builder, memory and hardware readers)."""
    spec = importlib.util.spec_from_file_location("calibkd_bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _timed(device: torch.device, work: Callable[[], Any]) -> tuple[Any, float]:
    _sync(device)
    start = time.perf_counter()
    result = work()
    _sync(device)
    return result, time.perf_counter() - start


def reference_pair_epoch(device: torch.device, sizes: dict[str, int], bench: Any,
                         batch_size: int | None = None) -> dict[str, Any]:
    """One epoch of the ``cifar100`` teacher, its logit pass and one KD epoch
    of its student, on synthetic CIFAR-100-shaped data, with calibkd's loop
    (at the profile's batch size unless ``batch_size`` is given)."""
    profile = get_profile(PROFILE, "cifar100")
    split = replace(profile.split, val_size=sizes["val"], train_size=sizes["train"], test_size=sizes["test"])
    raw = bench.synthetic_cifar100(sizes["train"] + sizes["val"], sizes["test"])
    data, load_seconds = _timed(device, lambda: make_splits(split, raw=raw, device=device))
    out: dict[str, Any] = {"profile": PROFILE, "data": "synthetic CIFAR-100-shaped uint8 images, uniform bytes",
                           "train_examples": len(data.train), "val_examples": len(data.val),
                           "test_examples": len(data.test), "data_to_device_seconds": load_seconds}

    def one_epoch(train: Any) -> Any:
        return replace(train, epochs=1, milestones=(), monitor_size=min(train.monitor_size, sizes["test"]),
                       batch_size=batch_size or train.batch_size)

    teacher_recipe, student_recipe = profile.teacher_recipes["default"], profile.student
    teacher_config, student_config = one_epoch(teacher_recipe.train), one_epoch(student_recipe.train)
    _reset_peak(device)
    teacher = bench.build(teacher_recipe, data, device, seed=0)
    result, total = _timed(device, lambda: train_model(teacher, data, teacher_config, label="teacher", progress=False))
    out["teacher"] = _step_record(teacher_recipe, teacher_config, result, total, len(data.train), device)

    _reset_peak(device)
    logits, seconds = _timed(device, lambda: TeacherLogits(result.model, "gpu-check-teacher", data, student_config,
                                                           device))
    out["teacher_logit_pass"] = {"seconds": seconds, "images_per_s": len(data.train) / seconds,
                                 "megabytes": logits.nbytes() / 2 ** 20, "peak_memory_mb": _peak(device)}

    _reset_peak(device)
    student = bench.build(student_recipe, data, device, seed=0)
    kd = DistillMethod("kd")
    trained, total = _timed(device, lambda: train_student(student, data, student_config, kd, logits,
                                                          "gpu-check-teacher", progress=False))
    out["student_kd"] = _step_record(student_recipe, student_config, trained, total, len(data.train), device)
    return out


def _peak(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None


def _step_record(recipe: Any, config: Any, result: Any, total: float, n: int, device: torch.device) -> dict[str, Any]:
    train_seconds = float(result.history["seconds"].iloc[0])
    return {"arch": recipe.model.arch, "batch_size": config.batch_size, "epoch_seconds": train_seconds,
            "images_per_s": n / train_seconds, "evaluation_seconds": total - train_seconds,
            "total_seconds": total, "peak_memory_mb": _peak(device)}


def run_benchmark(device: torch.device, quick: bool, timeout: float) -> dict[str, Any]:
    """``bench/run.py --preset gpu`` in a process of its own: its JSON, or why there is none."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        command = [sys.executable, str(ROOT / "bench" / "run.py"), "--preset", "gpu", "--device", device.type,
                   "--out", str(out)] + (["--quick"] if quick else [])
        start = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        except subprocess.TimeoutExpired:
            return {"error": f"did not finish within {timeout:.0f}s", "command": command[1:]}
        seconds = time.perf_counter() - start
        if done.returncode != 0 or not out.is_file():
            return {"error": (done.stderr.strip().splitlines() or ["(no output)"])[-1], "command": command[1:],
                    "seconds": seconds}
        return {"seconds": seconds, "quick": quick, "report": json.loads(out.read_text()), "table": done.stdout}


def run_estimate(device: torch.device, quick: bool) -> dict[str, Any]:
    """``python -m calibkd.runs estimate cifar100-gpu`` on this device: the report and its text, or the error."""
    from calibkd.errors import ConfigError
    from calibkd.runs.estimate import estimate_batch, format_estimate

    try:
        report = estimate_batch(BATCH, device=device.type, quick=quick)
    except ConfigError as error:
        return {"error": str(error)}
    return {"report": report, "text": format_estimate(report)}


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower() or "device"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--tiny", action="store_true", help="two batches and the benchmark's quick size: checks "
                        "the script (the tests run it on a CPU), not the machine")
    parser.add_argument("--train-size", type=int, default=None,
                        help=f"training images of the reference-pair epoch (default {FULL_SIZES['train']:,})")
    parser.add_argument("--bench-quick", action="store_true", help="the benchmark at its quick size")
    parser.add_argument("--bench-timeout", type=float, default=240.0, help="seconds the benchmark may take")
    parser.add_argument("--skip-bench", action="store_true", help="leave the benchmark out")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default %(default)s)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default bench/results/gpu-check-<device name>[-tiny].json)")
    args = parser.parse_args(argv)
    if args.train_size is not None and args.train_size < 1:
        parser.error(f"--train-size {args.train_size}: must be at least 1")
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    set_determinism(0, args.threads)
    bench = load_bench()
    sizes = dict(TINY_SIZES if args.tiny else FULL_SIZES)
    if args.train_size is not None:
        sizes["train"] = args.train_size
    hardware = bench.hardware(device)
    hardware["cuda"] = torch.version.cuda
    name = hardware.get("gpu") or f"cpu-{hardware['cpu_count']}-cores"
    start = time.perf_counter()
    report: dict[str, Any] = {"tiny": args.tiny, "sizes": sizes, "hardware": hardware,
                              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    report["benchmark"] = ({"skipped": True} if args.skip_bench
                           else run_benchmark(device, args.tiny or args.bench_quick, args.bench_timeout))
    report["reference_pair"] = reference_pair_epoch(device, sizes, bench, TINY_BATCH if args.tiny else None)
    report["estimate"] = run_estimate(device, quick=args.tiny)
    report["peak_memory_mb"] = bench.peak_memory_mb(device)
    report["seconds"] = time.perf_counter() - start

    print(format_report(report))
    out = args.out or RESULTS / f"gpu-check-{slug(name)}{'-tiny' if args.tiny else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.partial")
    temporary.write_text(json.dumps(report, indent=1) + "\n")
    temporary.replace(out)
    print(f"wrote {out}")
    return 0


def format_report(report: dict[str, Any]) -> str:
    """The check as a few lines of text."""
    hw = report["hardware"]
    lines = [f"GPU check on {hw.get('gpu') or hw['device']} (torch {hw['torch']}, CUDA {hw['cuda']}); "
             f"{report['seconds']:.0f}s in all" + (" [--tiny]" if report["tiny"] else "")]
    bench = report["benchmark"]
    if "report" in bench:
        lines.append(f"benchmark, GPU preset ({'quick, ' if bench['quick'] else ''}{bench['seconds']:.0f}s):")
        lines += ["  " + line for line in bench["table"].strip().splitlines() if not line.startswith("wrote ")]
    else:
        lines.append(f"benchmark: {bench.get('error') or 'skipped'}")
    pair = report["reference_pair"]
    lines.append(f"reference pair, one epoch on {pair['train_examples']:,} synthetic CIFAR-100 images:")
    for role in ("teacher", "student_kd"):
        step = pair[role]
        memory = f", peak {step['peak_memory_mb']:,.0f} MB" if step["peak_memory_mb"] is not None else ""
        lines.append(f"  {role:<10} {step['arch']:<11} {step['epoch_seconds']:7.1f}s training "
                     f"({step['images_per_s']:,.0f} img/s) + {step['evaluation_seconds']:.1f}s evaluation{memory}")
    passed = pair["teacher_logit_pass"]
    lines.append(f"  teacher logit pass {passed['seconds']:.1f}s ({passed['images_per_s']:,.0f} img/s)")
    estimate = report["estimate"]
    lines.append(estimate.get("text") or f"estimate of {BATCH}: {estimate['error']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

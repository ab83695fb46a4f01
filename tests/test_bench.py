"""The benchmark script runs end to end (tiny sizes; it checks the script,
not the machine: no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json

from calibkd.paths import PROJECT_ROOT


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_run", PROJECT_ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_gpu_preset_runs_on_cpu_with_synthetic_data(tmp_path, capsys):
    bench = load_bench()
    out = tmp_path / "bench.json"
    assert bench.main(["--preset", "gpu", "--quick", "--device", "cpu", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["loops"]) == {"teacher", "student"}
    for entry in report["loops"].values():
        assert entry["calibkd_images_per_s"] > 0 and entry["plain_images_per_s"] > 0
        assert entry["flops_per_step"] > 0 and 0 < entry["percent_of_matmul_peak"]
    stage = report["student_stage"]
    assert set(stage["methods"]) == set(bench.STAGE_METHODS)
    assert stage["teacher_pass_seconds"] > 0 and stage["kd_teacher_every_step_seconds"] > 0
    assert report["hardware"]["torch"] and report["peak_memory_mb"] > 0
    assert "ratio" in capsys.readouterr().out


def test_synthetic_data_is_cifar100_shaped():
    raw = load_bench().synthetic_cifar100(10, 4)
    assert tuple(raw.train_images.shape) == (10, 3, 32, 32) and int(raw.train_labels.max()) < 100


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("bench_gpu_check", PROJECT_ROOT / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_runs_tiny_on_cpu_and_writes_json(tmp_path, monkeypatch, capsys):
    """The prepared GPU check at --tiny on a CPU: the reference pair's epoch
    through calibkd's loop, the estimate and the JSON. The benchmark itself
    runs in its own test above; here its command is checked, not re-run."""
    from calibkd.runs import estimate

    check = load_gpu_check()
    commands = []

    def fake_benchmark(device, quick, timeout):
        commands.append((device.type, quick))
        return {"error": "not run in this test"}

    def fixed_rates(shapes, device, threads, quick):
        return {"device": device, "device_name": "stub", "threads": threads, "torch": "-",
                "rates": [{"shape": s, "label": s["arch"], "train_images_per_s": 1e3, "infer_images_per_s": 4e3}
                          for s in shapes]}

    monkeypatch.setattr(check, "run_benchmark", fake_benchmark)
    monkeypatch.setattr(estimate, "measure_throughput", fixed_rates)
    out = tmp_path / "check.json"
    assert check.main(["--tiny", "--device", "cpu", "--out", str(out)]) == 0
    assert commands == [("cpu", True)]  # the benchmark at its quick size with --tiny
    report = json.loads(out.read_text())
    pair = report["reference_pair"]
    assert (pair["teacher"]["arch"], pair["student_kd"]["arch"]) == ("resnet32x4", "resnet8x4")
    assert pair["train_examples"] == check.TINY_SIZES["train"]
    for step in (pair["teacher"], pair["student_kd"], pair["teacher_logit_pass"]):
        assert step["seconds" if "seconds" in step else "epoch_seconds"] > 0 and step["images_per_s"] > 0
    assert report["hardware"]["torch"] and report["hardware"]["device"] == "cpu"
    if (PROJECT_ROOT / "papermill_runs" / check.BATCH / "batch.yaml").is_file():
        assert report["estimate"]["report"]["total_seconds"] > 0
    else:
        assert check.BATCH in report["estimate"]["error"]
    assert "reference pair, one epoch" in capsys.readouterr().out


def test_gpu_check_benchmark_command(monkeypatch):
    import subprocess
    import torch

    check = load_gpu_check()
    seen = {}

    def fake_run(command, **kwargs):
        seen["command"], seen["timeout"] = command, kwargs["timeout"]
        raise subprocess.TimeoutExpired(command, kwargs["timeout"])

    monkeypatch.setattr(check.subprocess, "run", fake_run)
    result = check.run_benchmark(torch.device("cpu"), quick=False, timeout=12)
    assert seen["command"][1].endswith("bench/run.py") and seen["command"][2:6] == ["--preset", "gpu", "--device", "cpu"]
    assert "--quick" not in seen["command"] and seen["timeout"] == 12
    assert "within 12s" in result["error"]

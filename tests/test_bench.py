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

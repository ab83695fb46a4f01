"""The GPU path without a GPU: chapter 04 through papermill on the
``cifar100_smoke`` profile (the reference pair, resnet32x4 -> resnet8x4, the
benchmark recipe and schedule, one epoch of two batches) on CIFAR-100-shaped
files in torchvision's on-disk format, on CPU, with the GPU batch's methods;
and the GPU batch itself validates."""

from __future__ import annotations

import papermill
import pandas as pd
import pytest

from calibkd.runs.batches import load_batch
from calibkd.study.runner import NOTEBOOK_DIR
from conftest import write_cifar

GPU_BATCH_METHODS = ["ce", "kd", "kd_ts", "dkd", "cud", "cudp"]


@pytest.mark.notebooks
def test_chapter_04_runs_the_cifar100_path_on_cifar_shaped_files(tmp_path):
    root = write_cifar(tmp_path / "data", "cifar100", n_train=300, n_test=100)
    papermill.execute_notebook(
        str(NOTEBOOK_DIR / "04_student_distillation.ipynb"), str(tmp_path / "out.ipynb"),
        parameters={"profile": "cifar100_smoke", "dataset": "cifar100", "data_root": str(root),
                    "regimes": ["default"], "student_methods": GPU_BATCH_METHODS, "central_methods": ["ce", "kd"],
                    "shift_test_size": 100, "device": "cpu", "num_threads": 2, "output_dir": str(tmp_path / "out")},
        kernel_name="python3", progress_bar=False, cwd=str(NOTEBOOK_DIR),
    )
    metrics = pd.read_csv(tmp_path / "out" / "metrics_04.csv")
    assert set(metrics.model) >= set(GPU_BATCH_METHODS)
    test = metrics[(metrics.split == "test") & (metrics.metric == "nll")]
    assert len(test) >= len(GPU_BATCH_METHODS) and test.value.notna().all()
    assert (tmp_path / "out" / "figures" / "04_accuracy_vs_ece.png").is_file()


def test_the_gpu_batch_validates():
    batch = load_batch(NOTEBOOK_DIR.parent / "papermill_runs" / "cifar100-gpu")
    assert len(batch.runs) == 3
    assert {run.parameters["profile"] for run in batch.runs} == {"cifar100"}
    assert batch.runs[0].parameters["student_methods"] == GPU_BATCH_METHODS

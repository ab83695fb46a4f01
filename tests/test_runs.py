"""Batches of papermill runs: definitions, validation, the runner's safety
rules (skip, kill, failure, locks, foreign folders), and Dask.

Most executing tests use a stand-in ``01_teacher_training`` notebook written
into tmp_path (the real parameters cell, a body of a few lines that writes a
tidy table), so that they take seconds; one runs the real notebook 01.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

from calibkd.runs import store as run_store
from calibkd.runs.batches import BatchError, check_folder, load_batch, write_record
from calibkd.runs.results import collect, summarize
from calibkd.runs.runner import main, run_batch, status_table
from calibkd.runs.task import execute_run, runner_environment

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "01_teacher_training"

STAND_IN_PARAMETERS = """\
profile = "smoke"
dataset = "fashion_mnist"
data_root = ""
seed = 0
recipes = ["default"]
report_epoch = "last"
teacher_epochs = None
student_epochs = None
batch_size = None
lr = None
num_threads = 1
device = "cpu"
output_dir = ""
train_missing = True
"""

# Waits while $CALIBKD_CACHE/hold exists (so a test can kill it mid-run);
# fails for lr == 9.0 while $CALIBKD_CACHE/fail exists; logs each execution.
STAND_IN_BODY = """\
import csv, json, os, time
cache = os.environ["CALIBKD_CACHE"]
started = time.time()
while os.path.exists(os.path.join(cache, "hold")):
    time.sleep(0.1)
if lr == 9.0 and os.path.exists(os.path.join(cache, "fail")):
    raise RuntimeError("stand-in failure for lr=9.0")
with open(os.path.join(output_dir, "env.json"), "w") as handle:
    json.dump({k: os.environ.get(k) for k in ("CALIBKD_CACHE", "CALIBKD_OFFLINE", "OMP_NUM_THREADS")}, handle)
with open(os.path.join(output_dir, "metrics_01.csv"), "w", newline="") as handle:
    out = csv.writer(handle)
    out.writerow(["notebook", "model", "split", "metric", "value"])
    for i, model in enumerate(["ce", "kd", "cud"]):
        out.writerow(["01_teacher_training", model, "test", "accuracy", 0.8 + 0.01 * i + 0.003 * seed * (i + 1)])
        out.writerow(["01_teacher_training", model, "test", "ece", 0.05 - 0.01 * i + 0.002 * seed])
with open(os.path.join(cache, "executions.log"), "a") as handle:
    handle.write(json.dumps({"seed": seed, "lr": lr, "start": started, "end": time.time()}) + "\\n")
"""


def write_stand_in(folder: Path) -> Path:
    """A notebook named like chapter 01, with its parameters cell and a tiny body."""
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(STAND_IN_PARAMETERS, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(STAND_IN_BODY)]
    nbformat.write(nb, folder / f"{NOTEBOOK}.ipynb")
    return folder


def write_batch(root: Path, definition: dict | str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    text = definition if isinstance(definition, str) else yaml.safe_dump(definition, sort_keys=False)
    (root / "batch.yaml").write_text(text)
    return root


def simple(grid: dict | None = None, **fixed) -> dict:
    grid = {"seed": [0, 1]} if grid is None else grid
    return {"notebooks": [NOTEBOOK], "parameters": {"profile": "smoke", **fixed}, "grid": grid}


def executions(cache: Path) -> list[dict]:
    log = cache / "executions.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


@pytest.fixture
def stand_in(tmp_path: Path) -> Path:
    return write_stand_in(tmp_path / "notebooks")


@pytest.fixture
def cache(isolated_cache: Path) -> Path:
    isolated_cache.mkdir(parents=True, exist_ok=True)
    return isolated_cache


# ---------------------------------------------------------------------------
# definitions and validation (nothing executes)
# ---------------------------------------------------------------------------


def test_grid_expands_to_the_cartesian_product(tmp_path, stand_in):
    root = write_batch(tmp_path / "b", simple({"seed": [0, 1, 2], "lr": [0.1, 0.2]},
                                              recipes=["default", "overconfident"]))
    batch = load_batch(root, stand_in)
    assert [(r.grid["seed"], r.grid["lr"]) for r in batch.runs] == [
        (s, lr) for s in (0, 1, 2) for lr in (0.1, 0.2)]
    assert len({r.run_id for r in batch.runs}) == 6
    for run in batch.runs:  # a fixed list is one value; defaults fill the rest
        assert run.parameters["recipes"] == ["default", "overconfident"]
        assert run.parameters["profile"] == "smoke" and run.parameters["report_epoch"] == "last"
        assert "output_dir" not in run.parameters
        assert run.run_id.startswith(f"01-seed{run.grid['seed']}-lr{run.grid['lr']}-")
    assert load_batch(root, stand_in).runs == batch.runs  # ids are stable


def test_a_list_parameter_is_varied_by_a_list_of_lists(tmp_path, stand_in):
    root = write_batch(tmp_path / "b", simple({"recipes": [["default"], ["default", "overconfident"]]}))
    batch = load_batch(root, stand_in)
    assert [r.parameters["recipes"] for r in batch.runs] == [["default"], ["default", "overconfident"]]


def test_parameters_apply_to_the_notebooks_declaring_them_and_identical_runs_are_run_once(tmp_path):
    definition = {"notebooks": ["01_teacher_training", "03_calibration_methods"],
                  "parameters": {"profile": "smoke"}, "grid": {"methods": [["focal"], ["mixup"]]}}
    batch = load_batch(write_batch(tmp_path / "b", definition))
    assert [r.notebook for r in batch.runs] == ["01_teacher_training", "03_calibration_methods",
                                                "03_calibration_methods"]
    assert batch.runs[0].grid == {}  # chapter 01 has no 'methods': one run, not two


@pytest.mark.parametrize("text, message", [
    ("notebooks: [01_teacher_training\ngrid: {seed: [0]}\n", "not valid YAML at line"),
    ("- just\n- a list\n", "must be a mapping"),
    ({**simple(), "grids": {}}, r"unknown key\(s\) \['grids'\]"),
    ({**simple(), "notebooks": ["99_nope"]}, "unknown notebook '99_nope'; known notebooks"),
    ({**simple(), "notebooks": []}, "non-empty list of notebook names"),
    (simple(epochz=3), r"unknown parameter\(s\) \['epochz'\].*allowed parameters"),
    (simple({"sead": [0, 1]}), r"unknown parameter\(s\) \['sead'\]"),
    ({"notebooks": [NOTEBOOK], "parameters": {"profile": "smoke"}}, "the grid is empty"),
    (simple({}), "the grid is empty"),
    (simple({"seed": []}), "'seed' has an empty list of values"),
    (simple({"seed": 3}), "'seed' must map to a list of values"),
    (simple({"seed": [0]}, seed=1), r"\['seed'\] are both fixed and in the grid"),
    (simple(output_dir="/tmp/x"), "set by the runner"),
    (simple({"seed": [0, -1]}), r"run \{'seed': -1\}.*'seed'=-1 is below its minimum"),
    (simple(profile="huge"), "'profile' has unknown value 'huge'; allowed values"),
])
def test_bad_definitions_are_refused_with_a_clear_message(tmp_path, stand_in, text, message):
    root = write_batch(tmp_path / "b", text)
    with pytest.raises(BatchError, match=message):
        load_batch(root, stand_in)


def test_missing_definition_says_where_it_looked(tmp_path):
    with pytest.raises(BatchError, match=r"no batch definition: .*batch.yaml does not exist"):
        load_batch(tmp_path / "nothing")


def test_committed_batch_definitions_are_valid():
    reference = load_batch(ROOT / "papermill_runs" / "reference-fmnist")
    assert [r.grid for r in reference.runs] == [{"seed": 0}, {"seed": 1}, {"seed": 2}]
    params = reference.runs[0].parameters
    assert params["profile"] == "default" and params["sweep"] == {} and params["shift_test_size"] == 2000
    assert params["regimes"] == ["default", "overconfident"]
    from calibkd.config import STUDENT_METHODS

    assert set(params["student_methods"]) == set(STUDENT_METHODS)
    assert len(load_batch(ROOT / "papermill_runs" / "smoke-example").runs) == 2


def test_each_verdict_batch_reads_its_settings_from_the_tuning_batch_of_its_dataset():
    """Issue 15: the batches chapter 05's verdicts rest on use the settings
    chosen on validation, each from the tuning batch of its own dataset (and
    that tuning batch tunes every regime the verdict batch runs)."""
    for name, tuning in (("reference-fmnist", "tuning-fmnist"), ("long-tail-fmnist", "tuning-fmnist"),
                         ("glyphs-central", "tuning-glyphs")):
        batch, tuner = load_batch(ROOT / "papermill_runs" / name), load_batch(ROOT / "papermill_runs" / tuning)
        tuned = {regime for run in tuner.runs for regime in run.parameters["regimes"]}
        for run in batch.runs:
            assert run.parameters["tuning"] == tuning, name
            assert run.parameters["dataset"] == tuner.runs[0].parameters["dataset"], name
            assert set(run.parameters["regimes"]) <= tuned, name
        assert all(run.parameters["tuning"] == "run" for run in tuner.runs), tuning


def test_a_folder_written_by_another_definition_is_refused(tmp_path, stand_in):
    root = write_batch(tmp_path / "b", simple({"seed": [0, 1]}))
    write_record(load_batch(root, stand_in))
    check_folder(load_batch(root, stand_in))  # same definition: fine
    write_batch(root, simple({"seed": [0, 1, 2]}))
    with pytest.raises(BatchError, match=r"different batch definition(.|\n)*grid.seed: \[0, 1\] -> \[0, 1, 2\]"):
        run_batch(root, sequential=True, notebook_dir=stand_in)
    write_batch(root, simple({"seed": [0, 1]}, lr=0.5))
    with pytest.raises(BatchError, match=r"parameters.01_teacher_training.lr: None -> 0.5"):
        check_folder(load_batch(root, stand_in))
    assert not (root / "runs").exists()


def test_runs_without_a_record_that_the_definition_does_not_make_are_refused(tmp_path, stand_in):
    root = write_batch(tmp_path / "b", simple())
    (root / "runs" / "01-seed7-0123456789").mkdir(parents=True)
    with pytest.raises(BatchError, match="holds runs that .* does not define"):
        check_folder(load_batch(root, stand_in))


def test_an_unreachable_scheduler_fails_fast_and_writes_nothing(tmp_path, stand_in):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = write_batch(tmp_path / "b", simple())
    start = time.monotonic()
    with pytest.raises(BatchError, match=rf"could not reach the Dask scheduler at 'tcp://127.0.0.1:{port}' within 1s"):
        run_batch(root, scheduler=f"tcp://127.0.0.1:{port}", connect_timeout=1, notebook_dir=stand_in)
    assert time.monotonic() - start < 20
    assert sorted(p.name for p in root.iterdir()) == ["batch.yaml"]
    assert main(["run", str(root), "--scheduler", f"tcp://127.0.0.1:{port}", "--connect-timeout", "1",
                 "--notebook-dir", str(stand_in)]) == 2


def test_a_run_locked_by_another_process_is_not_run(tmp_path, stand_in):
    root = write_batch(tmp_path / "b", simple({"seed": [0]}))
    spec = load_batch(root, stand_in).runs[0]
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from calibkd.runs.store import RunLock; "
        f"assert RunLock({str(root)!r}, {spec.run_id!r}).acquire(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        outcome = execute_run(str(root), spec.to_dict(), str(stand_in), runner_environment())
        assert outcome["status"] == "busy" and "locked by another runner" in outcome["error"]
        assert status_table(root, stand_in)[0]["state"] == "running"
    finally:
        holder.kill()
        holder.wait()
    lock = run_store.RunLock(root, spec.run_id)  # the OS released the dead holder's lock
    assert lock.acquire(wait=0)
    lock.release()
    assert not any((root / "runs").glob(f"{spec.run_id}*"))


def test_kernels_get_the_callers_omp_wait_policy_and_passive_when_unset(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert runner_environment()["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    env = runner_environment()
    assert env["OMP_WAIT_POLICY"] == "ACTIVE" and env["CALIBKD_PROGRESS"] == "0"


def test_the_local_cluster_is_sized_to_the_cores_or_the_gpus(tmp_path, stand_in, monkeypatch):
    import torch

    from calibkd.runs.runner import local_workers

    cpu = load_batch(write_batch(tmp_path / "cpu", simple({"seed": [0, 1, 2, 3]}, num_threads=1)), stand_in).runs
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert local_workers(cpu) == (3, 0) and local_workers(cpu[:2]) == (2, 0) and local_workers(cpu, 5) == (5, 0)
    gpu = load_batch(write_batch(tmp_path / "gpu", simple(device="cuda")), stand_in).runs
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(BatchError, match="no GPU visible"):
        local_workers(gpu)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert local_workers(gpu) == (2, 2) and local_workers(gpu, 1) == (1, 2)


def test_a_sequential_cuda_batch_without_a_gpu_stops_before_any_run(tmp_path, stand_in, monkeypatch):
    import torch

    root = write_batch(tmp_path / "gpu", simple(device="cuda"))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(BatchError, match="no GPU visible"):
        run_batch(root, sequential=True, notebook_dir=stand_in, progress=False)
    assert not (root / "runs").exists() or not any((root / "runs").iterdir())


def test_each_local_gpu_worker_pins_its_own_card(monkeypatch):
    from distributed import Client, LocalCluster

    from calibkd.runs.task import _child_environment

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    with LocalCluster(n_workers=2, threads_per_worker=1, resources={"GPU": 1}, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.wait_for_workers(2)
        seen = {}
        for address, info in client.scheduler_info()["workers"].items():
            env = client.submit(_child_environment, {}, True, workers=[address], pure=False).result()
            seen[info["name"]] = env["CUDA_VISIBLE_DEVICES"]
    assert seen == {0: "5", 1: "7"}


# ---------------------------------------------------------------------------
# executing runs
# ---------------------------------------------------------------------------


@pytest.mark.notebooks
def test_runs_write_their_folder_and_are_skipped_on_rerun(tmp_path, stand_in, cache):
    root = write_batch(tmp_path / "b", simple())
    report = run_batch(root, sequential=True, notebook_dir=stand_in, progress=False)
    assert report.complete and report.count("finished") == 2
    folder = run_store.run_dir(root, report.batch.runs[1].run_id)
    assert {"01_teacher_training.ipynb", "parameters.yaml", "provenance.json", "metrics_01.csv", "run.json",
            "log.txt", "env.json"} <= {p.name for p in folder.iterdir()}
    provenance = json.loads((folder / "provenance.json").read_text())
    assert provenance["seed"] == 1 and provenance["git_commit"] and provenance["seconds"] > 0
    assert provenance["torch"] and "cpu_count" in provenance
    assert len(provenance["code_version"]) == 16 and len(provenance["study_code_version"]) == 16
    assert NOTEBOOK in provenance["notebook_code_versions"] and provenance["git_dirty"] in (True, False, None)
    assert yaml.safe_load((folder / "parameters.yaml").read_text())["parameters"]["seed"] == 1
    env = json.loads((folder / "env.json").read_text())
    assert env["CALIBKD_CACHE"] == str(cache) and env["CALIBKD_OFFLINE"] == "1"  # reached the kernel
    assert json.loads((root / "definition.json").read_text())["hash"] == report.batch.definition_hash
    assert len(executions(cache)) == 2 and not list((root / "runs").glob(".*.partial"))

    again = run_batch(root, sequential=True, notebook_dir=stand_in, progress=False)
    assert [o["status"] for o in again.outcomes] == ["skipped", "skipped"] and again.complete
    assert len(executions(cache)) == 2
    table = collect(root)
    assert sorted(table.seed.unique()) == [0, 1] and len(table) == 12


@pytest.mark.notebooks
def test_a_failing_run_is_recorded_the_others_finish_and_retry_reruns_it(tmp_path, stand_in, cache, capsys):
    (cache / "fail").touch()
    root = write_batch(tmp_path / "b", simple({"lr": [0.1, 9.0, 0.2]}))
    assert main(["run", str(root), "--sequential", "--no-progress", "--notebook-dir", str(stand_in)]) == 1
    out = capsys.readouterr().out
    assert "2/3 runs finished" in out and "1 failed" in out and "RuntimeError: stand-in failure" in out
    states = {r["grid"]["lr"]: r["state"] for r in status_table(root, stand_in)}
    assert states == {0.1: "finished", 9.0: "failed", 0.2: "finished"}
    failed = next(p for p in (root / "runs").iterdir() if (p / "failed.json").is_file())
    assert "stand-in failure for lr=9.0" in (failed / "error.txt").read_text()
    assert (failed / "01_teacher_training.ipynb").is_file() and not (failed / "run.json").exists()
    assert len(collect(root)) == 12  # failed runs are not results

    report = run_batch(root, sequential=True, notebook_dir=stand_in, progress=False)  # no --retry: left as is
    assert report.count("skipped") == 3 and len(executions(cache)) == 2
    (cache / "fail").unlink()
    report = run_batch(root, retry=True, sequential=True, notebook_dir=stand_in, progress=False)
    assert report.complete and report.count("finished") == 1
    assert not (failed / "failed.json").exists() and (failed / "run.json").is_file()


@pytest.mark.notebooks
def test_a_killed_run_is_not_finished_and_completes_on_rerun(tmp_path, stand_in, cache):
    (cache / "hold").touch()
    root = write_batch(tmp_path / "b", simple({"seed": [0]}))
    run_id = load_batch(root, stand_in).runs[0].run_id
    runner = subprocess.Popen(
        [sys.executable, "-m", "calibkd.runs.runner", "run", str(root), "--workers", "1", "--no-progress",
         "--notebook-dir", str(stand_in)],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    lock = run_store.RunLock(root, run_id)
    deadline = time.monotonic() + 120
    while not (list((root / "runs").glob(f".{run_id}.*.partial/log.txt")) and lock.held_elsewhere()):
        assert runner.poll() is None and time.monotonic() < deadline, "the run never started"
        time.sleep(0.2)
    worker = lock.holder()["pid"]
    assert worker != runner.pid  # a Dask worker process runs it
    time.sleep(1.0)  # the notebook is executing (waiting on the hold file)
    os.killpg(runner.pid, signal.SIGKILL)
    runner.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{worker}").exists()

    assert run_store.run_state(root, run_id) == "pending" and not (root / "runs" / run_id).exists()
    assert collect(root).empty and list((root / "runs").glob(f".{run_id}.*.partial"))
    assert not lock.held_elsewhere()

    (cache / "hold").unlink()
    report = run_batch(root, sequential=True, notebook_dir=stand_in, progress=False)
    assert report.complete and report.count("finished") == 1
    assert not list((root / "runs").glob(".*.partial")) and len(collect(root)) == 6


@pytest.mark.notebooks
def test_two_runners_at_once_run_each_run_exactly_once(tmp_path, stand_in, cache):
    root = write_batch(tmp_path / "b", simple({"seed": [0, 1, 2]}))
    command = [sys.executable, "-m", "calibkd.runs.runner", "run", str(root), "--sequential", "--no-progress",
               "--notebook-dir", str(stand_in)]
    runners = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [r.communicate(timeout=240)[0] for r in runners]
    # a runner that found a run locked says so (exit 1: not all finished when it looked)
    assert {r.returncode for r in runners} <= {0, 1}, outputs
    assert all("0 failed" in out for out in outputs)
    assert sorted(e["seed"] for e in executions(cache)) == [0, 1, 2]
    assert {run_store.run_state(root, r.run_id) for r in load_batch(root, stand_in).runs} == {"finished"}


@pytest.mark.notebooks
def test_gpu_runs_go_one_at_a_time_to_the_worker_offering_a_gpu(tmp_path, stand_in, cache):
    """An existing cluster (``--scheduler``): a plain worker, and one started
    as the README says for a GPU (``dask worker ADDRESS --resources GPU=1``)."""
    from distributed import Client, LocalCluster

    root = write_batch(tmp_path / "b", simple({"seed": [0, 1]}, device="cuda"))
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        gpu = subprocess.Popen([sys.executable, "-m", "dask", "worker", cluster.scheduler_address, "--nthreads", "1",
                                "--resources", "GPU=1", "--no-dashboard", "--name", "gpu-worker"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            with Client(cluster) as client:
                client.wait_for_workers(2, timeout=60)
                gpu_worker = next(a for a, w in client.scheduler_info()["workers"].items() if w["name"] == "gpu-worker")
            report = run_batch(root, scheduler=cluster.scheduler_address, notebook_dir=stand_in, progress=False)
        finally:
            os.killpg(gpu.pid, signal.SIGTERM)
            gpu.wait(timeout=30)
    assert report.complete
    workers = {json.loads((run_store.run_dir(root, r.run_id) / "provenance.json").read_text())["dask_worker"]
               for r in report.batch.runs}
    assert workers == {gpu_worker}
    spans = sorted((e["start"], e["end"]) for e in executions(cache))
    assert spans[0][1] <= spans[1][0]  # one GPU, one run at a time


@pytest.mark.notebooks
def test_a_local_cluster_of_two_workers_gives_the_same_table_as_a_sequential_run(
        tmp_path, monkeypatch):
    """The real chapter 01 at its smallest, two seeds, each way with its own model cache."""
    definition = {"notebooks": [NOTEBOOK], "grid": {"seed": [0, 1]},
                  "parameters": {"profile": "smoke", "recipes": ["default"], "teacher_epochs": 1,
                                 "student_epochs": 1, "num_threads": 1, "device": "cpu"}}
    results = {}
    for way in ("sequential", "dask"):
        root = write_batch(tmp_path / way, definition)
        monkeypatch.setenv("CALIBKD_CACHE", str(tmp_path / f"cache-{way}"))
        report = run_batch(root, sequential=way == "sequential", workers=None if way == "sequential" else 2,
                           progress=False)
        assert report.complete, report.summary()
        results[way] = (collect(root), summarize(collect(root)))
    workers = {json.loads((p / "provenance.json").read_text())["dask_worker"]
               for p in (tmp_path / "dask" / "runs").iterdir() if not p.name.startswith(".")}
    assert len(workers) == 2 and None not in workers  # both workers ran one
    sort = ["run_id", "model", "metric"]
    pd.testing.assert_frame_equal(results["sequential"][0].sort_values(sort).reset_index(drop=True),
                                  results["dask"][0].sort_values(sort).reset_index(drop=True))
    pd.testing.assert_frame_equal(results["sequential"][1], results["dask"][1])
    assert set(results["dask"][1]["n"]) == {2}

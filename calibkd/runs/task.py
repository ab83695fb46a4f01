"""Execute one run of a batch: the task a Dask worker (or the sequential
runner) performs, and the process papermill runs in.

``execute_run`` takes the run's lock, returns at once if the run is finished
(or failed by its own error, unless retrying) or locked by another runner,
and otherwise executes the notebook with papermill in a child process of its
own (``python -m calibkd.runs.task``: papermill is not safe across threads,
and a process per run keeps memory and kernels apart). The child exits when
its parent dies, and its kernel follows (ipykernel polls its parent), so
killing a worker kills its run. Everything, the kernel's connection file and
temporary files included (``.kernel/``, removed on publish), is written into
a staging folder that is renamed into ``runs/<run-id>/`` at the end
(``calibkd.runs.store``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Mapping

import yaml

from calibkd.io import atomic_write_text, params_key
from calibkd.runs import store as run_store
from calibkd.runs.batches import RunSpec
from calibkd.runs.results import run_record
from calibkd.study.runner import kernel_directories, kernel_environment, kernel_runtime, notebook_path, provenance

#: Thread settings Dask's nanny puts into its workers' environment: a run gets
#: the runner's values instead (or none), so it behaves as a sequential run.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_")
LOG = "log.txt"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def runner_environment() -> dict[str, str | None]:
    """What every run's process gets from the runner's environment: the
    ``CALIBKD_*`` variables (model cache, data, offline mode), the thread
    settings (None: unset), the kernel settings of ``study.kernel_environment``
    (the caller's ``OMP_WAIT_POLICY``, PASSIVE when unset) and the kernels'
    IPython and matplotlib folders (``study.kernel_directories``)."""
    env: dict[str, str | None] = {k: v for k, v in os.environ.items() if k.startswith("CALIBKD_")}
    env.update({name: os.environ.get(name) for name in THREAD_VARIABLES})
    env.update(kernel_environment())
    env.update(kernel_directories())
    return env


def _child_environment(forwarded: Mapping[str, str | None], pin_gpu: bool) -> dict[str, str]:
    env = dict(os.environ)
    for name, value in forwarded.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    if pin_gpu:
        # an embedded LocalCluster has one worker per visible GPU, named 0, 1, ...
        from distributed import get_worker

        visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        index = int(get_worker().name)
        env["CUDA_VISIBLE_DEVICES"] = visible[index % len(visible)] if visible else str(index)
    return env


def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _failure_text(staging: Path, returncode: int) -> str:
    error_file = staging / run_store.ERROR
    if error_file.is_file() and error_file.read_text().strip():
        return error_file.read_text()
    log = (staging / LOG).read_text(errors="replace") if (staging / LOG).is_file() else ""
    why = (f"the notebook process was killed by signal {-returncode} (out of memory, or killed by hand?)"
           if returncode < 0 else f"the notebook process exited with status {returncode}")
    return f"{why}\n\nlast lines of its log:\n" + "\n".join(log.splitlines()[-40:])


def execute_run(root: str, spec: Mapping[str, Any], notebook_dir: str,
                env: Mapping[str, str | None], retry: bool = False, pin_gpu: bool = False) -> dict[str, Any]:
    """Run one batch run unless it is finished (or failed, unless ``retry``)
    or locked by another runner; a run failed by a lost worker is always rerun.
    Never raises for a failing notebook: the failure is recorded in
    ``runs/<run-id>/`` (``cause``: ``error``) and returned."""
    run = RunSpec.from_dict(spec)
    root_path = Path(root)
    outcome = {"run_id": run.run_id, "notebook": run.notebook, "grid": run.grid, "seconds": None, "error": None}
    lock = run_store.RunLock(root_path, run.run_id)
    if not lock.acquire():
        return {**outcome, "status": "busy", "error": f"locked by another runner {lock.holder()}"}
    try:
        if not run_store.due(root_path, run.run_id, retry):
            return {**outcome, "status": "skipped", "state": run_store.run_state(root_path, run.run_id)}
        run_store.clear_staging(root_path, run.run_id)
        staging = run_store.new_staging(root_path, run.run_id)
        return {**outcome, **_execute(root_path, run, staging, Path(notebook_dir), env, pin_gpu)}
    finally:
        lock.release()


def _execute(root: Path, run: RunSpec, staging: Path, notebook_dir: Path,
             forwarded: Mapping[str, str | None], pin_gpu: bool) -> dict[str, Any]:
    source = notebook_path(run.notebook, notebook_dir)
    atomic_write_text(staging / "parameters.yaml", yaml.safe_dump(
        {"run_id": run.run_id, "notebook": run.notebook, "grid": run.grid, "parameters": run.parameters},
        sort_keys=False))
    job = {"input": str(source), "output": str(staging / f"{run.notebook}.ipynb"), "cwd": str(notebook_dir),
           "parameters": {**run.parameters, "output_dir": str(staging.resolve())},
           "error_file": str(staging / run_store.ERROR)}
    # the kernel's connection file and temporary files stay in the staging folder (deleted on publish)
    env = {**_child_environment(forwarded, pin_gpu), **kernel_runtime(staging / run_store.KERNEL_DIR)}
    started, start = _now(), time.perf_counter()
    with open(staging / LOG, "wb") as log:
        returncode = subprocess.call([sys.executable, "-m", "calibkd.runs.task", json.dumps(job)],
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, cwd=str(notebook_dir))
    seconds = round(time.perf_counter() - start, 1)
    record = {
        "run_id": run.run_id, "notebook": run.notebook, "seed": run.parameters.get("seed"), "grid": run.grid,
        "parameters_hash": params_key(run.parameters), "notebook_sha256": _sha256(source),
        "seconds": seconds, "started": started, "finished": _now(), "host": platform.node(),
        "dask_worker": _worker_address(), "environment": {k: v for k, v in forwarded.items() if v is not None},
        **provenance(),
    }
    atomic_write_text(staging / "provenance.json", json.dumps(record, indent=1, default=str) + "\n")
    if returncode == 0:

        try:
            rows = len(run_record(staging, run.run_id, run.notebook, run.grid))
        except Exception:  # a table that cannot be read makes the run failed, not the batch
            atomic_write_text(staging / run_store.ERROR, "reading the run's tables failed:\n" + traceback.format_exc())
            returncode = 1
    if returncode == 0:
        done = {"run_id": run.run_id, "notebook": run.notebook, "grid": run.grid, "status": "finished",
                "seconds": seconds, "tables": sorted(p.name for p in staging.glob("*.csv")), "rows": rows,
                "finished": record["finished"]}
        atomic_write_text(staging / run_store.FINISHED, json.dumps(done, indent=1, default=str) + "\n")
        run_store.publish(staging, root, run.run_id)
        return {"status": "finished", "seconds": seconds}
    error = _failure_text(staging, returncode)
    atomic_write_text(staging / run_store.ERROR, error)
    failed = {"run_id": run.run_id, "notebook": run.notebook, "grid": run.grid, "status": "failed",
              "cause": run_store.CAUSE_ERROR, "seconds": seconds,
              "error": error.strip().splitlines()[0] if error.strip() else "", "finished": record["finished"]}
    atomic_write_text(staging / run_store.FAILED, json.dumps(failed, indent=1, default=str) + "\n")
    run_store.publish(staging, root, run.run_id)
    return {"status": "failed", "cause": run_store.CAUSE_ERROR, "seconds": seconds, "error": failed["error"]}


def record_lost(root: str, spec: Mapping[str, Any], error: str, cause: str = run_store.CAUSE_LOST_WORKER) -> bool:
    """Record a run whose task never returned as failed, if no other process
    holds it; True when recorded. ``cause``: ``lost_worker`` (the Dask worker
    died: a plain rerun retries it) or ``error`` (the task itself raised)."""
    if cause not in (run_store.CAUSE_ERROR, run_store.CAUSE_LOST_WORKER):
        raise ValueError(f"cause {cause!r}: must be {run_store.CAUSE_ERROR!r} or {run_store.CAUSE_LOST_WORKER!r}")
    run = RunSpec.from_dict(spec)
    lock = run_store.RunLock(Path(root), run.run_id)
    if not lock.acquire(wait=0):
        return False
    try:
        if run_store.run_state(Path(root), run.run_id) == "finished":
            return False
        run_store.clear_staging(Path(root), run.run_id)
        staging = run_store.new_staging(Path(root), run.run_id)
        atomic_write_text(staging / run_store.ERROR, error + "\n")
        failed = {"run_id": run.run_id, "notebook": run.notebook, "grid": run.grid, "status": "failed",
                  "cause": cause, "error": error.splitlines()[0], "finished": _now()}
        atomic_write_text(staging / run_store.FAILED, json.dumps(failed, indent=1, default=str) + "\n")
        run_store.publish(staging, Path(root), run.run_id)
        return True
    finally:
        lock.release()


# ---------------------------------------------------------------------------
# the child process: papermill, and an exit when the parent goes away
# ---------------------------------------------------------------------------


def _exit_with_parent(interval: float = 0.5) -> None:
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _error_report(error: BaseException) -> str:
    import papermill

    if isinstance(error, papermill.PapermillExecutionError):
        body = _ANSI.sub("", "\n".join(error.traceback))
        where = f"(cell {error.cell_index}, execution count {error.exec_count})"
        return f"{error.ename}: {error.evalue}\n{where}\n\n{body}\n"
    return "".join(traceback.format_exception(error))


def main(argv: list[str]) -> int:
    """``python -m calibkd.run_task JOB_JSON``: execute one notebook with papermill."""
    job = json.loads(argv[0])
    _exit_with_parent()
    import papermill

    try:
        papermill.execute_notebook(job["input"], job["output"], parameters=job["parameters"],
                                   kernel_name="python3", cwd=job["cwd"], progress_bar=False, log_output=False)
    except BaseException as error:  # noqa: BLE001 - every failure is written down for the runner
        atomic_write_text(Path(job["error_file"]), _error_report(error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Run a batch of papermill runs, on this machine or a Dask cluster; see its
state; aggregate its results.

    python -m calibkd.runs run papermill_runs/<batch>            # embedded LocalCluster
    python -m calibkd.runs run <batch> --workers 2               # ... of 2 workers
    python -m calibkd.runs run <batch> --scheduler tcp://host:8786   # an existing cluster
    python -m calibkd.runs run <batch> --retry                   # rerun runs failed by their own error too
    python -m calibkd.runs status <batch>
    python -m calibkd.runs aggregate <batch> [--reference kd] [--allow-mixed-code] [--allow-dirty]
    python -m calibkd.runs estimate <batch> [--device auto] [--quick] [--json]   # expected wall time
    python -m calibkd.runs compute <batch> [<batch> ...] [--write]   # what finished batches cost

The batch is validated and its folder checked (``calibkd.runs.batches``) before
anything starts; finished runs are skipped, so a rerun resumes a batch. Each
run is one Dask task (``calibkd.runs.task.execute_run``) that runs papermill in
a process of its own; runs with ``device: cuda`` ask for the worker resource
``GPU`` (start GPU workers with ``--resources GPU=1``), so one GPU gets one run
at a time. Workers must see the batch folder and the model cache at the same
paths as the runner (one machine, or a shared file system). The embedded
cluster listens on 127.0.0.1 only and keeps its workers' scratch space in the
batch folder (``calibkd.runs.store.dask_scratch``); docs/batches.md shows how
to start an external one on loopback, or across machines with TLS.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import pandas as pd

from calibkd.errors import ConfigError
from calibkd.runs import store as run_store
from calibkd.runs.batches import (
    Batch,
    BatchError,
    RunSpec,
    batch_root,
    check_folder,
    load_batch,
    write_record,
)
from calibkd.runs.results import aggregate as write_results
from calibkd.runs.results import summary_text
from calibkd.runs.task import execute_run, record_lost, runner_environment
from calibkd.study.runner import NOTEBOOK_DIR, one_line_warnings

DEFAULT_CONNECT_TIMEOUT = 10.0
LOG = logging.getLogger(__name__)


@dataclass
class BatchReport:
    """What one ``run`` did: an outcome per run of the batch."""

    batch: Batch
    outcomes: list[dict[str, Any]] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(o["status"] == status for o in self.outcomes)

    def states(self) -> dict[str, str]:
        """Each run's state on disk now."""
        return {spec.run_id: run_store.run_state(self.batch.root, spec.run_id) for spec in self.batch.runs}

    @property
    def complete(self) -> bool:
        return all(state == "finished" for state in self.states().values())

    def summary(self) -> str:
        states = self.states()
        done = sum(s == "finished" for s in states.values())
        failed = [o for o in self.outcomes if o["status"] == "failed"]
        failed += [o for o in self.outcomes if o["status"] == "skipped" and o.get("state") == "failed"]
        root = self.batch.root
        already = sum(o.get("state") == "finished" for o in self.outcomes)
        lines = [(f"batch {self.batch.name}: {done}/{len(states)} runs finished ({self.count('finished')} now, "
                  f"{already} already), {len(failed)} failed, {self.count('busy')} held by another runner")]
        for o in failed:
            cause = o.get("cause") or run_store.failure_cause(root, o["run_id"])
            if o["status"] == "skipped":
                note = " (from an earlier run; --retry reruns it)"
            elif cause == run_store.CAUSE_LOST_WORKER:
                note = " (its Dask worker was lost; a plain rerun retries it)"
            else:
                note = ""
            error = o.get("error") or run_store.read_json(run_store.run_dir(root, o["run_id"]) / run_store.FAILED
                                                          ).get("error", "")
            lines.append(f"  failed {o['run_id']}{note}: {error}\n"
                         f"    see {run_store.run_dir(root, o['run_id']) / run_store.ERROR}")
        if done:
            lines.append(f"aggregate with: python -m calibkd.runs aggregate {self.batch.root}")
        return "\n".join(lines)


def local_gpus(runs: Sequence[RunSpec]) -> int:
    """The GPUs this machine offers runs that ask for CUDA: a clear error,
    before any run starts, when it has none."""
    import torch

    gpus = torch.cuda.device_count()
    if gpus == 0:
        raise BatchError("runs ask for device='cuda' but this machine has no GPU visible to torch; "
                         "use device 'auto' or 'cpu', or --scheduler with GPU workers")
    return gpus


def local_workers(runs: Sequence[RunSpec], requested: int | None = None) -> tuple[int, int]:
    """(workers, GPUs) of the embedded cluster: one worker per GPU when runs
    ask for CUDA; otherwise as many as the cores allow at the runs' ``num_threads``."""
    if any(run.needs_gpu for run in runs):
        gpus = local_gpus(runs)
        return min(requested or gpus, gpus), gpus
    if requested is not None:
        if requested < 1:
            raise BatchError(f"--workers {requested} must be at least 1")
        return requested, 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max((run.threads for run in runs), default=1)
    return max(1, min(cores // threads, len(runs))), 0


#: Where the embedded cluster listens: loopback only (its scheduler runs any code sent to it).
LOCAL_HOST = "127.0.0.1"


@contextlib.contextmanager
def dask_client(runs: Sequence[RunSpec], scheduler: str | None, workers: int | None,
                connect_timeout: float, scratch: Path | None = None) -> Iterator[tuple[Any, bool]]:
    """A Dask client: connected to ``scheduler``, or to an embedded
    ``LocalCluster`` (processes, one thread each, listening on ``LOCAL_HOST``
    only, no dashboard; its workers' scratch space in ``scratch`` when given).
    Yields ``(client, pin_gpu)``."""
    from distributed import Client, LocalCluster

    if scheduler:
        if workers is not None:
            raise BatchError("--workers sizes the embedded cluster; with --scheduler the cluster's own workers run")
        try:
            client = Client(scheduler, timeout=connect_timeout)
        except TypeError as error:  # a tls:// address without TLS settings: distributed's message names no fix
            if not scheduler.startswith("tls://"):
                raise
            raise BatchError(
                f"could not connect to {scheduler!r}: {error}; a tls:// scheduler needs this side's certificates "
                f"(DASK_DISTRIBUTED__COMM__TLS__CA_FILE, ..._CLIENT__CERT, ..._CLIENT__KEY; docs/batches.md)"
            ) from None
        except (OSError, TimeoutError, ValueError) as error:
            raise BatchError(
                f"could not reach the Dask scheduler at {scheduler!r} within {connect_timeout:g}s "
                f"({type(error).__name__}: {error}); start one on this machine with `dask scheduler --host "
                f"127.0.0.1 --dashboard-address 127.0.0.1:8787` and workers with `dask worker tcp://127.0.0.1:8786 "
                f"--host 127.0.0.1 --nthreads 1 --dashboard-address 127.0.0.1:0` (across machines: TLS, "
                f"docs/batches.md), or run without --scheduler for a local cluster"
            ) from None
        with client:
            if any(run.needs_gpu for run in runs):
                offered = [w.get("resources", {}).get("GPU", 0) for w in client.scheduler_info()["workers"].values()]
                if not any(offered):
                    LOG.warning("runs ask for a GPU but no worker of %s offers the GPU resource yet; they wait "
                                "until one does (start GPU workers with --resources GPU=1)", scheduler)
            yield client, False
        return
    import dask

    n, gpus = local_workers(runs, workers)
    # one run per worker thread: Dask's default (1.1) would queue a second run on a busy worker
    settings: dict[str, Any] = {"distributed.scheduler.worker-saturation": 1.0}
    if scratch is not None:  # every Dask server of the cluster, the scheduler's too, keeps its files there
        settings["temporary-directory"] = str(scratch)
    with _quiet("distributed"), dask.config.set(settings):
        # no dashboard; the scheduler's HTTP server (health, metrics) on a free loopback port, not 8787
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host=LOCAL_HOST,
                               dashboard_address=None, scheduler_kwargs={"dashboard_address": f"{LOCAL_HOST}:0"},
                               silence_logs=logging.ERROR,
                               resources={"GPU": 1} if gpus else None,
                               local_directory=str(scratch) if scratch is not None else None)
        with cluster, Client(cluster) as client:
            yield client, bool(gpus)


@contextlib.contextmanager
def _quiet(name: str, level: int = logging.ERROR) -> Iterator[None]:
    """The embedded scheduler logs every worker and connection at INFO: keep only errors."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


def lost_cause(error: BaseException) -> str:
    """``lost_worker`` for the errors a task gets when its worker (or the
    cluster) went away: Dask's ``KilledWorker`` once its retries are used up, a
    cancelled future, a closed connection; ``error`` for an exception the task
    raised itself."""
    from concurrent.futures import CancelledError

    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    lost = isinstance(error, (KilledWorker, CancelledError, CommClosedError))
    return run_store.CAUSE_LOST_WORKER if lost else run_store.CAUSE_ERROR


def _lost(batch: Batch, spec: RunSpec, error: BaseException, cause: str | None = None) -> dict[str, Any]:
    """A run whose task raised or whose worker died: recorded as failed, with
    its cause (a plain rerun retries a lost worker, ``--retry`` an error), and
    reported; the other runs go on."""
    cause = cause or lost_cause(error)
    message = f"the run's task did not return: {type(error).__name__}: {error}"
    record_lost(str(batch.root), spec.to_dict(), message, cause)
    return {"run_id": spec.run_id, "notebook": spec.notebook, "grid": spec.grid, "status": "failed",
            "cause": cause, "error": message}


def _run_sequential(tasks: Sequence[RunSpec], batch: Batch, task_args: dict[str, Any]) -> Iterator[dict]:
    for spec in tasks:
        try:
            yield execute_run(spec=spec.to_dict(), **task_args)
        except Exception as error:  # in this process: the task's own error, never a lost worker
            yield _lost(batch, spec, error, run_store.CAUSE_ERROR)


def _run_dask(tasks: Sequence[RunSpec], client: Any, pin_gpu: bool, batch: Batch,
              task_args: dict[str, Any]) -> Iterator[dict]:
    from distributed import as_completed

    token = secrets.token_hex(4)  # runners never share tasks; the run locks keep them apart
    futures = {}
    for spec in tasks:
        future = client.submit(execute_run, spec=spec.to_dict(), pin_gpu=pin_gpu, **task_args,
                               key=f"calibkd-run-{spec.run_id}-{token}", pure=False,
                               resources={"GPU": 1} if spec.needs_gpu else None)
        futures[future] = spec
    for future in as_completed(futures):
        spec = futures[future]
        try:
            yield future.result()
        except Exception as error:  # the worker died (KilledWorker), or the task raised
            yield _lost(batch, spec, error)


def run_batch(path: str | Path, retry: bool = False, scheduler: str | None = None, workers: int | None = None,
              sequential: bool = False, notebook_dir: Path = NOTEBOOK_DIR,
              connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, progress: bool = True) -> BatchReport:
    """Run every unfinished run of a batch; returns what happened to each.

    ``sequential`` runs them one after another in this process (still one
    papermill process per run), without Dask. Runs failed by their own error
    are rerun only with ``retry``; runs failed by a lost worker always.
    """
    from tqdm import tqdm

    batch = load_batch(path, notebook_dir)
    check_folder(batch)
    run_store.clear_scratch(batch.root)  # what killed runners' Dask workers left
    report = BatchReport(batch)
    todo = []
    for spec in batch.runs:
        if run_store.due(batch.root, spec.run_id, retry):
            todo.append(spec)
        else:
            report.outcomes.append({"run_id": spec.run_id, "notebook": spec.notebook, "grid": spec.grid,
                                    "status": "skipped", "state": run_store.run_state(batch.root, spec.run_id)})
    if not todo:
        return report
    task_args = {"root": str(batch.root.resolve()), "notebook_dir": str(Path(notebook_dir).resolve()),
                 "env": runner_environment(), "retry": retry}
    with contextlib.ExitStack() as stack:
        if sequential:
            if scheduler or workers is not None:
                raise BatchError("--sequential runs without Dask: drop --scheduler / --workers")
            if any(run.needs_gpu for run in todo):
                local_gpus(todo)
            outcomes = _run_sequential(todo, batch, task_args)
        else:
            scratch = None if scheduler else stack.enter_context(run_store.dask_scratch(batch.root))
            client, pin_gpu = stack.enter_context(dask_client(todo, scheduler, workers, connect_timeout, scratch))
            outcomes = _run_dask(todo, client, pin_gpu, batch, task_args)
        write_record(batch)  # only now: nothing is written before the engine is up
        done = len(batch.runs) - len(todo)
        bar = stack.enter_context(tqdm(total=len(batch.runs), initial=done, desc=batch.name, unit="run",
                                       disable=not progress, file=sys.stderr, dynamic_ncols=True))
        for outcome in outcomes:
            report.outcomes.append(outcome)
            bar.update(1)
            bar.set_postfix(failed=report.count("failed"), busy=report.count("busy"), refresh=True)
    return report


def status_table(path: str | Path, notebook_dir: Path = NOTEBOOK_DIR) -> list[dict[str, Any]]:
    """One row per run of a batch: id, grid values, state, seconds or error,
    and for a failed run its cause (``error`` or ``lost_worker``)."""
    batch = load_batch(path, notebook_dir)
    rows = []
    for spec in batch.runs:
        state = run_store.run_state(batch.root, spec.run_id)
        if state == "pending" and run_store.RunLock(batch.root, spec.run_id).held_elsewhere():
            state = "running"
        folder = run_store.run_dir(batch.root, spec.run_id)
        info = run_store.read_json(folder / (run_store.FAILED if state == "failed" else run_store.FINISHED))
        cause = run_store.failure_cause(batch.root, spec.run_id) if state == "failed" else None
        rows.append({"run_id": spec.run_id, "notebook": spec.notebook, "grid": spec.grid, "state": state,
                     "cause": cause, "seconds": info.get("seconds"), "error": info.get("error")})
    return rows


_CAUSE_NOTE = {run_store.CAUSE_ERROR: "--retry reruns it",
               run_store.CAUSE_LOST_WORKER: "a plain rerun retries it"}


def _print_status(path: str, notebook_dir: Path) -> int:
    batch = load_batch(path, notebook_dir)
    try:
        check_folder(batch)
        note = ""
    except BatchError as error:
        note = f"warning: {error}\n"
    rows = status_table(path, notebook_dir)
    print(f"{note}batch {batch.name}: {len(rows)} runs in {batch.runs_dir}")
    for row in rows:
        extra = f"{row['seconds']:.0f}s" if row["seconds"] is not None else ""
        if row["cause"]:
            extra = f"{extra} [{row['cause']}: {_CAUSE_NOTE[row['cause']]}]".strip()
        if row["error"]:
            extra = f"{extra} {row['error']}".strip()
        grid = " ".join(f"{k}={v}" for k, v in row["grid"].items())
        print(f"  {row['state']:<9} {row['run_id']:<40} {grid} {extra}")
    counts = {s: sum(r["state"] == s for r in rows) for s in ("finished", "failed", "running", "pending")}
    print("  " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return 0 if counts["finished"] == len(rows) else 1


def _print_compute(batches: Sequence[str], write: bool) -> int:
    """Print (and with ``write`` store) the compute report of ``batches``."""
    from calibkd.paths import cache_dir
    from calibkd.runs.compute import batch_compute, compute_table, write_reports

    roots = [batch_root(b) for b in batches]
    reports = batch_compute(roots, cache_dir())
    print(compute_table(reports))
    for path in write_reports(reports, roots) if write else []:
        print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m calibkd.runs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run every unfinished run of a batch")
    run.add_argument("batch", help="batch folder (holding batch.yaml) or its name under papermill_runs/")
    run.add_argument("--retry", action="store_true", help="rerun runs that failed by their own error too "
                     "(runs whose worker was lost are always rerun)")
    run.add_argument("--scheduler", help="address of an existing Dask scheduler, e.g. tcp://host:8786")
    run.add_argument("--workers", type=int, help="workers of the embedded LocalCluster (default: sized to the machine)")
    run.add_argument("--sequential", action="store_true", help="no Dask: one run after another in this process")
    run.add_argument("--connect-timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT,
                     help="seconds to wait for --scheduler to answer (default %(default)s)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    status = commands.add_parser("status", help="the state of each run of a batch")
    status.add_argument("batch")
    aggregate = commands.add_parser("aggregate", help="write results.csv and paired.csv of a batch and print "
                                    "its summary (test split: accuracy, ECE, NLL, Brier)")
    aggregate.add_argument("batch")
    aggregate.add_argument("--reference", default="kd", help="model the paired differences are taken against "
                           "(default %(default)s; 'none' skips them)")
    aggregate.add_argument("--replicate", default="seed", help="the grid parameter intervals are taken over")
    aggregate.add_argument("--confidence", type=float, default=0.95)
    aggregate.add_argument("--allow-mixed-code", action="store_true", help="aggregate runs made by different code "
                           "anyway (recorded in results.json); refused by default")
    aggregate.add_argument("--allow-dirty", action="store_true", help="aggregate runs made from a working tree that "
                           "differed from its commit anyway (listed in results.json); refused by default")
    estimate = commands.add_parser("estimate", help="expected wall time per run and for the batch, from "
                                   "throughput measured now on this device (calibkd.runs.estimate)")
    estimate.add_argument("batch")
    estimate.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                          help="device to measure on (default: the runs' own device parameter; auto: CUDA when present)")
    estimate.add_argument("--quick", action="store_true", help="fewer timed steps: a rougher throughput in seconds")
    estimate.add_argument("--json", action="store_true", help="print the estimate as JSON")
    compute = commands.add_parser("compute", help="what batches cost: their runs' last sittings and the training "
                                  "seconds of the models they used, from the model cache (calibkd.runs.compute)")
    compute.add_argument("batch", nargs="+", help="batches in the order they ran: a model counts with the first")
    compute.add_argument("--write", action="store_true", help="also write each batch's compute.json")
    for sub in (run, status, estimate):
        sub.add_argument("--notebook-dir", type=Path, default=NOTEBOOK_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.command == "run" and not args.connect_timeout > 0:
        parser.error(f"--connect-timeout {args.connect_timeout:g}: must be a positive number of seconds")
    if args.command == "run" and args.workers is not None and args.workers < 1:
        parser.error(f"--workers {args.workers}: must be at least 1")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        with one_line_warnings():
            return _command(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _command(args: argparse.Namespace) -> int:
    """Run the parsed subcommand; its exit status."""
    if args.command == "run":
        report = run_batch(args.batch, retry=args.retry, scheduler=args.scheduler, workers=args.workers,
                           sequential=args.sequential, notebook_dir=args.notebook_dir,
                           connect_timeout=args.connect_timeout, progress=not args.no_progress)
        print(report.summary())
        return 0 if report.complete else 1
    if args.command == "status":
        return _print_status(args.batch, args.notebook_dir)
    if args.command == "estimate":
        from calibkd.runs.estimate import estimate_main

        return estimate_main(args.batch, args.device, args.quick, args.json, args.notebook_dir)

    if args.command == "compute":
        return _print_compute(args.batch, args.write)

    reference = None if args.reference.lower() == "none" else args.reference
    written = write_results(batch_root(args.batch), reference, args.replicate, args.confidence,
                            allow_mixed_code=args.allow_mixed_code, allow_dirty=args.allow_dirty)
    print(summary_text(pd.read_csv(written["summary"])))
    print()
    for path in written.values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

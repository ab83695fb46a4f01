"""Where a batch's runs live on disk, and the rules that make them safe.

``runs/<run-id>/`` is either *finished* (holds ``run.json``, written last) or
*failed* (holds ``failed.json`` and ``error.txt``). Nothing else counts: a run
is assembled in a hidden staging folder ``runs/.<run-id>.<host>-<pid>-<rand>.partial/``
and renamed into place in one step, so a run killed midway leaves only a
staging folder, which the next attempt deletes.

A run-id is executed only by the process that holds its lock
``runs/.locks/<run-id>.lock``: an exclusive ``flock`` that the operating
system releases when the holder dies, however it dies, so there are no stale
locks to detect. (POSIX only; on NFS, Linux maps ``flock`` to NFS locks.)

What a run's processes write besides its results stays inside the batch
folder, so a killed run leaves nothing elsewhere: the kernel's connection file
(it holds the kernel's signing key) and temporary files go to ``.kernel/`` in
the staging folder (deleted on publish, or with the staging folder by the next
attempt), and the embedded Dask cluster's worker scratch space to
``runs/.dask-scratch.<host>-<pid>-<rand>.partial/``, held by a lock while its
runner lives and deleted when it ends or by the next runner (``clear_scratch``).

A failed run's ``failed.json`` says why (``cause``): ``error`` (the notebook
raised or its process exited non-zero) or ``lost_worker`` (the Dask worker
died and the task never returned). A plain rerun retries lost-worker failures;
``--retry`` reruns the others too (``due``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import platform
import secrets
import shutil
import time
from pathlib import Path
from typing import Any, Iterator, Literal

from calibkd.runs.batches import RUNS_DIR

FINISHED = "run.json"
FAILED = "failed.json"
ERROR = "error.txt"
LOCKS = ".locks"
#: Inside a staging folder: the kernel's runtime folder and temporary files, never published.
KERNEL_DIR = ".kernel"
#: ``failed.json``'s ``cause``: the run's own error, or a Dask worker that died under it.
CAUSE_ERROR = "error"
CAUSE_LOST_WORKER = "lost_worker"
SCRATCH_PREFIX = "dask-scratch."

State = Literal["finished", "failed", "running", "pending"]


def runs_dir(root: Path) -> Path:
    return Path(root) / RUNS_DIR


def run_dir(root: Path, run_id: str) -> Path:
    return runs_dir(root) / run_id


def run_state(root: Path, run_id: str) -> State:
    """finished or failed as recorded on disk; otherwise pending (or running,
    which only ``RunLock.held_elsewhere`` can tell)."""
    folder = run_dir(root, run_id)
    if (folder / FINISHED).is_file():
        return "finished"
    if (folder / FAILED).is_file():
        return "failed"
    return "pending"


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def failure_cause(root: Path, run_id: str) -> str:
    """Why a failed run failed: ``failed.json``'s ``cause`` (``error`` for a
    record written before causes were recorded)."""
    cause = read_json(run_dir(root, run_id) / FAILED).get("cause")
    return cause if cause in (CAUSE_ERROR, CAUSE_LOST_WORKER) else CAUSE_ERROR


def due(root: Path, run_id: str, retry: bool = False) -> bool:
    """Whether a run is to be executed: not finished, and not failed by its own
    error unless ``retry`` (a run whose worker was lost is always retried)."""
    state = run_state(root, run_id)
    if state == "finished":
        return False
    if state == "failed":
        return retry or failure_cause(root, run_id) == CAUSE_LOST_WORKER
    return True


class RunLock:
    """An exclusive, non-blocking lock on one run-id, held while it executes."""

    def __init__(self, root: Path, run_id: str) -> None:
        self.path = runs_dir(root) / LOCKS / f"{run_id}.lock"
        self._fd: int | None = None

    def acquire(self, wait: float = 2.0) -> bool:
        """True once held; False if another process holds it for ``wait`` seconds."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"host": platform.node(), "pid": os.getpid(), "since": time.time()}).encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def held_elsewhere(self) -> bool:
        """Whether some process holds the lock now (a brief shared probe)."""
        if not self.path.is_file():
            return False
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        except OSError:
            return True
        finally:
            os.close(fd)

    def holder(self) -> dict[str, Any]:
        """Host and pid written by the last holder."""
        return read_json(self.path)

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def clear_staging(root: Path, run_id: str) -> None:
    """Delete what killed attempts left (call only while holding the run's lock)."""
    for stale in runs_dir(root).glob(f".{run_id}.*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def new_staging(root: Path, run_id: str) -> Path:
    """A fresh, uniquely named staging folder for one attempt."""
    name = f".{run_id}.{platform.node()}-{os.getpid()}-{secrets.token_hex(3)}.partial"
    path = runs_dir(root) / name
    path.mkdir(parents=True)
    return path


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(staging: Path, root: Path, run_id: str) -> Path:
    """Rename a complete staging folder to ``runs/<run-id>`` (replacing an
    earlier failed attempt), without its ``.kernel/`` folder; call only while
    holding the run's lock."""
    shutil.rmtree(staging / KERNEL_DIR, ignore_errors=True)
    final = run_dir(root, run_id)
    old = None
    if final.exists():
        old = final.with_name(f".{run_id}.{secrets.token_hex(3)}.old")
        final.rename(old)
    staging.rename(final)
    _fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


@contextlib.contextmanager
def dask_scratch(root: Path) -> Iterator[Path]:
    """A scratch folder for the workers of one runner's embedded Dask cluster,
    ``runs/.dask-scratch.<host>-<pid>-<rand>.partial/``: locked
    (``runs/.locks/dask-scratch.<...>.lock``) while the runner lives, deleted
    when it ends; a killed runner's is deleted by the next ``clear_scratch``."""
    name = f"{SCRATCH_PREFIX}{platform.node()}-{os.getpid()}-{secrets.token_hex(3)}"
    lock = RunLock(root, name)
    if not lock.acquire(wait=0):  # a fresh random name: nobody else holds it
        raise RuntimeError(f"could not lock {lock.path}")
    folder = runs_dir(root) / f".{name}.partial"
    try:
        folder.mkdir(parents=True)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        lock.path.unlink(missing_ok=True)
        lock.release()


def clear_scratch(root: Path) -> list[Path]:
    """Delete the Dask scratch folders of runners that are gone (their lock is
    free); those of living runners stay. Returns the folders deleted."""
    cleared = []
    for folder in sorted(runs_dir(root).glob(f".{SCRATCH_PREFIX}*.partial")):
        lock = RunLock(root, folder.name[1:-len(".partial")])
        if not lock.path.is_file() or not lock.acquire(wait=0):
            continue  # not a runner's scratch folder, or its runner is alive
        try:
            shutil.rmtree(folder, ignore_errors=True)
            lock.path.unlink(missing_ok=True)
            cleared.append(folder)
        finally:
            lock.release()
    return cleared

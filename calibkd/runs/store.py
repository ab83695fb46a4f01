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
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
import secrets
import shutil
import time
from pathlib import Path
from typing import Any, Literal

from calibkd.runs.batches import RUNS_DIR

FINISHED = "run.json"
FAILED = "failed.json"
ERROR = "error.txt"
LOCKS = ".locks"

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
    earlier failed attempt); call only while holding the run's lock."""
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

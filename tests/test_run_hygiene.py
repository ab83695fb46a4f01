"""What runs leave behind, and who can reach them while they run.

- The Dask cluster docs/batches.md tells users to start, and the embedded one
  the runner starts, listen on loopback only (the commands are read from the
  page, so the page and the test cannot drift apart).
- A killed run leaves its kernel's connection file (which holds the kernel's
  signing key) and the Dask scratch space inside the batch folder only, and
  the next run deletes them; an empty home folder and ``$TMPDIR`` stay empty.
- A failed run records whether it failed by its own error or by a lost Dask
  worker; a plain rerun retries lost workers only, ``--retry`` the rest.

The executing tests use the stand-in chapter-01 notebook of ``test_runs``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import CancelledError
from pathlib import Path
from types import SimpleNamespace

import nbformat
import psutil
import pytest

from calibkd.runs import store as run_store
from calibkd.runs.batches import BatchError, RunSpec, load_batch
from calibkd.runs.runner import _lost, dask_client, lost_cause, main, run_batch, status_table
from tests.test_runs import NOTEBOOK, STAND_IN_BODY, STAND_IN_PARAMETERS, executions, simple, write_batch

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BATCHES_DOC = ROOT / "docs" / "batches.md"
LOOPBACK = {"127.0.0.1", "::1"}
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")

# Before the stand-in's body: a kernel that kills itself for lr == 7.0 while $CALIBKD_CACHE/die exists.
SELF_KILL = """\
import os, signal
if lr == 7.0 and os.path.exists(os.path.join(os.environ["CALIBKD_CACHE"], "die")):
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture
def stand_in(tmp_path: Path) -> Path:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(STAND_IN_PARAMETERS, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(SELF_KILL + STAND_IN_BODY)]
    nbformat.write(nb, folder / f"{NOTEBOOK}.ipynb")
    return folder


@pytest.fixture
def cache(isolated_cache: Path) -> Path:
    isolated_cache.mkdir(parents=True, exist_ok=True)
    return isolated_cache


# ---------------------------------------------------------------------------
# who can reach a cluster: loopback only
# ---------------------------------------------------------------------------


def documented_dask_commands(text: str) -> list[tuple[dict[str, str], list[str]]]:
    """Each ``dask scheduler`` / ``dask worker`` command in the fenced code of a
    Markdown page: (its ``NAME=value`` prefix, its words after ``dask``)."""
    commands, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if not fenced:
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        env = {}
        while words and ASSIGNMENT.match(words[0]):
            name, value = words.pop(0).split("=", 1)
            env[name] = value
        if len(words) >= 2 and words[0] == "dask" and words[1] in ("scheduler", "worker"):
            commands.append((env, words[1:]))
    return commands


def _option(words: list[str], name: str) -> str | None:
    return words[words.index(name) + 1] if name in words[:-1] else None


def _binds_safely(words: list[str]) -> bool:
    """On loopback, or with TLS (certificates and a tls address); the HTTP
    server on loopback (``--no-dashboard`` does not stop it)."""
    has_certificates = "$TLS" in words or "--tls-cert" in words
    if words[0] == "scheduler":
        tls = has_certificates and _option(words, "--protocol") == "tls"
    else:
        tls = has_certificates and words[1].startswith("tls://")
    host = _option(words, "--host")
    http = (_option(words, "--dashboard-address") or "").rsplit(":", 1)[0]
    return (host in LOOPBACK or tls) and http in LOOPBACK


def test_every_documented_dask_command_binds_to_loopback_or_uses_tls():
    found = {str(path.relative_to(ROOT)): documented_dask_commands(path.read_text()) for path in DOCS}
    commands = [words for listed in found.values() for _, words in listed]
    assert any(w[0] == "scheduler" for w in commands) and any(w[0] == "worker" for w in commands)
    unsafe = [" ".join(words) for words in commands if not _binds_safely(words)]
    assert not unsafe, f"documented Dask commands that listen beyond loopback without TLS: {unsafe}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(process: psutil.Process) -> set[tuple[str, int]]:
    """(address, port) of every socket that a process and its descendants listen on."""
    found = set()
    for proc in [process, *process.children(recursive=True)]:
        try:
            found |= {(c.laddr.ip, c.laddr.port) for c in proc.net_connections(kind="inet")
                      if c.status == psutil.CONN_LISTEN}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_the_documented_local_cluster_listens_on_loopback_only(tmp_path):
    """docs/batches.md's first scheduler and worker commands, started as written
    (with free ports, and one worker process instead of several)."""
    from distributed import Client

    commands = documented_dask_commands(BATCHES_DOC.read_text())
    scheduler_env, scheduler = next(c for c in commands if c[1][0] == "scheduler")
    worker_env, worker = next(c for c in commands if c[1][0] == "worker" and c[1][1] == "tcp://127.0.0.1:8786")
    port, http = _free_port(), _free_port()

    def adapt(words: list[str]) -> list[str]:
        text = [re.sub(r"\b8786\b", str(port), re.sub(r"\b8787\b", str(http), w)) for w in words]
        if "--nworkers" in text:
            text[text.index("--nworkers") + 1] = "1"
        return [sys.executable, "-m", "dask", *text]

    started = time.monotonic()
    processes = []
    try:
        with open(tmp_path / "scheduler.log", "wb") as log:
            processes.append(subprocess.Popen(adapt(scheduler), env={**os.environ, **scheduler_env}, cwd=tmp_path,
                                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 60
        while ("127.0.0.1", port) not in _listening(psutil.Process(processes[0].pid)):
            assert processes[0].poll() is None and time.monotonic() < deadline, (tmp_path / "scheduler.log").read_text()
            time.sleep(0.2)
        with open(tmp_path / "worker.log", "wb") as log:
            processes.append(subprocess.Popen(adapt(worker), env={**os.environ, **worker_env}, cwd=tmp_path,
                                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        with Client(f"tcp://127.0.0.1:{port}", timeout=30) as client:
            client.wait_for_workers(1, timeout=60)
        sockets = {p.args[3]: _listening(psutil.Process(p.pid)) for p in processes}
    finally:
        for process in reversed(processes):
            _stop(process)
    assert {("127.0.0.1", port), ("127.0.0.1", http)} <= sockets["scheduler"]  # the server and its HTTP server
    assert len(sockets["worker"]) >= 2  # the nanny and the worker (and the worker's HTTP server)
    beyond = {name: sorted(s for s in found if s[0] not in LOOPBACK) for name, found in sockets.items()}
    assert beyond == {"scheduler": [], "worker": []}
    assert time.monotonic() - started < 60


def test_the_embedded_cluster_listens_on_loopback_and_keeps_its_scratch_in_the_batch(tmp_path):
    me = psutil.Process()
    before = _listening(me)
    root = tmp_path / "b"
    runs = [RunSpec("01-x", NOTEBOOK, {"num_threads": 1}, {})]
    with run_store.dask_scratch(root) as scratch:
        with dask_client(runs, None, 1, 10.0, scratch) as (client, _):
            client.wait_for_workers(1, timeout=60)
            opened = _listening(me) - before
            folders = [*client.run(lambda dask_worker: dask_worker.local_directory).values(),
                       client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.local_directory)]
        assert opened and all(ip in LOOPBACK for ip, _ in opened), opened
        assert all(Path(folder).is_relative_to(scratch) for folder in folders), folders
        assert scratch.parent == root / "runs" and scratch.name.startswith(".dask-scratch.")
        assert run_store.clear_scratch(root) == [] and scratch.is_dir()  # a living runner's scratch stays
    assert not scratch.exists() and not list((root / "runs" / ".locks").glob("dask-scratch.*"))


def test_a_tls_scheduler_without_certificates_is_a_clear_error(tmp_path, stand_in, monkeypatch):
    for name in [n for n in os.environ if n.startswith("DASK_DISTRIBUTED__COMM__TLS")]:
        monkeypatch.delenv(name)
    root = write_batch(tmp_path / "b", simple({"seed": [0]}))
    with pytest.raises(BatchError, match="a tls:// scheduler needs this side's certificates"):
        run_batch(root, scheduler=f"tls://127.0.0.1:{_free_port()}", connect_timeout=1, notebook_dir=stand_in)
    assert sorted(p.name for p in root.iterdir()) == ["batch.yaml"]


# ---------------------------------------------------------------------------
# leftovers: a killed run keeps them in its batch folder, and the next run deletes them
# ---------------------------------------------------------------------------


def _kernel(runner: psutil.Process) -> tuple[psutil.Process, Path] | None:
    """The ipykernel below ``runner`` and its connection file (``-f PATH``)."""
    for proc in runner.children(recursive=True):
        try:
            words = proc.cmdline()
        except psutil.NoSuchProcess:
            continue
        if any("ipykernel" in w for w in words) and "-f" in words[:-1]:
            return proc, Path(words[words.index("-f") + 1])
    return None


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.notebooks
def test_a_killed_run_leaves_its_kernel_files_and_scratch_only_in_the_batch_and_the_next_run_clears_them(
        tmp_path, stand_in, cache):
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(tmp)}
    for name in ("IPYTHONDIR", "MPLCONFIGDIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "XDG_RUNTIME_DIR",
                 "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        env.pop(name, None)
    (cache / "hold").touch()
    root = write_batch(tmp_path / "b", simple({"seed": [0]}))
    run_id = load_batch(root, stand_in).runs[0].run_id
    command = [sys.executable, "-m", "calibkd.runs.runner", "run", str(root), "--workers", "1", "--no-progress",
               "--notebook-dir", str(stand_in)]
    runner = subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while (found := _kernel(psutil.Process(runner.pid))) is None or not found[1].is_file():
            assert runner.poll() is None and time.monotonic() < deadline, "the run's kernel never started"
            time.sleep(0.2)
        kernel, connection = found
        time.sleep(1.0)  # the notebook is executing (waiting on the hold file)
        key = json.loads(connection.read_text())["key"]
        staging = next((root / "runs").glob(f".{run_id}.*.partial"))
        assert connection.parent == (staging / run_store.KERNEL_DIR).resolve()
        scratch = list((root / "runs").glob(".dask-scratch.*.partial"))
        assert len(scratch) == 1 and (scratch[0] / "dask-scratch-space").is_dir()
    finally:
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait()
    try:
        kernel.wait(timeout=15)  # it polls its parent and exits when that is gone
    except psutil.TimeoutExpired:
        kernel.kill()
        pytest.fail("the kernel outlived its papermill process by 15 s")

    # the leftovers of the killed run: in the batch folder only
    assert connection.is_file() and scratch[0].is_dir()
    assert _files(home) == [] and _files(tmp) == []
    assert run_store.run_state(root, run_id) == "pending"

    (cache / "hold").unlink()
    rerun = subprocess.run([*command[:5], "--sequential", *command[7:]], env=env, cwd=ROOT, capture_output=True,
                           text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert run_store.run_state(root, run_id) == "finished"
    assert not connection.exists() and not list((root / "runs").glob(".*.partial"))
    assert not list(root.rglob(run_store.KERNEL_DIR))
    assert not [p for p in root.rglob("*.json") if key in p.read_text(errors="replace")]
    assert not list((root / "runs" / ".locks").glob("dask-scratch.*"))
    assert _files(home) == [] and _files(tmp) == []
    assert (tmp_path / "ipython").is_dir()  # the kernels' IPython folder: in the project cache (here tmp_path)


def test_the_study_keeps_its_kernels_files_in_its_staging_folder(tmp_path, monkeypatch):
    """``python -m calibkd.study`` runs papermill in its own process: the
    connection file papermill writes with ``tempfile`` lands in the staging
    folder, and the process's settings are restored afterwards."""
    import papermill

    from calibkd.study import runner as study

    seen = {}

    def execute_notebook(input_path, output_path, parameters, **kwargs):
        fd, connection = tempfile.mkstemp(".json")  # as jupyter_client writes a kernel's connection file
        os.close(fd)
        seen.update({name: os.environ.get(name) for name in ("TMPDIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR",
                                                             "MPLCONFIGDIR")})
        seen.update(connection=connection, output=output_path)
        Path(output_path).write_text("{}")

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    for name in ("IPYTHONDIR", "MPLCONFIGDIR"):
        monkeypatch.delenv(name, raising=False)
    environment, tempdir = dict(os.environ), tempfile.gettempdir()
    final = study.run_study([NOTEBOOK], {"profile": "smoke"}, output=tmp_path / "study")
    runtime = (Path(seen["output"]).parent / study.KERNEL_RUNTIME).resolve()
    assert Path(seen["connection"]).parent == runtime
    assert seen["TMPDIR"] == seen["JUPYTER_RUNTIME_DIR"] == str(runtime)
    assert seen["IPYTHONDIR"] == str(tmp_path / "ipython") and seen["MPLCONFIGDIR"] == str(tmp_path / "matplotlib")
    assert not (final / study.KERNEL_RUNTIME).exists() and (final / f"{NOTEBOOK}.ipynb").is_file()
    assert dict(os.environ) == environment and tempfile.gettempdir() == tempdir


# ---------------------------------------------------------------------------
# a lost worker is not the run's own error
# ---------------------------------------------------------------------------


def test_lost_cause_tells_a_lost_worker_from_the_tasks_own_error():
    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    for error in (KilledWorker("calibkd-run-x", None, 3), CancelledError(), CommClosedError("closed")):
        assert lost_cause(error) == "lost_worker"
    for error in (RuntimeError("boom"), OSError("disk full"), KeyError("x")):
        assert lost_cause(error) == "error"


@pytest.mark.notebooks
def test_a_lost_worker_is_recorded_as_such_and_a_plain_rerun_retries_it(tmp_path, stand_in, cache, capsys):
    from distributed import KilledWorker

    root = write_batch(tmp_path / "b", simple({"seed": [0, 1]}))
    batch = load_batch(root, stand_in)
    lost = batch.runs[0]
    worker = SimpleNamespace(address="tcp://127.0.0.1:40000")
    outcome = _lost(batch, lost, KilledWorker(f"calibkd-run-{lost.run_id}", worker, 3))
    assert outcome["status"] == "failed" and outcome["cause"] == "lost_worker"
    record = json.loads((run_store.run_dir(root, lost.run_id) / run_store.FAILED).read_text())
    assert record["cause"] == "lost_worker" and "KilledWorker" in record["error"]
    assert [r["cause"] for r in status_table(root, stand_in)] == ["lost_worker", None]
    assert main(["status", str(root), "--notebook-dir", str(stand_in)]) == 1
    assert "[lost_worker: a plain rerun retries it]" in capsys.readouterr().out

    report = run_batch(root, sequential=True, notebook_dir=stand_in, progress=False)  # no --retry
    assert report.complete and report.count("finished") == 2
    assert sorted(e["seed"] for e in executions(cache)) == [0, 1]


@pytest.mark.notebooks
def test_runs_failed_by_their_own_error_say_so_and_wait_for_retry(tmp_path, stand_in, cache, capsys):
    """The notebook raised (lr 9.0), or its kernel died (lr 7.0, killed by
    itself): both are the run's own error, and leave no connection file."""
    (cache / "fail").touch()
    (cache / "die").touch()
    root = write_batch(tmp_path / "b", simple({"lr": [7.0, 9.0]}))
    assert main(["run", str(root), "--sequential", "--no-progress", "--notebook-dir", str(stand_in)]) == 1
    capsys.readouterr()
    rows = {r["grid"]["lr"]: r for r in status_table(root, stand_in)}
    assert {lr: (r["state"], r["cause"]) for lr, r in rows.items()} == {7.0: ("failed", "error"),
                                                                          9.0: ("failed", "error")}
    assert "stand-in failure" in rows[9.0]["error"] and "DeadKernelError" in (
        run_store.run_dir(root, rows[7.0]["run_id"]) / run_store.ERROR).read_text()
    assert not list(root.rglob(run_store.KERNEL_DIR)) and not list((root / "runs").glob(".*.partial"))
    assert main(["status", str(root), "--notebook-dir", str(stand_in)]) == 1
    assert capsys.readouterr().out.count("[error: --retry reruns it]") == 2

    report = run_batch(root, sequential=True, notebook_dir=stand_in, progress=False)  # no --retry: left as is
    assert report.count("skipped") == 2 and executions(cache) == []
    assert "--retry reruns it" in report.summary()
    (cache / "fail").unlink()
    (cache / "die").unlink()
    report = run_batch(root, retry=True, sequential=True, notebook_dir=stand_in, progress=False)
    assert report.complete and report.count("finished") == 2


@pytest.mark.notebooks
def test_a_worker_killed_under_a_run_is_recorded_as_a_lost_worker(tmp_path, stand_in, cache):
    """A real lost worker: the Dask worker running the run is killed (Dask
    allowed no retries here), so the task never returns."""
    import dask

    (cache / "hold").touch()
    root = write_batch(tmp_path / "b", simple({"seed": [0]}))
    run_id = load_batch(root, stand_in).runs[0].run_id
    lock = run_store.RunLock(root, run_id)
    killed = []

    def kill_the_worker() -> None:
        deadline = time.monotonic() + 120
        while not (list((root / "runs").glob(f".{run_id}.*.partial/log.txt")) and lock.held_elsewhere()):
            if time.monotonic() > deadline:
                return
            time.sleep(0.2)
        time.sleep(1.0)
        killed.append(lock.holder()["pid"])
        os.kill(killed[0], signal.SIGKILL)

    threading.Thread(target=kill_the_worker, daemon=True).start()
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        report = run_batch(root, workers=1, notebook_dir=stand_in, progress=False)
    assert killed and killed[0] != os.getpid()
    assert [(o["status"], o["cause"]) for o in report.outcomes] == [("failed", "lost_worker")]
    assert run_store.failure_cause(root, run_id) == "lost_worker"
    assert "its Dask worker was lost; a plain rerun retries it" in report.summary()

    (cache / "hold").unlink()
    again = run_batch(root, sequential=True, notebook_dir=stand_in, progress=False)  # no --retry
    assert again.complete and again.count("finished") == 1

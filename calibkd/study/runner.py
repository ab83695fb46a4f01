"""The main job: execute the study's notebooks in order with papermill.

``python -m calibkd.study`` runs every numbered notebook with its default
parameters (or ``--profile`` / ``-p name value`` overrides) into
``papermill_runs/study/<run-id>/``: the executed notebooks, ``figures/``,
one tidy ``metrics.csv``, ``parameters.yaml`` and ``provenance.json``. The
run-id is a hash of the resolved parameters. All parameters are validated
before the first notebook starts; the folder is assembled under a temporary
name and renamed into place only when every notebook finished.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import contextlib
import copy
import functools
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import pandas as pd
import yaml

from calibkd.config import NOTEBOOK_PARAMETERS, result_identity, validate_parameters
from calibkd.errors import ConfigError
from calibkd.io import atomic_write_text, params_key
from calibkd.paths import batches_dir, download_dir, home, source_checkout
from calibkd.study.kernels import START_TIMEOUT, WarmKernel

#: The chapters the study and batches execute: ``notebooks/`` of the source
#: checkout (``paths.source_checkout``: the editable checkout, else the home
#: when it is one); an installed package without a checkout has none.
NOTEBOOK_DIR = (source_checkout() or home()) / "notebooks"
#: Study runs go to ``<home>/papermill_runs/<STUDY_FOLDER>/``.
STUDY_FOLDER = "study"


def default_output() -> Path:
    """Where study runs go by default: ``<home>/papermill_runs/study``."""
    return batches_dir() / STUDY_FOLDER
#: What every notebook kernel of a study or batch run gets, besides ``OMP_WAIT_POLICY``.
KERNEL_ENV = {"CALIBKD_PROGRESS": "0", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
#: The kernels' OpenMP wait policy when the caller sets none: PASSIVE degrades
#: gracefully when jobs share the cores, ACTIVE is faster on an idle machine
#: (docs/benchmark.md); ``OMP_WAIT_POLICY=ACTIVE make study`` chooses it.
DEFAULT_OMP_WAIT_POLICY = "PASSIVE"
#: In a study's staging folder while its notebooks run: the kernels' connection
#: files and temporary files (``kernel_runtime``); deleted when they end, or
#: with the staging folder by the next run when the study was killed.
KERNEL_RUNTIME = ".kernel"


def kernel_environment() -> dict[str, str]:
    """The environment settings every kernel gets: ``KERNEL_ENV`` and the
    caller's ``OMP_WAIT_POLICY`` (``DEFAULT_OMP_WAIT_POLICY`` when unset)."""
    return {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY") or DEFAULT_OMP_WAIT_POLICY, **KERNEL_ENV}


def kernel_directories() -> dict[str, str]:
    """Where the kernels of study and batch runs keep IPython's profile and
    matplotlib's configuration and font cache: the caller's ``IPYTHONDIR`` and
    ``MPLCONFIGDIR``, else ``ipython/`` and ``matplotlib/`` in the project's
    cache beside the downloads (``.cache/`` in the checkout), not the home
    folder, whose startup files and ``matplotlibrc`` would change a run."""
    cache = download_dir().parent
    return {"IPYTHONDIR": os.environ.get("IPYTHONDIR") or str(cache / "ipython"),
            "MPLCONFIGDIR": os.environ.get("MPLCONFIGDIR") or str(cache / "matplotlib")}


def kernel_runtime(folder: Path) -> dict[str, str]:
    """Environment that keeps a kernel's connection file (it holds the kernel's
    signing key) and temporary files in ``folder`` (created, mode 0700): papermill
    writes the connection file with ``tempfile``, so ``TMPDIR`` decides where,
    and ``JUPYTER_RUNTIME_DIR`` for Jupyter's own runtime files. Put ``folder``
    inside the run's staging folder, so a killed run leaves them there."""
    folder = Path(folder).resolve()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return {"JUPYTER_RUNTIME_DIR": str(folder), "TMPDIR": str(folder)}


def notebook_path(name: str, notebook_dir: Path = NOTEBOOK_DIR) -> Path:
    """``<notebook_dir>/<name>.ipynb``; tests point ``notebook_dir`` at stand-in notebooks."""
    path = Path(notebook_dir) / f"{name}.ipynb"
    if not path.is_file():
        raise ConfigError(f"notebook {path} does not exist")
    return path


@functools.lru_cache(maxsize=32)
def _declared_parameters(path: str, mtime_ns: int) -> dict[str, Any]:
    import papermill

    declared = papermill.inspect_notebook(path)
    return {name: ast.literal_eval(spec["default"]) for name, spec in declared.items()}


def declared_parameters(path: Path) -> dict[str, Any]:
    """Default values of a notebook's ``parameters`` cell, as papermill reads them
    (read once per version of the file: batches resolve many runs)."""
    path = Path(path)
    return copy.deepcopy(_declared_parameters(str(path.resolve()), path.stat().st_mtime_ns))


def resolve_parameters(notebooks: Sequence[str], overrides: dict[str, Any],
                       notebook_dir: Path = NOTEBOOK_DIR) -> dict[str, dict[str, Any]]:
    """Each notebook's defaults with the overrides that it declares, validated.

    An override that no selected notebook declares is an error.
    """
    unused = set(overrides) - {"output_dir"}
    resolved = {}
    for name in notebooks:
        params = declared_parameters(notebook_path(name, notebook_dir))
        for key, value in overrides.items():
            if key in params:
                params[key] = value
                unused.discard(key)
        resolved[name] = validate_parameters(name, params)
    if unused:
        allowed = sorted({p for n in notebooks for p in NOTEBOOK_PARAMETERS[n]})
        raise ConfigError(f"unknown parameter(s) {sorted(unused)}; allowed parameters: {allowed}")
    return resolved


def provenance() -> dict[str, Any]:
    """Hardware, versions and code version the run used.

    ``code_version`` is the fingerprint of the training code (the ``code`` of
    the cache keys of the models the run trained or loaded),
    ``study_code_version`` that of every module a run's numbers depend on, and
    ``notebook_code_versions`` each notebook's (``calibkd.training.code_version``);
    ``git_dirty`` says whether ``calibkd/`` or ``notebooks/`` differed from the
    commit. Both are read from the files now, as the git commit is (not once
    per process: a batch runner outlives edits, its runs import afresh).
    """
    import torch

    from calibkd.training.code_version import code_version, notebook_code_versions, study_code_version

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=NOTEBOOK_DIR.parent, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "calibkd", "notebooks"],
                                    cwd=NOTEBOOK_DIR.parent, capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", None
    return {
        "git_commit": commit, "git_dirty": dirty, "code_version": code_version(cached=False),
        "study_code_version": study_code_version(cached=False),
        "notebook_code_versions": notebook_code_versions(cached=False),
        "python": platform.python_version(),
        "torch": torch.__version__, "platform": platform.platform(), "processor": platform.processor(),
        "cpu_count": os.cpu_count(), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "kernel_env": kernel_environment(),
    }


class NotebookFailed(RuntimeError):
    """A notebook of a study raised: its name, the cell, the error in one
    line, and the executed copy that holds the traceback."""

    def __init__(self, name: str, error: Any, executed: Path):
        self.name, self.ename, self.evalue, self.executed = name, error.ename, error.evalue, Path(executed)
        first = str(error.evalue).strip().splitlines()[0] if str(error.evalue).strip() else ""
        where = f"cell {error.exec_count}" if error.exec_count else "a cell"
        super().__init__(f"{name} failed in {where}: {error.ename}: {first} "
                         f"(traceback in {executed})")


def run_study(notebooks: Sequence[str], overrides: dict[str, Any], output: Path | None = None,
              log_output: bool = False) -> Path:
    """Execute ``notebooks`` in order; returns the finished run folder.

    Prints one progress line per notebook (its name, then its time when it
    ends); ``log_output`` also streams the notebooks' printed output (epoch
    lines) to the log. A notebook that fails raises ``NotebookFailed`` (one
    line: the notebook, the cell, the error, where the executed copy is).
    """
    import papermill

    resolved = resolve_parameters(notebooks, overrides)
    output = Path(output) if output is not None else default_output()
    identity = {name: result_identity(params) for name, params in resolved.items()}
    profile = next((params["profile"] for params in resolved.values() if "profile" in params), "results")
    run_id = f"{profile}-{params_key(identity)[:10]}"  # chapter 05 alone has no profile
    final = output / run_id
    staging = output / f".{run_id}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    atomic_write_text(staging / "parameters.yaml", yaml.safe_dump(resolved, sort_keys=False))
    timings = {}
    old_env, old_tempdir = os.environ.copy(), tempfile.tempdir
    os.environ.update(kernel_environment())  # the kernels papermill starts inherit it
    os.environ.update(kernel_directories())
    os.environ.update(kernel_runtime(staging / KERNEL_RUNTIME))
    tempfile.tempdir = os.environ["TMPDIR"]  # papermill's connection file, written from this process
    # quiet: the kernel's own log (its warning about the local TCP transport, the
    # interrupt jupyter_client sends before every shutdown) stays out
    kernel_arguments = ["--HistoryManager.hist_file=:memory:"] + ([] if log_output else ["--IPKernelApp.log_level=CRITICAL"])
    kernels: list[WarmKernel] = []
    # what the run records of its code and machine, read while the first chapter runs
    recording = concurrent.futures.ThreadPoolExecutor(1)
    recorded = recording.submit(provenance)
    try:
        kernels.append(WarmKernel(NOTEBOOK_DIR, kernel_arguments))
        for number, name in enumerate(notebooks, 1):
            if number < len(notebooks):  # the next chapter's kernel starts and imports while this one runs
                kernels.append(WarmKernel(NOTEBOOK_DIR, kernel_arguments))
            params = dict(resolved[name], output_dir=str(staging.resolve()))
            print(f"[{number}/{len(notebooks)}] {name} ...", end="\n" if log_output else " ", flush=True)
            start = time.perf_counter()
            executed = staging / f"{name}.ipynb"
            try:
                papermill.execute_notebook(
                    str(notebook_path(name)), str(executed), parameters=params, km=kernels[number - 1].ready(),
                    kernel_name="python3", cwd=str(NOTEBOOK_DIR), progress_bar=False, log_output=log_output,
                    start_timeout=START_TIMEOUT,  # the kernel answers once its warm-up imports are done
                )
            except papermill.PapermillExecutionError as error:
                print("failed", flush=True)
                raise NotebookFailed(name, error, executed) from None
            finally:
                kernels[number - 1].shutdown()
            timings[name] = round(time.perf_counter() - start, 1)
            print(f"{'  ' + name + ' ' if log_output else ''}done in {timings[name]:.0f} s", flush=True)
    finally:
        for kernel in kernels:
            kernel.shutdown()
        recording.shutdown()
        os.environ.clear()
        os.environ.update(old_env)
        tempfile.tempdir = old_tempdir
        shutil.rmtree(staging / KERNEL_RUNTIME, ignore_errors=True)
    tables = sorted(staging.glob("metrics_*.csv"))
    if tables:
        merged = pd.concat([pd.read_csv(t) for t in tables], ignore_index=True)
        atomic_write_text(staging / "metrics.csv", merged.to_csv(index=False))
    record = {"run_id": run_id, "notebooks": list(notebooks), "seconds": timings,
              "total_seconds": round(sum(timings.values()), 1), **recorded.result()}
    atomic_write_text(staging / "provenance.json", json.dumps(record, indent=1))
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    print(f"study written to {final} ({record['total_seconds']:.0f} s)")
    return final


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Inside: a warning prints as one line, ``warning: <message>``, not with
    its source line (the command lines' output); restored afterwards."""
    shown = warnings.formatwarning
    warnings.formatwarning = lambda message, *_, **__: f"warning: {message}\n"
    try:
        yield
    finally:
        warnings.formatwarning = shown


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=None, help="smoke, default or full")
    parser.add_argument("--notebooks", nargs="+", default=sorted(NOTEBOOK_PARAMETERS),
                        help="notebook names to run, in order")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override a notebook parameter (Python literal)")
    parser.add_argument("--output", type=Path, default=None,
                        help="parent folder of the run (default: <home>/papermill_runs/study, calibkd.paths)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="stream the notebooks' output and papermill's log (default: one line per notebook)")
    args = parser.parse_args(argv)
    overrides = {name: _parse_value(value) for name, value in args.parameter}
    if args.profile:
        overrides["profile"] = args.profile
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    logging.getLogger("papermill").setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        with one_line_warnings():
            run_study(args.notebooks, overrides, args.output, log_output=args.verbose)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except NotebookFailed as error:
        if error.ename == "ConfigError":  # a parameter the notebook itself refused
            print(f"error: {error.name}: {str(error.evalue).strip()}", file=sys.stderr)
            return 2
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

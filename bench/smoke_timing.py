"""How long the smoke profile takes: ``python bench/smoke_timing.py --help``.

Times every chapter's smoke copy (the chapter with ``profile = "smoke"``
injected, as ``tests/notebooks_smoke/`` holds it) cell by cell with nbclient,
and, with ``--study``, the whole ``python -m calibkd.study --profile smoke``.
With ``--empty-cache`` the models go to a fresh temporary ``$CALIBKD_CACHE``
(trained from nothing; the shared cache is never touched), otherwise the
models come from the cache as they are.

Reports per chapter the wall time, the kernel's user + sys CPU time (honest
when the machine is shared: wall time then includes waiting for a core), the
slowest cells, and the machine's load average before and after. Writes JSON
to ``bench/results/smoke-<label>.json``. Not a test: timings vary by machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from calibkd.course.notebook_tools import declares_profile, smoke_copy  # noqa: E402


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _cell_seconds(cell: nbformat.NotebookNode) -> float:
    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not start or not end:
        return 0.0
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def save_figures(notebook: nbformat.NotebookNode, folder: Path, stem: str) -> int:
    """Write every PNG the executed ``notebook`` shows to ``folder`` (to look at them); how many."""
    import base64

    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if "image/png" in output.get("data", {}):
                count += 1
                (folder / f"{stem}_cell{index:02d}_{count}.png").write_bytes(base64.b64decode(output["data"]["image/png"]))
    return count


def time_chapter(source: Path, workdir: Path, figures: Path | None = None) -> dict:
    """Execute the smoke copy of ``source`` (a chapter's .ipynb) in ``workdir``; wall, CPU and cell times
    (and its figures written to ``figures``, if given)."""
    from nbclient import NotebookClient

    notebook = smoke_copy(nbformat.read(source, as_version=4))
    before_cpu, before_load, start = _children_cpu(), _load(), time.perf_counter()
    client = NotebookClient(notebook, kernel_name="python3", timeout=None, record_timing=True,
                            resources={"metadata": {"path": str(workdir)}})
    error = None
    try:
        client.execute()
    except Exception as exc:  # a failing cell still leaves its timings
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    wall = time.perf_counter() - start
    cells = [(round(_cell_seconds(c), 1), i, c.source.splitlines()[0][:70] if c.source else "")
             for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
    shown = save_figures(notebook, figures, source.stem) if figures is not None else None
    return {"chapter": source.stem, "wall_s": round(wall, 1), "kernel_cpu_s": round(_children_cpu() - before_cpu, 1),
            "load_before": before_load, "load_after": _load(), "error": error, "figures": shown,
            "slowest_cells": sorted(cells, reverse=True)[:5]}


def time_study(extra: list[str]) -> dict:
    """``python -m calibkd.study --profile smoke`` into a temporary folder."""
    with tempfile.TemporaryDirectory() as out:
        before_cpu, before_load, start = _children_cpu(), _load(), time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "calibkd.study", "--profile", "smoke", "--output", out, *extra],
                                cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
    return {"chapter": "calibkd.study --profile smoke", "wall_s": round(wall, 1),
            "kernel_cpu_s": round(_children_cpu() - before_cpu, 1), "load_before": before_load,
            "load_after": _load(), "error": None if result.returncode == 0 else result.stderr[-2000:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapters", nargs="*", help="chapter .ipynb files (default: every chapter with a profile)")
    parser.add_argument("--study", action="store_true", help="also time python -m calibkd.study --profile smoke")
    parser.add_argument("--study-only", action="store_true", help="only time the whole smoke study")
    parser.add_argument("--empty-cache", action="store_true", help="train every model into a fresh temporary cache")
    parser.add_argument("--label", default="cached", help="name of the JSON written under bench/results/")
    parser.add_argument("--figures", type=Path, default=None, help="write every chapter's figures (PNG) here")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("CALIBKD_PROGRESS", "0")
    chapters = [Path(c) for c in args.chapters] or [
        p for p in sorted((ROOT / "notebooks").glob("0*.ipynb")) if declares_profile(nbformat.read(p, as_version=4))]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        if args.empty_cache:
            os.environ["CALIBKD_CACHE"] = str(Path(scratch) / "models")
        workdir = Path(scratch) / "work"
        workdir.mkdir()
        if not args.study_only:
            for chapter in chapters:
                rows.append(time_chapter(chapter, workdir, args.figures))
                print(json.dumps(rows[-1]), flush=True)
        if args.study or args.study_only:
            rows.append(time_study([]))
            print(json.dumps(rows[-1]), flush=True)
    record = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.platform(),
              "processor": platform.processor() or platform.machine(), "cores": os.cpu_count(),
              "empty_cache": args.empty_cache, "runs": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"smoke-{args.label}.json").write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

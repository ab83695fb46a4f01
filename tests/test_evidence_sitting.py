"""``papermill_runs/evidence_sitting.sh``: a sitting of the evidence queue
begins from main and lands its finished runs on main, so that a machine
replaced by a fresh clone loses at most the run it was in the middle of.

Exercised on a tiny git repository with the project's layout and a queue
script that only logs (no training)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "papermill_runs" / "evidence_sitting.sh"
BATCHES = ["tuning-fmnist", "reference-fmnist", "long-tail-fmnist", "tuning-glyphs", "glyphs-diagnosis",
           "glyphs-central"]

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def sitting(main: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "WORKTREE": str(tmp / "evidence"),
           "LOGS": str(tmp / "logs"), "CALIBKD_CACHE": str(tmp / "cache"),
           # the reproduction queued after the batches: one that fails at once (no python)
           "EVIDENCE_REPRODUCE": "reference-fmnist:0:cud:overconfident", "PY": "false"}
    return subprocess.run(["bash", str(main / "papermill_runs" / "evidence_sitting.sh"), *args],
                          capture_output=True, text=True, env=env)


@pytest.fixture
def main(tmp_path: Path) -> Path:
    """A main checkout whose reference batch holds an old run, with a queue
    script that records that it ran."""
    repo = tmp_path / "main"
    (repo / "papermill_runs").mkdir(parents=True)
    shutil.copy(SCRIPT, repo / "papermill_runs" / SCRIPT.name)
    shutil.copy(SCRIPT.with_name("evidence_env.sh"), repo / "papermill_runs" / "evidence_env.sh")
    (repo / "papermill_runs" / "run_evidence.sh").write_text('echo "queue ran in $1" > "$LOGS/ran"\n')
    for batch in BATCHES:
        (repo / "papermill_runs" / batch).mkdir()
        (repo / "papermill_runs" / batch / "batch.yaml").write_text("grid: {seed: [0]}\n")
    old = repo / "papermill_runs" / "reference-fmnist" / "runs" / "04-seed0-old"
    old.mkdir(parents=True)
    (old / "run.json").write_text('{"status": "finished"}')
    (repo / "papermill_runs" / "reference-fmnist" / "results.csv").write_text("old\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@t")
    git(repo, "config", "user.name", "t")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "start")
    venv = repo / ".venv" / "bin"  # set up already (begin would otherwise run make setup data)
    venv.mkdir(parents=True)
    (venv / "python").write_text("#!/bin/sh\n")
    (venv / "python").chmod(0o755)
    (repo / ".git" / "info" / "exclude").write_text(".venv/\n.cache/\n")
    return repo


def wait_for(path: Path, text: str = "", seconds: float = 20) -> None:
    """Wait until ``path`` exists (and holds ``text``): the queue runs in the background."""
    deadline = time.monotonic() + seconds
    while not (path.exists() and text in path.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert path.exists() and text in path.read_text(), f"{path} never appeared, or never held {text!r}"


def test_the_first_sitting_needs_the_evidence_commit(main: Path, tmp_path: Path) -> None:
    done = sitting(main, tmp_path, "begin")
    assert done.returncode != 0 and "names the evidence commit" in done.stderr


def test_a_sitting_begins_clean_and_lands_only_finished_runs_on_main(main: Path, tmp_path: Path) -> None:
    commit = git(main, "rev-parse", "HEAD").strip()
    begun = sitting(main, tmp_path, "begin", commit)
    assert begun.returncode == 0, begun.stderr
    worktree = tmp_path / "evidence"
    assert git(worktree, "rev-parse", "HEAD").strip() == commit
    # the old runs and aggregates are cleared in the worktree, batch definitions kept
    assert sorted(p.name for p in (worktree / "papermill_runs" / "reference-fmnist").iterdir()) == ["batch.yaml"]
    wait_for(tmp_path / "logs" / "ran")
    assert "sitting begins" in (tmp_path / "logs" / "queue.log").read_text()
    # after the batches, the reproduction (here failing: the batches are stubs)
    wait_for(tmp_path / "logs" / "queue.log", "end reproduce")
    assert "end reproduce reference-fmnist rc=1" in (tmp_path / "logs" / "queue.log").read_text()

    runs = worktree / "papermill_runs" / "tuning-fmnist" / "runs"
    for name, status in (("04-seed0-a", "finished"), ("04-seed0-b", "running")):
        (runs / name).mkdir(parents=True)
        (runs / name / "run.json").write_text(json.dumps({"status": status}, indent=1))
    (worktree / "papermill_runs" / "tuning-fmnist" / "definition.json").write_text('{"grid": {}}')
    (worktree / "papermill_runs" / "tuning-fmnist" / "reproduced").mkdir()
    (worktree / "papermill_runs" / "tuning-fmnist" / "reproduced" / "04-seed0-a-default-cud.json").write_text("{}")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "0123456789abcdef.json").write_text('{"train_seconds": 12.5}')
    (tmp_path / "cache" / "0123456789abcdef.pt").write_bytes(b"weights")
    (tmp_path / "logs" / "tempering-audit-glyphs.json").write_text('{"dataset": "glyphs"}')
    landed = sitting(main, tmp_path, "land")
    assert landed.returncode == 0, landed.stderr
    stage = main / "papermill_runs" / "evidence-in-progress"
    assert [p.name for p in (stage / "tuning-fmnist" / "runs").iterdir()] == ["04-seed0-a"]
    assert [p.name for p in (stage / "model-records").iterdir()] == ["0123456789abcdef.json"]
    assert (stage / "tuning-fmnist" / "definition.json").read_text() == '{"grid": {}}'
    assert (stage / "tempering-audit-glyphs.json").read_text() == '{"dataset": "glyphs"}'
    assert not (stage / "reference-fmnist").exists()
    assert (stage / "COMMIT").read_text().strip() == commit
    assert git(main, "status", "--porcelain", "--", "papermill_runs/evidence-in-progress") == ""
    assert "1 more finished run" in git(main, "log", "-1", "--format=%s")
    # landing again adds nothing and commits nothing
    assert "nothing new" in sitting(main, tmp_path, "land").stdout
    # status: per batch, what is staged on main and finished in the worktree, and the run in progress
    partial = runs / ".04-seed0-c.vm-1-ab.partial"
    partial.mkdir()
    (partial / "log.txt").write_text("")
    (partial / "04_student_distillation.ipynb").write_text('"default: loaded (key 0123456789abcdef)" '
                                                           '"default/student/ce: trained (key fedcba9876543210)"')
    shown = sitting(main, tmp_path, "status").stdout
    assert "tuning-fmnist: 1 staged on main, 1 finished in the worktree" in shown
    assert "in progress: 04-seed0-c, 2 models trained or loaded so far" in shown
    assert "reference-fmnist: 0 staged on main, 0 finished in the worktree" in shown

    # a fresh machine: no worktree, no logs; the next sitting restores the landed run at the same commit
    git(main, "worktree", "remove", "--force", str(worktree))
    shutil.rmtree(tmp_path / "logs")
    again = sitting(main, tmp_path, "begin")
    assert again.returncode == 0, again.stderr
    assert "restored tuning-fmnist/04-seed0-a" in again.stdout
    assert git(worktree, "rev-parse", "HEAD").strip() == commit
    assert (worktree / "papermill_runs" / "tuning-fmnist" / "runs" / "04-seed0-a" / "run.json").is_file()
    assert (worktree / "papermill_runs" / "tuning-fmnist" / "reproduced" / "04-seed0-a-default-cud.json").is_file()
    wait_for(tmp_path / "logs" / "ran")


STAGE = ROOT / "papermill_runs" / "evidence-in-progress"


@pytest.mark.skipif(not (STAGE / "COMMIT").is_file(), reason="no evidence in progress")
def test_main_ships_the_code_the_evidence_in_progress_is_made_at(tmp_path: Path) -> None:
    """While the evidence queue runs, main must not change the code it runs
    (the verdicts must be those of the code that ships): the fingerprinted
    code at the evidence commit equals this checkout's, and every staged
    run was made by it."""
    from calibkd.training import code_version as versions
    commit = (STAGE / "COMMIT").read_text().strip()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "calibkd", "notebooks"], capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"the evidence commit {commit[:7]} is not in this clone (shallow?)")
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=archive.stdout, check=True)
    assert versions.code_version(root=tmp_path, cached=False) == versions.code_version(root=ROOT, cached=False)
    assert (versions.study_code_version(root=tmp_path, cached=False)
            == versions.study_code_version(root=ROOT, cached=False))
    assert versions.notebook_code_versions(tmp_path, cached=False) == versions.notebook_code_versions(ROOT, cached=False)
    from calibkd.runs.results import checkout_code, run_code
    for provenance in sorted(STAGE.glob("*/runs/*/provenance.json")):
        record = json.loads(provenance.read_text())
        assert run_code(record) == checkout_code(record["notebook"]), provenance
        assert record.get("git_commit") == commit and record.get("git_dirty") is False, provenance


def test_finish_refuses_an_unfinished_queue_and_then_replaces_the_old_runs(main: Path, tmp_path: Path) -> None:
    """``finish`` on a copy of a committed one-run batch: staged, it replaces
    the batch's runs and is aggregated to the same summary as committed; a
    batch with a run missing is refused before anything moves."""
    import os
    import sys
    batch = "glyphs-diagnosis"
    committed = ROOT / "papermill_runs" / batch
    folder = main / "papermill_runs" / batch
    shutil.rmtree(folder)
    shutil.copytree(committed, folder)
    for other in BATCHES:  # real definitions, for the table of the batches that finish writes
        shutil.copy(ROOT / "papermill_runs" / other / "batch.yaml", main / "papermill_runs" / other / "batch.yaml")
    from calibkd.runs.batch_table import TABLE_END, TABLE_START
    (main / "docs").mkdir()
    (main / "docs" / "batches.md").write_text(f"# Batches\n{TABLE_START}\n{TABLE_END}\n")
    git(main, "add", "-A")
    git(main, "commit", "-q", "-m", "old runs")
    stage = main / "papermill_runs" / "evidence-in-progress"
    stage.mkdir()
    (stage / "COMMIT").write_text(git(main, "rev-parse", "HEAD"))
    (stage / "queue.log").write_text("start glyphs-diagnosis\n")
    (stage / "tempering-audit-glyphs.json").write_text('{"dataset": "glyphs"}')
    env = {**os.environ, "EVIDENCE_BATCHES": batch, "PY": sys.executable, "WORKTREE": str(tmp_path / "evidence"),
           "LOGS": str(tmp_path / "logs"), "PYTHONPATH": str(ROOT)}
    script = ["bash", str(main / "papermill_runs" / "evidence_sitting.sh"), "finish"]

    refused = subprocess.run(script, capture_output=True, text=True, env=env)
    assert refused.returncode == 2 and "not finished" in refused.stdout, refused.stdout + refused.stderr
    assert (folder / "runs").is_dir() and (stage / "queue.log").is_file()

    shutil.copytree(committed / "runs", stage / batch / "runs")
    provenance = stage / batch / "runs" / "02-seed0-cbbc5edd53" / "provenance.json"
    # that old run was made from a dirty tree, which aggregate refuses; the evidence runs are clean
    provenance.write_text(json.dumps({**json.loads(provenance.read_text()), "git_dirty": False}))
    shutil.rmtree(folder / "runs" / "02-seed0-cbbc5edd53" / "figures")  # the old run differs from the staged one
    done = subprocess.run(script, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not stage.exists() and (main / "papermill_runs" / "evidence-queue.log").is_file()
    assert (main / "bench" / "results" / "tempering-audit-glyphs.json").read_text() == '{"dataset": "glyphs"}'
    assert (folder / "runs" / "02-seed0-cbbc5edd53" / "figures").is_dir()
    assert (folder / "results.csv").read_bytes() == (committed / "results.csv").read_bytes()
    assert json.loads((folder / "compute.json").read_text())
    staged = git(main, "status", "--porcelain")
    assert "evidence-in-progress" not in staged and f"papermill_runs/{batch}/compute.json" in staged
    # the table of the batches, rewritten and staged: the glyph diagnosis finished, the others have no run
    table = (main / "docs" / "batches.md").read_text()
    assert "| [`glyphs-diagnosis`]" in table and "| 1 of 1 finished |" in table and "M  docs/batches.md" in staged
    assert "A  bench/results/tempering-audit-glyphs.json" in staged

"""Runs anywhere: where data, caches and batches live is the project's home
(``$CALIBKD_HOME``, else the checkout found from the working directory, else
the editable checkout, else a user cache folder), never the package's install
location; chapter 05 runs from a plain, non-editable install of the package
with the home set; every chapter's first cell says where to get the project."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from calibkd import paths
from calibkd.runs import companions
from calibkd.study.runner import NOTEBOOK_DIR

CHECKOUT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p.stem for p in NOTEBOOK_DIR.glob("0*.ipynb"))


def _project(folder: Path, name: str = "calibkd") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "0"\n')
    return folder


@pytest.fixture
def no_home(monkeypatch):
    for variable in ("CALIBKD_HOME", "CALIBKD_CACHE", "CALIBKD_DOWNLOADS", "CALIBKD_GENERATED"):
        monkeypatch.delenv(variable, raising=False)


def test_the_home_variable_wins_and_places_every_folder(no_home, monkeypatch, tmp_path):
    monkeypatch.setenv("CALIBKD_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(_project(tmp_path / "elsewhere"))  # a checkout in the working directory does not count
    assert paths.home() == (tmp_path / "home").resolve()
    assert paths.cache_dir() == tmp_path / "home" / ".cache" / "models"
    assert paths.download_dir() == tmp_path / "home" / ".cache" / "downloads"
    assert paths.generated_dir() == tmp_path / "home" / ".cache" / "generated"
    assert paths.batches_dir() == tmp_path / "home" / "papermill_runs"


def test_the_per_folder_overrides_still_win(no_home, monkeypatch, tmp_path):
    monkeypatch.setenv("CALIBKD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CALIBKD_CACHE", str(tmp_path / "models"))
    monkeypatch.setenv("CALIBKD_DOWNLOADS", str(tmp_path / "dl"))
    monkeypatch.setenv("CALIBKD_GENERATED", str(tmp_path / "gen"))
    assert (paths.cache_dir(), paths.download_dir(), paths.generated_dir()) == \
        (tmp_path / "models", tmp_path / "dl", tmp_path / "gen")


def test_a_checkout_is_found_upward_from_the_working_directory(no_home, monkeypatch, tmp_path):
    checkout = _project(tmp_path / "clone")
    (checkout / "notebooks").mkdir()
    monkeypatch.chdir(checkout / "notebooks")
    assert paths.home() == checkout.resolve()
    assert paths.cache_dir() == checkout.resolve() / ".cache" / "models"


def test_another_projects_pyproject_is_not_a_checkout(no_home, monkeypatch, tmp_path):
    other = _project(tmp_path / "other", name="calibkd-notes")
    monkeypatch.chdir(other)
    monkeypatch.setattr(paths, "CODE_ROOT", tmp_path / "site-packages")  # as after a plain install
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert not paths.is_checkout(other)
    assert paths.home() == tmp_path / "xdg" / "calibkd"
    assert paths.cache_dir() == tmp_path / "xdg" / "calibkd" / ".cache" / "models"
    assert paths.source_checkout() is None


def test_outside_any_checkout_an_editable_install_keeps_its_checkout(no_home, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert paths.is_checkout(paths.CODE_ROOT)  # this test suite runs from the checkout
    assert paths.home() == paths.CODE_ROOT
    assert paths.source_checkout() == paths.CODE_ROOT


def test_site_packages_is_never_the_home(no_home, monkeypatch, tmp_path):
    site = tmp_path / "site-packages"
    (site / "calibkd").mkdir(parents=True)
    monkeypatch.setattr(paths, "CODE_ROOT", site)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert site not in paths.home().parents and paths.home() != site
    assert paths.home() == tmp_path / "xdg" / "calibkd"


def test_the_first_cell_of_every_chapter_names_the_repository_of_the_metadata():
    url = paths.repository_url()
    assert url, "pyproject.toml has no [project.urls] Repository"
    for name in CHAPTERS:
        notebook = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
        first = next(c.source for c in notebook.cells if c.cell_type == "code")
        found = re.search(r'REPOSITORY = "([^"]+)"', first)
        assert found and found.group(1) == url, \
            f"{name}: its first cell's REPOSITORY must be pyproject.toml's Repository {url!r}"


def test_the_first_cell_says_where_to_get_the_project_when_calibkd_is_missing(monkeypatch, tmp_path):
    import importlib.util

    notebook = nbformat.read(NOTEBOOK_DIR / f"{CHAPTERS[0]}.ipynb", as_version=4)
    cell = next(c.source for c in notebook.cells if c.cell_type == "code")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "calibkd" else real(name, *a))
    monkeypatch.delenv("CALIBKD_SOURCE", raising=False)
    monkeypatch.chdir(_project(tmp_path / "not-calibkd", name="other"))  # a pyproject, but not calibkd's
    with pytest.raises(ModuleNotFoundError) as error:
        exec(compile(cell, "first-cell", "exec"), {})
    message = str(error.value)
    assert "Next step" in message and "CALIBKD_SOURCE" in message
    url = paths.repository_url()
    assert (url in message) if not paths.is_placeholder(url) else ("no public address yet" in message)


def test_companion_batches_follow_the_main_batch(tmp_path):
    root = tmp_path / "papermill_runs"
    assert companions.companion_batch("glyph_batch", "auto", "reference-fmnist", root) == "glyphs-central"
    assert companions.companion_batch("long_tail_batch", "auto", str(root / "reference-fmnist"), root) == \
        "long-tail-fmnist"
    assert companions.companion_batch("glyph_batch", "auto", "smoke-example", root) == ""
    assert companions.companion_batch("glyph_batch", "", "reference-fmnist", root) == ""
    assert companions.companion_batch("glyph_batch", "my-glyphs", "smoke-example", root) == "my-glyphs"
    assert companions.batch_folder("", root) is None
    assert companions.batch_folder("x", root) == root / "x"
    assert "skipped" in companions.describe("glyph_batch", "auto", "")


def _install_plainly(target: Path) -> Path:
    """``pip install`` of a copy of the package's source (not editable) into ``target``."""
    source = target.parent / "source"
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(CHECKOUT / name, source / name)
    shutil.copytree(CHECKOUT / "calibkd", source / "calibkd", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(target), str(source)], check=True, capture_output=True, text=True)
    return target


#: The kernel's start: the plain install first on sys.path, and the
#: editable install's finder (which maps ``calibkd`` to the checkout) removed.
LAUNCHER = """import sys
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
sys.path_hooks[:] = [h for h in sys.path_hooks if not getattr(h, "__module__", "").startswith("__editable__")]
sys.path[:] = [{site!r}] + [p for p in sys.path if p not in ("", {checkout!r})]
from ipykernel import kernelapp
kernelapp.launch_new_instance()
"""


def test_chapter_05_runs_from_a_plain_install_with_the_home_set(tmp_path, monkeypatch):
    """Chapter 05 from a non-editable install of the package (the checkout not
    importable, the working directory outside it), with ``CALIBKD_HOME`` at
    the checkout: it finds the committed batches and gives the committed
    verdicts. About 11 s on 2 cores (chapter 05 trains nothing), so it runs
    with the unit tests."""
    import json

    from nbclient import NotebookClient

    site = _install_plainly(tmp_path / "install" / "site")
    assert (site / "calibkd" / "paths.py").is_file() and not (site / "notebooks").exists()
    kernels = tmp_path / "jupyter" / "kernels" / "calibkd-installed"
    kernels.mkdir(parents=True)
    (tmp_path / "launch.py").write_text(LAUNCHER.format(site=str(site), checkout=str(CHECKOUT)))
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, str(tmp_path / "launch.py"), "-f", "{connection_file}"],
        "display_name": "calibkd (plain install)", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("CALIBKD_HOME", str(CHECKOUT))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    for variable in ("CALIBKD_CACHE", "CALIBKD_DOWNLOADS", "PYTHONPATH"):
        monkeypatch.delenv(variable, raising=False)
    work = tmp_path / "work"  # outside the checkout: only $CALIBKD_HOME can lead to the batches
    work.mkdir()

    committed = nbformat.read(NOTEBOOK_DIR / "05_results.ipynb", as_version=4)
    notebook = nbformat.read(NOTEBOOK_DIR / "05_results.ipynb", as_version=4)
    probe = nbformat.v4.new_code_cell(
        "import calibkd, calibkd.paths\n"
        "print('package:', calibkd.__file__)\nprint('home:', calibkd.paths.home())\n"
        "print('code_version:', __import__('calibkd.training.code_version', fromlist=['x']).code_version())")
    notebook.cells.insert(0, probe)
    NotebookClient(notebook, kernel_name="calibkd-installed", timeout=600,
                   resources={"metadata": {"path": str(work)}}).execute()

    probed = "".join(o.get("text", "") for o in notebook.cells[0].outputs)
    assert f"package: {site / 'calibkd' / '__init__.py'}" in probed, probed
    assert f"home: {CHECKOUT}" in probed, probed
    from calibkd.training.code_version import code_version
    assert f"code_version: {code_version()}" in probed, "the installed copy must fingerprint as the checkout"

    def checked(nb):
        return ["".join(o.get("text", "") for o in c.outputs) for c in nb.cells
                if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source]

    assert checked(notebook) == checked(committed), "chapter 05's verdicts differ from the committed ones"
    text = "\n".join("".join(o.get("text", "") for o in c.outputs) for c in notebook.cells if c.cell_type == "code")
    assert "batch reference-fmnist:" in text and "batch glyphs-central:" in text and "batch long-tail-fmnist:" in text
    assert not (site / "papermill_runs").exists() and not (site / ".cache").exists()
    assert os.listdir(work) == [] or all(not n.startswith("papermill_runs") for n in os.listdir(work))


def test_chapter_05_on_another_batch_shows_that_batch_alone(tmp_path):
    """Given a batch other than the committed one, chapter 05 reads no
    companion batch: no long-tail or glyph claims, and C-cardinality is not
    tested, rather than verdicts mixed in from the committed full-size batches."""
    import papermill

    batch = tmp_path / "my-batch"
    shutil.copytree(CHECKOUT / "papermill_runs" / "reference-fmnist", batch)
    out = tmp_path / "05.ipynb"
    papermill.execute_notebook(str(NOTEBOOK_DIR / "05_results.ipynb"), str(out), parameters={"batch": str(batch)},
                               kernel_name="python3", cwd=str(NOTEBOOK_DIR), progress_bar=False)
    executed = nbformat.read(out, as_version=4)
    text = "\n".join("".join(o.get("text", "") for o in c.outputs) for c in executed.cells if c.cell_type == "code")
    verdicts = next("".join(o.get("text", "") for o in c.outputs) for c in executed.cells
                    if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source)
    assert "batch my-batch: 3 finished runs" in text
    assert "long-tail batch: none (long_tail_batch='auto'" in text and "glyph batch: none (glyph_batch='auto'" in text
    assert "glyphs-central" not in text and "long-tail-fmnist" not in text
    assert "(glyphs)" not in verdicts and "(long tail" not in verdicts
    assert "C-cardinality [all]: not tested: no dataset with >= 100 classes in the batch" in verdicts

"""The README and docs/ stay honest: the README is short, every
``python -m calibkd...`` command names a runnable module, every ``make``
target exists, and every relative link points at a file.

Nothing here imports the modules the documentation names: their files are
found with ``importlib.util.find_spec`` and read as text.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_LIMIT = 12_000  # bytes

MODULE = re.compile(r"-m\s+(calibkd(\.\w+)*)")
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`([^`]+)`")  # a code span may wrap onto the next line
MAKE = re.compile(r"(?<![\w$(./-])make\s+(.+)")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
MAIN_DEF = re.compile(r"^def main\s*\(", re.MULTILINE)
MAIN_GUARD = re.compile(r"""^if __name__ == ['"]__main__['"]\s*:""", re.MULTILINE)
MAIN_CALL = re.compile(r"\bmain\s*\(")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _split_code(text: str) -> tuple[list[str], list[str]]:
    """(code lines, prose lines): lines inside fenced blocks, and the rest."""
    code, prose, fenced = [], [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        (code if fenced else prose).append(line)
    return code, prose


def _code_snippets(text: str) -> list[str]:
    """Every fenced code line and every inline code span of a Markdown text."""
    code, prose = _split_code(text)
    return code + [" ".join(m.group(1).split()) for m in INLINE_CODE.finditer("\n".join(prose))]


def _make_targets(snippet: str) -> list[str]:
    """The targets of each ``make ...`` command in a code snippet (options,
    ``NAME=value`` assignments and shell comments left out)."""
    targets = []
    for match in MAKE.finditer(snippet.split("#", 1)[0]):
        for word in re.split(r"\s+", match.group(1).strip()):
            if word in ("&&", "||", ";", "|") or word.startswith(("(", "`")):
                break
            if not word or word.startswith("-") or "=" in word:
                continue
            targets.append(word.rstrip(".,;:)"))
    return targets


def _documented_modules() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in DOCS:
        for match in MODULE.finditer(path.read_text(encoding="utf-8")):
            found.setdefault(match.group(1), []).append(_rel(path))
    return found


def _documented_targets() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in DOCS:
        for snippet in _code_snippets(path.read_text(encoding="utf-8")):
            for target in _make_targets(snippet):
                found.setdefault(target, []).append(_rel(path))
    return found


def _relative_links() -> list[tuple[Path, str]]:
    links = []
    for path in DOCS:
        _, prose = _split_code(path.read_text(encoding="utf-8"))
        for match in LINK.finditer(INLINE_CODE.sub("", "\n".join(prose))):
            target = match.group(1)
            if re.match(r"^[a-zA-Z][\w+.-]*:", target) or target.startswith(("#", "//")):
                continue  # http:, https:, mailto:, an anchor in the same page
            links.append((path, target))
    return links


def test_readme_is_under_the_size_limit():
    size = README.stat().st_size
    assert size < README_LIMIT, f"README.md is {size} bytes; keep it under {README_LIMIT} (move detail to docs/)"


def test_every_documented_python_module_command_is_runnable():
    documented = _documented_modules()
    assert documented, "README.md and docs/*.md name no `python -m calibkd...` command"
    problems = []
    for name, where in sorted(documented.items()):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            problems.append(f"{name} (in {', '.join(sorted(set(where)))}): no such module")
            continue
        origin = Path(spec.origin)
        if spec.submodule_search_locations is not None:  # a package: `python -m` runs its __main__.py
            main_file = origin.parent / "__main__.py"
            if not main_file.is_file():
                problems.append(f"{name}: a package without __main__.py")
                continue
            text = main_file.read_text(encoding="utf-8")
            runnable = bool(MAIN_DEF.search(text) or MAIN_GUARD.search(text) or MAIN_CALL.search(text))
        else:
            text = origin.read_text(encoding="utf-8")
            runnable = bool(MAIN_DEF.search(text) or MAIN_GUARD.search(text))
        if not runnable:
            problems.append(f"{name} ({origin.relative_to(ROOT)}): no `def main` and no `if __name__ == \"__main__\"`")
    assert not problems, "documented commands that do not run:\n" + "\n".join(problems)


def test_every_documented_make_target_exists():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    documented = _documented_targets()
    assert "study" in documented and "test" in documented
    missing = [f"make {target} (in {', '.join(sorted(set(where)))})"
               for target, where in sorted(documented.items())
               if not re.search(rf"^{re.escape(target)}\s*:", makefile, re.MULTILINE)]
    assert not missing, "targets the Makefile does not define:\n" + "\n".join(missing)


def test_every_relative_link_points_at_a_file():
    links = _relative_links()
    assert links
    broken = []
    for page, target in links:
        path = target.split("#", 1)[0].split("?", 1)[0]
        if not path:
            continue
        if not (page.parent / path).exists():
            broken.append(f"{_rel(page)}: {target}")
    assert not broken, "relative links to missing files:\n" + "\n".join(broken)


@pytest.mark.parametrize("snippet, targets", [
    ("make study", ["study"]),
    ("make test    # pass the tests", ["test"]),
    ("make study OMP_WAIT_POLICY=ACTIVE", ["study"]),
    ("make nbval NBVAL_DEFAULT=notebooks/01_teacher_training.ipynb", ["nbval"]),
    ("make -j2 unit smoke-copies", ["unit", "smoke-copies"]),
    ("$(MAKE) nbval", []),
    ("cmake build", []),
])
def test_make_commands_are_read_as_targets(snippet, targets):
    assert _make_targets(snippet) == targets


def _readme_verdict_rows() -> list[list[str]]:
    """The README's verdict table, one list of cells per row."""
    text = README.read_text(encoding="utf-8")
    block = text[text.index("<!-- verdicts:start -->"):text.index("<!-- verdicts:end -->")]
    return [[c.strip() for c in line.strip().strip("|").split(" | ")] for line in block.splitlines()
            if line.startswith("| C-")]


def test_the_readme_verdict_table_is_what_the_committed_batches_give():
    """The verdict table between the README's markers (with the earlier
    readings, and the tempering audits) and docs/history.md's table of what
    changed since the first verdicts are exactly
    what ``python -m calibkd.runs readme-table`` computes from the committed
    batches (chapter 05's claims, regime-check gate included): after a
    re-run of the batches, run that command."""
    from calibkd.runs import readme

    text = README.read_text(encoding="utf-8")
    new, found = readme.readme_with_verdicts(text, ROOT / "papermill_runs", ROOT)
    assert new == text, "the README's verdict tables are out of date: run `python -m calibkd.runs readme-table`"
    history = (ROOT / readme.HISTORY_PAGE).read_text(encoding="utf-8")
    assert readme.with_generated_blocks(history, found, ROOT) == history, \
        "docs/history.md's table of what changed is out of date: run `python -m calibkd.runs readme-table`"


def test_the_committed_batches_table_is_what_the_batches_give():
    """docs/batches.md's table of the committed batches is exactly what
    ``python -m calibkd.runs batches-table`` reads from the batch folders:
    after running, aggregating or costing a batch, run that command."""
    from calibkd.runs import batch_table

    path = ROOT / batch_table.DOCS_FILE
    text = path.read_text(encoding="utf-8")
    assert batch_table.replace_block(text, batch_table.batches_table(ROOT / "papermill_runs")) == text, \
        "docs/batches.md's table of the committed batches is out of date: run `python -m calibkd.runs batches-table`"


def test_the_readme_findings_are_those_chapter_05_shows():
    """The README's table (generated from the batches) agrees with the
    committed execution of chapter 05: every claim and regime of a row shows
    there with the row's verdict, and every number of its key interval
    appears in the chapter's outputs (re-execute 05 when the batches change)."""
    chapter = json.loads((ROOT / "notebooks" / "05_results.ipynb").read_text())
    shown = ""
    for cell in chapter["cells"]:
        for output in cell.get("outputs", []):
            for key in ("text", "text/plain", "text/markdown"):
                text = output.get(key) or output.get("data", {}).get(key, "")
                shown += "".join(text) if isinstance(text, list) else text
    rows = _readme_verdict_rows()
    assert len(rows) >= 5
    for claims_cell, where, verdict, interval, *_earlier in rows:
        regimes = where.split(";")[0].split(", ")
        for claim in claims_cell.split("; "):
            for regime in regimes:
                assert f"{claim} [{regime}]: {verdict.split(':')[0]}" in shown, (claim, regime, verdict)
        for number in re.findall(r"\d+\.\d{4}", interval):
            assert number in shown, f"{claims_cell}: {number} is not in chapter 05's outputs"


def test_every_documented_command_runs_and_answers_help():
    """Each ``python -m calibkd...`` command the README and docs name starts
    and prints its usage (``--help``): a renamed or broken command fails here."""
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    def help_of(module: str) -> tuple[str, int, str]:
        done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
        return module, done.returncode, done.stdout + done.stderr

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(help_of, sorted(_documented_modules())))
    broken = {module: output[-300:] for module, code, output in answers if code != 0 or "usage" not in output.lower()}
    assert not broken, broken

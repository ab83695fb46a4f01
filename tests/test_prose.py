"""No typed results in the chapters' prose (issue 17).

A chapter is rerun with other parameters and copied into batches, so its
typed text must stay true of any run: results are generated from the run's
tables (``calibkd.study.findings``) and shown as Markdown output; typed
Markdown explains ideas and method.

The guard scans every Markdown cell of every chapter source
(``notebooks/0*.py``, cells starting ``# %% [markdown]``) for numbers, and a
number is a typed result, and fails the test, unless it is

1. inside math (``$...$``, ``$$...$$``) or inline code (`` `...` ``):
   notation and code, not a finding;
2. a chapter ("chapter 04", "chapters 01-04", "notebook 04", a title's
   "04 ·"), a section of the brief ("section 3b") or a year ("Guo et al.
   2017", "(2019)");
3. list numbering at the start of a line ("1. ");
4. part of a name: digits glued to letters ("CIFAR-10-C", "FLSD-53", "C1",
   "top-1", "3b");
5. a value of the configuration: any number found by walking the tables of
   ``calibkd.config`` (profiles, recipes, losses, methods, datasets, ...),
   plus the metrics' default bin count, the corruption suite's size and
   severities, and the decision rule's alpha and interval level
   (``calibkd.runs``); a percentage "n %" also matches n / 100;
6. a numeric literal of the same chapter's code cells: settings typed in code
   (sample sizes, thresholds) and the exercises' toy inputs, which a rerun
   uses as they are.

Anything else fails with the chapter, line and number. The fix is to
generate the sentence from the run's values, or to say it without the number.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import re
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("0*.py"))

MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$", re.DOTALL)
CODE = re.compile(r"`[^`]*`")
LINK_TARGET = re.compile(r"\]\([^)]*\)")
CHAPTER = re.compile(r"\b(?:chapters?|notebooks?)\s+0\d(?:\s*(?:-|–|,|and|or|to)\s*0\d)*|^#*\s*0\d\s*·",
                     re.IGNORECASE | re.MULTILINE)
SECTION = re.compile(r"\bsections?\s+\d+[a-z]?(?:\s*(?:,|and|or)\s*\d+[a-z]?)*", re.IGNORECASE)
YEAR = re.compile(r"\b(?:19|20)\d\d\b")
LIST_ITEM = re.compile(r"^\s*\d+\.\s", re.MULTILINE)
NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:_\d+)*(?:\.\d+)?(?:[eE][-+]?\d+)?")


def markdown_cells(source: Path) -> Iterator[tuple[int, str]]:
    """(first line number, text) of each Markdown cell of a percent-format source."""
    lines = source.read_text(encoding="utf-8").splitlines()
    start = None
    for number, line in enumerate(lines + ["# %%"], 1):
        if line.startswith("# %%"):
            if start is not None:
                body = [re.sub(r"^# ?", "", x) for x in lines[start:number - 1]]
                yield start + 1, "\n".join(body)
            start = number if line.startswith("# %% [markdown]") else None


def code_literals(source: Path) -> set[float]:
    """Every numeric literal in the code cells of a chapter source."""
    tree = ast.parse(source.read_text(encoding="utf-8"))
    return {abs(float(node.value)) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, (int, float))
            and not isinstance(node.value, bool)}


#: Fields of the config's dataclasses that hold indices, not values (class numbers).
INDICES = {"class_groups"}


def _numbers_in(value: Any, seen: set[int]) -> Iterator[float]:
    if isinstance(value, bool) or id(value) in seen:
        return
    if isinstance(value, (int, float)):
        yield float(value)
        return
    if isinstance(value, (str, bytes, ModuleType)) or callable(value) and not dataclasses.is_dataclass(value):
        return
    seen.add(id(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            if field.name not in INDICES:
                yield from _numbers_in(getattr(value, field.name), seen)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers_in(key, seen)
            yield from _numbers_in(item, seen)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _numbers_in(item, seen)


def config_values() -> set[float]:
    """Every number in the tables of ``calibkd.config`` and its submodules,
    with the metrics' default bin count, the corruption suite's size and
    severities, and the decision rule's family-wise alpha and interval level."""
    from calibkd import config, metrics
    from calibkd.evaluation.corruptions import CORRUPTIONS, SEVERITIES
    from calibkd.runs.claims import FAMILY_ALPHA
    from calibkd.runs.results import summarize

    modules = [config] + [m for m in vars(config).values() if isinstance(m, ModuleType)]
    seen: set[int] = set()
    found = {v for module in modules for name, value in vars(module).items() if not name.startswith("_")
             for v in _numbers_in(value, seen)}
    found |= {float(inspect.signature(metrics.ece).parameters["n_bins"].default), float(len(CORRUPTIONS)),
              *map(float, SEVERITIES), FAMILY_ALPHA,
              float(inspect.signature(summarize).parameters["confidence"].default)}
    return found


CONFIG = config_values()


def _value(token: str) -> float:
    return float(token.replace(",", "").replace("_", ""))


def _allowed(value: float, allowed: set[float]) -> bool:
    return any(math.isclose(value, a, rel_tol=1e-9, abs_tol=1e-12) for a in allowed)


def typed_results(text: str, allowed: set[float]) -> list[str]:
    """The numbers of a Markdown text that none of the rules allows."""
    for pattern in (MATH, CODE, LINK_TARGET, CHAPTER, SECTION, YEAR, LIST_ITEM):
        text = pattern.sub(" ", text)
    found = []
    for match in NUMBER.finditer(text):
        before, after = text[max(0, match.start() - 2):match.start()], text[match.end():match.end() + 1]
        if re.search(r"[A-Za-z_]$|[A-Za-z]-$", before) or re.match(r"[A-Za-z]", after):
            continue  # part of a name
        if re.search(r"\d\.$", before):  # the decimals of a number already seen
            continue
        value = _value(match.group())
        percent = text[match.end():match.end() + 3].lstrip().startswith("%")
        if _allowed(value, allowed) or percent and _allowed(value / 100, allowed):
            continue
        found.append(match.group())
    return found


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_no_typed_result_in_a_chapters_markdown(chapter):
    allowed = CONFIG | code_literals(chapter)
    problems = []
    for line, text in markdown_cells(chapter):
        for offset, row in enumerate(text.splitlines()):
            problems += [f"{chapter.name}:{line + offset}: {token!r} in {row.strip()!r}"
                         for token in typed_results(row, allowed)]
    assert not problems, ("typed numbers in Markdown (generate them with calibkd.study.findings, or say it "
                          "without the number; rules in tests/test_prose.py):\n" + "\n".join(problems))


@pytest.mark.parametrize("text, flagged", [
    ("TS fits T = 2.38 on the overconfident teacher.", ["2.38"]),
    ("the teacher was right on 62 % of the students' views", ["62"]),
    ("a logit pass of about 50 s", ["50"]),
    ("DUS raises AUC (0.941 vs 0.917)", ["0.941", "0.917"]),
    ("chapter 04 and chapters 01-04; notebook 05; # 02 · Diagnosing", []),
    ("brief section 3b and section 7", []),
    ("Guo et al. 2017 and Müller et al. (2019)", []),
    ("1. Rerun it", []),
    ("CIFAR-10-C, FLSD-53, top-1, C1 and C2", []),
    ("$\\eta = 0.37$ and `x = 0.37`", []),
    ("T = 4, a = 0.9, eta 0.5, m 0.7, a 10,000-example subset, 100:1, 15 bins, 15 corruptions x 5 severities", []),
    ("the 10 % of test images", []),
])
def test_the_guard_flags_typed_results_and_allows_the_rest(text, flagged):
    assert typed_results(text, CONFIG) == flagged


def test_every_chapter_source_has_markdown_cells():
    assert len(CHAPTERS) == 5
    for chapter in CHAPTERS:
        assert len(list(markdown_cells(chapter))) > 5, chapter.name

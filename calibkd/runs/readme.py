"""The README's generated blocks: the verdict table chapter 05's verdicts
give (``python -m calibkd.runs readme-table``), with each verdict's earlier
readings beside it (``verdict_history``), and the tempering audits
(``tempering_table``); and docs/history.md's full table of what changed
since the first verdicts, with what moved each. A test keeps them equal to
what the committed batches and audits give."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import pandas as pd

from calibkd.errors import ConfigError
from calibkd.runs.claims import study_verdicts, verdict_text
from calibkd.runs import tempering_table, verdict_history
from calibkd.runs.table_rows import (has_marked_block, markdown_table, merged_rows, replace_marked_block,
                                     write_generated)

#: The markers between which ``python -m calibkd.runs readme-table`` writes the README's verdict table.
README_START, README_END = "<!-- verdicts:start -->", "<!-- verdicts:end -->"
README_COLUMNS = ["claim", "regime, data", "verdict", "key interval"]
#: How ``study_verdicts`` ends a row's data with its number of seeds (``fashion_mnist, 3 seeds``).
SEEDS = re.compile(r", (\d+ seeds?)$")
#: The column of earlier readings (``verdict_history``): first published; the same runs, strict rule.
EARLIER = "earlier: first; strict, same runs"
#: The page that carries the full table of what changed (``verdict_history.changes_table``).
HISTORY_PAGE = Path("docs") / "history.md"


def _compact(detail: str) -> str:
    """A claim's detail with one shared reason said once: "fails for a
    (within noise), b (within noise)" -> "fails for a, b (all within noise)"."""
    def shorten(match: re.Match) -> str:
        items = re.findall(r"\s*([^,;()]+?) \(([^()]*)\)", match.group(1))
        if len(items) < 2 or len({why for _, why in items}) > 1:
            return match.group(0)
        return f"fails for {', '.join(name for name, _ in items)} (all {items[0][1]})"
    return re.sub(r"fails for ((?:[^;()]+ \([^()]*\)(?:, )?)+)", shorten, detail)


def readme_table(verdict_table: pd.DataFrame, history: pd.DataFrame | None = None) -> str:
    """The README's verdict table (Markdown) from ``study_verdicts``: claim,
    regime and data, verdict (with the parts that hold or fail; "not tested"
    has its reason in the last column), key interval and, given the recorded
    ``history`` (``verdict_history.load_history``), the claim's two earlier
    verdicts. Rows that differ only in regime, then only in claim, are one
    row; when every batch has as many seeds, the header says how many."""
    earlier = {} if history is None else {
        (r["claim"], r["regime"]): f"{verdict_history.verdict_word(r['first'])}; "
                                   f"{verdict_history.verdict_word(r['strict rule, same runs'])}"
        for _, r in history.iterrows()}
    rows = [{"claim": row["claim"], "regime": row["regime"], "data": row["data"],
             "verdict": row["verdict"] if row["verdict"] == "not tested"
             else verdict_text(row["verdict"], _compact(row["detail"])),
             "key": _compact(row["key interval"]),
             "earlier": earlier.get((row["claim"], row["regime"]),
                                    f"{verdict_history.NOT_REPORTED}; {verdict_history.NOT_REPORTED}")}
            for _, row in verdict_table.iterrows()]
    rows = merged_rows(merged_rows(rows, "regime", ", "), "claim", "; ")
    columns = README_COLUMNS + ([EARLIER] if history is not None else [])
    seeds = {match.group(1) if (match := SEEDS.search(r["data"])) else None for r in rows} - {None}
    if len(seeds) == 1 and all(SEEDS.search(r["data"]) or " vs " in r["data"] for r in rows):
        (count,) = seeds  # every batch has as many seeds: said once, in the header
        columns[1] = f"regime, data ({count})"
        rows = [{**r, "data": SEEDS.sub("", r["data"])} for r in rows]
    return markdown_table(columns, [[r["claim"], f"{r['regime']}; {r['data']}", r["verdict"], r["key"]]
                                    + ([r["earlier"]] if history is not None else []) for r in rows])


def replace_readme_table(text: str, table: str) -> str:
    """``text`` (the README) with the block between ``README_START`` and
    ``README_END`` replaced by ``table``; a clear error without the markers."""
    return replace_marked_block(text, README_START, README_END, table, "the README")


def _history(project_root: Path) -> pd.DataFrame | None:
    """The recorded earlier readings, where ``project_root`` has them."""
    path = Path(project_root) / verdict_history.HISTORY_FILE
    return verdict_history.load_history(path) if path.is_file() else None


def with_generated_blocks(text: str, found: pd.DataFrame, project_root: Path) -> str:
    """``text`` with each generated block it has (the verdict table, the
    table of what changed, the tempering audits) as the verdicts ``found``
    (``study_verdicts``) and the records under ``project_root`` give them."""
    history = _history(project_root)
    if has_marked_block(text, README_START):
        text = replace_readme_table(text, readme_table(found, history))
    if has_marked_block(text, verdict_history.CHANGES_START):
        if history is None:
            raise ConfigError(f"no verdict history under {project_root} ({verdict_history.HISTORY_FILE})")
        text = verdict_history.replace_changes_table(
            text, verdict_history.changes_table(verdict_history.changes(history, found)))
    if has_marked_block(text, tempering_table.TEMPERING_START):
        text = tempering_table.replace_tempering_block(text, tempering_table.tempering_block(Path(project_root)))
    return text


def readme_with_verdicts(text: str, runs_root: Path, project_root: Path) -> tuple[str, pd.DataFrame]:
    """The README ``text`` with its generated blocks (``with_generated_blocks``;
    the verdict table is required) as the batches under ``runs_root`` give
    them, and the verdicts."""
    if not has_marked_block(text, README_START):
        raise ConfigError(f"the README has no {README_START} ... {README_END} block for the verdict table")
    found, _ = study_verdicts(runs_root)
    return with_generated_blocks(text, found, project_root), found


def readme_main(argv: Sequence[str] | None = None) -> int:
    """``python -m calibkd.runs readme-table``: compute chapter 05's verdicts
    from the committed batches (``study_verdicts``) and write the README's
    generated blocks (the verdict table with the earlier readings, the
    tempering audits) and, beside it, docs/history.md's table of what
    changed since the first verdicts; ``--check`` writes nothing and exits 1
    when either differs."""
    import argparse
    import sys

    from calibkd.paths import batches_dir, home, source_checkout

    parser = argparse.ArgumentParser(prog="python -m calibkd.runs readme-table", description=readme_main.__doc__)
    parser.add_argument("--readme", type=Path, default=(source_checkout() or home()) / "README.md")
    parser.add_argument("--runs-root", type=Path, default=batches_dir(),
                        help="where the batches are (default: papermill_runs/ of the home, calibkd.paths)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated block differs")
    args = parser.parse_args(argv)
    page = args.readme.parent / HISTORY_PAGE
    try:
        text = args.readme.read_text(encoding="utf-8")
        new, found = readme_with_verdicts(text, args.runs_root, args.readme.parent)
        page_text = page.read_text(encoding="utf-8") if page.is_file() else None
        page_new = with_generated_blocks(page_text, found, args.readme.parent) if page_text is not None else None
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    status = write_generated(args.readme, text, new, "the verdict table", args.check, f" ({len(found)} verdicts)")
    if page_text is not None:
        status |= write_generated(page, page_text, page_new, "the table of what changed", args.check)
    return status

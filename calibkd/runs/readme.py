"""The README's generated blocks: the verdict table chapter 05's verdicts
give (``python -m calibkd.runs readme-table``), the table of what changed
since the first verdicts (``verdict_history``) and the tempering audits
(``tempering_table``). A test keeps them equal to what the committed
batches and audits give."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import pandas as pd

from calibkd.errors import ConfigError
from calibkd.runs.claims import study_verdicts, verdict_text
from calibkd.runs import tempering_table, verdict_history
from calibkd.runs.table_rows import markdown_table, merged_rows, replace_marked_block, write_generated

#: The markers between which ``python -m calibkd.runs readme-table`` writes the README's verdict table.
README_START, README_END = "<!-- verdicts:start -->", "<!-- verdicts:end -->"
README_COLUMNS = ["claim", "regime, data", "verdict", "key interval"]


def _compact(detail: str) -> str:
    """A claim's detail with one shared reason said once: "fails for a
    (within noise), b (within noise)" -> "fails for a, b (all within noise)"."""
    def shorten(match: re.Match) -> str:
        items = re.findall(r"\s*([^,;()]+?) \(([^()]*)\)", match.group(1))
        if len(items) < 2 or len({why for _, why in items}) > 1:
            return match.group(0)
        return f"fails for {', '.join(name for name, _ in items)} (all {items[0][1]})"
    return re.sub(r"fails for ((?:[^;()]+ \([^()]*\)(?:, )?)+)", shorten, detail)


def readme_table(verdict_table: pd.DataFrame) -> str:
    """The README's verdict table (Markdown) from ``study_verdicts``: claim,
    regime and data, verdict (with the parts that hold or fail; "not tested"
    has its reason in the last column), key interval. Rows that differ only
    in regime, then only in claim, are one row."""
    rows = [{"claim": row["claim"], "regime": row["regime"], "data": row["data"],
             "verdict": row["verdict"] if row["verdict"] == "not tested"
             else verdict_text(row["verdict"], _compact(row["detail"])),
             "key": _compact(row["key interval"])} for _, row in verdict_table.iterrows()]
    rows = merged_rows(merged_rows(rows, "regime", ", "), "claim", "; ")
    return markdown_table(README_COLUMNS, [[r["claim"], f"{r['regime']}; {r['data']}", r["verdict"], r["key"]]
                                           for r in rows])


def replace_readme_table(text: str, table: str) -> str:
    """``text`` (the README) with the block between ``README_START`` and
    ``README_END`` replaced by ``table``; a clear error without the markers."""
    return replace_marked_block(text, README_START, README_END, table, "the README")


def readme_with_verdicts(text: str, runs_root: Path, project_root: Path) -> tuple[str, pd.DataFrame]:
    """The README ``text`` with its generated blocks as the batches under
    ``runs_root`` give them: the verdict table and, where the README has
    their blocks, the table of what changed since the first verdicts (from
    ``verdict_history.HISTORY_FILE`` under ``project_root``) and the
    tempering audits (``tempering_table.AUDIT_GLOB`` under it); and the verdicts."""
    found, _ = study_verdicts(runs_root)
    new = replace_readme_table(text, readme_table(found))
    if verdict_history.CHANGES_START in new:
        history = verdict_history.load_history(Path(project_root) / verdict_history.HISTORY_FILE)
        new = verdict_history.replace_changes_table(
            new, verdict_history.changes_table(verdict_history.changes(history, found)))
    if re.search(f"^{re.escape(tempering_table.TEMPERING_START)}$", new, re.MULTILINE):
        new = tempering_table.replace_tempering_block(new, tempering_table.tempering_block(Path(project_root)))
    return new, found


def readme_main(argv: Sequence[str] | None = None) -> int:
    """``python -m calibkd.runs readme-table``: compute chapter 05's verdicts
    from the committed batches (``study_verdicts``) and write them as the
    README's verdict table, between its markers, and, where the README has
    their blocks, the table of what changed since the first verdicts
    (``verdict_history``) and the tempering audits (``tempering_table``);
    ``--check`` writes nothing and exits 1 when the README differs."""
    import argparse
    import sys

    from calibkd.paths import batches_dir, home, source_checkout

    parser = argparse.ArgumentParser(prog="python -m calibkd.runs readme-table", description=readme_main.__doc__)
    parser.add_argument("--readme", type=Path, default=(source_checkout() or home()) / "README.md")
    parser.add_argument("--runs-root", type=Path, default=batches_dir(),
                        help="where the batches are (default: papermill_runs/ of the home, calibkd.paths)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the README's table differs")
    args = parser.parse_args(argv)
    try:
        text = args.readme.read_text(encoding="utf-8")
        new, found = readme_with_verdicts(text, args.runs_root, args.readme.parent)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return write_generated(args.readme, text, new, "the verdict table", args.check, f" ({len(found)} verdicts)")

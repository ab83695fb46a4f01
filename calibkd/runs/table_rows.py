"""The README's generated Markdown tables: rows merged where they differ in
one column only (one row for several regimes or claims), and the table itself."""

from __future__ import annotations

from typing import Sequence


def merged_rows(rows: list[dict], by: str, joiner: str) -> list[dict]:
    """Rows equal but for ``by`` as one row (``by`` values joined), in first-seen order."""
    merged: dict[tuple, dict] = {}
    for row in rows:
        key = tuple(v for k, v in row.items() if k != by)
        if key in merged:
            merged[key][by] += joiner + row[by]
        else:
            merged[key] = dict(row)
    return list(merged.values())


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table of ``rows`` under ``columns`` (a ``|`` in a cell escaped, a newline made a space)."""
    def cell(text: object) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)

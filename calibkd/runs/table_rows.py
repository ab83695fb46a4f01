"""Rows of a Markdown table merged where they differ in one column only
(the README's verdict tables: one row for several regimes or claims)."""

from __future__ import annotations


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

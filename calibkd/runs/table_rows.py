"""The generated Markdown tables of the README and docs: rows merged where
they differ in one column only (one row for several regimes or claims), the
table itself, the block between two marker lines it replaces, and the file
written (or checked) with it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from calibkd.errors import ConfigError


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


def write_generated(path: Path, text: str, new: str, what: str, check: bool, note: str = "") -> int:
    """Write ``new`` over ``path`` (which read ``text``) where they differ, or
    with ``check`` write nothing and say whether ``what`` is up to date; the
    exit status of a command with ``--check`` (1: out of date)."""
    from calibkd.io import atomic_write_text

    if check:
        print(f"{path}: {what} is {'up to date' if new == text else 'out of date'}")
        return 0 if new == text else 1
    if new != text:
        atomic_write_text(path, new)
    print(f"{path}: {what} {'written' if new != text else 'already up to date'}{note}")
    return 0


def _marker_line(text: str, marker: str) -> re.Match | None:
    """Where ``marker`` stands on a line of its own in ``text`` (quoted in prose, it does not count)."""
    return re.search(f"^{re.escape(marker)}$", text, re.MULTILINE)


def has_marked_block(text: str, start: str) -> bool:
    """Whether ``text`` has the marker line ``start`` of a generated block."""
    return _marker_line(text, start) is not None


def replace_marked_block(text: str, start: str, end: str, block: str, where: str, required: bool = True) -> str:
    """``text`` with the lines between the marker lines ``start`` and ``end``
    (each a line of its own, so prose may quote a marker) replaced by
    ``block``. Without the markers: a clear error naming ``where`` if the
    block is ``required``, else ``text`` unchanged; a broken pair is an error."""
    first, last = _marker_line(text, start), _marker_line(text, end)
    if not first and not last:
        if required:
            raise ConfigError(f"{where} has no {start} ... {end} block")
        return text
    if not first or not last or last.start() < first.end():
        raise ConfigError(f"{where}: its {start} ... {end} block is broken")
    return text[:first.end()] + "\n" + block + "\n" + text[last.start():]

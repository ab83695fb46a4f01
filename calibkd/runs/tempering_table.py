"""The README's account of the first build's tempering error: how many rows
of the study's teachers' targets the old clamp changed, and by how much,
read from the JSON files ``bench/tempering_audit.py`` writes (one per
dataset). ``python -m calibkd.runs readme-table`` writes it between its
markers, so the README says what the audits measured and nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path

from calibkd.errors import ConfigError
from calibkd.runs.table_rows import markdown_table, replace_marked_block

#: Where the audits are, relative to the project root (``tempering-audit.json``, ``tempering-audit-glyphs.json``).
AUDIT_GLOB = "bench/results/tempering-audit*.json"
#: The markers between which the README's block is written.
TEMPERING_START, TEMPERING_END = "<!-- tempering:start -->", "<!-- tempering:end -->"
#: The audited targets: the teacher's softmax (what W-Clip and CUD-P start from), its TS version (KD-TS).
TARGETS = ("teacher softmax", "temperature-scaled teacher")
#: rows whose clamp fired, rows whose target moved by more than 0.01 in total variation, the largest move
COLUMNS = ["data", "teacher", "rows touched", "moved > 0.01 TV", "largest TV move"]


def _pair(scores: dict, key: str, form: str) -> str:
    """One score for the softmax and the TS target, as ``a / b``."""
    return " / ".join(format(scores[target][key], form) for target in TARGETS)


def tempering_block(project_root: Path) -> str:
    """The README's block: a line on what was audited and a table per
    dataset and teacher (softmax / TS targets in each cell)."""
    paths = sorted(Path(project_root).glob(AUDIT_GLOB))
    if not paths:
        raise ConfigError(f"no tempering audit under {project_root} ({AUDIT_GLOB}): run bench/tempering_audit.py")
    audits = [json.loads(p.read_text()) for p in paths]
    rows = [[audit["dataset"], regime, _pair(scores, "rows_touched", ".1%"),
             _pair(scores, "rows_tv_above_0.01", ".1%"), _pair(scores, "max_tv", ".3f")]
            for audit in audits for regime, scores in audit["results"].items()]
    samples = sorted({f"{a['sample']:,}" for a in audits})
    temperatures = sorted({f"{a['temperature']:g}" for a in audits})
    lead = (f"{' or '.join(samples)} training views of each CE teacher's students, T = "
            f"{' or '.join(temperatures)}; softmax target / TS target ({', '.join(f'`{p.name}`' for p in paths)}):")
    return lead + "\n\n" + markdown_table(COLUMNS, rows)


def replace_tempering_block(text: str, block: str) -> str:
    """``text`` (the README) with its block between ``TEMPERING_START`` and
    ``TEMPERING_END`` replaced by ``block``; unchanged when it has none."""
    return replace_marked_block(text, TEMPERING_START, TEMPERING_END, block, "the README", required=False)

"""How the study's verdicts moved, and what moved them: docs/history.md's
table of what changed since the first verdicts (the README shows the two
earlier readings beside each verdict).

Three readings of each claim, side by side:

1. **first**: the verdicts first published (the README at commit
   6c3dee0, copied there from chapter 05's execution): the lenient
   rule (one comparison excluding zero was enough), KD the only reference,
   the old overconfident regime, runs made at several commits;
2. **strict rule, same runs**: the same committed runs read by the strict,
   pre-registered rule with the regime check (``claims.study_verdicts`` run
   on the batches as they stood before the re-run, at commit f448e4f);
3. **now**: ``claims.study_verdicts`` on the committed batches.

The first two are records (``HISTORY_FILE``, written once: the runs they
read were replaced by the re-run); the third is computed. A change between
1 and 2 is the rule's doing (or the regime check's), one between 2 and 3 the
re-run's: the rebuilt overconfident regime, exact tempering, tuned
baselines, three glyph seeds, which the re-run changed together, so a row
names the ones that apply to it, not which of them moved it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from calibkd.errors import ConfigError
from calibkd.runs.claims import VERDICTS
from calibkd.runs.table_rows import markdown_table, merged_rows, replace_marked_block

#: The record of readings 1 and 2, relative to the project root.
HISTORY_FILE = Path("docs") / "verdict-history.csv"
HISTORY_COLUMNS = ["claim", "regime", "first", "strict rule, same runs"]
#: The markers between which ``python -m calibkd.runs readme-table`` writes the table.
CHANGES_START, CHANGES_END = "<!-- changes:start -->", "<!-- changes:end -->"
NOT_REPORTED = "not reported"


def verdict_word(text: str) -> str:
    """A verdict's word without its reasons: "not supported (within noise)" -> "not supported"."""
    text = str(text).strip()
    for word in (*VERDICTS, "mixed"):  # "mixed": the lenient rule's word for a claim with parts both ways
        if text.startswith(word):
            return word
    return text or NOT_REPORTED


def load_history(path: Path) -> pd.DataFrame:
    """The recorded readings 1 and 2 (a clear error when the file is missing or malformed)."""
    if not Path(path).is_file():
        raise ConfigError(f"no verdict history at {path}: it is part of the repository ({HISTORY_FILE})")
    history = pd.read_csv(path, comment="#", dtype=str, keep_default_na=False)
    missing = [c for c in HISTORY_COLUMNS if c not in history.columns]
    if missing:
        raise ConfigError(f"{path} lacks the columns {missing}; expected {HISTORY_COLUMNS}")
    return history[HISTORY_COLUMNS]


def rerun_changes(claim: str, regime: str) -> list[str]:
    """What the re-run changed that bears on ``claim`` in ``regime``."""
    changed = []
    if regime == "overconfident":
        changed.append("rebuilt regime")
    if not claim.startswith("C-collapse") and claim != "C-cardinality":
        changed.append("exact tempering")  # the target methods (KD-TS, W-Clip, CUD, CUD-P) are in every other claim
    changed.append("tuned baselines")
    if "glyphs" in claim or claim == "C-cardinality":
        changed.append("3 glyph seeds")
    return changed


def changes(history: pd.DataFrame, verdicts: pd.DataFrame) -> pd.DataFrame:
    """One row per claim and regime of ``verdicts`` (``claims.study_verdicts``)
    or of the history: the three readings' verdict words and what moved them."""
    now = {(r.claim, r.regime): verdict_word(r.verdict) for r in verdicts.itertuples()}
    before = {(r["claim"], r["regime"]): (verdict_word(r["first"]), verdict_word(r["strict rule, same runs"]))
              for _, r in history.iterrows()}
    keys = list(dict.fromkeys([*before, *now]))
    rows = []
    for claim, regime in keys:
        first, strict = before.get((claim, regime), (NOT_REPORTED, NOT_REPORTED))
        current = now.get((claim, regime), NOT_REPORTED)
        moved = []
        if first == NOT_REPORTED and strict != NOT_REPORTED:
            moved.append("not in the first table")
        elif first != strict:
            moved.append("the strict rule and regime check" if strict == "not tested" and regime == "overconfident"
                         else "the strict rule")
        if strict != current:
            moved.append(f"the re-run ({', '.join(rerun_changes(claim, regime))})")
        rows.append({"claim": claim, "regime": regime, "first": first, "strict rule, same runs": strict,
                     "now": current, "moved by": "; ".join(moved) or "unchanged"})
    return pd.DataFrame(rows)


def changes_table(frame: pd.DataFrame) -> str:
    """``changes`` as docs/history.md's Markdown table (rows equal but for the
    regime, then but for the claim, merged, as in the verdict table)."""
    rows = merged_rows(merged_rows([dict(r) for _, r in frame.iterrows()], "regime", ", "), "claim", "; ")
    columns = ["claim", "regime", "first", "strict rule, same runs", "now", "moved by"]
    return markdown_table(columns, [[r[c] for c in columns] for r in rows])


def replace_changes_table(text: str, table: str) -> str:
    """``text`` (docs/history.md) with the block between ``CHANGES_START`` and
    ``CHANGES_END`` replaced by ``table``; unchanged when it has no such block."""
    return replace_marked_block(text, CHANGES_START, CHANGES_END, table, "docs/history.md", required=False)

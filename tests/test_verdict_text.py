"""Verdicts in words (calibkd.runs.claims): the comparison a verdict rests on,
its sentence; the README's verdict table and the command that writes it
(calibkd.runs.readme)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from calibkd.errors import ConfigError
from calibkd.runs import claims, readme as readme_tables

M = "\u2212"


def evidence_row(comparison: str, role: str, outcome: str, difference: float, low: float, high: float,
                 p_holm: float, n: int = 3, claim: str = "C-cud", regime: str = "default") -> dict:
    return {"claim": claim, "regime": regime, "part": "p", "role": role, "comparison": comparison, "metric": "ece",
            "where": "test", "n": n, "difference": difference, "ci_low": low, "ci_high": high, "p_holm": p_holm,
            "outcome": outcome}


EVIDENCE = pd.DataFrame([
    evidence_row("cud - kd", "primary", "within noise", -0.02, -0.05, 0.01, 0.20),
    evidence_row("cud - kd", "primary", "within noise", -0.03, -0.05, -0.01, 0.08),  # excludes zero, not after Holm
    evidence_row("cud - ce", "guard", "contradicts", 0.04, 0.03, 0.05, 0.01),
])


def test_a_comparison_in_words_has_its_interval_and_holm_p():
    assert claims.comparison_text(EVIDENCE.iloc[0]) == \
        f"cud {M} kd, ece at test: {M}0.0200 [{M}0.0500, +0.0100], Holm p 0.2000, 3 seeds"
    one = pd.Series(evidence_row("cud - kd", "primary", "not tested", 0.01, np.nan, np.nan, np.nan, n=1))
    assert claims.comparison_text(one) == f"cud {M} kd, ece at test: +0.0100, 1 seed, no interval"


def test_the_key_comparison_is_what_sank_the_claim_else_the_strongest_primary():
    assert claims.key_comparison(EVIDENCE)["comparison"] == "cud - ce"  # the contradicting guard
    primaries = EVIDENCE.iloc[:2]
    assert claims.key_comparison(primaries)["p_holm"] == 0.08
    assert claims.key_comparison(EVIDENCE.iloc[0:0]) is None


def test_a_claim_that_fails_is_keyed_to_a_comparison_that_failed():
    held = evidence_row("cud - kd", "primary", "supports", -0.05, -0.06, -0.04, 0.002)
    short = evidence_row("cud - kd", "primary", "within noise", 0.01, -0.02, 0.04, 0.40)
    key = claims.key_comparison(pd.DataFrame([held, short]))
    assert key["outcome"] == "within noise" and key["p_holm"] == 0.40
    assert claims.key_comparison(pd.DataFrame([held]))["p_holm"] == 0.002  # a claim that holds: its strongest primary


def test_verdict_sentences_name_the_intervals_a_reader_would_over_read():
    verdicts = pd.DataFrame([{"claim": "C-cud", "regime": "default", "verdict": "not supported",
                              "detail": "worse than the CE student"}])
    line, = claims.verdict_sentences(verdicts, EVIDENCE)
    assert line.startswith("**C-cud** [default]: *not supported: worse than the CE student*. Key comparison: cud")
    assert f"within noise after Holm's correction: cud {M} kd, ece at test: {M}0.0300" in line
    assert f"{M}0.0200" not in line  # an interval across zero is not listed


def test_compact_says_a_shared_reason_once():
    assert readme_tables._compact("fails for a (within noise), b (within noise)") == "fails for a, b (all within noise)"
    assert readme_tables._compact("holds for x; fails for a (within noise), b (the opposite beyond noise)") == \
        "holds for x; fails for a (within noise), b (the opposite beyond noise)"


def test_the_readme_table_merges_rows_that_differ_only_in_regime_or_claim():
    verdicts = pd.DataFrame([
        {"claim": c, "regime": r, "verdict": "not tested", "detail": "fewer than 2 seeds", "data": "glyphs, 1 seed",
         "key interval": "fewer than 2 seeds"} for c in ("C-shift (glyphs)", "C-cud (glyphs)") for r in ("default",)]
        + [{"claim": "C-cud", "regime": "default", "verdict": "not supported", "data": "fashion_mnist, 3 seeds",
            "detail": "fails for a (within noise), b (within noise)", "key interval": "cud − kd: ..."}])
    table = readme_tables.readme_table(verdicts).splitlines()
    assert table[0] == "| claim | regime, data | verdict | key interval |"
    assert table[2] == "| C-shift (glyphs); C-cud (glyphs) | default; glyphs, 1 seed | not tested | fewer than 2 seeds |"
    assert table[3] == ("| C-cud | default; fashion_mnist, 3 seeds | not supported: fails for a, b (all within noise) "
                        "| cud − kd: ... |")


def test_the_readme_block_is_replaced_between_its_markers_only():
    text = f"intro\n{readme_tables.README_START}\nold\n{readme_tables.README_END}\nrest\n"
    assert readme_tables.replace_readme_table(text, "new") == f"intro\n{readme_tables.README_START}\nnew\n{readme_tables.README_END}\nrest\n"
    with pytest.raises(ConfigError, match="no <!-- verdicts:start -->"):
        readme_tables.replace_readme_table("no markers", "new")


def test_the_readme_command_writes_then_checks(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{readme_tables.README_START}\n{readme_tables.README_END}\n")
    assert readme_tables.readme_main(["--readme", str(readme), "--check"]) == 1
    assert readme_tables.readme_main(["--readme", str(readme)]) == 0
    assert "| C-collapse | default;" in readme.read_text()
    assert readme_tables.readme_main(["--readme", str(readme), "--check"]) == 0
    assert "up to date" in capsys.readouterr().out
    readme.write_text("no markers")
    assert readme_tables.readme_main(["--readme", str(readme)]) == 2


def test_the_readme_table_shows_the_earlier_readings_and_says_a_common_seed_count_once():
    history = pd.DataFrame([{"claim": "C-cud", "regime": "default", "first": "mixed (one part each way)",
                             "strict rule, same runs": "not supported"}])
    verdicts = pd.DataFrame([
        {"claim": "C-cud", "regime": "default", "verdict": "supported", "detail": "every part holds",
         "data": "fashion_mnist, 3 seeds", "key interval": "cud − kd: ..."},
        {"claim": "C-cud (glyphs)", "regime": "default", "verdict": "supported", "detail": "every part holds",
         "data": "glyphs, 3 seeds", "key interval": "cud − kd: ..."},
        {"claim": "C-cardinality", "regime": "default", "verdict": "not supported", "detail": "within noise",
         "data": "glyphs vs fashion_mnist", "key interval": "glyphs − fashion_mnist: ..."}])
    table = readme_tables.readme_table(verdicts, history).splitlines()
    assert table[0] == f"| claim | regime, data (3 seeds) | verdict | key interval | {readme_tables.EARLIER} |"
    assert table[2] == "| C-cud | default; fashion_mnist | supported: every part holds | cud − kd: ... | mixed; not supported |"
    assert table[3].endswith("| default; glyphs | supported: every part holds | cud − kd: ... | not reported; not reported |")
    assert "| default; glyphs vs fashion_mnist |" in table[4]
    # batches with different numbers of seeds keep theirs on each row
    mixed = verdicts.assign(data=["fashion_mnist, 3 seeds", "glyphs, 1 seed", "glyphs vs fashion_mnist"])
    assert "| default; glyphs, 1 seed |" in readme_tables.readme_table(mixed, history)

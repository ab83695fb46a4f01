"""What changed since the first verdicts (calibkd.runs.verdict_history): the
recorded readings and the computed one side by side, and what moved each."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from calibkd.errors import ConfigError
from calibkd.runs import claims, verdict_history as vh

ROOT = Path(__file__).resolve().parents[1]


def history(*rows: tuple[str, str, str, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=vh.HISTORY_COLUMNS)


def verdicts(*rows: tuple[str, str, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["claim", "regime", "verdict"])


def test_a_verdict_word_drops_its_reasons():
    assert vh.verdict_word("not supported (within noise)") == "not supported"
    assert vh.verdict_word("supported") == "supported"
    assert vh.verdict_word("contradicted: fails for NLL") == "contradicted"
    assert vh.verdict_word("mixed") == "mixed"
    assert vh.verdict_word("") == vh.NOT_REPORTED


def test_each_change_is_put_down_to_the_reading_it_happened_in():
    found = vh.changes(
        history(("C-collapse", "default", "not supported", "contradicted"),
                ("C-cud", "overconfident", "supported", "not tested"),
                ("C-shift", "default", "not supported (within noise)", "not supported"),
                ("C-cud (glyphs)", "default", "not tested", "not tested"),
                ("C-cud (long tail, cudp)", "long_tail", "not reported", "not supported")),
        verdicts(("C-collapse", "default", "contradicted"),
                 ("C-cud", "overconfident", "supported"),
                 ("C-shift", "default", "not supported"),
                 ("C-cud (glyphs)", "default", "not supported"),
                 ("C-cud (long tail, cudp)", "long_tail", "not supported"),
                 ("C-new", "default", "supported")))
    moved = dict(zip(found["claim"], found["moved by"]))
    assert moved["C-collapse"] == "the strict rule"
    assert moved["C-cud"] == ("the strict rule and regime check; the re-run "
                              "(rebuilt regime, exact tempering, tuned baselines)")
    assert moved["C-shift"] == "unchanged"
    assert moved["C-cud (glyphs)"] == "the re-run (exact tempering, tuned baselines, 3 glyph seeds)"
    assert moved["C-cud (long tail, cudp)"] == "not in the first table"
    new = found[found["claim"] == "C-new"].iloc[0]
    assert (new["first"], new["strict rule, same runs"], new["now"]) == (vh.NOT_REPORTED,) * 2 + ("supported",)


def test_the_re_run_names_only_what_bears_on_a_claim():
    assert vh.rerun_changes("C-collapse", "default") == ["tuned baselines"]  # plain KD never took the clamped path
    assert vh.rerun_changes("C-cardinality", "overconfident") == ["rebuilt regime", "tuned baselines", "3 glyph seeds"]
    assert vh.rerun_changes("C-shift", "default") == ["exact tempering", "tuned baselines"]


def test_the_table_merges_rows_that_differ_only_in_regime_then_claim():
    frame = vh.changes(history(("A", "default", "x", "x"), ("A", "overconfident", "x", "x"),
                               ("B", "default", "x", "x"), ("B", "overconfident", "x", "x")),
                       verdicts(("A", "default", "x"), ("A", "overconfident", "x"),
                                ("B", "default", "x"), ("B", "overconfident", "x")))
    lines = vh.changes_table(frame).splitlines()
    assert lines[0] == "| claim | regime | first | strict rule, same runs | now | moved by |"
    assert lines[2:] == ["| A; B | default, overconfident | x | x | x | unchanged |"]


def test_the_block_is_replaced_only_where_the_readme_has_it():
    text = f"intro\n{vh.CHANGES_START}\nold\n{vh.CHANGES_END}\nrest\n"
    assert vh.replace_changes_table(text, "new") == f"intro\n{vh.CHANGES_START}\nnew\n{vh.CHANGES_END}\nrest\n"
    assert vh.replace_changes_table("no block", "new") == "no block"
    with pytest.raises(ConfigError, match="broken"):
        vh.replace_changes_table(f"{vh.CHANGES_END}\nbefore\n{vh.CHANGES_START}\n", "new")


def test_a_missing_or_malformed_history_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no verdict history"):
        vh.load_history(tmp_path / "nothing.csv")
    (tmp_path / "bad.csv").write_text("claim,regime\nC-cud,default\n")
    with pytest.raises(ConfigError, match="lacks the columns"):
        vh.load_history(tmp_path / "bad.csv")


def test_the_recorded_history_covers_every_claim_the_study_decides():
    recorded = vh.load_history(ROOT / vh.HISTORY_FILE)
    decided, _ = claims.study_verdicts(ROOT / "papermill_runs")
    assert set(zip(decided["claim"], decided["regime"])) <= set(zip(recorded["claim"], recorded["regime"]))
    assert set(recorded["strict rule, same runs"]) <= set(claims.VERDICTS)
    assert set(map(vh.verdict_word, recorded["first"])) <= set(claims.VERDICTS) | {"mixed", vh.NOT_REPORTED}

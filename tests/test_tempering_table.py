"""``calibkd.runs.tempering_table``: the README's account of the first
build's tempering error, read from the audits ``bench/tempering_audit.py``
writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calibkd.errors import ConfigError
from calibkd.runs import tempering_table


def scores(touched: float, moved: float, largest: float) -> dict:
    return {"rows_touched": touched, "rows_tv_above_0.01": moved, "mean_tv": largest / 10, "max_tv": largest,
            "non_target_old": 0.2, "non_target_exact": 0.1}


def write_audit(root: Path, name: str, dataset: str, results: dict) -> None:
    folder = root / "bench" / "results"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps({"profile": "default", "dataset": dataset, "temperature": 4.0,
                                           "sample": 10000, "results": results}))


def test_each_dataset_and_teacher_is_a_row_with_softmax_and_ts_targets_side_by_side(tmp_path: Path) -> None:
    write_audit(tmp_path, "tempering-audit.json", "fashion_mnist",
                {"overconfident": {"teacher softmax": scores(0.1202, 0.0, 0.00619),
                                   "temperature-scaled teacher": scores(0.0, 0.0, 1e-7)}})
    write_audit(tmp_path, "tempering-audit-glyphs.json", "glyphs",
                {"default": {"teacher softmax": scores(0.5, 0.25, 0.1444),
                             "temperature-scaled teacher": scores(0.03, 0.0, 0.004)}})
    block = tempering_table.tempering_block(tmp_path)
    lines = block.splitlines()
    assert lines[0] == ("10,000 training views of each CE teacher's students, T = 4; softmax target / TS target "
                        "(`tempering-audit-glyphs.json`, `tempering-audit.json`):")
    assert lines[4] == "| glyphs | default | 50.0% / 3.0% | 25.0% / 0.0% | 0.144 / 0.004 |"
    assert lines[5] == "| fashion_mnist | overconfident | 12.0% / 0.0% | 0.0% / 0.0% | 0.006 / 0.000 |"


def test_no_audit_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no tempering audit"):
        tempering_table.tempering_block(tmp_path)


def test_the_block_is_replaced_between_its_marker_lines_only(tmp_path: Path) -> None:
    start, end = tempering_table.TEMPERING_START, tempering_table.TEMPERING_END
    text = f"quoted `{start}`\n{start}\nold\n{end}\nafter\n"
    assert tempering_table.replace_tempering_block(text, "new") == f"quoted `{start}`\n{start}\nnew\n{end}\nafter\n"
    assert tempering_table.replace_tempering_block("no block here", "new") == "no block here"
    with pytest.raises(ConfigError, match="broken"):
        tempering_table.replace_tempering_block(f"{end}\n{start}\n", "new")

"""A batch's regime checks, per regime, to show next to its verdicts.

Chapter 04 records, for every regime of every run, the regime check of brief
section 3b (``calibkd.study.report.regime_check``): what the CE teacher does
on the views its students distill from, its test calibration, the class the
check gives, and DUS's gate rate. A verdict about overconfident teachers
counts only where every run's check passes (``claims.verdicts``); this
module summarises the checks over a batch's runs (mean and range over seeds,
and how many runs passed) so that a reader sees, beside each verdict, the
regime it was decided in.
"""

from __future__ import annotations

import pandas as pd

from calibkd.runs.claims import REGIME_CHECK, REGIME_REQUIREMENTS, regime_check_status

#: The regime check's numbers shown beside a verdict, in this order.
SHOWN = ("teacher accuracy (views)", "teacher confidence (views)", "teacher ECE (views)",
         "non-target mass (views)", "teacher accuracy (test)", "teacher ECE (test)", "TS temperature",
         "DUS gate rate (before)", "DUS gate rate (after)", "DUS teacher ECE (test)")


def regime_checks(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """One row per regime of a batch table (``claims.batch_table``): each of
    ``SHOWN`` as "mean [min, max]" over the runs, the number of runs, the
    class the regime requires (if any) and whether every run's check gave it
    (``claims.regime_check_status``). Empty when no run carries a check."""
    rows = table[table["where"] == REGIME_CHECK]
    out = []
    for regime, group in rows.groupby("regime", sort=False):
        row: dict[str, object] = {"regime": regime, "runs": int(group["run_id"].nunique())}
        for metric in SHOWN:
            values = group.loc[group["metric"] == metric, "value"].astype(float)
            if not values.empty:
                row[metric] = _spread(values, digits)
        passes, why = regime_check_status(table, regime)
        row["requires"] = REGIME_REQUIREMENTS.get(regime, "")
        row["check"] = "passes" if passes else f"fails: {why}"
        out.append(row)
    return pd.DataFrame(out).set_index("regime") if out else pd.DataFrame()


def _spread(values: pd.Series, digits: int) -> str:
    """'mean [min, max]' over runs (the mean alone for one run)."""
    mean = f"{values.mean():.{digits}f}"
    return mean if len(values) == 1 else f"{mean} [{values.min():.{digits}f}, {values.max():.{digits}f}]"

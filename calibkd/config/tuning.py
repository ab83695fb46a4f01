"""Tuning on validation with an equal budget (brief section 7): which
settings of KD, DKD, the DUS teacher and CUD are tried, in which order, and
which students take the chosen values.

Every method gets the same number of configurations. The settings every
distilling student shares (KD's temperature T and weight alpha) are tuned
once, on KD, and apply to every student that distills at a temperature;
then each method's own settings are tuned with those: DKD's beta and alpha,
the DUS teacher's lambda_H and gate (scored through its plain-KD student,
``dus_kd``), and CUD's m and eta (with the chosen DUS teacher). A
configuration is scored by its student's NLL on the validation split (a
proper score: it rewards accuracy and honest confidence together); the
lowest wins, ties going to the earlier configuration.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Mapping

from calibkd.errors import ConfigError


@dataclass(frozen=True)
class TuningGrid:
    """One method's configurations: the student row scored on validation,
    the settings varied (``DistillMethod`` fields, or ``lambda_h`` / ``gate``
    of the DUS teacher) with their values, and the student rows that take
    the chosen values."""

    student: str
    values: tuple[tuple[str, tuple[Any, ...]], ...]
    applies_to: tuple[str, ...]

    def configurations(self) -> list[dict[str, Any]]:
        """Every combination of the values, in a fixed order."""
        names = [name for name, _ in self.values]
        return [dict(zip(names, combo)) for combo in itertools.product(*(values for _, values in self.values))]


#: Students that distill at a temperature (every KD-style row and DKD).
_TEMPERED = ("kd", "kd_ts", "kd_ls", "kd_focal", "kd_mixup", "kd_mdca", "kd_ce_finetune", "dkd", "dus_kd", "wclip",
             "cud", "cud_untempered", "cudp", "cudp_dus", "cudp_xfit")
#: Students whose teacher is the DUS teacher.
_DUS_STUDENTS = ("dus_kd", "cud", "cud_untempered", "cudp_dus")

TUNING_GRIDS: dict[str, TuningGrid] = {
    "kd": TuningGrid("kd", (("temperature", (1.0, 2.0, 4.0, 8.0)), ("alpha", (0.5, 0.9))), _TEMPERED),
    "dkd": TuningGrid("dkd", (("dkd_beta", (1.0, 2.0, 4.0, 8.0)), ("dkd_alpha", (0.5, 1.0))), ("dkd",)),
    "dus": TuningGrid("dus_kd", (("lambda_h", (0.05, 0.1, 0.3, 1.0)), ("gate", ("hard", "soft"))), _DUS_STUDENTS),
    "cud": TuningGrid("cud", (("m", (0.4, 0.7)), ("eta", (0.25, 0.5, 0.75, 1.0))), ("cud", "cud_untempered", "wclip")),
}
#: The order of tuning: each step uses the values chosen before it.
TUNING_ORDER = ("kd", "dkd", "dus", "cud")
#: What a configuration is scored by: this metric of its student on validation (lower is better).
TUNING_METRIC = "nll"


def check_tuning(grids: Mapping[str, TuningGrid] = TUNING_GRIDS, order: tuple[str, ...] = TUNING_ORDER) -> None:
    """The grids give every method the same number of configurations, and
    the order names each grid once."""
    if sorted(order) != sorted(grids):
        raise ConfigError(f"tuning order {list(order)} must name each grid once: {sorted(grids)}")
    sizes = {name: len(grid.configurations()) for name, grid in grids.items()}
    if len(set(sizes.values())) != 1:
        raise ConfigError(f"every method must be tuned with the same number of configurations, got {sizes}")


def choice_label(family: str, chosen: Mapping[str, Any]) -> str:
    """A short label for one configuration, e.g. ``kd[alpha=0.9,temperature=4]``."""
    return f"{family}[" + ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in sorted(chosen.items())) + "]"

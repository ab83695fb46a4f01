"""How the study's figures show methods: one colour, marker and line style per
name, the same in every panel, chapter and run.

Styles are derived from the method registries (``design.REGIMES``,
``design.TEACHER_METHODS``, ``design.STUDENT_METHODS`` and the post-hoc
calibrators ``POSTHOC_METHODS``), one family at a time: a name's style is its
position in its family, so a method appended to a registry gets the next free
style and leaves every other method's as it was. The CE baseline of each
family (the ``CE`` teacher, the ``ce`` student) is always near-black: the line
every other method is compared against. A name outside the registries (an
ad-hoc model of an exercise) gets a colour from a hash of its name, stable
across runs, with the ``X`` marker.

Units: ECE is a fraction in [0, 1] everywhere (tables, figure titles, axis
labels and generated text), shown with ``ECE_DECIMALS`` decimals in prose and
titles; ``ece_text`` and ``ece_axis_label`` build those strings.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from calibkd.config.design import REGIMES, STUDENT_METHODS, TEACHER_METHODS

#: The post-hoc calibrators of chapter 03, in order (``methods.calibration.CALIBRATORS``;
#: a test keeps the two in step: config may not import methods).
POSTHOC_METHODS = ("temperature", "vector", "histogram", "isotonic")

#: seaborn's "colorblind" palette without its grey (kept for references and
#: "after TS" markers) and its yellow (too light for lines on white).
COLOURS = ("#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4", "#56b4e9")
#: Markers, in order: the first ``len(COLOURS)`` members of a family are circles,
#: the next ones squares, and so on; with the colour, unique within a family.
MARKERS = ("o", "s", "^", "D", "v", "P")
#: Line styles by the same round: solid, then dashed, ...
LINESTYLES = ("-", "--", "-.", ":")
#: Bar hatches by the same round.
HATCHES = ("", "///", "...", "xx")
#: The colour of each family's CE baseline.
REFERENCE_COLOUR = "#222222"
#: Marker of a name in no registry.
UNREGISTERED_MARKER = "X"

ECE_DECIMALS = 3


@dataclass(frozen=True)
class Style:
    """How one method is drawn."""

    colour: str
    marker: str
    linestyle: str
    #: bar fill pattern: none for a family's first ``len(COLOURS)`` members, so
    #: that bars of the same colour (where markers do not show) still differ
    hatch: str = ""


def teacher_variant_names() -> list[str]:
    """Chapter 03's teacher variants as figures name them: the CE teacher, the
    CE teacher after each post-hoc calibrator, then each calibrated teacher."""
    return ["CE", *(f"CE + {name}" for name in POSTHOC_METHODS), *TEACHER_METHODS]


def families() -> dict[str, list[str]]:
    """Each family of names, in registry order (its first name the family's reference)."""
    return {"regime": list(REGIMES), "teacher": teacher_variant_names(), "student": list(STUDENT_METHODS)}


def _nth_style(index: int) -> Style:
    round_, slot = divmod(index, len(COLOURS))
    return Style(COLOURS[slot], MARKERS[round_ % len(MARKERS)], LINESTYLES[round_ % len(LINESTYLES)],
                 HATCHES[round_ % len(HATCHES)])


def _registered() -> dict[str, Style]:
    styles: dict[str, Style] = {}
    for family, names in families().items():
        for index, name in enumerate(names):
            if family != "regime" and index == 0:
                styles[name] = Style(REFERENCE_COLOUR, "o", "-")
            else:
                styles[name] = _nth_style(index - (family != "regime"))
    return styles


STYLES: dict[str, Style] = _registered()


def _registry_name(name: str) -> str:
    """The registered name behind a display name: ``teacher (default)`` is the
    ``default`` regime's teacher, ``kd, overconfident`` the ``kd`` student."""
    if name.startswith("teacher (") and name.endswith(")"):
        return name[len("teacher ("):-1]
    return name.split(",")[0].strip()


def style(name: str) -> Style:
    """The style of method (or regime) ``name``, the same in every figure."""
    key = name if name in STYLES else _registry_name(name)
    if key in STYLES:
        return STYLES[key]
    slot = zlib.crc32(name.encode()) % len(COLOURS)
    return Style(COLOURS[slot], UNREGISTERED_MARKER, ":")


def palette(names) -> dict[str, str]:
    """``{name: colour}`` for seaborn's ``palette=`` (hue levels ``names``)."""
    return {name: style(name).colour for name in names}


def markers(names) -> dict[str, str]:
    """``{name: marker}`` for seaborn's ``markers=`` (with ``style=`` the hue column)."""
    return {name: style(name).marker for name in names}


def teacher_family(name: str) -> str:
    """Chapter 03's kinds of teacher variant: ``post-hoc`` (the CE teacher and a
    calibrator), ``fine-tuned`` (from the trained CE teacher: DUS and its
    control), ``train-time loss`` (the CE recipe with another loss), or
    ``CE`` for the CE teacher itself."""
    if name == "CE":
        return "CE"
    if name.startswith("CE + "):
        return "post-hoc"
    entry = TEACHER_METHODS.get(name)
    return "fine-tuned" if entry is not None and entry[2] else "train-time loss"


def ece_text(value: float) -> str:
    """An ECE value as every title and sentence shows it: a fraction, ``ECE_DECIMALS`` decimals."""
    return f"{float(value):.{ECE_DECIMALS}f}"


def ece_unit(estimator: str = "15 eq.-width bins") -> str:
    """The unit and estimator of ECE values: ``fraction (15 eq.-width bins)``."""
    return f"fraction ({estimator})"


def ece_axis_label(estimator: str = "15 eq.-width bins", what: str = "ECE") -> str:
    """An axis or column label for ECE values, naming the unit and the estimator."""
    return f"{what}, {ece_unit(estimator)}"

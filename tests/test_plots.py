"""The figures' conventions: one style per method (stable, complete, distinct
within its family), legends off the data, labels apart, ECE as a fraction."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from calibkd import metrics, plots  # noqa: E402
from calibkd.config import display  # noqa: E402
from calibkd.config.design import REGIMES, STUDENT_METHODS, TEACHER_METHODS  # noqa: E402
from calibkd.methods.calibration import CALIBRATORS  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ---------------------------------------------------------------------------
# the method -> style map
# ---------------------------------------------------------------------------


def test_every_registered_method_has_a_style():
    assert list(display.POSTHOC_METHODS) == list(CALIBRATORS), "display.POSTHOC_METHODS must list the calibrators"
    names = [*REGIMES, *display.teacher_variant_names(), *STUDENT_METHODS]
    assert set(names) <= set(display.STYLES)
    assert all(display.style(n).marker != display.UNREGISTERED_MARKER for n in names)


@pytest.mark.parametrize("family", ["regime", "teacher", "student"])
def test_styles_are_distinct_within_a_family(family):
    names = display.families()[family]
    looks = [(display.style(n).colour, display.style(n).marker) for n in names]
    assert len(set(looks)) == len(names)


def test_the_ce_baselines_are_the_dark_reference():
    assert display.style("CE").colour == display.style("ce").colour == display.REFERENCE_COLOUR


def test_a_method_added_to_a_registry_leaves_every_other_style_unchanged(monkeypatch):
    before = dict(display.STYLES)
    monkeypatch.setattr(display, "STUDENT_METHODS", {**STUDENT_METHODS, "new_method": None})
    monkeypatch.setattr(display, "TEACHER_METHODS", {**TEACHER_METHODS, "new_teacher": ("ce", (), False)})
    after = display._registered()
    assert {n: after[n] for n in before} == before
    assert after["new_method"] not in [before[n] for n in STUDENT_METHODS]


def test_display_names_map_to_their_registered_style_and_strangers_get_a_stable_one():
    assert display.style("teacher (overconfident)") == display.style("overconfident")
    assert display.style("cud, overconfident") == display.style("cud")
    stranger = display.style("my exercise model")
    assert stranger == display.style("my exercise model") and stranger.marker == display.UNREGISTERED_MARKER


def test_teacher_families_follow_the_registry():
    assert display.teacher_family("CE + isotonic") == "post-hoc"
    assert {display.teacher_family(m) for m, (_, _, finetunes) in TEACHER_METHODS.items() if finetunes} == {"fine-tuned"}
    assert display.teacher_family("focal") == "train-time loss"


# ---------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------


def _texts(fig: plt.Figure) -> list[str]:
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]


def _shift_table(models):
    rows = []
    for k, model in enumerate(models):
        for severity in (0, 1, 3, 5):
            for metric in ("accuracy", "ece"):
                rows.append({"model": model, "condition": "clean" if severity == 0 else "corruption_mean",
                             "severity": severity, "metric": metric, "value": 0.5 + 0.01 * k + 0.02 * severity})
    return pd.DataFrame(rows)


def _line_colours(ax) -> dict[str, str]:
    return {line.get_label(): to_hex(line.get_color()) for line in ax.get_lines()}


def test_a_method_has_the_same_colour_in_every_figure():
    students = ["ce", "kd", "cud", "cudp"]
    shift = plots.shift_curves(_shift_table(students[::-1]))
    legend = shift.axes[-1].get_legend()
    colours = {t.get_text(): to_hex(h.get_color()) for t, h in zip(legend.get_texts(), legend.legend_handles)}
    assert colours == {s: display.style(s).colour for s in students}
    table = pd.DataFrame({"ECE": [0.05, 0.02, 0.03, 0.04], "ECE after TS": [0.02, 0.02, 0.02, 0.02],
                          "accuracy": [0.8, 0.81, 0.82, 0.83]}, index=students)
    plane = plots.accuracy_ece_plane(table, "students")
    dots = [c for c in plane.axes[0].collections if len(c.get_offsets()) == 1 and len(c.get_facecolors())]
    assert [to_hex(d.get_facecolors()[0]) for d in dots] == [display.style(s).colour for s in students]


def _inside(inner, outer) -> bool:
    return inner.x0 >= outer.x0 - 1 and inner.x1 <= outer.x1 + 1 and inner.y0 >= outer.y0 - 1 and inner.y1 <= outer.y1 + 1


def test_legends_sit_outside_the_data():
    fig = plots.shift_curves(_shift_table(["ce", "kd", "cud"]))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is not None:
            box = legend.get_window_extent(renderer)
            assert box.x0 >= ax.get_window_extent(renderer).x1, "the legend overlaps the axes"


def test_point_labels_do_not_overlap():
    names = list(STUDENT_METHODS)
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"ECE": 0.03 + 0.004 * rng.random(len(names)), "accuracy": 0.85 + 0.004 * rng.random(len(names))},
                         index=names)
    table["ECE after TS"] = table["ECE"] - 0.01
    fig = plots.accuracy_ece_plane(table, "crowded")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [t for t in fig.axes[0].texts if t.get_text() in names]
    assert len(labels) == len(names)
    boxes = [t.get_window_extent(renderer) for t in labels]
    overlaps = [(labels[i].get_text(), labels[j].get_text()) for i in range(len(boxes)) for j in range(i)
                if boxes[i].overlaps(boxes[j])]
    assert not overlaps


def test_sensitivity_plot_shows_the_parameter_values():
    rows = [{"setting": s, "value": v, "accuracy": 0.8, "nll": 0.5, "ece": 0.03}
            for s, values in {"temperature": [2.0, 4.0, 8.0], "m": [0.4, 0.7]}.items() for v in values]
    fig = plots.sensitivity_lines(pd.DataFrame(rows), baseline={"temperature": 4.0, "m": 0.7})
    ticks = {t.get_text() for ax in fig.axes for t in ax.get_xticklabels()}
    assert {"2", "4", "8", "0.4", "0.7"} <= ticks
    assert any("baseline 4" in t for t in _texts(fig))


def test_family_panels_keep_every_panel_small_with_the_ce_reference():
    variants = display.teacher_variant_names()[:13]
    values = pd.DataFrame({"model": np.repeat(variants, 20), "mass": np.tile(np.linspace(1e-4, 0.5, 20), len(variants))})
    fig = plots.family_ecdf_panels(values, "mass", "non-target mass")
    assert len(fig.axes) == 3
    for ax in fig.axes:
        colours = _line_colours(ax)
        assert colours["CE"] == display.REFERENCE_COLOUR and len(colours) <= 8
        assert len(set(colours.values())) == len(colours)


# ---------------------------------------------------------------------------
# one unit for ECE
# ---------------------------------------------------------------------------


def test_ece_is_a_fraction_in_titles_and_labels():
    torch.manual_seed(0)
    probs = torch.softmax(3 * torch.randn(200, 4), 1)
    labels = torch.randint(0, 4, (200,))
    fig = plots.reliability_diagram(probs, labels, "teacher")
    title = fig.axes[0].get_title()
    assert plots.ece_title(metrics.ece(probs, labels)) in title and "%" not in title
    assert re.search(r"ECE 0\.\d{3} ", title)
    figures = [fig, plots.shift_curves(_shift_table(["ce", "kd"])),
               plots.training_curves({"teacher (default)": pd.DataFrame(
                   {"epoch": [1, 2], **{f"{s}_{m}": [0.5, 0.4] for s in ("train", "test") for m in ("acc", "nll", "ece")}})})]
    for figure in figures:
        for text in _texts(figure):
            assert "%" not in text, text
            if re.search(r"\bECE\b", text) and not re.search(r"ECE \d", text):
                assert "fraction" in text, f"an ECE label without its unit: {text!r}"


def _summary(models, columns, regimes=("default", "overconfident")):
    return pd.DataFrame([{"regime": r, "model": m, "column": c, "mean": 0.5 + 0.01 * k, "ci_low": 0.45 + 0.01 * k,
                          "ci_high": 0.55 + 0.01 * k} for r in regimes for k, m in enumerate(models) for c in columns])


def _legends_clear_of_axes(fig: plt.Figure) -> None:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is not None:
            assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))


def test_the_results_figures_render_in_method_colours_with_legends_outside():
    students = ["ce", "kd", "cud", "cudp"]
    picked = _summary(students, ["accuracy", "ECE", "shift ECE"])
    bars = plots.interval_bars(picked, ["default", "overconfident"], ["accuracy", "ECE", "shift ECE"])
    faces = [to_hex(p.get_facecolor()) for p in bars.axes[0].patches]
    assert faces == [display.style(s).colour for s in sorted(students)]
    assert "fraction" in bars.axes[1].get_ylabel()
    plots.accuracy_against_ece(picked, ["default", "overconfident"])
    severity = pd.DataFrame([{"regime": r, "model": m, "severity": s, "mean": 0.1 * s, "ci_low": 0.1 * s - 0.01,
                              "ci_high": 0.1 * s + 0.01} for r in ("default",) for m in students for s in range(6)])
    bands = plots.severity_bands(severity, ["default"], students)
    assert _line_colours(bands.axes[0]) == {s: display.style(s).colour for s in students}
    _legends_clear_of_axes(bands)
    groups = pd.DataFrame([{"model": m, "group": g, "metric": metric, "mean": 0.5, "ci_low": 0.4, "ci_high": 0.6}
                           for m in students for g in ("many", "medium", "few") for metric in ("accuracy", "ece")])
    _legends_clear_of_axes(plots.group_bars(groups, ["many", "medium", "few"]))
    tidy = groups.rename(columns={"mean": "value"})
    _legends_clear_of_axes(plots.class_group_panels(tidy, "long_tail"))
    both = pd.DataFrame([{"regime": r, "student": s, "accuracy": 0.8, "ECE": 0.05, "shift ECE (mean)": 0.1}
                         for r in ("default", "overconfident") for s in students])
    regimes = plots.regime_bars(both)
    _legends_clear_of_axes(regimes)
    legend = regimes.axes[-1].get_legend()
    colours = {t.get_text(): to_hex(h.get_facecolor()) for t, h in zip(legend.get_texts(), legend.legend_handles)}
    assert colours == {r: display.style(r).colour for r in ("default", "overconfident")}

"""Figures of the study, one consistent seaborn style, readable inline and as PNG.

Every method (and regime) is drawn with its own colour, marker and line style
from ``calibkd.config.display`` in every figure; legends sit outside the data;
point labels are moved apart with adjustText; ECE is a fraction (0-1) in
every title and axis label (``ece_title``, ``display.ece_axis_label``).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from calibkd import metrics
from calibkd.config import display
from calibkd.config.display import ece_axis_label, ece_text, ece_unit, markers, palette, style

PALETTE = "colorblind"
#: Fixed colours of the reliability diagram's parts (not methods).
ACCURACY_COLOUR, GAP_COLOUR = "#0173b2", "tab:red"


def ece_title(value: float, estimator: str = "15 eq.-width bins") -> str:
    """``ECE 0.034 (15 eq.-width bins)``: the one way a figure title states an ECE."""
    return f"ECE {ece_text(value)} ({estimator})"


def legend_outside(ax: plt.Axes, title: str | None = None, **kwargs) -> None:
    """Move ``ax``'s legend to the right of the axes, off the data."""
    if ax.get_legend() is None and not ax.get_legend_handles_labels()[0]:
        return
    if ax.get_legend() is not None:
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1), frameon=False, title=title,
                        fontsize=8, **kwargs)
    else:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False, title=title, fontsize=8, **kwargs)


def readable_log_axis(ax: plt.Axes, axis: str = "x") -> None:
    """Plain tick labels on a log axis ("0.01", "2.2"). Call after plotting.
    Over a decade or more only the decades are labelled; under one, the minor
    ticks carry small slanted labels (matplotlib would otherwise label them in
    wide scientific notation that runs together)."""
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    low, high = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    target.set_major_formatter(FormatStrFormatter("%.3g"))
    if low > 0 and high / low >= 10:
        target.set_minor_formatter(NullFormatter())
    else:
        target.set_minor_formatter(FormatStrFormatter("%.3g"))
        ax.tick_params(axis=axis, which="minor", labelsize=7, labelrotation=45 if axis == "x" else 0)


def label_points(ax: plt.Axes, xs: Sequence[float], ys: Sequence[float], names: Sequence[str]) -> None:
    """Name each point, with the labels pushed apart so none overlaps another (adjustText)."""
    from adjustText import adjust_text

    texts = [ax.text(x, y, name, fontsize=8, color="black") for x, y, name in zip(xs, ys, names)]
    if texts:
        adjust_text(texts, x=list(xs), y=list(ys), ax=ax, expand=(1.5, 2.0), force_text=(0.5, 1.0),
                    arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.5})


def set_style() -> None:
    """The study's plotting style (call once per notebook)."""
    sns.set_theme(style="whitegrid", context="notebook", palette=PALETTE)
    plt.rcParams.update({"figure.dpi": 90, "savefig.dpi": 110, "axes.titlesize": 11})


def image_grid(images: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str],
               per_class: int = 6) -> plt.Figure:
    """``per_class`` example images of every class, one row per class.

    ``images`` are at pixel scale 0-1 (see ``calibkd.data.splits.denormalize``).
    More than ``MANY_CLASSES`` classes (glyphs) are drawn as one compact
    canvas with the rows wrapped into several columns.
    """
    classes = len(class_names)
    if classes > MANY_CLASSES:
        return _compact_image_grid(images, labels, class_names, per_class)
    fig, axes = plt.subplots(classes, per_class, figsize=(per_class * 0.9, classes * 0.9))
    for c in range(classes):
        members = torch.nonzero(labels == c).flatten()[:per_class]
        for j in range(per_class):
            ax = axes[c, j]
            ax.axis("off")
            if j < len(members):
                img = images[members[j]].clamp(0, 1).permute(1, 2, 0).cpu().numpy()
                ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None)
        axes[c, 0].text(-0.3, 0.5, class_names[c], transform=axes[c, 0].transAxes, ha="right", va="center", fontsize=8)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    return fig


#: Above this many classes ``image_grid`` draws one canvas instead of a subplot per image.
MANY_CLASSES = 30


def _compact_image_grid(images: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str],
                        per_class: int, rows_per_column: int = 46) -> plt.Figure:
    classes = len(class_names)
    size, channels = images.shape[-1], images.shape[1]
    columns = -(-classes // rows_per_column)
    gap = size // 2
    block = per_class * size + 3 * size
    canvas = np.ones((rows_per_column * size, columns * block - 2 * size + gap, channels))
    for c in range(classes):
        column, row = divmod(c, rows_per_column)
        members = torch.nonzero(labels == c).flatten()[:per_class]
        for j, index in enumerate(members.tolist()):
            img = images[index].clamp(0, 1).permute(1, 2, 0).cpu().numpy()
            x = column * block + 2 * size + j * size
            canvas[row * size: (row + 1) * size, x: x + size] = 1 - img if channels == 1 else img
    fig, ax = plt.subplots(figsize=(canvas.shape[1] / 40, canvas.shape[0] / 40))
    ax.imshow(canvas.squeeze(-1) if channels == 1 else canvas, cmap="gray" if channels == 1 else None,
              vmin=0, vmax=1, interpolation="nearest")
    for c in range(classes):
        column, row = divmod(c, rows_per_column)
        ax.text(column * block + 1.8 * size, row * size + size / 2, class_names[c], ha="right", va="center", fontsize=9)
    ax.axis("off")
    return fig


def training_curves(histories: Mapping[str, pd.DataFrame]) -> plt.Figure:
    """Accuracy, NLL and ECE (15 equal-width bins) per epoch, on training
    and test monitor subsets, one colour per model: overconfidence shows as
    train NLL falling while test NLL rises."""
    rows = []
    for model, history in histories.items():
        for split in ("train", "test"):
            for metric in ("acc", "nll", "ece"):
                rows.append(pd.DataFrame({"model": model, "split": split, "metric": metric,
                                          "epoch": history["epoch"], "value": history[f"{split}_{metric}"]}))
    table = pd.concat(rows, ignore_index=True)
    titles = {"acc": "accuracy", "nll": "NLL", "ece": ece_axis_label()}
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, metric in zip(axes, ("acc", "nll", "ece")):
        sns.lineplot(data=table[table.metric == metric], x="epoch", y="value", hue="model",
                     palette=palette(histories), style="split", style_order=["train", "test"], marker="o",
                     markersize=4, ax=ax)
        ax.set_title(titles[metric])
        ax.set_ylabel("")
        if ax is not axes[-1]:
            ax.get_legend().remove()
    legend_outside(axes[-1])
    fig.tight_layout()
    return fig


def reliability_diagram(probs: torch.Tensor, labels: torch.Tensor, title: str = "",
                        n_bins: int = metrics.DEFAULT_BINS, axes: Sequence[plt.Axes] | None = None,
                        legend: bool = True) -> plt.Figure:
    """Reliability diagram (accuracy per confidence bin, with the gap to the
    diagonal as red bars) above a histogram of top-label confidence; the
    title gives the ECE as a fraction. ``legend``: the key, right of the axes."""
    if axes is None:
        fig, axes = plt.subplots(2, 1, figsize=(3.6, 4.4), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    else:
        fig = axes[0].figure
    top, bottom = axes
    table = metrics.reliability_table(probs, labels, n_bins, "width")
    width = 1.0 / n_bins
    centers = table["lower"] + width / 2
    filled = table["count"] > 0
    top.bar(centers[filled], table["accuracy"][filled], width=width, color=ACCURACY_COLOUR,
            edgecolor="white", label="accuracy")
    top.bar(centers[filled], (table["confidence"] - table["accuracy"])[filled], bottom=table["accuracy"][filled],
            width=width, color=GAP_COLOUR, alpha=0.35, edgecolor=GAP_COLOUR, hatch="//",
            label="gap to confidence")
    top.plot([0, 1], [0, 1], "--", color="gray", linewidth=1)
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    score = metrics.ece(probs, labels, n_bins)
    top.set_title(f"{title}\n{ece_title(score)}" if title else ece_title(score))
    if legend:
        legend_outside(top)
    confidence = probs.double().max(1).values.cpu().numpy()
    bottom.hist(confidence, bins=np.linspace(0, 1, n_bins + 1), color="gray", weights=np.full(len(confidence), 1 / len(confidence)))
    bottom.axvline(confidence.mean(), color="black", linewidth=1, linestyle=":")
    bottom.set_xlabel("top-label confidence")
    bottom.set_ylabel("share")
    return fig


def reliability_grid(panels: Mapping[str, tuple[torch.Tensor, torch.Tensor]], ncols: int) -> plt.Figure:
    """Several reliability diagrams side by side; ``panels`` maps title -> (probs, labels)."""
    n = len(panels)
    nrows = int(np.ceil(n / ncols))
    fig = plt.figure(figsize=(4.2 * ncols, 5.6 * nrows))
    # one cell per panel, its diagram and histogram close together, room for two title lines between rows
    grid = fig.add_gridspec(nrows, ncols, hspace=0.3, wspace=0.3)
    for i, (title, (probs, labels)) in enumerate(panels.items()):
        r, c = divmod(i, ncols)
        cell = grid[r, c].subgridspec(2, 1, height_ratios=[3, 1.1], hspace=0.1)
        top = fig.add_subplot(cell[0])
        bottom = fig.add_subplot(cell[1], sharex=top)
        reliability_diagram(probs, labels, title, axes=(top, bottom), legend=False)
        top.tick_params(labelbottom=False)
        if c > 0:
            top.set_ylabel("")
            bottom.set_ylabel("")
        if r < nrows - 1:
            bottom.set_xlabel("")
    handles, names = fig.axes[0].get_legend_handles_labels()
    above_titles = fig.subplotpars.top + 0.6 / fig.get_figheight()  # two title lines above the top row
    fig.legend(handles, names, loc="lower center", bbox_to_anchor=(0.5, above_titles), ncol=len(names),
               frameon=False, fontsize=9)
    return fig


def class_similarity_heatmap(similarity: np.ndarray, class_names: Sequence[str],
                             groups: Sequence[Sequence[int]] = (), title: str = "",
                             ax: plt.Axes | None = None) -> plt.Axes:
    """Heat-map of a class-similarity matrix; known groups are outlined.

    More than ``MANY_CLASSES`` classes (glyphs) cannot carry one tick label
    each: the classes are reordered so that every group is one block on the
    diagonal (groups first, in their order, then the other classes), each
    block is outlined, and the tick labels are dropped."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.8))
    if len(class_names) > MANY_CLASSES:
        return _many_class_similarity_heatmap(similarity, groups, title, ax)
    sns.heatmap(similarity, ax=ax, cmap="mako_r", square=True, xticklabels=class_names,
                yticklabels=class_names, cbar_kws={"shrink": 0.7})
    for group in groups:
        for i in group:
            for j in group:
                if i != j:
                    ax.add_patch(plt.Rectangle((j, i), 1, 1, fill=False, edgecolor="tab:orange", linewidth=1.5))
    ax.set_title(title)
    ax.tick_params(labelsize=7)
    return ax


def _many_class_similarity_heatmap(similarity: np.ndarray, groups: Sequence[Sequence[int]], title: str,
                                   ax: plt.Axes) -> plt.Axes:
    grouped = [c for group in groups for c in group]
    order = grouped + [c for c in range(similarity.shape[0]) if c not in set(grouped)]
    sns.heatmap(similarity[np.ix_(order, order)], ax=ax, cmap="mako_r", square=True, xticklabels=False,
                yticklabels=False, cbar_kws={"shrink": 0.7})
    start = 0
    for group in groups:
        size = len(group)
        ax.add_patch(plt.Rectangle((start, start), size, size, fill=False, edgecolor="tab:orange", linewidth=1.0))
        start += size
    ax.set_xlabel(f"classes: {len(groups)} groups first (outlined), then the rest")
    ax.set_title(title)
    return ax


def truth_fidelity(table: pd.DataFrame, by_group: pd.DataFrame) -> plt.Figure:
    """Soft outputs against the truth. Left: mean KL(true || model) per model
    and input set (``fidelity.fidelity_table`` rows). Right: the within-group
    uniformity of each group (``fidelity.uniformity_by_group`` rows with
    ``model`` and ``split`` columns); 1 is the truth of tied homoglyphs, 0 all
    of the group's mass on one member."""
    groups = list(dict.fromkeys(by_group["group"]))
    fig, axes = plt.subplots(1, 2, figsize=(13, max(4.0, 0.3 * len(groups) + 1.5)),
                             gridspec_kw={"width_ratios": [1, 1.4]})
    kl = table[table.metric == "kl_true"]
    sns.barplot(data=kl, x="value", y="model", hue="split", ax=axes[0], orient="h")
    axes[0].set_xlabel("mean KL(true || model), nats (0 = the truth)")
    axes[0].set_ylabel("")
    shown = by_group.assign(**{"model, split": by_group["model"] + ", " + by_group["split"]})
    sns.stripplot(data=shown, x="group_uniformity", y="group", hue="model, split", order=groups, ax=axes[1],
                  jitter=False, size=6, alpha=0.8)
    axes[1].axvline(1.0, color="black", linewidth=0.8, linestyle="--")
    axes[1].set_xlim(-0.02, 1.05)
    axes[1].set_xlabel("within-group uniformity (1 = uniform, the truth)")
    axes[1].set_ylabel("")
    axes[1].tick_params(axis="y", labelsize=8)
    legend_outside(axes[0], title="inputs")
    legend_outside(axes[1], title="model, inputs")
    fig.tight_layout()
    return fig


def corruption_grid(images: torch.Tensor, corrupted: Mapping[tuple[str, int], torch.Tensor]) -> plt.Figure:
    """One example image per corruption (rows) and severity (columns), next to
    the clean image. ``corrupted`` maps (name, severity) -> images in [0, 1]."""
    names = list(dict.fromkeys(name for name, _ in corrupted))
    severities = sorted({severity for _, severity in corrupted})
    fig, axes = plt.subplots(len(names), len(severities) + 1, figsize=(1.3 * (len(severities) + 1), 1.3 * len(names)))
    axes = np.atleast_2d(axes)

    def show(ax: plt.Axes, img: torch.Tensor) -> None:
        img = img.clamp(0, 1).permute(1, 2, 0).cpu().numpy()
        ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None,
                  vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])

    for r, name in enumerate(names):
        show(axes[r, 0], images)
        axes[r, 0].set_ylabel(name.replace("_", " "), rotation=0, ha="right", va="center", fontsize=8)
        for c, severity in enumerate(severities, start=1):
            show(axes[r, c], corrupted[name, severity])
    axes[0, 0].set_title("clean", fontsize=9)
    for c, severity in enumerate(severities, start=1):
        axes[0, c].set_title(f"severity {severity}", fontsize=9)
    fig.subplots_adjust(wspace=0.05, hspace=0.08)
    return fig


def shift_curves(table: pd.DataFrame, metrics_shown: Sequence[str] = ("accuracy", "ece")) -> plt.Figure:
    """Mean over corruptions of each metric against severity (0 = clean), one
    line per model. ``table`` is ``evaluate_suite`` output with a ``model`` column."""
    clean = table[table.condition == "clean"].assign(severity=0)
    mean = table[table.condition == "corruption_mean"]
    data = pd.concat([clean, mean], ignore_index=True)
    fig, axes = plt.subplots(1, len(metrics_shown), figsize=(5 * len(metrics_shown), 3.6))
    axes = np.atleast_1d(axes)
    models = list(dict.fromkeys(data["model"]))
    for ax, metric in zip(axes, metrics_shown):
        sns.lineplot(data=data[data.metric == metric], x="severity", y="value", hue="model", hue_order=models,
                     palette=palette(models), style="model", style_order=models, markers=markers(models),
                     dashes=False, ax=ax)
        ax.set_title(f"{metric if metric != 'ece' else ece_axis_label()}, mean over corruptions")
        ax.set_xticks(sorted(data["severity"].unique()))
        ax.set_xlabel("severity (0 = clean)")
        ax.set_ylabel("")
        if ax is not axes[-1]:
            ax.get_legend().remove()
    legend_outside(axes[-1])
    fig.tight_layout()
    return fig


def glyph_group_grid(images: torch.Tensor, labels: torch.Tensor, faces: torch.Tensor,
                     groups: Sequence[Sequence[int]], class_names: Sequence[str],
                     face_ids: Sequence[int], face_names: Sequence[str]) -> plt.Figure:
    """One row per homoglyph group: for each face of ``face_ids``, the group's
    members side by side (uint8 images (N, 1, H, W); the first render of each)."""
    size = images.shape[-1]
    width = max(len(g) for g in groups)
    gap = size // 4
    block = width * size + gap
    canvas = np.full((len(groups) * (size + gap), len(face_ids) * block), 255, dtype=np.uint8)
    for row, group in enumerate(groups):
        for col, face in enumerate(face_ids):
            for slot, cls in enumerate(group):
                found = torch.nonzero((labels == cls) & (faces == face)).flatten()
                if len(found):
                    y, x = row * (size + gap), col * block + slot * size
                    canvas[y: y + size, x: x + size] = 255 - images[found[0], 0].cpu().numpy()
    fig, ax = plt.subplots(figsize=(canvas.shape[1] / 45, canvas.shape[0] / 45))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_yticks([r * (size + gap) + size / 2 for r in range(len(groups))])
    ax.set_yticklabels(["  ".join(class_names[c] for c in g) for g in groups], fontsize=8)
    ax.set_xticks([c * block + width * size / 2 for c in range(len(face_ids))])
    ax.set_xticklabels(face_names, fontsize=7, rotation=30, ha="left")
    ax.xaxis.tick_top()
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return fig


def _half_widths(row: pd.Series) -> list[list[float]] | None:
    """Error-bar lengths below and above the mean (None without an interval)."""
    return None if pd.isna(row["ci_low"]) else [[row["mean"] - row["ci_low"]], [row["ci_high"] - row["mean"]]]


def _column_label(column: str) -> str:
    """A summary column's axis label: the unit where the column is an ECE."""
    return ece_unit() if "ECE" in column else column


def interval_bars(picked: pd.DataFrame, regimes: Sequence[str], columns: Sequence[str]) -> plt.Figure:
    """Per regime (rows) and column (panels): each model's mean as a bar with
    its interval, in the model's colour. ``picked`` is summary rows with a
    ``column`` (``pick_columns``)."""
    fig, axes = plt.subplots(len(regimes), len(columns), figsize=(14, 4.2 * len(regimes)), squeeze=False)
    for i, regime in enumerate(regimes):
        for j, column in enumerate(columns):
            ax = axes[i][j]
            part = picked[(picked["regime"] == regime) & (picked["column"] == column)].sort_values("model")
            bars = ax.bar(part["model"], part["mean"], color=[style(m).colour for m in part["model"]],
                          edgecolor="white")
            for bar, model in zip(bars, part["model"]):
                bar.set_hatch(style(model).hatch)
            ax.errorbar(part["model"], part["mean"], yerr=[part["mean"] - part["ci_low"], part["ci_high"] - part["mean"]],
                        fmt="none", ecolor="black", capsize=3)
            if column == "accuracy":
                ax.set_ylim(part["ci_low"].min(skipna=True) - 0.01 if part["ci_low"].notna().any()
                            else part["mean"].min() - 0.01, part["mean"].max() + 0.01)
            ax.set_title(f"{regime}: {column}")
            ax.set_ylabel(_column_label(column))
            ax.tick_params(axis="x", rotation=60)
            plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    fig.tight_layout()
    return fig


def accuracy_against_ece(picked: pd.DataFrame, regimes: Sequence[str]) -> plt.Figure:
    """Per regime: each model at (test ECE, test accuracy) with both intervals
    as error bars, in its colour and marker, labelled without overlaps."""
    accuracy = picked[picked["column"] == "accuracy"].set_index(["regime", "model"])
    calibration = picked[picked["column"] == "ECE"].set_index(["regime", "model"])
    fig, axes = plt.subplots(1, len(regimes), figsize=(7 * len(regimes), 5), squeeze=False)
    for ax, regime in zip(axes[0], regimes):
        names = list(accuracy.loc[regime].index)
        xs, ys = [], []
        for model in names:
            a, e = accuracy.loc[(regime, model)], calibration.loc[(regime, model)]
            look = style(model)
            ax.errorbar(e["mean"], a["mean"], xerr=_half_widths(e), yerr=_half_widths(a), fmt=look.marker,
                        color=look.colour, capsize=2)
            xs.append(e["mean"])
            ys.append(a["mean"])
        label_points(ax, xs, ys, names)
        ax.set(xlabel=ece_axis_label(what="test ECE"), ylabel="test accuracy", title=f"{regime} regime")
    fig.tight_layout()
    return fig


def severity_bands(severity: pd.DataFrame, regimes: Sequence[str], models: Sequence[str]) -> plt.Figure:
    """Per regime: ECE (mean over corruptions) against severity for ``models``,
    with the interval over seeds as a band. ``severity``: summary rows of one metric."""
    fig, axes = plt.subplots(1, len(regimes), figsize=(7 * len(regimes), 4.5), squeeze=False)
    for ax, regime in zip(axes[0], regimes):
        for model in models:
            part = severity[(severity["regime"] == regime) & (severity["model"] == model)].sort_values("severity")
            if part.empty:
                continue
            look = style(model)
            ax.plot(part["severity"], part["mean"], marker=look.marker, linestyle=look.linestyle, color=look.colour,
                    label=model)
            ax.fill_between(part["severity"].astype(float), part["ci_low"], part["ci_high"], color=look.colour,
                            alpha=0.15)
        ax.set(xlabel="corruption severity (0 = clean)", ylabel=ece_axis_label(),
               title=f"{regime} regime: mean over corruptions")
    legend_outside(axes[0][-1])
    fig.tight_layout()
    return fig


def group_bars(group_summary: pd.DataFrame, groups: Sequence[str]) -> plt.Figure:
    """Long tail: test accuracy and ECE per model, one bar per class group,
    with intervals. ``group_summary``: summary rows with a ``group`` column."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    offsets = [(k - (len(groups) - 1) / 2) * 0.27 for k in range(len(groups))]
    shades = sns.color_palette("crest", len(groups))
    for ax, metric in zip(axes, ["accuracy", "ece"]):
        part = group_summary[group_summary["metric"] == metric]
        models = sorted(part["model"].unique())
        for offset, group, shade in zip(offsets, groups, shades):
            g = part[part["group"] == group].set_index("model").reindex(models)
            x = [i + offset for i in range(len(models))]
            ax.bar(x, g["mean"], width=0.26, color=shade, label=f"{group}-shot")
            ax.errorbar(x, g["mean"], yerr=[g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]], fmt="none",
                        ecolor="black", capsize=2)
        ax.set_xticks(range(len(models)), models, rotation=60, ha="right", rotation_mode="anchor")
        ax.set(title=f"long tail: test {'ECE' if metric == 'ece' else metric} per class group",
               ylabel=ece_axis_label(what="test ECE") if metric == "ece" else f"test {metric}")
    legend_outside(axes[-1], title="class group")
    fig.tight_layout()
    return fig


def accuracy_ece_plane(table: pd.DataFrame, title: str) -> plt.Figure:
    """Each student at (test ECE, test accuracy), filled as trained and open
    after its own temperature scaling, joined by a line; each in its colour
    and marker, labelled without overlaps. ``table``: chapter 04's summary (a
    row per student, columns ``ECE``, ``ECE after TS``, ``accuracy``)."""
    plane = table.reset_index(names="student")
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for _, row in plane.iterrows():
        look = style(row["student"])
        ax.plot([row["ECE"], row["ECE after TS"]], [row["accuracy"]] * 2, color=look.colour, lw=0.8, alpha=0.6)
        ax.scatter(row["ECE"], row["accuracy"], color=look.colour, marker=look.marker, s=60, zorder=3)
        ax.scatter(row["ECE after TS"], row["accuracy"], facecolors="none", edgecolors=look.colour,
                   marker=look.marker, s=50, zorder=3)
    label_points(ax, plane["ECE"].tolist(), plane["accuracy"].tolist(), plane["student"].tolist())
    ax.set(xlabel=ece_axis_label(what="test ECE") + "\nfilled: as trained; open: after the student's own TS",
           ylabel="test accuracy", title=title)
    fig.tight_layout()
    return fig


def regime_bars(both: pd.DataFrame, columns: Sequence[str] = ("accuracy", "ECE", "shift ECE (mean)")) -> plt.Figure:
    """One panel per column: each student's value, one bar per regime (in the
    regime's colour). ``both``: summary rows with ``regime`` and ``student`` columns."""
    fig, axes = plt.subplots(1, len(columns), figsize=(14, 4.2))
    regimes = list(dict.fromkeys(both["regime"]))
    for ax, column in zip(axes, columns):
        sns.barplot(data=both, x="student", y=column, hue="regime", hue_order=regimes, palette=palette(regimes),
                    saturation=1, ax=ax)
        ax.tick_params(axis="x", rotation=60)
        plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
        ax.set_xlabel("")
        ax.set_ylabel(_column_label(column))
        ax.set_title(column)
        if ax is not axes[-1]:
            ax.get_legend().remove()
    legend_outside(axes[-1], title="regime")
    fig.tight_layout()
    return fig


def class_group_panels(groups: pd.DataFrame, regime: str) -> plt.Figure:
    """Test accuracy and ECE of each model per class group (many, medium,
    few shots). ``groups``: tidy rows (model, group, metric, value)."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    for ax, metric in zip(axes, ["accuracy", "ece"]):
        sns.barplot(data=groups[groups.metric == metric], x="model", y="value", hue="group",
                    hue_order=["many", "medium", "few"], palette="crest", ax=ax)
        ax.set(xlabel="", ylabel=ece_axis_label(what="test ECE") if metric == "ece" else f"test {metric}",
               title=f"{regime}: test {'ECE' if metric == 'ece' else metric} per class group")
        ax.tick_params(axis="x", rotation=60)
        plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
        if ax is not axes[-1]:
            ax.get_legend().remove()
    legend_outside(axes[-1], title="class group")
    fig.tight_layout()
    return fig


def _value_text(value: float) -> str:
    return f"{value:g}"


def sensitivity_lines(sensitivity: pd.DataFrame, baseline: Mapping[str, float] | None = None) -> plt.Figure:
    """Validation accuracy, NLL and ECE (rows) as each swept setting (columns)
    moves through its values, which label the x axis; the setting's baseline
    value (``baseline``, e.g. ``sweep_baseline``) is marked by a dotted line."""
    settings = list(dict.fromkeys(sensitivity["setting"]))
    rows = [("accuracy", "validation accuracy"), ("nll", "validation NLL"), ("ece", ece_axis_label(what="validation ECE"))]
    fig, axes = plt.subplots(len(rows), len(settings), figsize=(3.6 * len(settings) + 1, 7.5), squeeze=False,
                             sharey="row")
    for j, setting in enumerate(settings):
        part = sensitivity[sensitivity["setting"] == setting].sort_values("value")
        values = part["value"].astype(float).tolist()
        for i, (metric, label) in enumerate(rows):
            ax = axes[i][j]
            ax.plot(range(len(values)), part[metric], marker="o", color=display.COLOURS[j % len(display.COLOURS)])
            for k, (value, score) in enumerate(zip(values, part[metric])):
                ax.annotate(f"{score:.3f}", (k, score), xytext=(0, 5), textcoords="offset points", ha="center",
                            fontsize=7)
            if baseline and setting in baseline and float(baseline[setting]) in values:
                ax.axvline(values.index(float(baseline[setting])), color="grey", linestyle=":", linewidth=1)
            ax.set_xticks(range(len(values)), [_value_text(v) for v in values])
            ax.margins(x=0.15, y=0.2)
            ax.set_ylabel(label if j == 0 else "")
            if i == 0:
                ax.set_title(f"{setting}" + (f" (baseline {_value_text(float(baseline[setting]))})"
                                             if baseline and setting in baseline else ""))
            if i == len(rows) - 1:
                ax.set_xlabel(f"{setting} value")
    fig.tight_layout()
    return fig


def family_ecdf_panels(values: pd.DataFrame, column: str, title: str, log_scale: bool = True) -> plt.Figure:
    """Chapter 03's teacher variants as small multiples: one panel per kind of
    variant (post-hoc, train-time loss, fine-tuned; ``display.teacher_family``),
    each with the CE teacher as the black reference, so no panel holds more
    than a handful of lines. ``values``: rows (model, ``column``)."""
    models = list(dict.fromkeys(values["model"]))
    kinds = [k for k in ("post-hoc", "train-time loss", "fine-tuned")
             if any(display.teacher_family(m) == k for m in models)]
    fig, axes = plt.subplots(1, max(len(kinds), 1), figsize=(4.6 * max(len(kinds), 1) + 1.2, 4.4), sharey=True,
                             squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        shown = [m for m in models if m == "CE" or display.teacher_family(m) == kind]
        for model in shown:
            look = style(model)
            sns.ecdfplot(data=values[values["model"] == model], x=column, log_scale=log_scale, color=look.colour,
                         linestyle=look.linestyle, linewidth=1.8 if model == "CE" else 1.4, label=model, ax=ax)
        if log_scale:
            readable_log_axis(ax)
        ax.set_title(kind)
        ax.legend(loc="upper left", bbox_to_anchor=(0, -0.3), ncol=2, frameon=False, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig

"""The report's figures, drawn from plain data (no files read here, no TensorFlow).

Each function returns a matplotlib Figure built without pyplot (as plots.py does), or None
when there is nothing to draw; `png_data_uri` turns one into an inline image for the HTML.
"""

from __future__ import annotations

import base64
import io
import math
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from regexp.study import figure_style, stats
from regexp.study.figure_style import DPI, config_colors, log_scale

# log10 |w| bins: magnitudes below 1e-8 (and exact zeros) are counted in the first bin.
LOG10_WEIGHT_RANGE = (-8.0, 1.0)
WEIGHT_BINS = 90
VERDICT_COLORS = {
    stats.BETTER: "#1a7f37",
    stats.WORSE: "#cf222e",
    stats.EQUIVALENT: "#0550ae",
    stats.UNDECIDED: "#57606a",
    stats.UNSTABLE: "#8250df",
}
NOT_TESTED_COLOR = "#9a6700"


def png_data_uri(fig: Figure) -> str:
    """The figure as a data: URI of a PNG, for an <img> that needs no other file."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _points(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:+.1f}"


def _p(value: float) -> str:
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _figure_with_legend_below(entries: int, plot_inches: float, **spacing) -> Figure:
    """A 12-inch-wide figure whose axes leave room below for a legend of `entries` in 3 columns."""
    legend_inches = 0.2 * math.ceil(entries / 3)
    height = plot_inches + 0.65 + 0.55 + legend_inches + 0.1
    fig = Figure(figsize=(12, height), dpi=DPI)
    fig.subplots_adjust(
        left=0.07, right=0.99, top=1 - 0.65 / height, bottom=(0.55 + legend_inches + 0.1) / height, **spacing
    )
    return fig


def forest_plot(rows: list[stats.ConfigStats], baseline: str) -> Figure | None:
    """Each config's difference from the baseline in test accuracy (percentage points), with
    its 95 % interval, coloured and labelled by verdict; configs not tested show their mean
    difference alone (a hollow marker), or nothing when they have none."""
    rows = [r for r in rows if r.config != baseline and r.comparison is not None]
    if not rows:
        return None
    rows = rows[::-1]  # first row at the top
    label_inches = 0.3 + 0.075 * max(len(r.config) for r in rows)
    text_inches, plot_inches = 2.5, 5.5
    width, height = label_inches + plot_inches + text_inches, 1.3 + 0.45 * len(rows)
    fig = Figure(figsize=(width, height), dpi=DPI)
    fig.subplots_adjust(
        left=label_inches / width,
        right=(label_inches + plot_inches) / width,
        top=1 - 0.55 / height,
        bottom=0.7 / height,
    )
    ax = fig.subplots()
    ax.axvline(0, color="black", linewidth=1)
    for y, row in enumerate(rows):
        c = row.comparison
        color = VERDICT_COLORS.get(row.verdict, NOT_TESTED_COLOR)
        if c.ci_low is not None and row.verdict != stats.UNSTABLE:  # no interval over a mixture
            ax.plot([100 * c.ci_low, 100 * c.ci_high], [y, y], color=color, linewidth=2.5, solid_capstyle="butt")
        if c.diff_mean is not None:
            tested = c.p_value is not None
            ax.plot(
                100 * c.diff_mean,
                y,
                "o",
                markersize=8,
                color=color,
                markerfacecolor=color if tested else "white",
                markeredgewidth=2,
            )
        if row.verdict == stats.UNSTABLE:
            text = f"{_points(c.diff_mean)} (mixture: no interval)\n{row.verdict}"
        elif c.p_value is not None:
            text = (
                f"{_points(c.diff_mean)} [{_points(c.ci_low)}, {_points(c.ci_high)}]  "
                f"Holm p {_p(row.p_holm)}\n{row.verdict}"
            )
        else:
            text = f"{_points(c.diff_mean)} (no interval)\n{row.verdict}"
        ax.annotate(text, xy=(1.02, y), xycoords=("axes fraction", "data"), va="center", fontsize=8, color=color)
    ax.set_yticks(range(len(rows)), [r.config for r in rows], fontsize=9)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel(f"test accuracy minus {baseline}'s (percentage points)")
    ax.set_title(f"Difference from the baseline ({baseline}), 95 % confidence interval", fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    return fig


def lambda_curves(
    grids: dict[str, dict[str, dict[float, list[float]]]],
    baseline: tuple[str, list[float]] | None = None,
    sparsity: dict[str, dict[str, dict[float, list[float]]]] | None = None,
) -> Figure | None:
    """Test accuracy against λ (log axis), one panel per grid, one line per series: the mean
    over seeds with its 95 % t interval as a band; the baseline's mean and interval as a
    grey horizontal band. With `sparsity` (the same shape: near-zero weight fractions), a
    second panel per grid shows it the same way. The one λ figure: the report inlines it,
    `regexp plot` saves it per grid."""
    grids = {base: series for base, series in grids.items() if any(series.values())}
    if not grids:
        return None
    panels = [(base, "accuracy") for base in sorted(grids)]
    if sparsity:
        panels = [(base, kind) for base in sorted(grids) for kind in ("accuracy", "sparsity")]
    width = 6.2 * len(panels) + 0.4
    fig = Figure(figsize=(width, 4.6), dpi=DPI)
    fig.subplots_adjust(left=0.8 / width, right=0.98, top=0.88, bottom=0.14, wspace=0.25)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (base, kind) in zip(axes, panels):
        series = grids[base] if kind == "accuracy" else sparsity.get(base, {})
        if kind == "accuracy" and baseline is not None and baseline[1]:
            mean, interval = stats.mean_interval(baseline[1])
            ax.axhline(mean, color="0.35", linestyle="--", linewidth=1, label=f"{baseline[0]} (baseline)")
            if interval:
                ax.axhspan(*interval, color="0.5", alpha=0.15, linewidth=0)
        plotted = False
        for (label, by_lambda), color in zip(sorted(series.items()), config_colors(sorted(series)).values()):
            lambdas = sorted(lam for lam in by_lambda if lam > 0 and by_lambda[lam])
            if not lambdas:
                continue
            plotted = True
            counts = sorted({len(by_lambda[lam]) for lam in lambdas})
            figure_style.mean_with_interval(
                ax,
                lambdas,
                [by_lambda[lam] for lam in lambdas],
                color,
                f"{label} (n = {'/'.join(map(str, counts))} per λ)",
            )
        what = "test accuracy" if kind == "accuracy" else "near-zero weights (fraction)"
        if plotted:
            log_scale(ax)  # a log axis with no positive value cannot be drawn
        else:
            ax.text(0.5, 0.5, "no completed run on this grid", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("λ (log scale)")
        ax.set_ylabel(what)
        ax.set_title(f"{base}: {what} against λ", fontsize=11)
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle("Line: mean over seeds; band: 95 % confidence interval of the mean", fontsize=9, y=0.975)
    return fig


def weight_histograms(
    histograms: dict[str, dict[str, list[float]]],
    layers: tuple[str, ...],
    threshold: float | None = None,
    colors: dict | None = None,
) -> Figure | None:
    """Per layer, the distribution of |kernel weight| of each config (its seeds pooled): the
    fraction of weights per log10 bin (WEIGHT_BINS over LOG10_WEIGHT_RANGE) as a step line."""
    if not histograms:
        return None
    colors = colors or config_colors(list(histograms))
    low, high = LOG10_WEIGHT_RANGE
    edges = [10 ** (low + (high - low) * i / WEIGHT_BINS) for i in range(WEIGHT_BINS + 1)]
    used = [i for per_layer in histograms.values() for counts in per_layer.values() for i, c in enumerate(counts) if c]
    if not used:
        return None
    shown = (edges[max(0, min(used) - 2)], edges[min(WEIGHT_BINS, max(used) + 3)])
    fig = _figure_with_legend_below(len(histograms) + bool(threshold), 3.6, wspace=0.22)
    axes = fig.subplots(1, len(layers), squeeze=False)[0]  # an array even for a model with one such layer
    for ax, layer in zip(axes, layers):
        for label, per_layer in histograms.items():
            counts = per_layer.get(layer)
            if counts and sum(counts):
                total = sum(counts)
                ax.stairs([c / total for c in counts], edges, color=colors[label], linewidth=1.4)
        if threshold:
            ax.axvline(threshold, color="black", linestyle=":", linewidth=1)
        log_scale(ax)
        ax.set_xlim(*shown)
        ax.set_title(layer, fontsize=10)
        ax.set_xlabel("|weight| (log scale)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of weights per bin")
    handles = [Line2D([], [], color=colors[label], linewidth=2, label=label) for label in histograms]
    if threshold:
        handles.append(Line2D([], [], color="black", linestyle=":", label=f"near-zero threshold {threshold:g}"))
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False, borderaxespad=0.3)
    fig.suptitle("Kernel weight magnitudes per layer, by config (final weights, seeds pooled)", fontsize=11)
    return fig


def activation_bars(
    activations: dict[str, dict[str, dict[str, list[float]]]], layers: tuple[str, ...], colors: dict | None = None
) -> Figure | None:
    """Per layer, each config's mean |activation| (log axis) and fraction of zero activations
    on the test set: a bar for the mean over seeds, a dot for each run."""
    if not activations:
        return None
    labels = list(activations)
    colors = colors or config_colors(labels)
    fig = _figure_with_legend_below(len(labels), 4.0, wspace=0.2)
    axes = fig.subplots(1, 2)
    width = 0.8 / len(labels)
    for ax, key, ylabel in (
        (axes[0], "mean_abs", "mean |activation| (log scale)"),
        (axes[1], "zero_fraction", "fraction of activations = 0"),
    ):
        for i, label in enumerate(labels):
            for j, layer in enumerate(layers):
                values = activations[label].get(layer, {}).get(key) or []
                if not values:
                    continue
                x = j - 0.4 + width * (i + 0.5)
                ax.bar(x, statistics.fmean(values), width=width * 0.9, color=colors[label], alpha=0.75)
                ax.plot([x] * len(values), values, "o", color="black", markersize=2.5)
        ax.set_xticks(range(len(layers)), layers)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
    log_scale(axes[0], "y")
    axes[1].set_ylim(0, 1)
    handles = [Line2D([], [], color=colors[label], linewidth=6, alpha=0.75, label=label) for label in labels]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False, borderaxespad=0.3)
    fig.suptitle("Activations on the test set per layer (bar: mean over seeds; dots: each run)", fontsize=11)
    return fig


def generalization_gap(histories: dict[str, list[list[dict]]], colors: dict | None = None) -> Figure | None:
    """Training minus validation accuracy per epoch, one line per config (mean over its
    seeds, band ±1 standard deviation where there are several)."""
    curves = {}
    for label, runs in histories.items():
        by_epoch: dict[int, list[float]] = {}
        for rows in runs:
            for row in rows:
                if "accuracy" in row and "val_accuracy" in row:
                    by_epoch.setdefault(row["epoch"], []).append(row["accuracy"] - row["val_accuracy"])
        if by_epoch:
            curves[label] = by_epoch
    if not curves:
        return None
    colors = colors or config_colors(list(curves))
    legend_inches = 0.6 + 0.07 * max(len(label) for label in curves)
    width = 8 + legend_inches
    fig = Figure(figsize=(width, 4.5), dpi=DPI)
    fig.subplots_adjust(left=0.8 / width, right=7.8 / width, top=0.9, bottom=0.12)
    ax = fig.subplots()
    ax.axhline(0, color="black", linewidth=0.8)
    for label, by_epoch in curves.items():
        epochs = sorted(by_epoch)
        means = [statistics.fmean(by_epoch[e]) for e in epochs]
        sds = [statistics.stdev(by_epoch[e]) if len(by_epoch[e]) > 1 else 0.0 for e in epochs]
        ax.plot(epochs, means, marker="o", markersize=3, color=colors[label], label=label)
        ax.fill_between(
            epochs,
            [m - s for m, s in zip(means, sds)],
            [m + s for m, s in zip(means, sds)],
            color=colors[label],
            alpha=0.15,
            linewidth=0,
        )
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("training − validation accuracy")
    ax.set_title("Generalization gap per epoch (mean over seeds, band ±1 std)", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig

"""What every figure of a study shares: resolution, palette and line styles, and the mean over
seeds drawn with its 95 % t interval. Plain data in, matplotlib axes out (no files, no pyplot)."""

from __future__ import annotations

import matplotlib
import matplotlib.ticker

from regexp.study import stats

DPI = 100
DASHES = ("-", "--", ":", "-.")


def plain_text_labels() -> None:
    """Make matplotlib draw every label as the text it is: names and groups come from results on
    disk, and a '$' in them would otherwise be parsed as mathtext (which raises on bad input)."""
    matplotlib.rcParams["text.parse_math"] = False
    matplotlib.rcParams["text.usetex"] = False


plain_text_labels()  # on import: every figure module of the study imports this one


def log_scale(ax, which: str = "x") -> None:
    """Put the `which` ("x" or "y") axis of `ax` on a log scale with its decades labelled as plain
    text (1e-04): matplotlib's own log labels are mathtext, which plain_text_labels turns off, so
    they would be drawn as the raw string '$\\mathdefault{10^{-4}}$'."""
    getattr(ax, f"set_{which}scale")("log")
    axis = getattr(ax, f"{which}axis")
    axis.set_major_formatter(matplotlib.ticker.LogFormatter(labelOnlyBase=True))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def palette(count: int) -> tuple:
    """The colours for `count` configs: tab10 up to 10, tab20 beyond (then repeated)."""
    return matplotlib.colormaps["tab10" if count <= 10 else "tab20"].colors


def config_colors(labels: list[str]) -> dict[str, tuple]:
    """One colour per config, in order: pass the same map to every figure so a config keeps its colour."""
    colors = palette(len(labels))
    return {label: colors[i % len(colors)] for i, label in enumerate(labels)}


def line_styles(count: int) -> list[dict]:
    """Distinct line styles for `count` curves: the palette's colours, then dashes as well."""
    colors = palette(count)
    return [
        {"color": colors[i % len(colors)], "linestyle": DASHES[(i // len(colors)) % len(DASHES)]} for i in range(count)
    ]


def mean_with_interval(ax, xs: list[float], values: list[list[float]], color, label: str) -> None:
    """The mean of each x's values as a line with markers, its 95 % t interval as a band (a point
    with one value has no interval: the band closes on its mean there)."""
    summaries = [stats.mean_interval(v) for v in values]
    means = [mean for mean, _ in summaries]
    low = [interval[0] if interval else mean for mean, interval in summaries]
    high = [interval[1] if interval else mean for mean, interval in summaries]
    ax.plot(xs, means, marker="o", color=color, label=label)
    ax.fill_between(xs, low, high, color=color, alpha=0.2, linewidth=0)

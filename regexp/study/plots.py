"""Plots: each run's loss and accuracy curves, and the comparison figures of a results root.

Drawn from history.csv and metrics.json alone: no TensorFlow, no training. Figures are built
without pyplot's global state and drawn once each (fixed margins, no tight bounding box); a
run's own curves are redrawn only when missing or older than its history (`redraw` forces
them), on all cores.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from regexp.results import HISTORY, RunRecord, inside_root, write_bytes_atomic  # noqa: E402
from regexp.study.figure_style import DPI, line_styles  # noqa: E402

FIGURE_SIZE = (7, 4.5)
# A fixed title height: matplotlib otherwise measures the tick labels to place each title
# (about a tenth of the time of drawing a run's small figure).
TITLE_Y = 1.01


def _figure(size=FIGURE_SIZE, ncols: int = 1, margins: dict | None = None):
    fig = Figure(figsize=size, dpi=DPI)
    fig.subplots_adjust(**(margins or {"left": 0.1, "right": 0.97, "top": 0.91, "bottom": 0.12}))
    axes = fig.subplots(1, ncols)
    return fig, axes


def _save(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fmt = path.suffix.lstrip(".")
    # zlib level 1: a third of the time of the default level for a few more kilobytes.
    extra = {"pil_kwargs": {"compress_level": 1}} if fmt == "png" else {}
    fig.savefig(buffer, format=fmt, dpi=DPI, **extra)
    write_bytes_atomic(path, buffer.getvalue())


def _integer_epochs(ax) -> None:
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))


def _curve(rows: list[dict], metric: str, title: str, ylabel: str, path: Path) -> None:
    fig, ax = _figure()
    epochs = [row["epoch"] for row in rows]
    for key, label in ((metric, "training"), (f"val_{metric}", "validation")):
        values = [row.get(key, float("nan")) for row in rows]
        ax.plot(epochs, values, marker="o", markersize=3, label=label)
    ax.set_title(title, y=TITLE_Y)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    _integer_epochs(ax)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_run(folder: Path, rows: list[dict], name: str, fmt: str = "png") -> list[Path]:
    """Write loss.<fmt> and accuracy.<fmt> into `folder`: training vs validation per epoch."""
    loss, accuracy = folder / f"loss.{fmt}", folder / f"accuracy.{fmt}"
    _curve(rows, "loss", f"{name}: loss", "loss (penalty included)", loss)
    _curve(rows, "accuracy", f"{name}: accuracy", "accuracy", accuracy)
    return [loss, accuracy]


def run_figures_current(folder: Path, fmt: str = "png") -> bool:
    """Whether `folder`'s loss and accuracy figures exist and were drawn after its history.csv
    was last written (as `regexp run` leaves them)."""
    try:
        history = (folder / HISTORY).stat().st_mtime_ns
        return all((folder / f"{name}.{fmt}").stat().st_mtime_ns >= history for name in ("loss", "accuracy"))
    except FileNotFoundError:
        return False


def _plot_run_task(args: tuple[Path, list[dict], str, str]) -> list[Path]:
    return plot_run(*args)


def plot_runs(tasks: list[tuple[Path, list[dict], str, str]]) -> list[Path]:
    """plot_run for many runs, spread over the cores when there are enough to pay for it."""
    workers = min(os.cpu_count() or 1, len(tasks) // 8)
    if workers < 2:
        return [path for task in tasks for path in _plot_run_task(task)]
    with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
        return [path for paths in pool.map(_plot_run_task, tasks, chunksize=4) for path in paths]


# --------------------------------------------------------------------------- comparisons


def _mean_band(histories: list[list[dict]], key: str) -> tuple[list[int], list[float], list[float], list[float]]:
    """Per epoch: mean and mean ± std over the runs that reached it."""
    import statistics

    by_epoch: dict[int, list[float]] = {}
    for rows in histories:
        for row in rows:
            if key in row:
                by_epoch.setdefault(row["epoch"], []).append(row[key])
    epochs = sorted(by_epoch)
    means = [statistics.fmean(by_epoch[e]) for e in epochs]
    stds = [statistics.stdev(by_epoch[e]) if len(by_epoch[e]) > 1 else 0.0 for e in epochs]
    return epochs, means, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)]


def compare_curves(groups: dict[str, list[list[dict]]], key: str, ylabel: str, path: Path) -> Path:
    """Overlay one curve per config: the mean over seeds, with a ±1 std band where seeds differ."""
    labels = [f"{label}" + (f" (n={len(h)})" if len(h) > 1 else "") for label, h in groups.items()]
    plot_inches, legend_inches = 7.5, 0.6 + 0.062 * max([len(label) for label in labels] + [4])  # 8 pt text
    width = plot_inches + legend_inches
    fig, ax = _figure(
        (width, 5), margins={"left": 0.7 / width, "right": (plot_inches - 0.15) / width, "top": 0.92, "bottom": 0.1}
    )
    for histories, text, style in zip(groups.values(), labels, line_styles(len(groups))):
        epochs, mean, low, high = _mean_band(histories, key)
        if not epochs:
            continue
        (line,) = ax.plot(epochs, mean, label=text, **style)
        n = len(histories)
        if n > 1:
            ax.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    _integer_epochs(ax)
    ax.set_title(f"{ylabel} per epoch (mean over seeds, band ±1 std)", y=TITLE_Y)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    _save(fig, path)
    return path


def compare_test_accuracy(rows: list[dict], path: Path) -> Path:
    """Bar chart of mean test accuracy per config, error bars ±1 std, best on top."""
    rows = [r for r in rows if r["test_accuracy_mean"] is not None]
    labels = [r["config"] for r in rows][::-1]
    means = [r["test_accuracy_mean"] for r in rows][::-1]
    errors = [r["test_accuracy_std"] or 0.0 for r in rows][::-1]
    height, width = 1.2 + 0.4 * max(1, len(rows)), 9.0
    label_inches = 0.3 + 0.065 * max([len(label) for label in labels] + [4])  # 8 pt text
    fig, ax = _figure(
        (width, height),
        margins={
            "left": min(0.6, label_inches / width),
            "right": 0.97,
            "top": 1 - 0.5 / height,
            "bottom": 0.7 / height,
        },
    )
    bars = ax.barh(range(len(rows)), means, xerr=errors, capsize=3, color="tab:blue", alpha=0.8)
    for bar, mean, error in zip(bars, means, errors):
        ax.text(mean + error + 0.01, bar.get_y() + bar.get_height() / 2, f"{mean:.4f}", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.set_xlabel("test accuracy (mean over seeds, error bar ±1 std)")
    ax.set_xlim(0, 1.12)
    ax.set_title("Test accuracy by config", y=TITLE_Y)
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)
    return path


def lambda_series(runs: list[RunRecord]) -> dict[str, dict[str, list[tuple[float, RunRecord]]]]:
    """{sweep base name: {series: [(lambda, record)]}} for grids that vary regularizer.lambda."""
    found: dict[str, dict[str, list[tuple[float, RunRecord]]]] = {}
    for m in runs:
        name, entries = m.run, m.regularizer or []  # entries: the penalties as the config resolved them
        if "__lambda-" not in name or len(entries) != 1 or entries[0].get("lambda") is None:
            continue
        base = name.split("__")[0]
        parts = (m.group or name).split("__")
        series = "__".join(p for p in parts if not p.startswith("lambda-")) or base
        found.setdefault(base, {}).setdefault(series, []).append((entries[0]["lambda"], m))
    return {base: s for base, s in found.items() if len({lam for pts in s.values() for lam, _ in pts}) > 1}


def lambda_grids(runs: list[RunRecord], value=lambda m: m.test_accuracy) -> dict[str, dict[str, dict[float, list]]]:
    """{grid: {series: {lambda: [value of each evaluated run]}}}, by default the test accuracies."""
    grids: dict[str, dict[str, dict[float, list]]] = {}
    for base, series in lambda_series(runs).items():
        for label, points in series.items():
            by_lambda = grids.setdefault(base, {}).setdefault(label, {})
            for lam, m in points:
                values = by_lambda.setdefault(lam, [])
                if m.is_evaluated:
                    values.append(value(m))
    return grids


def _sparsity(m: RunRecord) -> float | None:
    return m.sparsity.overall if m.sparsity is not None else None


def plot_lambda_grid(base: str, series: dict[str, list[tuple[float, RunRecord]]], path: Path) -> Path:
    """Test accuracy and weight sparsity against lambda, mean and 95 % t interval over seeds:
    the report's λ figure (report_figures.lambda_curves) for this one grid."""
    from regexp.study.report_figures import lambda_curves

    runs = [m for points in series.values() for _, m in points]
    accuracy = lambda_grids(runs)
    sparsity = {
        grid: {
            label: {lam: [v for v in values if v is not None] for lam, values in by.items()} for label, by in s.items()
        }
        for grid, s in lambda_grids(runs, _sparsity).items()
    }
    _save(lambda_curves({base: accuracy.get(base, {})}, None, sparsity), path)
    return path


@dataclass
class PlotReport:
    """What `plot_results` wrote, and how many runs' own curves it found already up to date.

    `found` counts the readable runs (those without history too); `runs` those with curves;
    `skipped` has one line per damaged run folder, left out of everything ('<path>: <what is wrong>').
    """

    written: list[Path] = field(default_factory=list)
    runs: int = 0
    runs_current: int = 0
    found: int = 0
    skipped: list[str] = field(default_factory=list)


def plot_results(root: Path, fmt: str = "png", redraw: bool = False) -> PlotReport:
    """Draw the curves of every run under `root` whose figures are missing or older than its
    history (all of them with `redraw`, or when `root` is one run), and, for a root of several
    runs, the comparisons and the summary. Damaged run folders are left out and listed in the
    report's `skipped`; runs without history (failed before training) are only summarised."""
    from regexp.results import is_run_folder, scan_runs
    from regexp.study import summary
    from regexp.study.configs import group_runs, records_of

    saved, skipped = scan_runs(root)
    single_run = is_run_folder(root)
    report = PlotReport(found=len(saved), skipped=skipped)
    runs, histories, tasks = records_of(saved), {}, []
    for run in saved:
        if not run.history:
            continue
        report.runs += 1
        if not (redraw or single_run) and run_figures_current(run.folder, fmt):
            report.runs_current += 1
        else:
            tasks.append((run.folder, run.history, run.folder.name, fmt))
        histories[run.folder.name] = run.history
    written = report.written
    written += plot_runs(tasks)
    if single_run or not runs:
        return report
    groups = {
        label: [histories[m.run] for m in members if m.run in histories] for label, members in group_runs(runs).items()
    }
    figure = {name: inside_root(root, f"{name}.{fmt}") for name in ROOT_FIGURES}
    written.append(compare_curves(groups, "val_accuracy", "validation accuracy", figure["validation_accuracy"]))
    written.append(compare_curves(groups, "val_loss", "validation loss", figure["validation_loss"]))
    rows = summary.write_summary(root, runs)
    written += [root / "summary.csv", root / "summary.md"]
    written.append(compare_test_accuracy(rows, figure["test_accuracy"]))
    for base, series in lambda_series(runs).items():
        written.append(plot_lambda_grid(base, series, inside_root(root, f"{LAMBDA_FIGURE_PREFIX}{base}.{fmt}")))
    return report


# The comparison figures `plot_results` writes at the root, as <name>.<fmt>; and lambda_<sweep>.<fmt>.
ROOT_FIGURES = ("validation_accuracy", "validation_loss", "test_accuracy")
LAMBDA_FIGURE_PREFIX = "lambda_"

"""Plots: each run's loss and accuracy curves, and the comparison figures of a results root.

Drawn from history.csv and metrics.json alone: no TensorFlow, no training.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from regexp.results import write_bytes_atomic  # noqa: E402

FIGURE_SIZE = (7, 4.5)


def _save(fig, path: Path) -> None:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip("."), dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())


def _curve(rows: list[dict], metric: str, title: str, ylabel: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=FIGURE_SIZE)
    epochs = [row["epoch"] for row in rows]
    for key, label in ((metric, "training"), (f"val_{metric}", "validation")):
        values = [row.get(key, float("nan")) for row in rows]
        ax.plot(epochs, values, marker="o", markersize=3, label=label)
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if epochs:
        ax.set_xticks(epochs if len(epochs) <= 25 else epochs[:: max(1, len(epochs) // 12)])
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_run(folder: Path, rows: list[dict], name: str, fmt: str = "png") -> list[Path]:
    """Write loss.<fmt> and accuracy.<fmt> into `folder`: training vs validation per epoch."""
    loss, accuracy = folder / f"loss.{fmt}", folder / f"accuracy.{fmt}"
    _curve(rows, "loss", f"{name}: loss", "loss (penalty included)", loss)
    _curve(rows, "accuracy", f"{name}: accuracy", "accuracy", accuracy)
    return [loss, accuracy]


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


def _legend_outside(ax, count: int) -> None:
    if count > 12:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=1 + count // 30)
    else:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def compare_curves(groups: dict[str, list[list[dict]]], key: str, ylabel: str, path: Path) -> Path:
    """Overlay one curve per config: the mean over seeds, with a ±1 std band where seeds differ."""
    fig, ax = plt.subplots(figsize=(9, 5))
    for label, histories in groups.items():
        epochs, mean, low, high = _mean_band(histories, key)
        if not epochs:
            continue
        n = len(histories)
        (line,) = ax.plot(epochs, mean, label=f"{label}" + (f" (n={n})" if n > 1 else ""))
        if n > 1:
            ax.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_title(f"{ylabel} per epoch (mean over seeds, band ±1 std)")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    _legend_outside(ax, len(groups))
    _save(fig, path)
    return path


def compare_test_accuracy(rows: list[dict], path: Path) -> Path:
    """Bar chart of mean test accuracy per config, error bars ±1 std, best on top."""
    rows = [r for r in rows if r["test_accuracy_mean"] is not None]
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.4 * max(1, len(rows))))
    labels = [r["config"] for r in rows][::-1]
    means = [r["test_accuracy_mean"] for r in rows][::-1]
    errors = [r["test_accuracy_std"] or 0.0 for r in rows][::-1]
    bars = ax.barh(range(len(rows)), means, xerr=errors, capsize=3, color="tab:blue", alpha=0.8)
    for bar, mean in zip(bars, means):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {mean:.4f}", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.set_xlabel("test accuracy (mean over seeds, error bar ±1 std)")
    ax.set_xlim(0, 1.08)
    ax.set_title("Test accuracy by config")
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)
    return path


def lambda_series(runs: list[dict]) -> dict[str, dict[str, list[tuple[float, dict]]]]:
    """{sweep base name: {series: [(lambda, metrics)]}} for grids that vary regularizer.lambda."""
    found: dict[str, dict[str, list[tuple[float, dict]]]] = {}
    for m in runs:
        name, entries = m.get("run", ""), m.get("regularizer") or []
        if "__lambda-" not in name or len(entries) != 1 or entries[0].get("lambda") is None:
            continue
        base = name.split("__")[0]
        parts = (m.get("group") or name).split("__")
        series = "__".join(p for p in parts if not p.startswith("lambda-")) or base
        found.setdefault(base, {}).setdefault(series, []).append((entries[0]["lambda"], m))
    return {base: s for base, s in found.items() if len({lam for pts in s.values() for lam, _ in pts}) > 1}


def plot_lambda_grid(base: str, series: dict[str, list[tuple[float, dict]]], path: Path) -> Path:
    """Test accuracy and weight sparsity against lambda on a log axis, mean ± std over seeds."""
    import statistics

    fig, (acc_ax, sparse_ax) = plt.subplots(1, 2, figsize=(11, 4.5))
    for label, points in sorted(series.items()):
        by_lambda: dict[float, list[dict]] = {}
        for lam, m in points:
            if lam > 0 and m.get("status") == "completed":
                by_lambda.setdefault(lam, []).append(m)
        lambdas = sorted(by_lambda)
        for ax, value in ((acc_ax, lambda m: m["test_accuracy"]), (sparse_ax, lambda m: m["sparsity"]["overall"])):
            values = [[value(m) for m in by_lambda[lam]] for lam in lambdas]
            means = [statistics.fmean(v) for v in values]
            stds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
            ax.errorbar(lambdas, means, yerr=stds, marker="o", capsize=3, label=label)
    for ax, ylabel in ((acc_ax, "test accuracy"), (sparse_ax, "near-zero weights (|w| < 1e-3)")):
        ax.set_xscale("log")
        ax.set_xlabel("lambda (log scale)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
    acc_ax.legend(fontsize=8)
    fig.suptitle(f"{base}: effect of lambda (mean ± std over seeds)")
    _save(fig, path)
    return path


def plot_results(root: Path, fmt: str = "png") -> list[Path]:
    """Redraw every run's curves under `root`, and, for a root of several runs, the comparisons
    and the summary. Returns the files written."""
    from regexp import summary
    from regexp.results import HISTORY, find_runs, read_history, read_metrics

    written: list[Path] = []
    runs, histories = [], {}
    for folder in find_runs(root):
        metrics = read_metrics(folder)
        if metrics is None or not (folder / HISTORY).exists():
            continue
        rows = read_history(folder / HISTORY)
        written += plot_run(folder, rows, metrics.get("run", folder.name), fmt)
        runs.append(metrics)
        histories[metrics.get("run", folder.name)] = rows
    if (root / "metrics.json").exists() or not runs:
        return written
    groups = {
        label: [histories[m["run"]] for m in members if m.get("run") in histories]
        for label, members in summary.group_runs(runs).items()
    }
    written.append(compare_curves(groups, "val_accuracy", "validation accuracy", root / f"validation_accuracy.{fmt}"))
    written.append(compare_curves(groups, "val_loss", "validation loss", root / f"validation_loss.{fmt}"))
    rows = summary.write_summary(root, runs)
    written += [root / "summary.csv", root / "summary.md"]
    written.append(compare_test_accuracy(rows, root / f"test_accuracy.{fmt}"))
    for base, series in lambda_series(runs).items():
        written.append(plot_lambda_grid(base, series, root / f"lambda_{base}.{fmt}"))
    return written

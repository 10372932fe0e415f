"""Summary of a results root: one row per config, mean ± std over seeds, best first.

Reads metrics.json files only (no TensorFlow); damaged run folders are left out (results.scan_runs).
A row is a config of configs.config_table (its seeds together, wherever they ran): stats.csv's rows
are computed from the same table. Standard deviations are sample standard deviations (n - 1);
empty for a single run.
"""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path

from regexp.results import RunRecord, RunStatus, scan_runs, write_text_atomic
from regexp.study.configs import ConfigRuns, config_table, records_of
from regexp.study.escape import csv_cell, markdown

COLUMNS = [
    "config",
    "runs",
    "completed",
    "test_accuracy_mean",
    "test_accuracy_std",
    "test_loss_mean",
    "test_loss_std",
    "best_val_accuracy_mean",
    "best_val_accuracy_std",
    "best_epoch_median",
    "sparsity_mean",
    "failed",
    "diverged",
    "pruned",
    "regularizer",
    "data",
]


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def load_all(root: Path) -> list[RunRecord]:
    """The record of every readable run under root; damaged run folders are left out (scan_runs names them)."""
    return records_of(scan_runs(root)[0])


def summary_row(config: ConfigRuns) -> dict:
    """A config's row of summary.csv (COLUMNS): means over its completed runs, counts by status."""
    done = config.completed
    acc_mean, acc_std = _mean_std(config.accuracies)
    loss_mean, loss_std = _mean_std([m.test_loss for m in done if m.test_loss is not None])
    val_mean, val_std = _mean_std([m.best_val_accuracy for m in done if m.best_val_accuracy is not None])
    epochs = [m.best_epoch for m in done if m.best_epoch is not None]
    sparsity, _ = _mean_std([m.sparsity.overall for m in done if m.sparsity and m.sparsity.overall is not None])
    return {
        "config": config.label,
        "runs": len(config.members),
        "completed": len(done),
        "test_accuracy_mean": acc_mean,
        "test_accuracy_std": acc_std,
        "test_loss_mean": loss_mean,
        "test_loss_std": loss_std,
        "best_val_accuracy_mean": val_mean,
        "best_val_accuracy_std": val_std,
        "best_epoch_median": statistics.median(epochs) if epochs else None,
        "sparsity_mean": sparsity,
        "failed": config.count(RunStatus.FAILED),
        "diverged": config.count(RunStatus.DIVERGED),
        "pruned": config.count(RunStatus.PRUNED),
        "regularizer": config.regularizer,
        "data": config.data_description,
    }


def summarize(records: list[RunRecord]) -> list[dict]:
    """One row per config (seeds together, configs.config_table); sorted by mean test accuracy, best first."""
    rows = [summary_row(config) for config in config_table(records).values()]
    rows.sort(key=lambda r: (r["test_accuracy_mean"] is None, -(r["test_accuracy_mean"] or 0.0), r["config"]))
    return rows


def to_csv(rows: list[dict]) -> str:
    """summary.csv: COLUMNS exactly; text cells a spreadsheet would run as a formula start with `'`."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: csv_cell("" if row[k] is None else row[k]) for k in COLUMNS})
    return out.getvalue()


def _pm(mean: float | None, std: float | None, digits: int = 4) -> str:
    if mean is None:
        return "–"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def to_markdown(rows: list[dict]) -> str:
    """summary.md: the rows as a Markdown table, every name read from disk escaped (escape.markdown)."""
    lines = [
        "| config | runs | test accuracy | test loss | best val accuracy (epoch) | near-zero weights | regularizer | data |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        runs = f"{r['completed']}/{r['runs']}"
        if r["failed"] or r["diverged"]:
            runs += f" ({r['failed']} failed, {r['diverged']} diverged)"
        if r["pruned"]:
            runs += f" ({r['pruned']} pruned)"
        epoch = f" ({r['best_epoch_median']:g})" if r["best_epoch_median"] is not None else ""
        sparsity = f"{r['sparsity_mean']:.1%}" if r["sparsity_mean"] is not None else "–"
        lines.append(
            f"| {markdown(r['config'])} | {runs} | {_pm(r['test_accuracy_mean'], r['test_accuracy_std'])} | "
            f"{_pm(r['test_loss_mean'], r['test_loss_std'])} | "
            f"{_pm(r['best_val_accuracy_mean'], r['best_val_accuracy_std'])}{epoch} | {sparsity} | {markdown(r['regularizer'])} | {markdown(r['data'])} |"
        )
    return "\n".join(lines) + "\n"


def write_summary(root: Path, runs: list[RunRecord] | None = None) -> list[dict]:
    """Write summary.csv and summary.md at the results root (of `runs`, else of every run there); returns the rows."""
    rows = summarize(load_all(root) if runs is None else runs)
    write_text_atomic(root / "summary.csv", to_csv(rows))
    write_text_atomic(root / "summary.md", to_markdown(rows))
    return rows

"""Summary of a results root: one row per config, mean ± std over seeds, best first.

Reads metrics.json files only (no TensorFlow); damaged run folders are left out (results.scan_runs).
Runs are grouped by their config's name (the grid point, seed left out) and `group_hash`, the hash
of the resolved config without its seed, so the seeds of one config share a row wherever they ran.
Standard deviations are sample standard deviations (n - 1); empty for a single run.
"""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path

from regexp.results import scan_runs, write_text_atomic
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
    "regularizer",
    "data",
]


def describe_regularizer(entries: list[dict]) -> str:
    """A compact text of what a config regularized, e.g. 'l2 0.01 on kernel+bias of conv'."""
    parts = []
    for e in entries:
        if e.get("type", "none") == "none":
            continue
        strength = f"l1 {e['l1']} + l2 {e['l2']}" if e["type"] == "elasticnet" else f"{e['type']} {e['lambda']}"
        where = " of " + "+".join(e["layers"]) if e.get("layers") else ""
        parts.append(f"{strength} on {'+'.join(e['targets'])}{where}")
    return "; ".join(parts) or "none"


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def load_all(root: Path) -> list[dict]:
    """metrics.json of every readable run under root; damaged run folders are left out (scan_runs names them)."""
    return [run.metrics for run in scan_runs(root)[0]]


def group_runs(runs: list[dict]) -> dict[str, list[dict]]:
    """{label: runs}: the seeds of one config together, labels unique.

    A group is a config as its user named it (its name or grid point, seed left out) with the
    same resolved config up to the seed; two configs that only share a name get their hash
    appended to tell them apart.
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for m in sorted(runs, key=lambda m: m.get("run", "")):
        label = m.get("group") or m.get("run", "?")
        groups.setdefault((label, m.get("group_hash") or m.get("run", "?")), []).append(m)
    labels = [label for label, _ in groups]
    return {
        (f"{label} [{key[:6]}]" if labels.count(label) > 1 else label): members
        for (label, key), members in groups.items()
    }


def summarize(runs: list[dict]) -> list[dict]:
    """Group runs by config (seeds together) and aggregate; sorted by mean test accuracy, best first."""
    rows = []
    for label, members in group_runs(runs).items():
        done = [m for m in members if m.get("status") == "completed"]
        acc_mean, acc_std = _mean_std([m["test_accuracy"] for m in done if m.get("test_accuracy") is not None])
        loss_mean, loss_std = _mean_std([m["test_loss"] for m in done if m.get("test_loss") is not None])
        val_mean, val_std = _mean_std([m["best_val_accuracy"] for m in done if m.get("best_val_accuracy") is not None])
        epochs = [m["best_epoch"] for m in done if m.get("best_epoch") is not None]
        sparsity, _ = _mean_std([m["sparsity"]["overall"] for m in done if m.get("sparsity")])
        rows.append(
            {
                "config": label,
                "runs": len(members),
                "completed": len(done),
                "test_accuracy_mean": acc_mean,
                "test_accuracy_std": acc_std,
                "test_loss_mean": loss_mean,
                "test_loss_std": loss_std,
                "best_val_accuracy_mean": val_mean,
                "best_val_accuracy_std": val_std,
                "best_epoch_median": statistics.median(epochs) if epochs else None,
                "sparsity_mean": sparsity,
                "failed": sum(m.get("status") == "failed" for m in members),
                "diverged": sum(m.get("status") == "diverged" for m in members),
                "regularizer": describe_regularizer(members[0].get("regularizer") or []),
                "data": (members[0].get("data") or {}).get("description", ""),
            }
        )
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
        epoch = f" ({r['best_epoch_median']:g})" if r["best_epoch_median"] is not None else ""
        sparsity = f"{r['sparsity_mean']:.1%}" if r["sparsity_mean"] is not None else "–"
        lines.append(
            f"| {markdown(r['config'])} | {runs} | {_pm(r['test_accuracy_mean'], r['test_accuracy_std'])} | "
            f"{_pm(r['test_loss_mean'], r['test_loss_std'])} | "
            f"{_pm(r['best_val_accuracy_mean'], r['best_val_accuracy_std'])}{epoch} | {sparsity} | {markdown(r['regularizer'])} | {markdown(r['data'])} |"
        )
    return "\n".join(lines) + "\n"


def write_summary(root: Path, runs: list[dict] | None = None) -> list[dict]:
    """Write summary.csv and summary.md at the results root; returns the rows."""
    rows = summarize(load_all(root) if runs is None else runs)
    write_text_atomic(root / "summary.csv", to_csv(rows))
    write_text_atomic(root / "summary.md", to_markdown(rows))
    return rows

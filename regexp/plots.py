"""Plots: each run's loss and accuracy curves, and the comparison figures of a results root.

Drawn from history.csv and metrics.json alone: no TensorFlow, no training.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
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

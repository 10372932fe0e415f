"""`regexp plot` over 100 saved runs: wall time of the whole command in a fresh process.

Writes 100 run folders as `regexp run` leaves them (25-epoch history.csv, metrics.json, and
the run's loss and accuracy figures, drawn after its history as the runner does) into a
temporary root: a lambda grid of 10 values x 10 seeds. Then times, alternating:
- `regexp plot ROOT`: what a user runs after a sweep: the comparison figures and the summary,
  and no run's own curves, as all are up to date (goal: < 5 s);
- `regexp plot ROOT --redraw`: every run's two figures redrawn as well (204 figures), which is
  also the time for runs whose figures are missing (copied without them, say).

    python benchmarks/plot_runs.py [--runs 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from regexp.results.store import history_csv, write_json_atomic

GOAL_SECONDS = 5.0


def write_runs(root: Path, count: int, epochs: int = 25) -> None:
    seeds = 10
    for i in range(count):
        lam, seed = 10 ** (-4 + (i // seeds) * 0.3), i % seeds
        name, group = f"grid__lambda-{lam:.6g}__seed-{seed}", f"grid__lambda-{lam:.6g}"
        folder = root / name
        folder.mkdir(parents=True)
        top = 0.9 - 2 * lam - seed / 1000
        rows = [
            {
                "epoch": e,
                "loss": 2 / e,
                "accuracy": top * (1 - math.exp(-e / 4)),
                "val_loss": 2.1 / e,
                "val_accuracy": top * (1 - math.exp(-e / 4)) - 0.01,
            }
            for e in range(1, epochs + 1)
        ]
        (folder / "history.csv").write_text(history_csv(rows))
        entry = {"type": "l2", "targets": ["activity"], "lambda": lam, "l1": None, "l2": None, "layers": None}
        write_json_atomic(
            folder / "metrics.json",
            {
                "run": name,
                "group": group,
                "group_hash": group,
                "config_hash": name,
                "seed": seed,
                "status": "completed",
                "test_accuracy": top,
                "test_loss": 1 - top,
                "best_val_accuracy": top - 0.01,
                "best_epoch": epochs,
                "sparsity": {"overall": min(1.0, lam * 3)},
                "regularizer": [entry],
                "data": {"description": "benchmark"},
            },
        )


def draw_run_figures(root: Path) -> None:
    """Each run's loss and accuracy figures, as `regexp run` draws them after its last epoch."""
    from regexp.results.store import read_history
    from regexp.study.plots import plot_run

    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        plot_run(folder, read_history(folder / "history.csv"), folder.name)


def timed_plot(root: Path, *extra: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "regexp", "plot", str(root), *extra], check=True, capture_output=True, text=True
    )
    return time.perf_counter() - start, done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    plain, redraw = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_runs(root, args.runs)
        draw_run_figures(root)
        for _ in range(args.repeats):
            seconds, plain_said = timed_plot(root)
            plain.append(seconds)
            seconds, redraw_said = timed_plot(root, "--redraw")
            redraw.append(seconds)
        figures = len(list(root.rglob("*.png")))
    median, redraw_median = statistics.median(plain), statistics.median(redraw)
    print(f"{args.runs} saved runs, {figures} PNG files in all")
    print(f"regexp plot ROOT ({plain_said}): " + ", ".join(f"{t:.2f} s" for t in plain))
    print(f"regexp plot ROOT --redraw ({redraw_said}): " + ", ".join(f"{t:.2f} s" for t in redraw))
    print(
        f"median {median:.2f} s; goal < {GOAL_SECONDS:.0f} s: {'met' if median < GOAL_SECONDS else 'NOT met'}; "
        f"with --redraw (every run's curves too): median {redraw_median:.2f} s"
    )


if __name__ == "__main__":
    main()

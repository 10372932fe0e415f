"""`regexp plot` over 100 saved runs: wall time of the whole command in a fresh process.

Writes 100 run folders as `regexp run` leaves them (25-epoch history.csv, metrics.json) into a
temporary root: a lambda grid of 10 values x 10 seeds. Goal: < 5 s.

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

from regexp.results import history_csv, write_json_atomic

GOAL_SECONDS = 5.0


def write_runs(root: Path, count: int, epochs: int = 25) -> None:
    seeds = 10
    for i in range(count):
        lam, seed = 10 ** (-4 + (i // seeds) * 0.3), i % seeds
        name, group = f"grid__lambda-{lam:.6g}__seed-{seed}", f"grid__lambda-{lam:.6g}"
        folder = root / name
        folder.mkdir(parents=True)
        top = 0.9 - 2 * lam - seed / 1000
        rows = [{"epoch": e, "loss": 2 / e, "accuracy": top * (1 - math.exp(-e / 4)), "val_loss": 2.1 / e,
                 "val_accuracy": top * (1 - math.exp(-e / 4)) - 0.01} for e in range(1, epochs + 1)]
        (folder / "history.csv").write_text(history_csv(rows))
        entry = {"type": "l2", "targets": ["activity"], "lambda": lam, "l1": None, "l2": None, "layers": None}
        write_json_atomic(folder / "metrics.json", {
            "run": name, "group": group, "group_hash": group, "config_hash": name, "seed": seed,
            "status": "completed", "test_accuracy": top, "test_loss": 1 - top, "best_val_accuracy": top - 0.01,
            "best_epoch": epochs, "sparsity": {"overall": min(1.0, lam * 3)}, "regularizer": [entry],
            "data": {"description": "benchmark"},
        })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_runs(root, args.runs)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "regexp", "plot", str(root)], check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
        figures = len(list(root.rglob("*.png")))
    median = statistics.median(times)
    print(f"regexp plot over {args.runs} runs ({figures} PNG files): " + ", ".join(f"{t:.2f} s" for t in times))
    print(f"median {median:.2f} s; goal < {GOAL_SECONDS:.0f} s: {'met' if median < GOAL_SECONDS else 'NOT met'}")


if __name__ == "__main__":
    main()

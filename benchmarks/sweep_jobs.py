"""A sweep of 4 short runs with --jobs 1 vs --jobs 2 on this machine: which default is faster?

Each round runs the same 4-run sweep (synthetic data of EMNIST's shape, L2 on activity, four
seeds) once with each setting, in fresh results roots, alternating which goes first. Prints
wall times per round, the median ratio, and the recommended default for this machine.

    python benchmarks/sweep_jobs.py [--rounds 2] [--samples 12000] [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def write_sweep(folder: Path, samples: int, epochs: int) -> None:
    folder.mkdir(parents=True)
    config = {
        "regularizer": {"type": "l2", "targets": ["activity"]},
        "data": {"dataset": "synthetic", "limit": samples, "test_limit": 2000},
        "training": {"epochs": epochs},
        "sweep": {"training.seed": [0, 1, 2, 3]},
    }
    (folder / "four_runs.yaml").write_text(yaml.safe_dump(config))


def timed_sweep(folder: Path, root: Path, jobs: int) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "regexp", "sweep", str(folder), "--results", str(root), "--jobs", str(jobs)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--samples", type=int, default=12_000, help="training samples per run")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; 4 runs of {args.samples} samples x {args.epochs} epochs each")
    seconds: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "configs"
        write_sweep(folder, args.samples, args.epochs)
        for round_ in range(args.rounds):
            order = (1, 2) if round_ % 2 == 0 else (2, 1)
            for jobs in order:
                seconds[jobs].append(timed_sweep(folder, Path(tmp) / f"r{round_}-j{jobs}", jobs))
            print(f"round {round_ + 1}: --jobs 1 {seconds[1][-1]:.1f} s, --jobs 2 {seconds[2][-1]:.1f} s")
    ratios = [a / b for a, b in zip(seconds[1], seconds[2])]
    median = statistics.median(ratios)
    print(
        f"median --jobs 1 / --jobs 2 wall time: {median:.2f} ({'--jobs 2 faster' if median > 1 else '--jobs 1 faster'})"
    )
    print(f"recommended default on this machine: --jobs {2 if median > 1.05 else 1}")


if __name__ == "__main__":
    main()

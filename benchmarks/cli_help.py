"""Wall time of `regexp --help` in fresh processes (the CLI must start without importing TensorFlow).

    python benchmarks/cli_help.py            # 15 runs after one warm-up
    python benchmarks/cli_help.py --runs 30

Goal: median < 0.3 s. Reports; always exits 0 unless the command itself fails.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import busy_cpu_seconds

REPO = Path(__file__).resolve().parents[1]
GOAL_S = 0.3


def command() -> list[str]:
    script = Path(sys.executable).parent / "regexp"
    return [str(script), "--help"] if script.exists() else [sys.executable, "-m", "regexp", "--help"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs (default 15), after one untimed warm-up")
    args = parser.parse_args()
    cmd = command()
    env = {**os.environ, "COLUMNS": "100"}
    warm = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    if warm.returncode != 0:
        print(f"{' '.join(cmd)} failed (exit {warm.returncode}):\n{warm.stderr}")
        return 1
    import resource

    times = []
    children_before = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])
    busy_before, started = busy_cpu_seconds(), time.perf_counter()
    for _ in range(args.runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, cwd=REPO, env=env, check=True)
        times.append(time.perf_counter() - t0)
    elapsed, busy_after = time.perf_counter() - started, busy_cpu_seconds()
    ours = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2]) - children_before
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, regexp.cli; print(sorted(m for m in ('tensorflow', 'keras', 'numpy', 'matplotlib') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    median = statistics.median(times)
    print(f"command: {' '.join(cmd)}")
    print(f"runs: {args.runs} fresh processes (after 1 warm-up)")
    print(f"wall time: median {median:.3f} s, min {min(times):.3f} s, max {max(times):.3f} s")
    if busy_before is not None and busy_after is not None:
        other = max(0.0, (busy_after - busy_before - ours) / elapsed)
        print(
            f"cores kept busy by other processes during the runs: {other:.2f} of {os.cpu_count()} (the cores are shared)"
        )
    print(f"heavy modules imported by `import regexp.cli`: {probe.stdout.strip() or probe.stderr.strip()[-300:]}")
    print(f"goal: median < {GOAL_S} s: {'met' if median < GOAL_S else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Does the fast path cost accuracy? The offline digits demo over several seeds, fast vs float32.

For each seed, runs configs/demo_digits.yaml (scikit-learn digits, offline) twice through the
library (`regexp.config.load_config` + `regexp.run.runner.run_experiment`, into a temporary results
root): with `training.precision: auto` (the fast path: mixed_bfloat16 where the CPU or GPU has
native bfloat16, else float32) and with `training.precision: float32`. Reports each run's test
accuracy, the mean of each path, and the mean paired difference.

    python benchmarks/accuracy_check.py                  # 5 seeds
    python benchmarks/accuracy_check.py --seeds 3 --epochs 15

Goal: |mean(fast) - mean(float32)| <= 1 percentage point. Reports; exits 0 unless a run fails.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CONFIG = REPO / "configs" / "demo_digits.yaml"
GOAL_PP = 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5; at least 3)")
    parser.add_argument("--epochs", type=int, default=None, help="override training.epochs (default: the config's)")
    parser.add_argument("--config", type=Path, default=CONFIG, help="config to run (default: configs/demo_digits.yaml)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from regexp.config import RunSpec, load_config
    from regexp.run.runner import COMPLETED, run_experiment

    accuracy: dict[str, list[float]] = {"auto": [], "float32": []}
    resolved: dict[str, str] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="regexp-accuracy-") as root:
        for seed in range(args.seeds):
            for precision in ("auto", "float32"):
                overrides = [f"training.seed={seed}", f"training.precision={precision}"]
                if args.epochs:
                    overrides.append(f"training.epochs={args.epochs}")
                config = load_config(args.config, overrides)
                name = f"{config.name}__{precision}__seed-{seed}"
                config = config.model_copy(update={"name": name})
                spec = RunSpec(name, name, config, f"{args.config} [{precision}, seed {seed}]")
                outcome = run_experiment(spec, Path(root), verbose=0)
                record = outcome.record
                if outcome.status != COMPLETED or record is None:
                    print(f"seed {seed}, {precision}: {outcome.status} {outcome.message}")
                    return 1
                accuracy[precision].append(record.test_accuracy)
                resolved[precision] = record.training_path.precision
                print(
                    f"seed {seed}: {precision:>7} ({resolved[precision]:>14}) test accuracy "
                    f"{record.test_accuracy:.4f}  ({record.wall_time_s:.1f} s)",
                    flush=True,
                )
    fast, f32 = accuracy["auto"], accuracy["float32"]
    differences = [a - b for a, b in zip(fast, f32)]
    mean_diff_pp = 100 * (statistics.mean(fast) - statistics.mean(f32))
    print()
    print(
        f"config: {args.config.relative_to(REPO) if args.config.is_relative_to(REPO) else args.config}; "
        f"{args.seeds} seeds; {time.perf_counter() - started:.0f} s in all"
    )
    print(
        f"fast path (precision auto -> {resolved['auto']}): mean test accuracy {statistics.mean(fast):.4f} "
        f"(min {min(fast):.4f}, max {max(fast):.4f})"
    )
    print(f"float32 path: mean test accuracy {statistics.mean(f32):.4f} (min {min(f32):.4f}, max {max(f32):.4f})")
    spread = f", sd of paired differences {100 * statistics.stdev(differences):.2f} pp" if len(differences) > 1 else ""
    print(f"difference (fast - float32): {mean_diff_pp:+.2f} percentage points{spread}")
    if resolved["auto"] == "float32":
        print("note: this machine has no native bfloat16, so both paths ran in float32")
    print(f"goal: |difference| <= {GOAL_PP} pp: {'met' if abs(mean_diff_pp) <= GOAL_PP else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

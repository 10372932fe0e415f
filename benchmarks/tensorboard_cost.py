"""What TensorBoard logging costs a run: the weight histograms against the epoch they follow.

Runs a config through the library (`regexp.run.runner.run_experiment`, into a temporary results
root) on synthetic data of EMNIST-balanced's size (112,800 training samples per epoch by
default) and on the digits demo, and reports, from the run's own `RunBoard`, the seconds one
set of weight histograms took, the median training seconds per epoch, their ratio, and the
epochs that got histograms (regexp writes them after the first epoch, then whenever their
total stays within `HISTOGRAM_TIME_SHARE` of the training time so far).

    python benchmarks/tensorboard_cost.py                  # 3 EMNIST-sized epochs + the digits demo
    python benchmarks/tensorboard_cost.py --epochs 2 --samples 50000

Goal: one set of histograms < 3 % of an EMNIST-sized epoch. Reports; exits 0 unless a run fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
GOAL = 0.03


def measure(config: Path, overrides: list[str], label: str) -> bool:
    from regexp.config import RunSpec, load_config
    from regexp.run.runner import COMPLETED, run_experiment
    from regexp.training import tensorboard_log

    boards = []
    original_init = tensorboard_log.RunBoard.__init__

    def remember(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        boards.append(self)

    tensorboard_log.RunBoard.__init__ = remember
    try:
        loaded = load_config(config, overrides)
        spec = RunSpec(label, label, loaded.model_copy(update={"name": label}), str(config))
        with tempfile.TemporaryDirectory(prefix="regexp-tb-cost-") as root:
            outcome = run_experiment(spec, Path(root), verbose=0, log=lambda *_: None)
    finally:
        tensorboard_log.RunBoard.__init__ = original_init
    if outcome.status != COMPLETED:
        print(f"{label}: {outcome.status} {outcome.message}")
        return False
    board, record = boards[-1], outcome.record
    epoch_s = record.data.train / record.train_samples_per_s
    per_set = board.histogram_seconds / len(board.histogram_epochs)
    print(
        f"{label}: {record.data.train:,} training samples, {record.epochs_run} epochs; "
        f"median epoch {epoch_s:.2f} s (training only); one set of weight histograms {per_set * 1000:.1f} ms "
        f"= {per_set / epoch_s:.1%} of an epoch (goal < {GOAL:.0%}); histograms after epochs {board.histogram_epochs}"
    )
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="EMNIST-sized epochs (default 3)")
    parser.add_argument(
        "--samples", type=int, default=141_000, help="samples before the validation split (default 141,000)"
    )
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from _common import busy_cpu_seconds

    busy_before = busy_cpu_seconds()
    ok = measure(
        REPO / "configs" / "l2_kernel_bias.yaml",
        [
            "data.dataset=synthetic",
            f"data.limit={args.samples}",
            "data.test_limit=1000",
            f"training.epochs={args.epochs}",
        ],
        "emnist_sized",
    )
    ok = ok and measure(REPO / "configs" / "demo_digits.yaml", [], "digits_demo")
    if busy_before is not None:
        print(f"machine busy {busy_cpu_seconds() - busy_before:.0f} CPU-s in all (other processes included)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

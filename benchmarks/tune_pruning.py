"""A small tuning study three ways, side by side in one run on this machine: with pruning
(successive halving), without it, and without it with every trial compiling its own model (as
before regexp/training/reuse.py). It prints the search's wall time and the best validation
accuracy each found (goal: pruning at most half the time, for a best within noise), and what a
trial spends besides its epochs (goal: at most 1 s after the first trial of a process).

Each study is the search phase of `regexp tune` (its trials, no confirmation) in one fresh
process and a fresh results root, on the digits set (real handwriting, shipped with
scikit-learn; `--data synthetic` for data of EMNIST's shape, which every reasonable trial learns
perfectly), the learning rate searched over a wide log range so that some trials are clearly
bad; the order of the three alternates across rounds. Times are read from the study in tune.db and the trials' metrics.json: the search
is the first trial's start to the last trial's end; a trial's time besides its epochs is its
ask-to-tell time less its epochs at the study's steady epoch time (the median over the trials'
`epoch_seconds` after their first: a training and a validation pass). That holds the process's
start-up for the first trial, and for every trial the model build, tracing and compiling (unless
the compiled model is reused), evaluation and writing its files.

    python benchmarks/tune_pruning.py [--rounds 1] [--trials 12] [--epochs 10] [--data digits|synthetic]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import busy_cpu_seconds  # noqa: E402


def write_config(folder: Path, trials: int, epochs: int, data: str, samples: int, pruner: str) -> Path:
    folder.mkdir(parents=True)
    config = {
        "regularizer": {"type": "l2", "targets": ["kernel", "bias"]},
        "data": {"dataset": "digits"}
        if data == "digits"
        else {"dataset": "synthetic", "limit": samples, "test_limit": 500},
        "model": {"num_classes": 10},
        "training": {"epochs": epochs, "batch_size": 100},
        "search": {
            "trials": trials,
            "confirm_seeds": 2,
            "pruner": pruner,
            "space": {
                "training.learning_rate": {"low": 1.0e-5, "high": 1.0e-1, "log": True},
                "regularizer.lambda": {"low": 1.0e-7, "high": 1.0e-1, "log": True},
            },
        },
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# The search phase of `regexp tune` alone (its confirmation runs would cost every study alike).
SEARCH = (
    "import sys\nfrom pathlib import Path\nfrom regexp.run.tune import load_targets, run_all_trials\n"
    "run_all_trials(load_targets(Path(sys.argv[1]), []), Path(sys.argv[2]), 1, 0)\n"
)
# The baseline: each trial builds, compiles and traces its own model and input streams, and seeds
# TensorFlow anew, as every run did before regexp/training/reuse.py. Patched where a run starts
# (TensorFlow is imported there, as in the other two ways: inside the first trial).
COMPILE_EACH = (
    "from regexp.run import runner\n"
    "_prepare_run = runner.prepare_run\n"
    "def prepare_anew(*args):\n"
    "    from regexp.training import reuse, session, train\n"
    "    reuse.forget(); session._SPLITS_MEMO.clear(); train._seeded.clear()\n"
    "    return _prepare_run(*args)\n"
    "runner.prepare_run = prepare_anew\n"
)
WAYS = {  # name: (pruner, reuse the compiled model)
    "pruned": ("successive_halving", True),
    "unpruned": ("none", True),
    "unpruned, compiled each": ("none", False),
}


def run_study(config: Path, root: Path, reuse: bool) -> float:
    """Wall seconds of one study's search in a fresh process (TensorFlow import included)."""
    root.mkdir(parents=True)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", (SEARCH if reuse else COMPILE_EACH + SEARCH), str(config), str(root)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def study_figures(root: Path) -> dict:
    """Search wall time, best value, trial states, and each trial's seconds outside its training epochs."""
    import optuna

    study = optuna.load_study(study_name="study", storage=f"sqlite:///{root / 'tune.db'}")
    trials = sorted(study.trials, key=lambda t: t.number)
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    records = [json.loads((root / f"study__trial-{t.number:04d}" / "metrics.json").read_text()) for t in trials]
    # One steady epoch (training and validation) of this study: every trial has the same model and data.
    steady = statistics.median(s for m in records for s in m["epoch_seconds"][1:])
    outside = [
        (t.datetime_complete - t.datetime_start).total_seconds() - steady * m["epochs_run"]
        for t, m in zip(trials, records)
    ]
    return {
        "search_s": span,
        "best": study.best_value,
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in trials),
        "epochs": sum(len(t.intermediate_values) for t in trials),
        "outside_first_s": outside[0],
        "outside_later_s": statistics.median(outside[1:]) if len(outside) > 1 else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--data", choices=("digits", "synthetic"), default="digits")
    parser.add_argument("--samples", type=int, default=3000, help="synthetic data only")
    args = parser.parse_args()
    ratios, savings = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = list(WAYS) if r % 2 == 0 else list(reversed(WAYS))
            figures = {}
            for way in order:
                pruner, reuse = WAYS[way]
                base = Path(tmp) / f"round{r}-{way.replace(', ', '-').replace(' ', '-')}"
                config = write_config(base / "configs", args.trials, args.epochs, args.data, args.samples, pruner)
                busy_before, start = busy_cpu_seconds(), time.perf_counter()
                total = run_study(config, base / "results", reuse)
                busy = busy_cpu_seconds()
                load = (busy - busy_before) / (time.perf_counter() - start) if busy and busy_before else None
                figures[way] = {**study_figures(base / "results"), "total_s": total, "load": load}
            for way, f in figures.items():
                later = "–" if f["outside_later_s"] is None else f"{f['outside_later_s']:.2f} s"
                print(
                    f"round {r + 1} {way:>24}: search {f['search_s']:.1f} s ({f['epochs']} epochs trained, "
                    f"{f['pruned']} of {args.trials} trials pruned), best val accuracy {f['best']:.4f}; "
                    f"whole process {f['total_s']:.1f} s; besides epochs: first trial {f['outside_first_s']:.2f} s, "
                    f"later trials median {later}; machine busy {f['load'] or 0:.2f} cores"
                )
            ratio = figures["pruned"]["search_s"] / figures["unpruned"]["search_s"]
            gap = figures["pruned"]["best"] - figures["unpruned"]["best"]
            saving = figures["unpruned"]["search_s"] / figures["unpruned, compiled each"]["search_s"]
            ratios.append(ratio)
            savings.append(saving)
            print(
                f"round {r + 1}: pruned / unpruned search time {ratio:.2f} (goal <= 0.5), best found differs by "
                f"{gap:+.4f}; reused / compiled-each search time {saving:.2f}"
            )
    print(
        f"median over {len(ratios)} round(s): pruned / unpruned {statistics.median(ratios):.2f} (goal <= 0.5); "
        f"reused / compiled-each {statistics.median(savings):.2f}"
    )


if __name__ == "__main__":
    main()

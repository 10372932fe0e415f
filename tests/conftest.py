"""Shared test fixtures: tiny configs, an isolated cache, and a CLI runner."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from regexp.results import RunRecord, RunStatus, parse_record

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
REFERENCE_CONFIGS = [
    "none",
    "l1_kernel_bias",
    "l1_activity",
    "l2_kernel_bias",
    "l2_activity",
    "l2_activity_extended",
    "elasticnet_kernel_bias",
    "elasticnet_activity",
]
# Tiny synthetic data: a few hundred samples, one epoch, small batches.
TINY = {"data": {"dataset": "synthetic", "limit": 300, "test_limit": 100}, "training": {"epochs": 1, "batch_size": 50}}
# The same, as command-line overrides of any config.
TINY_SET = [
    "--set",
    "data.dataset=synthetic",
    "--set",
    "data.limit=300",
    "--set",
    "data.test_limit=100",
    "--set",
    "training.batch_size=50",
    "--epochs",
    "1",
]


def run_record(**fields) -> RunRecord:
    """A run record made and checked as metrics.json is read: a completed run (with a test accuracy
    and loss) unless `fields` give another status."""
    status = fields.get("status", RunStatus.COMPLETED)
    evaluated = {"test_accuracy": 0.9, "test_loss": 0.3} if status == RunStatus.COMPLETED else {}
    return parse_record({"run": "run", "status": status, **evaluated, **fields})


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's real cache."""
    monkeypatch.setenv("REGEXP_CACHE", str(tmp_path_factory.mktemp("cache")))


def write_config(folder: Path, name: str, data: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def merge(base: dict, extra: dict) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


@pytest.fixture
def cli():
    """Invoke the regexp CLI in-process; returns typer's Result."""
    from typer.testing import CliRunner

    from regexp.cli import app

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


_HOLD_LOCK = (
    "import sys, time\nfrom pathlib import Path\nfrom regexp.results import RunLock\n"
    "RunLock(Path(sys.argv[1]), sys.argv[2]).acquire()\nprint('held', flush=True)\ntime.sleep(600)\n"
)


@contextlib.contextmanager
def lock_held_elsewhere(root: Path, name: str):
    """Another process holds run `name`'s lock under `root` while the block runs; yields that process."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(root), name], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def rising_history(accuracy: float, epochs: int) -> list[dict]:
    """history.csv rows of a run whose accuracy climbs to `accuracy` at its last epoch (known numbers)."""
    return [
        {
            "epoch": e,
            "loss": 1.0 / e,
            "accuracy": accuracy * e / epochs,
            "val_loss": 1.1 / e,
            "val_accuracy": accuracy * e / epochs - 0.01,
        }
        for e in range(1, epochs + 1)
    ]

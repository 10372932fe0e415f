"""`regexp export`: one row per run, config and metrics as dotted columns, read back with pandas."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from regexp.config import load_config, to_yaml
from regexp.results.flatten import flatten

from conftest import REPO, TINY, merge, write_config

MIXED = [
    {"type": "l2", "targets": ["kernel"], "lambda": 0.01, "layers": ["conv"]},
    {"type": "l1", "targets": ["activity"], "lambda": 0.001, "layers": ["dense1"]},
]


def saved_run(root: Path, name: str, config: dict, metrics: dict, history: str | None = None) -> None:
    """A run folder as regexp leaves it (config.yaml resolved, metrics.json, history.csv), without training."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(to_yaml(load_config(write_config(root.parent / "cfg", name, config))))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    if history is not None:
        (folder / "history.csv").write_text(history)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """One trained run, a hand-made list-form run, a failed run and an unreadable one."""
    from typer.testing import CliRunner

    from regexp.cli import app

    tmp = tmp_path_factory.mktemp("export")
    root = tmp / "results"
    config = write_config(
        tmp / "cfg",
        "trained",
        merge(TINY, {"regularizer": {"type": "l2", "lambda": 0.05}, "model": {"num_classes": 10}}),
    )
    assert CliRunner().invoke(app, ["run", str(config), "--results", str(root)]).exit_code == 0
    saved_run(
        root,
        "mixed",
        {"regularizer": MIXED, "data": {"dataset": "digits"}},
        {
            "run": "mixed",
            "status": "completed",
            "test_accuracy": 0.5,
            "test_loss": 1.25,
            "sparsity": {"overall": 0.1, "layers": {"conv1": 0.0, "dense1": 0.2}},
            "wall_time_s": 3.5,
            "epochs_run": 1,
            "versions": {"regexp": "0.1.0", "tensorflow": "2.21.0"},
        },
        "epoch,loss,accuracy,val_loss,val_accuracy\n1,1.5,0.4,1.3,0.45\n",
    )
    saved_run(
        root,
        "broken",
        {"data": {"dataset": "digits"}},
        {
            "run": "broken",
            "status": "failed",
            "error": "ValueError: boom",
            "traceback": "Traceback:\n  line 1\n",
            "wall_time_s": 0.5,
        },
    )
    (root / "unreadable").mkdir()
    (root / "unreadable" / "metrics.json").write_text("{not json")
    return root


def export(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "regexp", "export", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_one_row_per_run_with_every_metric_equal_to_metrics_json(root):
    done = export(root)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(io.StringIO(done.stdout))
    assert list(table["run"]) == ["broken", "mixed", "trained"]
    for name in ("mixed", "trained", "broken"):
        row = table.set_index("run").loc[name]
        for key, value in flatten(json.loads((root / name / "metrics.json").read_text())).items():
            if key == "run":
                assert row.name == value
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                assert row[key] == value, (name, key)  # repr() of a float reads back exactly
            elif value is None or value == "":
                assert isinstance(row[key], float) and math.isnan(row[key]), (name, key)
            else:
                assert str(row[key]) == str(value), (name, key)


def test_config_columns_are_the_resolved_config_with_a_list_regularizer_indexed(root):
    table = pd.read_csv(io.StringIO(export(root).stdout)).set_index("run")
    assert table.loc["trained", "config.regularizer.type"] == "l2"
    assert table.loc["trained", "config.regularizer.lambda"] == 0.05
    assert table.loc["trained", "config.regularizer.targets"] == "kernel,bias"  # the default, resolved
    assert table.loc["trained", "config.training.batch_size"] == 50
    assert table.loc["mixed", "config.regularizer.0.layers"] == "conv"
    assert table.loc["mixed", "config.regularizer.1.type"] == "l1"
    assert table.loc["mixed", "config.regularizer.1.lambda"] == 0.001
    assert math.isnan(table.loc["trained", "config.regularizer.1.type"])
    assert table.loc["broken", "status"] == "failed"
    assert table.loc["trained", "versions.tensorflow"].startswith("2.")


def test_an_unreadable_run_is_named_in_one_line_and_left_out(root):
    done = export(root)
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"skipped: {root / 'unreadable' / 'metrics.json'}: ")
    assert "unreadable" not in done.stdout


def test_json_has_the_same_rows_and_output_goes_to_a_file(root, tmp_path):
    target = tmp_path / "runs.json"
    done = export(root, "--format", "json", "--output", target)
    assert done.returncode == 0 and done.stdout == ""
    rows = json.loads(target.read_text())
    table = pd.read_csv(io.StringIO(export(root).stdout))
    assert [row["run"] for row in rows] == list(table["run"])
    assert set(rows[0]) == set(table.columns)
    trained = next(row for row in rows if row["run"] == "trained")
    assert trained["test_accuracy"] == json.loads((root / "trained" / "metrics.json").read_text())["test_accuracy"]


def test_export_does_not_import_tensorflow(root):
    code = (
        "import sys\nfrom regexp.cli import app\ntry:\n    app(['export', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(root)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert done.returncode == 0 and "run,status" in done.stdout, done.stderr


def test_a_root_without_runs_is_one_line_and_exit_2(tmp_path):
    done = export(tmp_path)
    assert (
        done.returncode == 2
        and done.stderr.strip() == f"error: {tmp_path}: no readable runs here (a run folder holds a metrics.json)"
    )

"""TensorBoard event files in every run folder, read back with TensorBoard's own reader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.util import tensor_util

from regexp.results.store import read_history

from conftest import REPO, TINY, merge, write_config

LAYERS = ("conv1", "conv2", "dense1", "dense2")
L2_ACTIVITY = merge(
    TINY,
    {
        "regularizer": {"type": "l2", "targets": ["activity"], "lambda": 0.02},
        "model": {"num_classes": 10},
        "training": {"epochs": 3, "batch_size": 50, "seed": 4},
    },
)


def accumulator(folder: Path) -> event_accumulator.EventAccumulator:
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    return acc


def series(acc, tag: str) -> list[tuple[int, float]]:
    """(step, value) of every event of `tag`, in file order (duplicates kept)."""
    return [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]


def plugin_tags(acc, plugin: str) -> set[str]:
    return {tag for tag in acc.Tags()["tensors"] if acc.SummaryMetadata(tag).plugin_data.plugin_name == plugin}


def session_hparams(folder: Path) -> dict:
    acc = accumulator(folder)
    content = acc.SummaryMetadata(hparams_metadata.SESSION_START_INFO_TAG).plugin_data.content
    info = hparams_metadata.parse_session_start_info_plugin_data(content)
    return {
        name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
        for name, value in info.hparams.items()
    }


@pytest.fixture(scope="module")
def l2_run(tmp_path_factory):
    from typer.testing import CliRunner

    from regexp.cli import app

    tmp = tmp_path_factory.mktemp("tb")
    config = write_config(tmp / "cfg", "l2", L2_ACTIVITY)
    result = CliRunner().invoke(app, ["run", str(config), "--results", str(tmp / "results")])
    assert result.exit_code == 0, result.output
    return tmp / "results" / "l2"


def test_every_epochs_scalars_equal_history_csv(l2_run):
    history = read_history(l2_run / "history.csv")
    train, validation = (
        accumulator(l2_run / "tensorboard" / "train"),
        accumulator(l2_run / "tensorboard" / "validation"),
    )
    for name in ("loss", "accuracy", "penalty"):
        assert series(train, name) == [(row["epoch"], float(np.float32(row[name]))) for row in history], name
        assert series(validation, name) == [(row["epoch"], float(np.float32(row[f"val_{name}"]))) for row in history]


def test_weight_histograms_are_there_for_every_layer(l2_run):
    train = accumulator(l2_run / "tensorboard" / "train")
    assert plugin_tags(train, "histograms") == {f"{layer}/{part}" for layer in LAYERS for part in ("kernel", "bias")}
    assert train.Tensors("dense1/kernel")[0].step == 1  # after the first epoch, always


def test_the_hparams_session_names_the_runs_hyperparameters_and_its_test_metrics(l2_run):
    hparams = session_hparams(l2_run / "tensorboard")
    metrics = json.loads((l2_run / "metrics.json").read_text())
    assert hparams["regularizer.type"] == "l2" and hparams["regularizer.targets"] == "activity"
    assert hparams["regularizer.lambda"] == pytest.approx(0.02)
    assert hparams["training.seed"] == 4 and hparams["training.epochs"] == 3 and hparams["training.batch_size"] == 50
    assert hparams["training.precision"] == metrics["training_path"]["precision"]
    assert hparams["data.dataset"] == "synthetic"
    session = accumulator(l2_run / "tensorboard")
    assert series(session, "test_loss") == [(3, float(np.float32(metrics["test_loss"])))]
    assert series(session, "test_accuracy") == [(3, float(np.float32(metrics["test_accuracy"])))]


def test_a_list_regularizer_names_each_entry_and_where_each_layers_penalties_sit(cli, tmp_path):
    config = write_config(
        tmp_path,
        "mixed",
        merge(
            TINY,
            {
                "regularizer": [
                    {"type": "l2", "targets": ["kernel"], "lambda": 0.01, "layers": ["conv"]},
                    {"type": "elasticnet", "targets": ["activity"], "l1": 0.001, "l2": 0.002, "layers": ["dense1"]},
                ],
                "model": {"num_classes": 10},
            },
        ),
    )
    assert cli("run", config, "--results", tmp_path / "r").exit_code == 0
    hparams = session_hparams(tmp_path / "r" / "mixed" / "tensorboard")
    assert hparams["regularizer.0.type"] == "l2" and hparams["regularizer.0.layers"] == "conv"
    assert hparams["regularizer.1.type"] == "elasticnet" and hparams["regularizer.1.l2"] == pytest.approx(0.002)
    assert hparams["placement.conv1"] == "kernel l2 lambda 0.01"
    assert hparams["placement.dense1"] == "activity elasticnet l1 0.001 l2 0.002"
    assert hparams["placement.dense2"] == "none"


def write_events(folder: Path, steps: list[int]) -> None:
    from regexp.tf_runtime import tf

    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        for step in steps:
            tf.summary.scalar("loss", float(step), step=step)
    writer.close()


def test_restarting_at_epoch_k_drops_later_steps_and_a_record_cut_short(tmp_path):
    from regexp.training.tensorboard_log import drop_steps_after, event_files

    board = tmp_path / "tensorboard"
    write_events(board / "train", [1, 2, 3, 4])
    write_events(board, [4])  # an end-of-run file from a process killed before promotion
    [path] = event_files(board / "train")
    with open(path, "ab") as f:
        f.write(b"\x20\x00\x00")  # half a record header: a kill in the middle of a write
    drop_steps_after(board, 2)
    assert series(accumulator(board / "train"), "loss") == [(1, 1.0), (2, 2.0)]
    assert event_files(board) == []


KILL_AFTER_EPOCH_3 = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from regexp.training import tensorboard_log
    from regexp.config import load_runs
    from regexp.run.runner import run_experiment

    record = tensorboard_log.RunBoard.record_epoch
    def record_then_die(self, epoch, logs):
        record(self, epoch, logs)
        if epoch == 3 and sys.argv[3] == "kill":  # events and history of epoch 3 written, its checkpoint not
            os.kill(os.getpid(), signal.SIGKILL)
    tensorboard_log.RunBoard.record_epoch = record_then_die
    [spec] = load_runs(Path(sys.argv[1]))
    run_experiment(spec, Path(sys.argv[2]), verbose=0)
""")


@pytest.mark.slow
def test_a_killed_and_resumed_run_has_each_step_once(tmp_path):
    config = write_config(tmp_path, "resumed", merge(L2_ACTIVITY, {"training": {"epochs": 5}}))
    root = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_EPOCH_3, str(config), str(root), "kill"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert killed.returncode == -9, killed.stdout + killed.stderr
    staged = root / ".inprogress" / "resumed" / "tensorboard" / "train"
    assert [step for step, _ in series(accumulator(staged), "loss")] == [1, 2, 3]
    resumed = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_EPOCH_3, str(config), str(root), "finish"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    run = root / "resumed"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == 2  # the checkpoint of epoch 3 was never written
    history = read_history(run / "history.csv")
    for part, prefix in (("train", ""), ("validation", "val_")):
        acc = accumulator(run / "tensorboard" / part)
        for name in ("loss", "accuracy", "penalty"):
            assert series(acc, name) == [(row["epoch"], float(np.float32(row[prefix + name]))) for row in history]
    train = accumulator(run / "tensorboard" / "train")
    steps = [e.step for e in train.Tensors("dense1/kernel")]
    assert steps == sorted(set(steps)) and {1, 3} <= set(steps)  # the first epoch of each attempt
    assert len(event_files_under(run / "tensorboard")) == 5  # train and validation: one file per attempt; session: one


def event_files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if "tfevents" in p.name]
